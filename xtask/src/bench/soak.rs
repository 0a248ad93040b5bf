//! `cargo xtask bench --soak SECONDS`: every case at once, steadily, on
//! the api with its telemetry sinks live, while workerd's memory is
//! sampled; and one client over its rate limit the whole time.
//!
//! The load comes from many clients, as the API's does in production: each
//! request of a case names the next of [`CLIENTS`] addresses in
//! `CF-Connecting-IP` (what Cloudflare sets; on workerd directly the API
//! reads it as sent), and the api runs with [`LIMIT`], a limit each of them
//! stays far under. One more case, [`GREEDY_CASE`], reads a page as fast as
//! its connection goes from one address of its own: it is refused (429)
//! most of the time, which is the soak's only intended error. A 429 on any
//! other case is a wrong answer, and a greedy client never refused fails
//! the soak too (the limit did not hold under load).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use super::{
    bundle, cases, check, contains, header, inspector, machine, request_paths, rss_bytes, seed,
    timed, timed_load_of, worker_vars, Case, Server, Sinks, Target, READ_SLUG, TOKEN_LIFETIME,
};
use crate::build::{self, Variant};
use crate::project::{self, root};
use crate::stack::{self, Stack, StackOptions};
use crate::ui::{format_bytes, Ui};
use crate::{dev, flags, install};

/// The header the API takes a client's address from.
const CLIENT_IP: &str = "cf-connecting-ip";

/// How many addresses the soak's ordinary load comes from, in turn.
const CLIENTS: u32 = 4096;

/// The rate limit of both classes during the soak: 20 requests a second
/// per client, in bursts of up to 20. The ordinary load spread over
/// [`CLIENTS`] addresses stays far under it: a soak of 20,000 requests a
/// second would ask about 5 a second of each address (the soaks so far
/// served 1,350-1,800 a second in all). One connection from one address is
/// refused whenever it asks for more than 20 a second, which every case's
/// one connection did in the soaks so far (140-180 a second for a cached
/// read, on this project's 2-core VMs), so most of its answers are 429s.
const LIMIT: &str = "20/1s";

/// The client over its limit: an address of TEST-NET-3 (RFC 5737), outside
/// the ordinary load's [`CLIENTS`].
const GREEDY_CLIENT: &str = "203.0.113.66";

/// The case loaded from [`GREEDY_CLIENT`].
const GREEDY_CASE: &str = "pages-get-greedy-client";

/// The `n`-th ordinary client's address (`n` below [`CLIENTS`]): in
/// 198.18.0.0/15, the range RFC 2544 sets aside for benchmarks.
fn client_address(n: u32) -> String {
    format!("198.18.{}.{}", n / 256, n % 256)
}

/// A cached page read from [`GREEDY_CLIENT`], answered 200 while its burst
/// lasts and 429 after. Before the load its first read must be allowed
/// and carry the `RateLimit-*` fields.
fn greedy_case() -> Case {
    Case {
        name: GREEDY_CASE,
        method: "GET",
        path: format!("/v1/pages/{READ_SLUG}"),
        headers: vec![(CLIENT_IP, GREEDY_CLIENT.to_owned())],
        body: None,
        uncached: false,
        expected_statuses: &[200, 429],
        check: |_, headers, body| {
            contains(body, READ_SLUG)?;
            header(headers, "ratelimit-remaining")?;
            Ok(())
        },
    }
}

/// The requests a soak load of `case` sends in turn, to `host`: its paths
/// (each of a spread write's pages), each request from the next of
/// [`CLIENTS`] addresses (in place of an address the case names, as the
/// browser's reads do), but the greedy client's, all from its own.
fn requests(case: &Case, host: &str) -> Vec<Vec<u8>> {
    let paths = request_paths(case, Target::ApiSinksLive);
    let greedy = case.name == GREEDY_CASE;
    let count = if greedy {
        paths.len()
    } else {
        paths.len().max(CLIENTS as usize)
    };
    (0..count)
        .map(|n| {
            let mut headers = case.headers.clone();
            if !greedy {
                let client = client_address(n as u32 % CLIENTS);
                headers.retain(|(name, _)| *name != CLIENT_IP);
                headers.push((CLIENT_IP, client));
            }
            timed::request(
                case.method,
                &paths[n % paths.len()],
                host,
                &headers,
                case.body.as_deref(),
            )
        })
        .collect()
}

/// Loads `case` on the soak's api for `seconds` over `connections`.
fn load(case: &Case, ports: [u16; 2], connections: u32, seconds: u64) -> timed::Samples {
    timed_load_of(case, ports, connections, seconds, |host| {
        requests(case, host)
    })
}

/// Asks as the greedy client until refused (it is, most of the time,
/// while its load runs), and checks the refusal: a 429 problem document
/// with `Retry-After` and no requests left.
fn check_refusal(server: &Server) -> anyhow::Result<()> {
    let client = reqwest::blocking::Client::new();
    let url = format!("{}/v1/pages/{READ_SLUG}", server.url(false));
    for _ in 0..100 {
        let response = client.get(&url).header(CLIENT_IP, GREEDY_CLIENT).send()?;
        if response.status().as_u16() != 429 {
            continue;
        }
        let headers = response.headers().clone();
        let body = response.text()?;
        let refusal = || -> Result<(), String> {
            contains(
                &header(&headers, "content-type")?,
                "application/problem+json",
            )?;
            contains(&body, "\"status\":429")?;
            let retry_after = header(&headers, "retry-after")?;
            match retry_after.parse::<u64>() {
                Ok(seconds) if seconds >= 1 => {}
                _ => return Err(format!("Retry-After {retry_after:?} is not whole seconds")),
            }
            if header(&headers, "ratelimit-remaining")? != "0" {
                return Err("a refusal with requests left".into());
            }
            Ok(())
        };
        return refusal().map_err(|e| anyhow::anyhow!("the greedy client's 429: {e}: {body}"));
    }
    bail!("the greedy client was not refused once in 100 requests during its load")
}

/// Why a soak failed, if it did: any case's wrong answers or socket errors,
/// and a greedy client never refused.
fn failures(cases: &[SoakCase]) -> Vec<String> {
    let mut failed: Vec<String> = cases
        .iter()
        .filter_map(|c| Some(format!("{}: {}", c.case, c.timed.errors()?)))
        .collect();
    if let Some(greedy) = cases.iter().find(|c| c.case == GREEDY_CASE) {
        if greedy.timed.rate_limited == 0 {
            failed.push(format!(
                "{GREEDY_CASE}: never refused in {} requests, the rate limit did not hold",
                greedy.timed.responses
            ));
        }
    }
    failed
}

#[derive(Debug, Serialize)]
struct SoakCase {
    case: &'static str,
    /// The case's responses, each timed with no correction.
    #[serde(flatten)]
    timed: timed::Timed,
}

#[derive(Debug, Serialize)]
struct SoakReport {
    commit: String,
    machine: String,
    seconds: u64,
    cases: Vec<SoakCase>,
    rss_start_bytes: u64,
    rss_end_bytes: u64,
    rss_max_bytes: u64,
    /// One sample a second during the load.
    rss_samples_bytes: Vec<u64>,
    /// Every 10 s from the start: memory right after a full garbage
    /// collection of both isolates, what the Worker actually keeps.
    settled: Vec<Settled>,
    /// Whether a 429 of the greedy client's was checked during the load
    /// and was a problem document with `Retry-After` (see [`check_refusal`]).
    refusal_checked: bool,
    /// Why that check failed, when it did.
    refusal_error: Option<String>,
}

/// The memory kept after a full garbage collection, `second`s into the soak.
#[derive(Debug, Serialize)]
struct Settled {
    second: u64,
    rss_bytes: u64,
    /// Summed over the isolates (the cached and the uncached service).
    js_used_bytes: u64,
    wasm_bytes: u64,
}

/// Collects every isolate's garbage, then reads what is left.
fn settle(
    inspectors: &mut [inspector::Inspector],
    pid: u32,
    second: u64,
) -> anyhow::Result<Settled> {
    let mut settled = Settled {
        second,
        rss_bytes: 0,
        js_used_bytes: 0,
        wasm_bytes: 0,
    };
    for inspector in inspectors {
        let heap = inspector.heap_after_gc()?;
        settled.js_used_bytes += heap.js_used_bytes;
        settled.wasm_bytes += heap.wasm_bytes;
    }
    settled.rss_bytes = rss_bytes(pid);
    Ok(settled)
}

/// `--soak SECONDS`: every case at once against the api with its sinks
/// live (so telemetry buffers are part of what is measured), each case on
/// connections of its own, while workerd's memory is sampled every second.
pub(super) fn soak(ui: &Ui, flags: &flags::Bench, seconds: u64) -> anyhow::Result<()> {
    let interrupted = dev::interrupt_flag()?;
    let build_tools = install::build_tools(ui)?;
    let stack_tools = install::stack_tools(ui)?;
    let install::BenchTools { workerd, .. } = install::bench_tools(ui)?;
    build::worker(ui, &build_tools, Variant::Deploy)?;
    let bundle_dir = ui.step("bundle api (wrangler --dry-run)", || {
        bundle(&build_tools, Target::Api, &root().join("target/bench/soak"))
    })?;
    let state = project::local_dir().join(format!("soak-{}", std::process::id()));
    let options = StackOptions {
        state_dir: state.clone(),
        api_port: 0,
        keep_data: false,
        optimised_stand_ins: true,
        trace_statements: None,
    };
    let mut stack = Stack::start(ui, &stack_tools, None, &options, &interrupted)?;
    let admin_token =
        stack::admin_token_valid_for(&stack.manifest, "bench@example.com", TOKEN_LIFETIME);
    let vars = worker_vars(&stack.manifest, Sinks::Live, LIMIT)?;
    let pid_file = state.join("bench-pids");
    // The inspector is always on: the soak collects garbage through it.
    let inspect = match &flags.inspect {
        Some(address) => address.clone(),
        None => format!("127.0.0.1:{}", stack::free_port()?),
    };
    let server = ui.step("start the api on workerd (sinks live)", || {
        Server::start(
            &workerd,
            Target::ApiSinksLive,
            &bundle_dir,
            &vars,
            &state,
            &pid_file,
            Some(inspect.clone()),
        )
    })?;
    let mut cases = cases(&admin_token);
    cases.push(greedy_case());
    let selected: Vec<&Case> = cases
        .iter()
        .filter(|c| flags.filter.as_deref().is_none_or(|f| c.name.contains(f)))
        .collect();
    ui.step("seed, check and warm up every case", || {
        seed(&server.url(false), &admin_token)?;
        reqwest::blocking::get(format!("{}/v1/pages/{READ_SLUG}", server.url(false)))?;
        for case in &selected {
            check(case, Target::ApiSinksLive, &server)
                .with_context(|| format!("{} on the api", case.name))?;
            load(case, server.ports, 2, 2);
        }
        Ok(())
    })?;

    let pid = server.process.pid();
    let mut inspectors = ui.step("open V8's inspector on both isolates", || {
        ["cached", "uncached"]
            .into_iter()
            .map(|service| inspector::Inspector::connect(&inspect, service))
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let mut settled = vec![settle(&mut inspectors, pid, 0)?];
    let rss_start = rss_bytes(pid);
    let per_case = (flags.connections / selected.len() as u32).max(1);
    let progress = ui.spinner(&format!(
        "soak: {} cases at once for {seconds} s",
        selected.len()
    ));
    // Each case on threads of its own, which end with the soak's time (or
    // with xtask, if it stops early).
    let runs: Vec<_> = selected
        .iter()
        .map(|&case| {
            let case = case.clone();
            let ports = server.ports;
            std::thread::spawn(move || {
                let samples = load(&case, ports, per_case, seconds);
                (case.name, samples)
            })
        })
        .collect();
    let mut samples = Vec::new();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    // The greedy client's refusal, checked once its load has run a while.
    let greedy = selected.iter().any(|c| c.name == GREEDY_CASE);
    let mut refusal: Option<Result<(), String>> = None;
    while Instant::now() < deadline {
        if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
            bail!("interrupted");
        }
        if greedy && refusal.is_none() && started.elapsed() >= Duration::from_secs(3) {
            refusal = Some(check_refusal(&server).map_err(|e| format!("{e:#}")));
        }
        samples.push(rss_bytes(pid));
        let second = started.elapsed().as_secs();
        if second >= settled.last().map_or(0, |s| s.second) + 10 {
            settled.push(settle(&mut inspectors, pid, second)?);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let mut results = Vec::new();
    for run in runs {
        let (case, samples) = run
            .join()
            .map_err(|_| anyhow::anyhow!("a soak load panicked"))?;
        results.push(SoakCase {
            case,
            timed: samples.summary(),
        });
    }
    progress.finish_and_clear();
    let rss_end = rss_bytes(pid);
    settled.push(settle(&mut inspectors, pid, seconds)?);
    let report = SoakReport {
        commit: project::git_commit(),
        machine: machine(),
        seconds,
        cases: results,
        rss_start_bytes: rss_start,
        rss_end_bytes: rss_end,
        rss_max_bytes: samples
            .iter()
            .copied()
            .max()
            .unwrap_or(rss_end)
            .max(rss_end),
        rss_samples_bytes: samples,
        settled,
        refusal_checked: refusal.as_ref().is_some_and(Result::is_ok),
        refusal_error: refusal.and_then(Result::err),
    };
    drop(server);
    stack.stop();
    let _ = std::fs::remove_dir_all(&state);
    if ui.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        eprintln!(
            "\n  soak: {} s, every case at once ({per_case} connection{} each), api with sinks live; \
             every response timed, no correction\n",
            report.seconds,
            if per_case == 1 { "" } else { "s" }
        );
        eprintln!(
            "  {:<34} {:>10} {:>8} {:>7} {:>7} {:>8} {:>8} {:>8} {:>11} {:>14}",
            "case",
            "responses",
            "per s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "429s",
            "unexpected",
            "socket errors"
        );
        for c in &report.cases {
            let t = &c.timed;
            eprintln!(
                "  {:<34} {:>10} {:>8.0} {:>7.2} {:>7.2} {:>8.2} {:>8.1} {:>8} {:>11} {:>14}",
                c.case,
                t.responses,
                t.responses_per_sec,
                t.p50_ms,
                t.p99_ms,
                t.p999_ms,
                t.max_ms,
                t.rate_limited,
                t.unexpected,
                t.socket_errors
            );
        }
        if let Some(greedy) = report.cases.iter().find(|c| c.case == GREEDY_CASE) {
            eprintln!(
                "\n  the greedy client ({GREEDY_CLIENT}, limit {LIMIT}): {} of {} answers refused (429, intended); \
                 the rest of the load from {CLIENTS} addresses\n  a refusal during the load: {}",
                greedy.timed.rate_limited,
                greedy.timed.responses,
                match (&report.refusal_error, report.refusal_checked) {
                    (Some(error), _) => error.clone(),
                    (None, true) => "a problem document with Retry-After and no requests left".into(),
                    (None, false) => "not checked".into(),
                }
            );
        }
        let every_ten: Vec<String> = report
            .rss_samples_bytes
            .iter()
            .step_by(10)
            .map(|b| format!("{:.0}", *b as f64 / (1024.0 * 1024.0)))
            .collect();
        eprintln!(
            "\n  workerd RSS: {} at the start, {} at the end, {} at most\n  \
             every 10 s (MiB): {}\n  over the second half: {:+.1} MiB\n  {} at {}",
            format_bytes(report.rss_start_bytes),
            format_bytes(report.rss_end_bytes),
            format_bytes(report.rss_max_bytes),
            every_ten.join(", "),
            second_half_growth(&report.rss_samples_bytes) as f64 / (1024.0 * 1024.0),
            report.machine,
            report.commit
        );
        let mib = |bytes: u64| format!("{:.1}", bytes as f64 / (1024.0 * 1024.0));
        let column = |value: fn(&Settled) -> u64| -> Vec<String> {
            report.settled.iter().map(|s| mib(value(s))).collect()
        };
        let growth = |value: fn(&Settled) -> u64| -> f64 {
            let values: Vec<u64> = report.settled.iter().map(value).collect();
            second_half_growth(&values) as f64 / (1024.0 * 1024.0)
        };
        eprintln!(
            "\n  after a full garbage collection, every 10 s (MiB; JS heap and wasm memory of both isolates):\n  \
             RSS:     {}\n  JS heap: {}\n  wasm:    {}\n  \
             over the second half: RSS {:+.1} MiB, JS heap {:+.1} MiB, wasm {:+.1} MiB",
            column(|s| s.rss_bytes).join(", "),
            column(|s| s.js_used_bytes).join(", "),
            column(|s| s.wasm_bytes).join(", "),
            growth(|s| s.rss_bytes),
            growth(|s| s.js_used_bytes),
            growth(|s| s.wasm_bytes),
        );
    }
    let mut failed = failures(&report.cases);
    failed.extend(report.refusal_error.clone());
    if !failed.is_empty() {
        // The report above is the run's one document.
        return Err(crate::DocumentPrinted(anyhow::anyhow!(
            "errors during the soak: {}",
            failed.join(", ")
        ))
        .into());
    }
    Ok(())
}

/// How much the samples' second half ends above where it starts (negative
/// for a shrink): the first half is when V8 and workerd size their heaps;
/// growth after it is what a leak looks like.
fn second_half_growth(samples: &[u64]) -> i64 {
    match samples {
        [] => 0,
        _ => samples[samples.len() - 1] as i64 - samples[samples.len() / 2] as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(request: &[u8]) -> String {
        String::from_utf8(request.to_vec()).unwrap()
    }

    /// The one `CF-Connecting-IP` a request names.
    fn client_of(request: &str) -> String {
        let mut named = request
            .lines()
            .filter_map(|line| line.strip_prefix("cf-connecting-ip: "));
        let client = named.next().expect("a client address").to_owned();
        assert_eq!(named.next(), None, "a second address in {request}");
        client
    }

    #[test]
    fn the_ordinary_load_comes_from_every_client_in_turn_and_the_greedy_from_its_own() {
        let all = cases("token");
        let read = all.iter().find(|c| c.name == "pages-get-cached").unwrap();
        let sent: Vec<String> = requests(read, "h").iter().map(|r| text(r)).collect();
        assert_eq!(sent.len(), CLIENTS as usize);
        let clients: Vec<String> = sent.iter().map(|r| client_of(r)).collect();
        assert_eq!(clients[0], "198.18.0.0");
        assert_eq!(clients[257], "198.18.1.1");
        assert_eq!(clients[CLIENTS as usize - 1], "198.18.15.255");
        let distinct: std::collections::BTreeSet<&String> = clients.iter().collect();
        assert_eq!(distinct.len(), CLIENTS as usize);
        assert!(!distinct.contains(&GREEDY_CLIENT.to_owned()));
        assert!(sent
            .iter()
            .all(|r| r.starts_with(&format!("GET /v1/pages/{READ_SLUG} HTTP/1.1\r\n"))));

        // A browser's read names an address of its own: the pool's replaces it.
        let browser = all
            .iter()
            .find(|c| c.name == "pages-get-cached-browser")
            .unwrap();
        let sent: Vec<String> = requests(browser, "h").iter().map(|r| text(r)).collect();
        assert_eq!(client_of(&sent[1]), "198.18.0.1");
        assert!(sent.iter().all(|r| r.contains("\r\norigin: ")));

        // A spread write: every page, each request from a client of its own.
        let spread = all.iter().find(|c| c.name == "pages-put-spread").unwrap();
        let sent: Vec<String> = requests(spread, "h").iter().map(|r| text(r)).collect();
        assert_eq!(sent.len(), CLIENTS as usize);
        let pages: std::collections::BTreeSet<&str> =
            sent.iter().map(|r| r.split(' ').nth(1).unwrap()).collect();
        assert_eq!(pages.len(), super::super::SPREAD_PAGES as usize);
        let distinct: std::collections::BTreeSet<String> =
            sent.iter().map(|r| client_of(r)).collect();
        assert_eq!(distinct.len(), CLIENTS as usize);
        assert!(sent
            .iter()
            .all(|r| r.contains("\r\ncf-access-jwt-assertion: token\r\n")));

        // The greedy client sends every request as itself.
        let greedy = requests(&greedy_case(), "h");
        assert_eq!(greedy.len(), 1);
        assert_eq!(client_of(&text(&greedy[0])), GREEDY_CLIENT);
    }

    #[test]
    fn the_limit_sits_between_one_pooled_address_and_one_connection() {
        let (count, per) = LIMIT.split_once('/').unwrap();
        let per_second =
            count.parse::<f64>().unwrap() / per.strip_suffix('s').unwrap().parse::<f64>().unwrap();
        // A pooled address under a fifth of the limit at 20,000 requests a
        // second in all; one connection at 140 a second well over it.
        assert!(20_000.0 / f64::from(CLIENTS) < per_second / 4.0, "{LIMIT}");
        assert!(140.0 > per_second * 4.0, "{LIMIT}");
    }

    fn case(name: &'static str, responses: u64, rate_limited: u64, unexpected: u64) -> SoakCase {
        SoakCase {
            case: name,
            timed: timed::Timed {
                responses,
                responses_per_sec: responses as f64 / 60.0,
                p50_ms: 1.0,
                p99_ms: 2.0,
                p999_ms: 3.0,
                max_ms: 4.0,
                over_10ms: 0,
                unexpected,
                rate_limited,
                socket_errors: 0,
            },
        }
    }

    #[test]
    fn a_soak_fails_on_any_wrong_answer_and_on_a_greedy_client_never_refused() {
        // The greedy client refused most of the time, nothing else wrong.
        let good = [case("healthz", 1000, 0, 0), case(GREEDY_CASE, 1000, 900, 0)];
        assert_eq!(failures(&good), Vec::<String>::new());
        // A 429 elsewhere is a wrong answer (its case does not expect one).
        let refused_elsewhere = [case("healthz", 1000, 3, 3), case(GREEDY_CASE, 1000, 900, 0)];
        assert_eq!(
            failures(&refused_elsewhere),
            ["healthz: 3 wrong statuses, 0 socket errors"]
        );
        // The limit did not hold.
        let never_refused = [case("healthz", 1000, 0, 0), case(GREEDY_CASE, 1000, 0, 0)];
        assert_eq!(
            failures(&never_refused),
            [format!(
                "{GREEDY_CASE}: never refused in 1000 requests, the rate limit did not hold"
            )]
        );
        // A soak of some cases only, without the greedy client.
        assert_eq!(failures(&[case("healthz", 10, 0, 0)]), Vec::<String>::new());
    }

    #[test]
    fn second_half_growth_is_from_the_middle_sample_to_the_last() {
        assert_eq!(second_half_growth(&[]), 0);
        assert_eq!(second_half_growth(&[5]), 0);
        // Heaps sized in the first half, level in the second.
        assert_eq!(second_half_growth(&[100, 300, 400, 401, 400, 403]), 2);
        // Still growing.
        assert_eq!(second_half_growth(&[100, 200, 300, 400]), 100);
        assert_eq!(second_half_growth(&[100, 500, 400]), -100);
    }
}
