//! `--profile DIR`: where each target's isolate spends its time while a
//! case is loaded, from V8's own sampling profiler (the Chrome DevTools
//! Protocol's `Profiler` domain, through the inspector each target's
//! workerd then opens).
//!
//! The bench's other figures say how much CPU a request costs each target;
//! this says what the cost is made of, side by side, in the same run:
//! workerd's own work outside JS (`(program)`: HTTP, the event loop, the
//! runtime's C++ when it is not called from JS), the runtime's API called
//! from JS (`Response`, `Headers.get`, `fetch`...: built-in functions,
//! which have no script), the Worker's JS, its wasm, and the garbage
//! collector; and, whatever V8 counted each part as, how much of it ran
//! with the Worker's code on the stack (its code and everything it called)
//! and how much outside (the runtime's work around each request). Every
//! profile is written to `DIR` as a `.cpuprofile` (Chrome
//! DevTools and speedscope open it) for the call trees this summary
//! leaves out.
//!
//! V8 does not always give a runtime API call a frame of its own, nor the
//! same way from run to run: the API's `fetch()` was time of its JS glue
//! in one profiled run and a `fetch` frame in the next (BENCHMARKS.md,
//! thirty-seventh pass). So read the JS and runtime API columns together when comparing Workers,
//! or the split in and outside the Worker's code, which does not depend on
//! that; wasm, GC and workerd's own work are attributed exactly.
//!
//! Profiling costs the isolate time (a sample every
//! [`SAMPLING_INTERVAL_US`] us); the rates of a profiled run are not
//! comparable with those of another run, though they are, roughly, with
//! each other.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;

use super::inspector::Inspector;
use super::Target;

/// V8's sampling interval: fine enough that a 5 s load of a case served in
/// 100 us a request gives tens of thousands of samples, coarse enough that
/// the sampler's own cost stays a few percent.
pub const SAMPLING_INTERVAL_US: u64 = 100;

/// Functions listed per case and target, by their own (self) time.
const TOP_FUNCTIONS: usize = 12;

/// What a sample's innermost frame was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// workerd's own work: no JS on the stack (`(program)`), or a built-in
    /// function workerd called itself, not from the Worker's code.
    Runtime,
    /// A built-in function the Worker's code called: the runtime's API
    /// (`Response`, `Headers.append`, `TextDecoder.decode`...) and V8's own
    /// builtins.
    RuntimeApi,
    /// The Worker's JavaScript (any function with a script).
    Js,
    /// The Worker's WebAssembly.
    Wasm,
    /// V8's garbage collector.
    Gc,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::Runtime,
        Kind::RuntimeApi,
        Kind::Js,
        Kind::Wasm,
        Kind::Gc,
    ];

    fn label(self) -> &'static str {
        match self {
            Kind::Runtime => "workerd",
            Kind::RuntimeApi => "runtime API",
            Kind::Js => "JS",
            Kind::Wasm => "wasm",
            Kind::Gc => "GC",
        }
    }

    /// The kind of a profile node's call frame, `in_code` when the
    /// Worker's code is on its stack; `None` for the idle thread and the
    /// root, which are not work.
    fn of(frame: &Value, in_code: bool) -> Option<Kind> {
        let name = frame["functionName"].as_str().unwrap_or_default();
        let url = frame["url"].as_str().unwrap_or_default();
        match name {
            "(idle)" | "(root)" => None,
            "(program)" => Some(Kind::Runtime),
            "(garbage collector)" => Some(Kind::Gc),
            _ if url.starts_with("wasm://") => Some(Kind::Wasm),
            _ if url.is_empty() && in_code => Some(Kind::RuntimeApi),
            _ if url.is_empty() => Some(Kind::Runtime),
            _ => Some(Kind::Js),
        }
    }
}

/// The ids of the profile's nodes with the Worker's code (a function with
/// a script, or wasm) at or above them in their call stack.
fn in_workers_code(nodes: &[Value]) -> anyhow::Result<std::collections::HashSet<u64>> {
    let by_id: HashMap<u64, &Value> = nodes
        .iter()
        .filter_map(|n| Some((n["id"].as_u64()?, n)))
        .collect();
    let root = nodes
        .first()
        .and_then(|n| n["id"].as_u64())
        .context("a profile without a root")?;
    let mut in_code = std::collections::HashSet::new();
    // Depth first from the root, each node with whether its caller's stack
    // holds the Worker's code.
    let mut stack = vec![(root, false)];
    while let Some((id, caller_in_code)) = stack.pop() {
        let Some(node) = by_id.get(&id) else {
            continue;
        };
        let frame = &node["callFrame"];
        let url = frame["url"].as_str().unwrap_or_default();
        let here = caller_in_code || !url.is_empty();
        if here {
            in_code.insert(id);
        }
        for child in node["children"].as_array().into_iter().flatten() {
            if let Some(child) = child.as_u64() {
                stack.push((child, here));
            }
        }
    }
    Ok(in_code)
}

/// A function as the summary names it: its name without a Rust symbol's
/// hash, and for JS the file it is in.
fn function_name(frame: &Value, kind: Kind) -> String {
    let name = frame["functionName"].as_str().unwrap_or_default();
    let name = strip_symbol_hash(name.trim_start_matches('$'));
    let name = if name.is_empty() { "(anonymous)" } else { name };
    match kind {
        Kind::Js => {
            let url = frame["url"].as_str().unwrap_or_default();
            let file = url.rsplit('/').next().unwrap_or(url);
            format!("{name} ({file})")
        }
        _ => name.to_owned(),
    }
}

/// `a::b::h0123456789abcdef` as `a::b`: rustc's legacy symbols end in a
/// hash that says nothing to a reader and differs between builds.
fn strip_symbol_hash(name: &str) -> &str {
    match name.rsplit_once("::h") {
        Some((path, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            path
        }
        _ => name,
    }
}

/// One function's time of its own, summed over a case's profiles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunctionTime {
    pub function: String,
    pub kind: Kind,
    /// Microseconds, over all the profiles (not per request).
    pub self_us: u64,
}

/// Samples' time, summed from profiles of one case on one target.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    /// Requests served during the profiled loads.
    pub requests: u64,
    /// Microseconds of samples that were work (not idle), by kind.
    pub by_kind: BTreeMap<Kind, u64>,
    /// Microseconds of samples that were idle.
    pub idle_us: u64,
    /// Microseconds of samples with the Worker's JS or wasm on the stack:
    /// its code and all it called, whatever V8 counted each call as.
    pub in_code_us: u64,
    /// Microseconds of self time by function, with its kind.
    #[serde(skip)]
    by_function: HashMap<(Kind, String), u64>,
}

impl Summary {
    /// Adds one `Profiler.stop` profile, taken while `requests` were served.
    pub fn add(&mut self, profile: &Value, requests: u64) -> anyhow::Result<()> {
        let nodes = profile["nodes"]
            .as_array()
            .context("a profile without nodes")?;
        let frames: HashMap<u64, &Value> = nodes
            .iter()
            .filter_map(|n| Some((n["id"].as_u64()?, &n["callFrame"])))
            .collect();
        let in_code = in_workers_code(nodes)?;
        let samples = profile["samples"].as_array().context("no samples")?;
        let deltas = profile["timeDeltas"].as_array().context("no time deltas")?;
        // V8's convention (and DevTools'): the delta after a sample is the
        // time that sample stands for.
        for (i, sample) in samples.iter().enumerate() {
            let us = deltas
                .get(i + 1)
                .and_then(Value::as_i64)
                .unwrap_or(0)
                .max(0) as u64;
            let Some((id, frame)) = sample.as_u64().and_then(|id| Some((id, frames.get(&id)?)))
            else {
                continue;
            };
            let in_code = in_code.contains(&id);
            match Kind::of(frame, in_code) {
                None => self.idle_us += us,
                Some(kind) => {
                    if in_code {
                        self.in_code_us += us;
                    }
                    *self.by_kind.entry(kind).or_default() += us;
                    *self
                        .by_function
                        .entry((kind, function_name(frame, kind)))
                        .or_default() += us;
                }
            }
        }
        self.requests += requests;
        Ok(())
    }

    /// The [`TOP_FUNCTIONS`] functions with the most time of their own,
    /// most first.
    fn top(&self) -> Vec<FunctionTime> {
        let mut top: Vec<_> = self
            .by_function
            .iter()
            .map(|((kind, name), us)| FunctionTime {
                function: name.clone(),
                kind: *kind,
                self_us: *us,
            })
            .collect();
        top.sort_by(|a, b| {
            b.self_us
                .cmp(&a.self_us)
                .then_with(|| a.function.cmp(&b.function))
        });
        top.truncate(TOP_FUNCTIONS);
        top
    }

    /// Microseconds per request with the Worker's code on the stack.
    fn in_code_per_request(&self) -> f64 {
        self.in_code_us as f64 / self.requests.max(1) as f64
    }

    fn busy_us(&self) -> u64 {
        self.by_kind.values().sum()
    }

    /// Microseconds of work per request, of one kind or (`None`) all.
    fn per_request(&self, kind: Option<Kind>) -> f64 {
        let us = match kind {
            Some(kind) => self.by_kind.get(&kind).copied().unwrap_or(0),
            None => self.busy_us(),
        };
        us as f64 / self.requests.max(1) as f64
    }
}

/// One case on one target, profiled over every round of every start.
#[derive(Debug, Serialize)]
pub struct Profiled {
    pub case: &'static str,
    pub target: Target,
    #[serde(flatten)]
    pub summary: Summary,
    /// The functions with the most time of their own, most first.
    pub top: Vec<FunctionTime>,
}

/// The profiling of one run: a session with each target's isolates, the
/// profiles written so far and their summaries.
pub struct Profiles {
    dir: PathBuf,
    /// Sessions of the current start, by target and listener (the cached
    /// and uncached services are isolates of their own).
    sessions: BTreeMap<(Target, bool), Inspector>,
    summaries: BTreeMap<(&'static str, Target), Summary>,
}

impl Profiles {
    pub fn new(dir: PathBuf) -> anyhow::Result<Profiles> {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Profiles {
            dir,
            sessions: BTreeMap::new(),
            summaries: BTreeMap::new(),
        })
    }

    /// Forgets the sessions of a start whose workerds have stopped.
    pub fn new_start(&mut self) {
        self.sessions.clear();
    }

    /// Starts sampling `target`'s isolate behind the cached or uncached
    /// listener, whose workerd's inspector is at `address`.
    pub fn start(&mut self, target: Target, uncached: bool, address: &str) -> anyhow::Result<()> {
        let session = match self.sessions.entry((target, uncached)) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let service = if uncached { "uncached" } else { "cached" };
                e.insert(Inspector::connect(address, service)?)
            }
        };
        session.start_profile(SAMPLING_INTERVAL_US)
    }

    /// Stops the sampling [`Profiles::start`] began, writes the profile as
    /// `DIR/<case>.<target>.s<start>r<round>.cpuprofile` and adds it to the
    /// case's summary.
    pub fn stop(
        &mut self,
        case: &'static str,
        target: Target,
        uncached: bool,
        (start, round): (u32, u32),
        requests: u64,
    ) -> anyhow::Result<()> {
        let session = self
            .sessions
            .get_mut(&(target, uncached))
            .context("stopping a profile that was never started")?;
        let profile = session.stop_profile()?;
        let file = self.dir.join(format!(
            "{case}.{}.s{start}r{round}.cpuprofile",
            target.name()
        ));
        std::fs::write(&file, serde_json::to_vec(&profile)?)
            .with_context(|| format!("writing {}", file.display()))?;
        self.summaries
            .entry((case, target))
            .or_default()
            .add(&profile, requests)
    }

    /// Every case and target profiled, in case order then target order.
    pub fn profiled(&self) -> Vec<Profiled> {
        self.summaries
            .iter()
            .map(|(&(case, target), summary)| Profiled {
                case,
                target,
                summary: summary.clone(),
                top: summary.top(),
            })
            .collect()
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

/// The profiles as tables: per case, each target's work per request by
/// kind, then each target's functions with the most time of their own.
pub fn render(profiled: &[Profiled], out: &mut String) {
    let mut cases: Vec<&'static str> = profiled.iter().map(|p| p.case).collect();
    cases.dedup();
    for case in cases {
        let targets: Vec<&Profiled> = profiled.iter().filter(|p| p.case == case).collect();
        let _ = writeln!(
            out,
            "\n  {case}: each isolate's work per request, by V8's profiler (us; sampled every {SAMPLING_INTERVAL_US} us)"
        );
        let _ = write!(
            out,
            "  {:<22} {:>8} {:>12} {:>8}",
            "target", "all", "in its code", "outside"
        );
        for kind in Kind::ALL {
            let _ = write!(out, " {:>11}", kind.label());
        }
        let _ = writeln!(out, " {:>9}", "requests");
        let _ = writeln!(
            out,
            "  (in its code: with the Worker's JS or wasm on the stack, whatever it called; V8 counts some runtime API calls\n  as time of the JS that made them, so read the JS and runtime API columns together)"
        );
        for p in &targets {
            let all = p.summary.per_request(None);
            let in_code = p.summary.in_code_per_request();
            let _ = write!(
                out,
                "  {:<22} {all:>8.1} {in_code:>12.1} {:>8.1}",
                p.target.name(),
                all - in_code
            );
            for kind in Kind::ALL {
                let _ = write!(out, " {:>11.1}", p.summary.per_request(Some(kind)));
            }
            let _ = writeln!(out, " {:>9}", p.summary.requests);
        }
        for p in &targets {
            let _ = writeln!(
                out,
                "  {case} on {}: the functions with the most time of their own (us per request, share of its work)",
                p.target.name()
            );
            let busy = p.summary.busy_us().max(1) as f64;
            for f in &p.top {
                let _ = writeln!(
                    out,
                    "    {:>7.2} {:>5.1} %  {:<11} {}",
                    f.self_us as f64 / p.summary.requests.max(1) as f64,
                    f.self_us as f64 * 100.0 / busy,
                    f.kind.label(),
                    f.function
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn frame(name: &str, url: &str) -> Value {
        json!({ "functionName": name, "url": url, "scriptId": "0", "lineNumber": 0, "columnNumber": 0 })
    }

    #[test]
    fn frames_are_sorted_into_kinds() {
        assert_eq!(Kind::of(&frame("(idle)", ""), false), None);
        assert_eq!(Kind::of(&frame("(root)", ""), false), None);
        assert_eq!(
            Kind::of(&frame("(program)", ""), false),
            Some(Kind::Runtime)
        );
        assert_eq!(
            Kind::of(&frame("(garbage collector)", ""), false),
            Some(Kind::Gc)
        );
        assert_eq!(
            Kind::of(&frame("Response", ""), true),
            Some(Kind::RuntimeApi)
        );
        // A builtin workerd entered itself is its own work.
        assert_eq!(Kind::of(&frame("", ""), false), Some(Kind::Runtime));
        assert_eq!(
            Kind::of(&frame("makeResponse", "file:///worker/bridge.js"), true),
            Some(Kind::Js)
        );
        assert_eq!(
            Kind::of(
                &frame("$api::health::healthz", "wasm://wasm/0a1b2c3d"),
                true
            ),
            Some(Kind::Wasm)
        );
    }

    #[test]
    fn rust_symbols_lose_their_hash_and_only_it() {
        assert_eq!(
            strip_symbol_hash("api_worker::bridge::request_head::hea74e5ea38150d73"),
            "api_worker::bridge::request_head"
        );
        assert_eq!(strip_symbol_hash("a::hash_map"), "a::hash_map");
        assert_eq!(strip_symbol_hash("a::h0123"), "a::h0123");
        assert_eq!(
            function_name(
                &frame("$core::fmt::write::h0123456789abcdef", "wasm://wasm/x"),
                Kind::Wasm
            ),
            "core::fmt::write"
        );
        assert_eq!(
            function_name(&frame("", "file:///w/entry.mjs"), Kind::Js),
            "(anonymous) (entry.mjs)"
        );
    }

    #[test]
    fn only_what_the_workers_code_called_is_in_it() {
        let nodes = json!([
            { "id": 1, "callFrame": frame("(root)", ""), "children": [2, 4] },
            // A builtin workerd entered, and one that builtin called.
            { "id": 2, "callFrame": frame("", ""), "children": [3] },
            { "id": 3, "callFrame": frame("then", "") },
            // The Worker's JS, a builtin it called and what that called.
            { "id": 4, "callFrame": frame("fetch", "file:///w/entry.mjs"), "children": [5] },
            { "id": 5, "callFrame": frame("Response", ""), "children": [6] },
            { "id": 6, "callFrame": frame("", "") },
        ]);
        let in_code = in_workers_code(nodes.as_array().unwrap()).unwrap();
        let mut ids: Vec<u64> = in_code.into_iter().collect();
        ids.sort();
        assert_eq!(ids, [4, 5, 6]);
        assert_eq!(Kind::of(&frame("then", ""), false), Some(Kind::Runtime));
    }

    /// A profile as `Profiler.stop` gives it: nodes with their frames, the
    /// node of each sample, and the time before each sample.
    #[test]
    fn a_profile_is_summed_by_kind_and_function_per_request() {
        let profile = json!({
            "nodes": [
                { "id": 1, "callFrame": frame("(root)", ""), "children": [2, 3, 4, 5, 7] },
                { "id": 2, "callFrame": frame("(idle)", "") },
                { "id": 3, "callFrame": frame("(program)", "") },
                { "id": 4, "callFrame": frame("fetch", "file:///w/entry.mjs"), "children": [6, 8] },
                { "id": 5, "callFrame": frame("(garbage collector)", "") },
                { "id": 6, "callFrame": frame("$api::route::h0123456789abcdef", "wasm://wasm/1") },
                { "id": 7, "callFrame": frame("", "") },
                { "id": 8, "callFrame": frame("Response", "") },
            ],
            "samples": [3, 4, 6, 6, 2, 5, 7, 8, 3],
            "timeDeltas": [0, 100, 100, 100, 100, 300, 100, 100, 100],
        });
        let mut summary = Summary::default();
        summary.add(&profile, 4).unwrap();
        // Each sample stands for the delta after it: 3 -> 100, 4 -> 100,
        // 6 -> 100 + 100, 2 (idle) -> 300, 5 -> 100, 7 -> 100, 8 -> 100,
        // and the last none.
        assert_eq!(summary.idle_us, 300);
        // `(program)`, and the builtin workerd entered itself.
        assert_eq!(summary.by_kind[&Kind::Runtime], 200);
        // The builtin the Worker's `fetch` called.
        assert_eq!(summary.by_kind[&Kind::RuntimeApi], 100);
        assert_eq!(summary.by_kind[&Kind::Js], 100);
        assert_eq!(summary.by_kind[&Kind::Wasm], 200);
        assert_eq!(summary.by_kind[&Kind::Gc], 100);
        assert_eq!(summary.per_request(None), 175.0);
        assert_eq!(summary.per_request(Some(Kind::Wasm)), 50.0);
        // `fetch`, the wasm it called and the `Response` it made.
        assert_eq!(summary.in_code_us, 400);
        assert_eq!(summary.in_code_per_request(), 100.0);
        let top = summary.top();
        let top: Vec<(&str, Kind, u64)> = top
            .iter()
            .map(|f| (f.function.as_str(), f.kind, f.self_us))
            .collect();
        assert_eq!(
            top,
            [
                ("api::route", Kind::Wasm, 200),
                ("(anonymous)", Kind::Runtime, 100),
                ("(garbage collector)", Kind::Gc, 100),
                ("(program)", Kind::Runtime, 100),
                ("Response", Kind::RuntimeApi, 100),
                ("fetch (entry.mjs)", Kind::Js, 100),
            ]
        );
        // A second profile adds to the first.
        summary.add(&profile, 4).unwrap();
        assert_eq!(summary.requests, 8);
        assert_eq!(summary.by_kind[&Kind::Wasm], 400);
        assert_eq!(summary.per_request(None), 175.0);
    }

    /// `--json` carries the same figures, named.
    #[test]
    fn a_profiled_case_reads_well_as_json() {
        let summary = Summary {
            requests: 2,
            idle_us: 10,
            in_code_us: 30,
            by_kind: [(Kind::RuntimeApi, 30)].into(),
            by_function: [((Kind::RuntimeApi, "Response".to_owned()), 30)].into(),
        };
        let json = serde_json::to_value(Profiled {
            case: "healthz",
            target: Target::Api,
            top: summary.top(),
            summary,
        })
        .unwrap();
        assert_eq!(
            json,
            json!({
                "case": "healthz",
                "target": "api",
                "requests": 2,
                "by_kind": { "runtime-api": 30 },
                "idle_us": 10,
                "in_code_us": 30,
                "top": [{ "function": "Response", "kind": "runtime-api", "self_us": 30 }],
            })
        );
    }
}
