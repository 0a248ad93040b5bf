//! `cargo xtask bench`: the release Worker against a reference, side by
//! side, on workerd itself (a generated config, not wrangler's dev proxy),
//! with the local stack's real servers behind both.
//!
//! Targets, each in a workerd process of its own (so memory is per target):
//! - `api`: the deployed bundle (`wrangler deploy --dry-run` of the release
//!   build, no test-only code);
//! - `reference`: the same routes on Hono in JavaScript (bench/reference);
//! - `hello`: a bare Worker answering `{"ok":true}`, the runtime's ceiling;
//! - `hello-headers`: the same Worker sending what the API's `/healthz`
//!   sends (its headers, a body as long; checked against the API's before
//!   any load), the ceiling for that answer: what the headers cost, with
//!   a request id and `server-timing` made and appended per request;
//! - `hello-fixed-headers`: the same headers with fixed values, all in one
//!   `Headers` the runtime copies: what sending them costs at all, the floor
//!   under the second ceiling;
//! - `api-sinks-live`, `api-sinks-down`, `api-sinks-hung`: the `api` bundle
//!   with its telemetry on (metrics and logs per request, Sentry for 5xx),
//!   sending to the stack's Prometheus, Loki stand-in and Bugsink; to a port
//!   nothing listens on (a stopped sink: connection refused); and to a
//!   listener that accepts and never answers (a hung sink). Their figures
//!   against `api` (no sinks) show what telemetry costs a response.
//!
//! Each target listens twice: once with the page cache on and once with it
//! off (`CACHE_TTL_SECS=0`), which is how the uncached read is measured.
//! Every case is checked once per target before any load (status and what
//! proves the path taken, such as `cache;desc=hit`; and the reference must
//! send the same headers as the api, or it would do less work per request),
//! then loaded with wrk
//! in rounds that interleave the targets, so machine drift hits all alike;
//! each round, and each case in it, starts from the next target (`in_turn`),
//! so no target always loads first or right after the same one. Figures
//! are medians over the rounds; a ratio to the reference is the median of
//! the round-by-round ratios, each of two loads that ran together.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use reqwest::header::HeaderMap;
use serde::Serialize;
use stack_manifest::StatementRecord;

mod inspector;
mod profile;
mod soak;
mod statements;
mod timed;

use crate::build::{self, Variant};
use crate::install::{self, BuildTools};
use crate::project::{self, root};
use crate::stack::{self, process, Stack, StackOptions};
use crate::ui::{format_bytes, Ui};
use crate::{dev, flags};

/// Limits no bench load reaches: the limiter still runs its script for
/// every request, it just never refuses.
const UNREACHABLE_LIMIT: &str = "1000000/1s";

/// The page the read cases fetch, and the pages each target writes to.
const READ_SLUG: &str = "bench-read";

/// How long the writes' Access token is valid: longer than any run (a
/// soak of up to an hour; warm-ups of up to `--warmup-max` per case and
/// target, then the rounds). A 10-minute token expired in the middle of a
/// full run, and every write after it was a 401. Access itself issues
/// tokens for the application's session duration, 24 hours by default.
const TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
enum Target {
    Api,
    Reference,
    Hello,
    /// The hello world answering with what the API's `/healthz` sends
    /// (its headers and body length): the ceiling for that answer.
    #[serde(rename = "hello-headers")]
    HelloHeaders,
    /// The same headers with fixed values: what sending them costs at all.
    #[serde(rename = "hello-fixed-headers")]
    HelloFixedHeaders,
    /// The hello world sending only what DESIGN.md asks of every response
    /// (the request id and `server-timing`, made per request) and the
    /// body's type: the ceiling for any Worker true to the design,
    /// whatever else it chooses to send.
    #[serde(rename = "hello-required-headers")]
    HelloRequiredHeaders,
    #[serde(rename = "api-sinks-live")]
    ApiSinksLive,
    #[serde(rename = "api-sinks-down")]
    ApiSinksDown,
    #[serde(rename = "api-sinks-hung")]
    ApiSinksHung,
}

impl Target {
    /// The targets with a bundle of their own (the sink variants run the
    /// `api` bundle).
    const BUNDLED: [Target; 3] = [Target::Api, Target::Reference, Target::Hello];
    const SINKS: [Target; 3] = [
        Target::ApiSinksLive,
        Target::ApiSinksDown,
        Target::ApiSinksHung,
    ];
    /// The hello world's variants that answer as the API's `/healthz`
    /// would (the second to fourth ceilings), in the report's order.
    const HELLO_VARIANTS: [Target; 3] = [
        Target::HelloHeaders,
        Target::HelloFixedHeaders,
        Target::HelloRequiredHeaders,
    ];

    /// The hello world's `ANSWER` binding for a variant: which answer
    /// `bench/hello/index.js` sends.
    fn answer(self) -> Option<&'static str> {
        match self {
            Target::HelloHeaders => Some("api-healthz"),
            Target::HelloFixedHeaders => Some("api-healthz-fixed"),
            Target::HelloRequiredHeaders => Some("api-healthz-required"),
            _ => None,
        }
    }

    /// A variant's row label, CPU column and what it sends, for the report.
    fn variant_labels(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Target::HelloHeaders => (
                "(hello + headers)",
                "hello+headers",
                "hello sending the api's headers",
            ),
            Target::HelloFixedHeaders => (
                "(hello + fixed headers)",
                "hello+fixed",
                "the same with fixed values",
            ),
            Target::HelloRequiredHeaders => (
                "(hello + required headers)",
                "hello+required",
                "only the headers DESIGN.md asks for",
            ),
            _ => ("", "", ""),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Target::Api => "api",
            Target::Reference => "reference",
            Target::Hello => "hello",
            Target::HelloHeaders => "hello-headers",
            Target::HelloFixedHeaders => "hello-fixed-headers",
            Target::HelloRequiredHeaders => "hello-required-headers",
            Target::ApiSinksLive => "api-sinks-live",
            Target::ApiSinksDown => "api-sinks-down",
            Target::ApiSinksHung => "api-sinks-hung",
        }
    }

    /// Runs the API's code (and so shows its `server-timing`).
    fn is_api(self) -> bool {
        matches!(self, Target::Api) || Target::SINKS.contains(&self)
    }

    /// The hello worlds, which answer `/healthz` only.
    fn is_ceiling(self) -> bool {
        self == Target::Hello || Target::HELLO_VARIANTS.contains(&self)
    }

    /// The target whose bundle this one runs.
    fn bundle(self) -> Target {
        match self {
            t if t.is_api() => Target::Api,
            t if t.is_ceiling() => Target::Hello,
            t => t,
        }
    }

    /// The wrangler config whose dry run bundles this target.
    fn wrangler_config(self) -> PathBuf {
        match self.bundle() {
            Target::Reference => root().join("bench/reference/wrangler.toml"),
            Target::Hello => root().join("bench/hello/wrangler.toml"),
            _ => root().join("wrangler.toml"),
        }
    }
}

/// One kind of request, loaded on the API and the reference (and, for
/// `/healthz`, compared with the hello-world ceiling).
#[derive(Debug, Clone)]
struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<String>,
    /// Served by the listener with the page cache off.
    uncached: bool,
    /// Statuses a correct answer may have.
    expected_statuses: &'static [u16],
    /// What a correct answer carries besides its status (checked before
    /// the load, on both targets).
    check: fn(&Target, &HeaderMap, &str) -> Result<(), String>,
}

fn cases(admin_token: &str) -> Vec<Case> {
    let origin = "http://localhost:8788".to_owned();
    vec![
        Case {
            name: "healthz",
            method: "GET",
            path: "/healthz".into(),
            headers: vec![],
            body: None,
            uncached: false,
            expected_statuses: &[200],
            check: |target, _, body| match target {
                Target::Hello => contains(body, "\"ok\":true"),
                _ => contains(body, "\"status\":\"ok\""),
            },
        },
        // `/healthz` as it comes through Cloudflare, whose `cf-ray` the
        // request id is taken from instead of made (DESIGN.md): what the
        // API and the ceilings answer behind the edge.
        Case {
            name: "healthz-with-ray",
            method: "GET",
            path: "/healthz".into(),
            headers: vec![("cf-ray", RAY.to_owned())],
            body: None,
            uncached: false,
            expected_statuses: &[200],
            check: |target, headers, body| match target {
                Target::Hello => contains(body, "\"ok\":true"),
                Target::HelloFixedHeaders => contains(body, "\"status\":\"ok\""),
                _ => {
                    contains(body, "\"status\":\"ok\"")?;
                    contains(&header(headers, "x-request-id")?, RAY)
                }
            },
        },
        Case {
            name: "pages-get-cached",
            method: "GET",
            path: format!("/v1/pages/{READ_SLUG}"),
            headers: vec![],
            body: None,
            uncached: false,
            expected_statuses: &[200],
            check: |_, headers, body| {
                contains(body, READ_SLUG)?;
                header(headers, "etag")?;
                contains(&header(headers, "server-timing")?, "cache;desc=\"hit\"")?;
                Ok(())
            },
        },
        Case {
            name: "pages-get-cached-browser",
            method: "GET",
            path: format!("/v1/pages/{READ_SLUG}"),
            headers: browser_headers(&origin),
            body: None,
            uncached: false,
            expected_statuses: &[200],
            check: |_, headers, body| {
                contains(body, READ_SLUG)?;
                contains(
                    &header(headers, "access-control-allow-origin")?,
                    "http://localhost:8788",
                )?;
                contains(&header(headers, "server-timing")?, "cache;desc=\"hit\"")?;
                Ok(())
            },
        },
        // The same browser's read without its `Origin` (a same-origin GET
        // sends none): beside the case above it shows what the cross-origin
        // path costs each Worker, in the same run and isolates.
        Case {
            name: "pages-get-cached-browser-no-origin",
            method: "GET",
            path: format!("/v1/pages/{READ_SLUG}"),
            headers: browser_headers(&origin)
                .into_iter()
                .filter(|(name, _)| *name != "origin")
                .collect(),
            body: None,
            uncached: false,
            expected_statuses: &[200],
            check: |_, headers, body| {
                contains(body, READ_SLUG)?;
                if headers.contains_key("access-control-allow-origin") {
                    return Err("a CORS answer to a request without an Origin".into());
                }
                contains(&header(headers, "server-timing")?, "cache;desc=\"hit\"")?;
                Ok(())
            },
        },
        Case {
            name: "pages-get-uncached",
            method: "GET",
            path: format!("/v1/pages/{READ_SLUG}"),
            headers: vec![],
            body: None,
            uncached: true,
            expected_statuses: &[200],
            check: |target, headers, body| {
                contains(body, READ_SLUG)?;
                let timing = header(headers, "server-timing")?;
                if target.is_api() {
                    contains(&timing, "db;dur=")?;
                }
                if timing.contains("cache;desc=\"hit\"") {
                    return Err(format!("served from the cache: {timing}"));
                }
                Ok(())
            },
        },
        // Each target writes pages of its own (see `case_path`).
        page_write("pages-put", WRITE_PATH, admin_token),
        // Each request the next of the target's SPREAD_PAGES pages.
        page_write("pages-put-spread", SPREAD_WRITE_PATH, admin_token),
        Case {
            name: "not-found",
            method: "GET",
            path: "/v1/nothing-here".into(),
            headers: vec![],
            body: None,
            uncached: false,
            expected_statuses: &[404],
            check: |_, headers, body| {
                contains(
                    &header(headers, "content-type")?,
                    "application/problem+json",
                )?;
                contains(body, "\"status\":404")
            },
        },
        Case {
            name: "cors-preflight",
            method: "OPTIONS",
            path: format!("/v1/pages/{READ_SLUG}"),
            headers: vec![
                ("origin", origin),
                ("access-control-request-method", "PUT".into()),
                (
                    "access-control-request-headers",
                    "content-type,if-match".into(),
                ),
            ],
            body: None,
            uncached: false,
            expected_statuses: &[200],
            check: |_, headers, _| {
                contains(
                    &header(headers, "access-control-allow-origin")?,
                    "http://localhost:8788",
                )?;
                header(headers, "access-control-max-age").map(|_| ())
            },
        },
    ]
}

/// A Cloudflare ray id, as the edge puts on every request in `cf-ray`.
const RAY: &str = "8f1a2b3c4d5e6f70-LHR";

/// What Chrome sends with a cross-site `fetch()` from `origin`, and what
/// Cloudflare adds in front of a Worker: 19 headers besides wrk's `Host`,
/// where the other cases send none to three. Each header a request
/// carries costs a Worker that reads them all a call into the runtime
/// (the API's bridge did, until it read only the ones it uses by name); a
/// real browser's read shows what a request's headers cost.
fn browser_headers(origin: &str) -> Vec<(&'static str, String)> {
    [
        ("accept", "application/json, text/plain, */*"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("accept-language", "en-GB,en;q=0.9,de;q=0.8"),
        ("cf-connecting-ip", "203.0.113.7"),
        ("cf-ipcountry", "GB"),
        ("cf-ray", RAY),
        ("cf-visitor", r#"{"scheme":"https"}"#),
        (
            "cookie",
            "CF_Authorization=eyJhbGciOiJSUzI1NiIsImtpZCI6ImFiYyJ9.\
             eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0.c2lnbmF0dXJl; theme=dark",
        ),
        ("origin", origin),
        ("referer", &format!("{origin}/pages/{READ_SLUG}")),
        ("sec-ch-ua", r#""Chromium";v="131", "Not_A Brand";v="24""#),
        ("sec-ch-ua-mobile", "?0"),
        ("sec-ch-ua-platform", r#""Linux""#),
        ("sec-fetch-dest", "empty"),
        ("sec-fetch-mode", "cors"),
        ("sec-fetch-site", "same-site"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 \
             (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        ),
        ("x-forwarded-proto", "https"),
        ("x-real-ip", "203.0.113.7"),
    ]
    .into_iter()
    .map(|(name, value)| (name, value.to_owned()))
    .collect()
}

/// A page write as an editor sends it, to `path`.
fn page_write(name: &'static str, path: &str, admin_token: &str) -> Case {
    Case {
        name,
        method: "PUT",
        path: path.into(),
        headers: vec![
            ("content-type", "application/json".into()),
            ("cf-access-jwt-assertion", admin_token.to_owned()),
        ],
        body: Some(r#"{"title":"Bench","body":"A revision written by cargo xtask bench."}"#.into()),
        uncached: false,
        // A first write creates the page (201); the load adds revisions.
        expected_statuses: &[200, 201],
        check: |_, headers, body| {
            contains(body, "\"revision\":")?;
            header(headers, "etag").map(|_| ())
        },
    }
}

/// Where each target's writes go (`{target}` is filled in by `case_path`).
/// Every connection writes this one page, so the writes queue on its row
/// lock: the case measures how long a write holds it (a page being edited
/// by many at once; BENCHMARKS.md, seventeenth pass).
const WRITE_PATH: &str = "/v1/pages/bench-write-{target}";

/// Where the spread writes go: each request to the next of
/// [`SPREAD_PAGES`] pages of the target's (`{page}` counts from 1), so the
/// connections' writes are to different rows and wait on no one's lock;
/// the case measures what a write costs the Worker.
const SPREAD_WRITE_PATH: &str = "/v1/pages/bench-spread-{target}-{page}";

/// Pages a spread write case cycles through: far more than connections,
/// so writes in flight at once are to different pages.
const SPREAD_PAGES: u32 = 64;

fn contains(text: &str, needle: &str) -> Result<(), String> {
    if text.contains(needle) {
        Ok(())
    } else {
        Err(format!(
            "expected {needle:?} in {:?}",
            project::tail(text, 5)
        ))
    }
}

fn header(headers: &HeaderMap, name: &str) -> Result<String, String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| format!("no {name} header"))
}

/// What wrk's latency percentiles are, printed under every table that
/// shows them, after the names of the percentiles it shows. wrk corrects
/// its latencies for coordinated omission once the load ends: a response
/// that took at least twice the run's mean interval between two requests
/// of one connection adds one more response for each further interval it
/// lasted, as if a client sending at a steady rate had been kept waiting.
/// A stall of D ms so weighs as about D / interval responses, and at
/// thousands of requests a second the p99 is the length of the run's few
/// longest stalls. Against workerd, `/healthz` with one connection: wrk
/// printed a p99 of 28 ms where the responses themselves, timed with
/// strace on wrk, had a p99 of 0.46 ms and two over 10 ms
/// (BENCHMARKS.md, twentieth pass). The bench also times responses one by
/// one (`--timed`, [`timed`]) and prints those beside wrk's p99.
const PERCENTILES_ARE: &str =
    "wrk's, corrected for coordinated omission: a stall counts once per request \
     a steady client would have sent in it, so p99 tracks the run's longest stalls";

/// One wrk run.
#[derive(Debug, Clone, Serialize)]
struct Load {
    requests_per_sec: f64,
    /// wrk's median and 99th percentile, corrected for coordinated
    /// omission (see [`PERCENTILES_ARE`]); of several rounds, the median
    /// of the rounds' own. Percentiles of every response of the rounds
    /// pooled are the timed client's (`--timed`, [`timed`]): wrk 4.1.0,
    /// Debian's, gives a script its percentiles but not its histogram
    /// (indexing its latency stats returns the index, as a string).
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    /// Answers with a status other than the case's expected one.
    unexpected: u64,
    /// The first of them: its status and the start of its body, to say
    /// what went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    first_unexpected: Option<String>,
    /// Connections that failed, broke or got no answer within wrk's
    /// timeout (10 s).
    socket_errors: u64,
    /// CPU time of the target's workerd process (user and system, all
    /// threads) per request answered during the load. On a machine where
    /// wrk, workerd and the stack share the cores, this moves much less
    /// from run to run than requests/s does.
    cpu_us_per_request: f64,
    /// That CPU time over the load's wall time: 1.0 is one core, and
    /// workerd's helper threads (garbage collection, compiling) add a few
    /// hundredths. At 1.0 or more the Worker's JS thread, which runs one
    /// request's code at a time, was the bottleneck, and its requests/s is
    /// about one core over its CPU per request.
    core_share: f64,
    /// Times the workerd's threads went to sleep (voluntary context
    /// switches) per request: how often it ran out of work and waited for
    /// I/O. A process with work always queued sleeps a few dozen times a
    /// second; one that waits on a chain of round trips, per request.
    sleeps_per_request: f64,
}

#[derive(Debug, Serialize)]
struct CaseResult {
    case: &'static str,
    /// Median over the rounds, per target.
    targets: BTreeMap<Target, Load>,
    /// api requests/s over reference requests/s: the median of the
    /// ratios round by round, each of two loads made one after the other
    /// on the same machine, so a round the machine slowed down for both
    /// moves its ratio little (dividing the two targets' medians, as
    /// passes up to the forty-first did, pairs rounds that did not run
    /// together). Without the reference's rounds (a one-sided run), the
    /// ratio of the medians.
    ratio_to_reference: Option<f64>,
    /// The reference's CPU per request over the api's, the same way.
    cpu_ratio_to_reference: Option<f64>,
    /// The same ratio round by round (the two load one after the other in
    /// a round): how far the machine moves it, so a shortfall can be told
    /// from noise.
    ratio_to_reference_by_round: Vec<f64>,
    /// The reference's CPU per request over the api's, round by round.
    cpu_ratio_to_reference_by_round: Vec<f64>,
    /// `ratio_to_reference_by_round`'s median in each workerd start
    /// (`--isolates`), in start order. Identical code differs by up to
    /// 10 % between two isolates, steadily over one start's rounds
    /// (BENCHMARKS.md, twelfth pass): a case under 1.0x in every start has
    /// a gap, one under in a single start may only have drawn a dearer
    /// isolate there.
    ratio_to_reference_by_start: Vec<f64>,
    /// The same for `cpu_ratio_to_reference_by_round`.
    cpu_ratio_to_reference_by_start: Vec<f64>,
    /// api requests/s over hello requests/s (for `/healthz`).
    ratio_to_hello: Option<f64>,
    /// api requests/s over those of each of the hello world's variants
    /// ([`Target::HELLO_VARIANTS`], for `/healthz`).
    ratio_to_ceilings: BTreeMap<Target, f64>,
    /// Requests/s of each telemetry variant over the api's (sinks off).
    sinks_ratio_to_api: BTreeMap<Target, f64>,
}

/// A case's responses timed one by one, with no correction (`--timed`):
/// what a client saw, where wrk's p99 is about the run's longest stalls.
#[derive(Debug, Serialize)]
struct TimedCase {
    case: &'static str,
    targets: BTreeMap<Target, timed::Timed>,
}

#[derive(Debug, Serialize)]
struct TargetFacts {
    target: Target,
    bundle_raw_bytes: u64,
    bundle_gzip_bytes: u64,
    /// Median time of the first request after workerd started listening
    /// (measured for the bundled targets only).
    first_request_ms: Option<f64>,
    /// Median time from starting workerd to the first answer (loading,
    /// compiling and instantiating the modules, listening, the first
    /// request), with the Worker as the only service.
    start_to_answer_ms: Option<f64>,
    /// Resident memory of the workerd process after every load.
    rss_after_load_bytes: u64,
}

/// What went wrong in `load` of `case` on `target`, if anything did.
fn wrong_answers(case: &str, target: Target, load: &Load) -> Option<String> {
    if load.unexpected + load.socket_errors == 0 {
        return None;
    }
    let first = load
        .first_unexpected
        .as_deref()
        .map(|answer| format!(" (the first: {answer})"))
        .unwrap_or_default();
    Some(format!(
        "{case} on {}: {} wrong statuses{first}, {} socket errors",
        target.name(),
        load.unexpected,
        load.socket_errors
    ))
}

/// One case and target's warm-up.
#[derive(Debug, Serialize)]
struct Warmup {
    /// The workerd start it warmed up (`--isolates`), from 1.
    start: u32,
    case: &'static str,
    target: Target,
    seconds: u64,
    requests: u64,
}

/// Seconds more of load for `served` requests in `seconds` to reach
/// `wanted`, at the rate it ran, within `max_total` seconds in all.
fn warmup_extension(served: u64, seconds: u64, wanted: u64, max_total: u64) -> u64 {
    if served >= wanted || seconds >= max_total {
        return 0;
    }
    let rate = served.max(1) as f64 / seconds.max(1) as f64;
    let needed = ((wanted - served) as f64 / rate).ceil() as u64;
    needed.clamp(1, max_total - seconds)
}

#[derive(Debug, Serialize)]
struct Report {
    commit: String,
    machine: String,
    /// Seconds of warm-up load per case and target before the rounds (at
    /// least; see `warmups`).
    warmup_secs: u64,
    /// Requests each case and target was to serve in its warm-up.
    warmup_requests: u64,
    /// What each case and target's warm-up was: seconds and requests.
    warmups: Vec<Warmup>,
    duration_secs: u64,
    rounds: u32,
    /// workerd starts, each warmed up and loaded for `rounds` rounds; the
    /// medians and ranges are over the rounds of all of them.
    isolates: u32,
    connections: u32,
    cases: Vec<CaseResult>,
    /// Each case's responses timed one by one (`--timed`), per target.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    timed: Vec<TimedCase>,
    targets: Vec<TargetFacts>,
    /// How quiet the machine was when the first requests were timed (see
    /// [`wait_until_quiet`]); none where that is unknown.
    quiet: Option<Quiet>,
    /// The performance targets, as this run measured them.
    goals: Vec<Goal>,
    /// With `--trace-statements`: each case and target's statements at
    /// the TiDB gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    statements: Option<statements::Summary>,
    /// With `--profile`: where each case and target's time went.
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<Vec<profile::Profiled>>,
}

/// One of the API's performance targets (BENCHMARKS.md, "Against the
/// targets"), as one run measured it.
#[derive(Debug, Serialize)]
struct Goal {
    /// What is asked, e.g. `pages-put at 1.0x the reference or more`.
    goal: String,
    /// What this run measured; for a ratio, the rounds' range beside the
    /// median, since one run's ratio moves by a few percent (BENCHMARKS.md,
    /// twelfth pass).
    measured: String,
    met: bool,
}

/// Slowest first request after a start the API may have.
const FIRST_REQUEST_LIMIT_MS: f64 = 100.0;
/// Least share of the bare hello world's requests/s `/healthz` should reach.
const HEALTHZ_TO_HELLO: f64 = 0.9;

/// The targets: the API's bundle within `gzip_budget` and its first request
/// under [`FIRST_REQUEST_LIMIT_MS`]; `/healthz` at [`HEALTHZ_TO_HELLO`] of
/// the bare hello world; every case at 1.0x of the reference or more, by
/// the median of its round-by-round ratios. Ratios are judged as printed (two
/// decimals); only what the run measured is judged.
fn goals(cases: &[CaseResult], targets: &[TargetFacts], gzip_budget: u64) -> Vec<Goal> {
    let mut goals = Vec::new();
    if let Some(api) = targets.iter().find(|t| t.target == Target::Api) {
        goals.push(Goal {
            goal: format!("bundle at most {} gzip", format_bytes(gzip_budget)),
            measured: format_bytes(api.bundle_gzip_bytes),
            met: api.bundle_gzip_bytes <= gzip_budget,
        });
        // From workerd's start: it compiles and instantiates the wasm
        // before it listens, so the first request alone would leave that out.
        if let Some(ms) = api.start_to_answer_ms {
            goals.push(Goal {
                goal: format!(
                    "first request under {FIRST_REQUEST_LIMIT_MS:.0} ms from workerd's start"
                ),
                measured: format!("{ms:.1} ms"),
                met: ms < FIRST_REQUEST_LIMIT_MS,
            });
        }
    }
    // Ratios are judged as printed, to two decimals: a median that rounds
    // to 1.00x is level.
    let at_least = |ratio: f64, goal: f64| (ratio * 100.0).round() >= (goal * 100.0).round();
    for case in cases {
        // Only `/healthz` is loaded on the hello world.
        if let Some(ratio) = case.ratio_to_hello {
            goals.push(Goal {
                goal: format!(
                    "{} at {HEALTHZ_TO_HELLO:.1}x the hello world or more",
                    case.case
                ),
                measured: format!("{ratio:.2}x"),
                met: at_least(ratio, HEALTHZ_TO_HELLO),
            });
        }
        if let Some(ratio) = case.ratio_to_reference {
            goals.push(Goal {
                goal: format!("{} at 1.0x the reference or more", case.case),
                measured: format!(
                    "{ratio:.2}x (rounds {})",
                    range(&case.ratio_to_reference_by_round)
                ),
                met: at_least(ratio, 1.0),
            });
        }
    }
    goals
}

pub fn run(ui: &Ui, flags: &flags::Bench) -> anyhow::Result<()> {
    // Said before the long work, not only in the last line of the report.
    if let Some(warning) = Cores::of_this_process().shortfall() {
        ui.info(format!("  warning: {warning}"));
    }
    if let Some(seconds) = flags.soak {
        return soak::soak(ui, flags, seconds);
    }
    let interrupted = dev::interrupt_flag()?;
    let build_tools = install::build_tools(ui)?;
    let stack_tools = install::stack_tools(ui)?;
    let install::BenchTools { wrk, workerd } = install::bench_tools(ui)?;
    build::worker(ui, &build_tools, Variant::Deploy)?;
    let gzip_budget = build::gzip_budget()?;

    let bench_dir = root().join("target/bench");
    let mut bundles = BTreeMap::new();
    for target in Target::BUNDLED {
        let dir = ui.step(
            &format!("bundle {} (wrangler --dry-run)", target.name()),
            || bundle(&build_tools, target, &bench_dir.join(target.name())),
        )?;
        bundles.insert(target, dir);
    }

    let state = project::local_dir().join(format!("bench-{}", std::process::id()));
    let options = StackOptions {
        state_dir: state.clone(),
        api_port: 0,
        keep_data: false,
        optimised_stand_ins: true,
        trace_statements: flags
            .trace_statements
            .then(|| state.join("tidb-statements.jsonl")),
    };
    let mut stack = Stack::start(ui, &stack_tools, None, &options, &interrupted)?;
    let manifest = stack.manifest.clone();
    let admin_token = stack::admin_token_valid_for(&manifest, "bench@example.com", TOKEN_LIFETIME);
    let pid_file = state.join("bench-pids");
    let hung_sink = HungSink::start()?;
    let dead_port = stack::free_port()?;
    let targets: Vec<Target> = Target::BUNDLED
        .into_iter()
        .chain(Target::HELLO_VARIANTS)
        .chain(Target::SINKS.into_iter().filter(|_| !flags.no_sinks))
        .collect();
    let vars: BTreeMap<Target, Vec<(&'static str, String)>> = targets
        .iter()
        .map(|&t| {
            let sinks = match t {
                Target::ApiSinksLive => Sinks::Live,
                Target::ApiSinksDown => Sinks::At(dead_port),
                Target::ApiSinksHung => Sinks::At(hung_sink.port),
                _ => Sinks::Off,
            };
            let mut vars = worker_vars(&manifest, sinks, UNREACHABLE_LIMIT)?;
            if let Some(answer) = t.answer() {
                vars.push(("ANSWER", answer.to_owned()));
            }
            Ok((t, vars))
        })
        .collect::<anyhow::Result<_>>()?;

    let all_cases = cases(&admin_token);
    let selected: Vec<&Case> = all_cases
        .iter()
        .filter(|c| flags.filter.as_deref().is_none_or(|f| c.name.contains(f)))
        .collect();
    if selected.is_empty() {
        bail!("no case matches {:?}", flags.filter);
    }
    let scripts = state.join("wrk");
    std::fs::create_dir_all(&scripts)?;
    let mut loads: BTreeMap<(&str, Target), Vec<Load>> = BTreeMap::new();
    // The responses timed one by one (`--timed`), over every start.
    let mut timed_samples: BTreeMap<(&str, Target), timed::Samples> = BTreeMap::new();
    // When each round's load ran, to match the gateway's statement records
    // (`--trace-statements`) to it.
    let mut windows = Vec::new();
    let mut warmups = Vec::new();
    let mut servers: Vec<Server> = Vec::new();
    let mut profiles = flags
        .profile
        .clone()
        .map(profile::Profiles::new)
        .transpose()?;
    let mut done = 0;
    let total = (flags.isolates * flags.rounds) as usize
        * selected
            .iter()
            .map(|c| targets_of(c, &targets).len())
            .sum::<usize>();
    // Each start is a fresh set of isolates, warmed up and loaded for every
    // round; the rounds of all starts go into the medians (`--isolates`).
    for start in 1..=flags.isolates {
        let of_starts = if flags.isolates > 1 {
            format!(" (start {start}/{})", flags.isolates)
        } else {
            String::new()
        };
        // The previous start's workerds stop before the next start's begin.
        servers.clear();
        if let Some(profiles) = &mut profiles {
            profiles.new_start();
        }
        servers = ui.step(
            &format!("start the {} targets on workerd{of_starts}", targets.len()),
            || {
                targets
                    .iter()
                    .map(|&t| {
                        // `--inspect` names the api's address; profiled,
                        // every target has an inspector, on a free port.
                        let inspector = match flags.inspect.as_deref() {
                            Some(address) if t == Target::Api => Some(address.to_owned()),
                            _ if profiles.is_some() => {
                                Some(format!("127.0.0.1:{}", stack::free_port()?))
                            }
                            _ => None,
                        };
                        Server::start(
                            &workerd,
                            t,
                            &bundles[&t.bundle()],
                            &vars[&t],
                            &state,
                            &pid_file,
                            inspector,
                        )
                    })
                    .collect::<anyhow::Result<Vec<_>>>()
            },
        )?;
        let server = |t: Target| {
            servers
                .iter()
                .find(|s| s.target == t)
                .expect("every target runs")
        };

        ui.step("seed the page the reads fetch, warm the cache", || {
            seed(&server(Target::Api).url(false), &admin_token)?;
            for target in targets.iter().filter(|t| !t.is_ceiling()) {
                // One read fills the cache; the check below then sees a hit.
                reqwest::blocking::get(format!(
                    "{}/v1/pages/{READ_SLUG}",
                    server(*target).url(false)
                ))?;
            }
            Ok(())
        })?;
        ui.step("check every case on every target", || {
            let mut unlike = Vec::new();
            for case in &selected {
                let mut shapes = BTreeMap::new();
                for target in targets_of(case, &targets) {
                    let shape = check(case, target, server(target))
                        .with_context(|| format!("{} on {}", case.name, target.name()))?;
                    shapes.insert(target, shape);
                }
                if let Some(api) = shapes.get(&Target::Api) {
                    unlike.extend(
                        shapes.iter().filter_map(|(&target, shape)| {
                            unlike_api(case.name, target, api, shape)
                        }),
                    );
                }
            }
            if !unlike.is_empty() {
                bail!("{}", unlike.join("\n"));
            }
            Ok(())
        })?;

        // Every path runs before measuring: V8 compiles the JS hot paths and
        // tiers the wasm up (see `--warmup`), and both Workers fill their
        // per-isolate caches (Access keys, scripts).
        // One wrk run of a case on a target, for the warm-ups and the rounds.
        let load_case = |case: &Case, target: Target, seconds: u64| {
            wrk_load(
                &wrk,
                case,
                target,
                server(target),
                flags.connections,
                seconds,
                &scripts,
            )
        };
        let started = ui.step(
            &format!(
                "warm up every case on every target ({} s, {} requests or {} s at most each){of_starts}",
                flags.warmup, flags.warmup_requests, flags.warmup_max
            ),
            || {
                let mut warmups = Vec::new();
                for case in &selected {
                    for target in targets_of(case, &targets) {
                        // A warm-up that gets wrong answers fails the run at once
                        // rather than after every other case has warmed up (an
                        // expired token was found only at the end that way).
                        let load = |seconds| {
                            let load = load_case(case, target, seconds)?;
                            match wrong_answers(case.name, target, &load) {
                                Some(wrong) => bail!("unexpected answers in the warm-up: {wrong}"),
                                None => Ok(load),
                            }
                        };
                        let mut seconds = flags.warmup;
                        let mut requests = load(seconds)?.requests;
                        let more = warmup_extension(
                            requests,
                            seconds,
                            flags.warmup_requests,
                            flags.warmup_max,
                        );
                        if more > 0 {
                            requests += load(more)?.requests;
                            seconds += more;
                        }
                        warmups.push(Warmup {
                            start,
                            case: case.name,
                            target,
                            seconds,
                            requests,
                        });
                    }
                }
                Ok(warmups)
            },
        )?;
        warmups.extend(started);
        let progress = ui.spinner("load");
        for round in 1..=flags.rounds {
            for (nth_case, case) in selected.iter().enumerate() {
                let turn = load_turn(start, flags.rounds, round, nth_case);
                for target in in_turn(targets_of(case, &targets), turn) {
                    if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
                        bail!("interrupted");
                    }
                    progress.set_message(format!(
                        "round {round}/{}{of_starts}: {} on {} ({done}/{total})",
                        flags.rounds,
                        case.name,
                        target.name()
                    ));
                    let from_us = StatementRecord::clock_us();
                    if let Some(profiles) = &mut profiles {
                        let address = server(target).inspector.as_deref();
                        profiles.start(
                            target,
                            case.uncached,
                            address.context("a profiled target without an inspector")?,
                        )?;
                    }
                    let load = load_case(case, target, flags.duration)?;
                    if let Some(profiles) = &mut profiles {
                        profiles.stop(
                            case.name,
                            target,
                            case.uncached,
                            (start, round),
                            load.requests,
                        )?;
                    }
                    windows.push(statements::Window {
                        case: case.name,
                        target,
                        from_us,
                        to_us: StatementRecord::clock_us(),
                    });
                    loads.entry((case.name, target)).or_default().push(load);
                    done += 1;
                }
            }
            stack.check_alive()?;
        }
        progress.finish_and_clear();
        if flags.timed > 0 {
            ui.step(
                &format!(
                    "time responses one by one ({} s per case and target){of_starts}",
                    flags.timed
                ),
                || {
                    // One timed load per case and target in a start: taken as
                    // the start's one round.
                    for (nth_case, case) in selected.iter().enumerate() {
                        let turn = load_turn(start, 1, 1, nth_case);
                        for target in in_turn(targets_of(case, &targets), turn) {
                            if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
                                bail!("interrupted");
                            }
                            let samples = timed_load(
                                case,
                                target,
                                server(target).ports,
                                flags.connections,
                                flags.timed,
                            );
                            timed_samples
                                .entry((case.name, target))
                                .or_default()
                                .merge(samples);
                        }
                    }
                    stack.check_alive()
                },
            )?;
        }
    }

    // Timed once the loads are over and the stack has settled: right after
    // it starts, its own servers are still busy starting (Bugsink's Python
    // app, Prometheus): the hello world's first request measured 17-21 ms
    // there, against 2-13 ms on a quiet machine. Whatever is still busy
    // after the loads competes with a start for the cores (the fourth
    // pass in BENCHMARKS.md timed 126 and 146 ms where starts by hand took
    // 71-108 ms, cause not found), so wait, a bounded time, until nothing is.
    let quiet = ui.step("wait for the machine to be quiet", || {
        Ok(wait_until_quiet(Duration::from_secs(30)))
    })?;
    let first_request = ui.step(
        &format!(
            "first request after a workerd start ({} starts each)",
            flags.starts
        ),
        || {
            let mut samples: BTreeMap<Target, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
            for _ in 0..flags.starts {
                for target in Target::BUNDLED {
                    let (first, whole) = time_first_request(
                        &workerd,
                        target,
                        &bundles[&target],
                        &vars[&target],
                        &state,
                        &pid_file,
                    )?;
                    let entry = samples.entry(target).or_default();
                    entry.0.push(first);
                    entry.1.push(whole);
                }
            }
            Ok(samples
                .into_iter()
                .map(|(t, (first, whole))| (t, (median(first), median(whole))))
                .collect::<BTreeMap<_, _>>())
        },
    )?;

    let mut facts = Vec::new();
    for server in &servers {
        let files = build::measure(&bundles[&server.target.bundle()])?;
        facts.push(TargetFacts {
            target: server.target,
            bundle_raw_bytes: files.iter().map(|f| f.raw_bytes).sum(),
            bundle_gzip_bytes: files.iter().map(|f| f.gzip_bytes).sum(),
            first_request_ms: first_request.get(&server.target).map(|f| f.0),
            start_to_answer_ms: first_request.get(&server.target).map(|f| f.1),
            rss_after_load_bytes: rss_bytes(server.process.pid()),
        });
    }
    let cases = summarise(&selected, &targets, loads, flags.rounds as usize);
    let timed = selected
        .iter()
        .map(|case| TimedCase {
            case: case.name,
            targets: targets_of(case, &targets)
                .into_iter()
                .filter_map(|t| Some((t, timed_samples.get(&(case.name, t))?.summary())))
                .collect(),
        })
        .filter(|c| !c.targets.is_empty())
        .collect();
    let statements = match &options.trace_statements {
        Some(trace) => Some(ui.step("read the gateway's statement trace", || {
            statements::read(trace, &windows)
        })?),
        None => None,
    };
    let report = Report {
        goals: goals(&cases, &facts, gzip_budget),
        commit: project::git_commit(),
        machine: machine(),
        warmup_secs: flags.warmup,
        warmup_requests: flags.warmup_requests,
        warmups,
        duration_secs: flags.duration,
        rounds: flags.rounds,
        isolates: flags.isolates,
        connections: flags.connections,
        cases,
        timed,
        targets: facts,
        quiet,
        statements,
        profile: profiles.as_ref().map(profile::Profiles::profiled),
    };
    if let Some(profiles) = &profiles {
        ui.info(format!(
            "  CPU profiles written to {}",
            profiles.dir().display()
        ));
    }
    drop(servers);
    drop(hung_sink);
    stack.stop();
    let _ = std::fs::remove_dir_all(&state);
    if ui.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        eprint!("{}", render(&report));
    }
    let unexpected: Vec<String> = report
        .cases
        .iter()
        .flat_map(|c| {
            c.targets
                .iter()
                .filter_map(move |(t, l)| wrong_answers(c.case, *t, l))
        })
        .chain(report.timed.iter().flat_map(|c| {
            c.targets.iter().filter_map(move |(target, t)| {
                let errors = t.errors()?;
                Some(format!(
                    "{} on {} (timed one by one): {errors}",
                    c.case,
                    target.name()
                ))
            })
        }))
        .collect();
    if !unexpected.is_empty() {
        // The report above is the run's one document.
        return Err(crate::DocumentPrinted(anyhow::anyhow!(
            "unexpected answers under load (the figures above are not comparable): {}",
            unexpected.join(", ")
        ))
        .into());
    }
    Ok(())
}

/// Which of the running targets load a case: the hello-world Worker only
/// answers the one route it has.
fn targets_of(case: &Case, running: &[Target]) -> Vec<Target> {
    running
        .iter()
        .copied()
        .filter(|t| !t.is_ceiling() || case.path == "/healthz")
        .collect()
}

/// Which turn (see [`in_turn`]) the `nth_case` (from 0) of round `round`
/// of start `start` (both from 1, `rounds` to a start) takes: one further
/// with every round, over all starts, and with every case in a round, so
/// that neither rounds nor the cases of one round always begin with the
/// same target.
fn load_turn(start: u32, rounds: u32, round: u32, nth_case: usize) -> usize {
    ((start - 1) * rounds + round - 1) as usize + nth_case
}

/// `targets` in the order of its `turn`-th load: each turn starts one
/// target later, so that no target always comes first (after another
/// case's load) or right after another target's load of the same case,
/// whose work the local stack may still be doing (a write load leaves the
/// database its purge and flushing). A fixed order would hand any such
/// effect to the same target in every round.
fn in_turn(mut targets: Vec<Target>, turn: usize) -> Vec<Target> {
    if !targets.is_empty() {
        let by = turn % targets.len();
        targets.rotate_left(by);
    }
    targets
}

/// `wrangler deploy --dry-run --outdir DIR`: exactly what an upload of the
/// target would carry (the Worker bundles its wasm next to the JS).
fn bundle(tools: &BuildTools, target: Target, dir: &Path) -> anyhow::Result<PathBuf> {
    let _ = std::fs::remove_dir_all(dir);
    let config = target.wrangler_config();
    project::run(
        Command::new(&tools.wrangler)
            .args(["deploy", "--dry-run", "--config"])
            .arg(&config)
            .arg("--outdir")
            .arg(dir)
            .current_dir(config.parent().expect("a config has a directory"))
            .env("WRANGLER_SEND_METRICS", "false")
            .env("NO_COLOR", "1"),
    )?;
    Ok(dir.to_path_buf())
}

/// Where a target's telemetry goes.
#[derive(Debug, Clone, Copy)]
enum Sinks {
    /// No sink configured (what the reference does: it has none).
    Off,
    /// The stack's Bugsink, Prometheus and Loki stand-in.
    Live,
    /// Every sink URL pointed at this local port instead.
    At(u16),
}

/// The Worker settings for the local stack (as `cargo xtask dev` writes
/// them), with `limit` for both rate limit classes and telemetry as
/// `sinks` says.
fn worker_vars(
    manifest: &stack_manifest::StackManifest,
    sinks: Sinks,
    limit: &str,
) -> anyhow::Result<Vec<(&'static str, String)>> {
    let api = stack_manifest::Api {
        url: String::new(),
        allowed_origins: vec!["http://localhost:8788".into()],
        binding_secret: project::random_hex(32),
        request_deadline_ms: 10_000,
        ..Default::default()
    };
    let mut vars = stack::worker_vars(manifest, &api);
    apply_sinks(&mut vars, sinks)?;
    for (name, value) in &mut vars {
        if matches!(*name, "RATE_LIMIT_READ" | "RATE_LIMIT_WRITE") {
            *value = limit.into();
        }
    }
    // As under `cargo xtask dev`: loopback origins are allowed in dev only.
    vars.push(("ENVIRONMENT", "dev".into()));
    Ok(vars)
}

/// Removes the telemetry settings, or points every sink URL elsewhere.
fn apply_sinks(vars: &mut Vec<(&'static str, String)>, sinks: Sinks) -> anyhow::Result<()> {
    let is_sink = |name: &str| {
        name.starts_with("SENTRY_") || name.starts_with("PROMETHEUS_") || name.starts_with("LOKI_")
    };
    match sinks {
        Sinks::Off => vars.retain(|(name, _)| !is_sink(name)),
        Sinks::Live => {}
        Sinks::At(port) => {
            for (name, value) in vars.iter_mut() {
                if is_sink(name) && (name.ends_with("_URL") || name.ends_with("_DSN")) {
                    let mut url = reqwest::Url::parse(value)
                        .with_context(|| format!("{name} is not a URL"))?;
                    url.set_port(Some(port))
                        .map_err(|()| anyhow::anyhow!("{name} takes no port"))?;
                    *value = url.to_string();
                }
            }
        }
    }
    Ok(())
}

/// A sink that accepts connections and never answers: the Worker's sends
/// to it end only by their timeout.
struct HungSink {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl HungSink {
    fn start() -> anyhow::Result<HungSink> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::spawn(move || {
            // Accepted connections are held open, unread, until the end.
            let mut held = Vec::new();
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => held.push(stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(HungSink { port, stop })
    }
}

impl Drop for HungSink {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A target on workerd, listening with the cache on and with it off.
struct Server {
    target: Target,
    ports: [u16; 2],
    process: process::Supervised,
    /// Where its V8 inspector listens, if it has one.
    inspector: Option<String>,
}

impl Server {
    fn start(
        workerd: &Path,
        target: Target,
        bundle: &Path,
        vars: &[(&'static str, String)],
        state: &Path,
        pid_file: &Path,
        inspector: Option<String>,
    ) -> anyhow::Result<Server> {
        let ports = [stack::free_port()?, stack::free_port()?];
        // Targets share the api bundle; each has a config of its own.
        let config = bundle.join(format!("workerd-{}.capnp", target.name()));
        std::fs::write(&config, workerd_config(bundle, vars, &ports)?)?;
        let log = state
            .join("logs")
            .join(format!("workerd-{}.log", target.name()));
        let mut command = Command::new(workerd);
        command.arg("serve").arg(&config).arg("--experimental");
        if let Some(address) = &inspector {
            command.arg(format!("--inspector-addr={address}"));
        }
        let mut process = process::spawn(target.name(), &mut command, &log, pid_file)?;
        let server_url = format!("http://127.0.0.1:{}/healthz", ports[0]);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = process.exited() {
                bail!(
                    "workerd for {} exited ({status}):\n{}",
                    target.name(),
                    process.log_tail()
                );
            }
            if reqwest::blocking::get(&server_url).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "workerd for {} is not answering:\n{}",
                    target.name(),
                    process.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Server {
            target,
            ports,
            process,
            inspector,
        })
    }

    fn url(&self, uncached: bool) -> String {
        format!("http://127.0.0.1:{}", self.ports[usize::from(uncached)])
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.process.stop(Duration::from_secs(5));
    }
}

/// A workerd config (Cap'n Proto text) with one service per listener: the
/// same modules, with the cache on (`CACHE_TTL_SECS` as configured) and,
/// given a second port, off. workerd embeds files relative to the config,
/// so it goes into `bundle`.
fn workerd_config(
    bundle: &Path,
    vars: &[(&'static str, String)],
    ports: &[u16],
) -> anyhow::Result<String> {
    let services: Vec<(&str, Option<&str>)> = [("cached", None), ("uncached", Some("0"))]
        .into_iter()
        .take(ports.len())
        .collect();
    let files = build::bundle_modules(bundle)?;
    // Every bench Worker runs with the API Worker's compatibility date.
    let compatibility_date = project::ApiWorker::read()?.compatibility_date;
    let mut out = String::from("using Workerd = import \"/workerd/workerd.capnp\";\n\n");
    out.push_str("const config :Workerd.Config = (\n  services = [\n");
    for (name, _) in &services {
        let _ = writeln!(out, "    (name = \"{name}\", worker = .{name}),");
    }
    // Outbound fetches and sockets go to the stack on 127.0.0.1.
    out.push_str(
        "    (name = \"internet\", network = (allow = [\"public\", \"private\", \"local\"])),\n  ],\n",
    );
    out.push_str("  sockets = [\n");
    for ((name, _), port) in services.iter().zip(ports) {
        let _ = writeln!(
            out,
            "    (name = \"{name}\", address = \"127.0.0.1:{port}\", http = (), service = \"{name}\"),"
        );
    }
    out.push_str("  ],\n);\n");
    for &(name, ttl) in &services {
        let _ = writeln!(out, "\nconst {name} :Workerd.Worker = (\n  modules = [");
        for (module, kind) in &files {
            let _ = writeln!(
                out,
                "    (name = {}, {kind} = embed {}),",
                capnp_string(module),
                capnp_string(module)
            );
        }
        let _ = writeln!(
            out,
            "  ],\n  compatibilityDate = {},\n  globalOutbound = \"internet\",\n  bindings = [",
            capnp_string(&compatibility_date)
        );
        for (var, value) in vars {
            let value = match (*var, ttl) {
                ("CACHE_TTL_SECS", Some(ttl)) => ttl,
                _ => value.as_str(),
            };
            let _ = writeln!(
                out,
                "    (name = {}, text = {}),",
                capnp_string(var),
                capnp_string(value)
            );
        }
        if let Some(ttl) = ttl {
            if !vars.iter().any(|(v, _)| *v == "CACHE_TTL_SECS") {
                let _ = writeln!(out, "    (name = \"CACHE_TTL_SECS\", text = \"{ttl}\"),");
            }
        }
        out.push_str("  ],\n);\n");
    }
    Ok(out)
}

fn capnp_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Starts `target` once and times its first request once workerd listens,
/// and the whole start to that answer. workerd compiles and instantiates
/// the modules before it listens, so only the second includes them.
fn time_first_request(
    workerd: &Path,
    target: Target,
    bundle: &Path,
    vars: &[(&'static str, String)],
    state: &Path,
    pid_file: &Path,
) -> anyhow::Result<(f64, f64)> {
    let port = stack::free_port()?;
    let config = bundle.join("workerd-start.capnp");
    // One service: the start compiles and instantiates the modules once,
    // as a deployed Worker's isolate does.
    std::fs::write(&config, workerd_config(bundle, vars, &[port])?)?;
    let log = state
        .join("logs")
        .join(format!("workerd-start-{}.log", target.name()));
    let mut command = Command::new(workerd);
    command.arg("serve").arg(&config).arg("--experimental");
    // Built before the start is timed: it starts a thread and a runtime.
    let client = reqwest::blocking::Client::new();
    let spawned = Instant::now();
    let mut process = process::spawn(target.name(), &mut command, &log, pid_file)?;
    let result = (|| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if process.exited().is_some() || Instant::now() > deadline {
                bail!(
                    "workerd for {} did not listen:\n{}",
                    target.name(),
                    process.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let started = Instant::now();
        let response = client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()?;
        let elapsed = started.elapsed();
        if !response.status().is_success() {
            bail!(
                "first /healthz of {} answered {}",
                target.name(),
                response.status()
            );
        }
        Ok((
            elapsed.as_secs_f64() * 1000.0,
            spawned.elapsed().as_secs_f64() * 1000.0,
        ))
    })();
    process.stop(Duration::from_secs(5));
    result
}

/// The page the read cases fetch, written through the API itself.
fn seed(api: &str, admin_token: &str) -> anyhow::Result<()> {
    let response = reqwest::blocking::Client::new()
        .put(format!("{api}/v1/pages/{READ_SLUG}"))
        .header("content-type", "application/json")
        .header("cf-access-jwt-assertion", admin_token)
        .body(
            serde_json::json!({
                "title": "Read by the benchmark",
                "body": "# Bench\n\n".to_owned() + &"A paragraph of a typical page. ".repeat(60),
            })
            .to_string(),
        )
        .send()?;
    if !response.status().is_success() {
        bail!(
            "seeding {READ_SLUG} answered {}: {}",
            response.status(),
            response.text()?
        );
    }
    Ok(())
}

/// The case's path for `target`; for a case spread over pages, its first
/// page (what the check fetches and wrk's URL names; the script picks each
/// request's page).
fn case_path(case: &Case, target: Target) -> String {
    page_path(case, target, 1)
}

/// The paths a load of `case` on `target` sends its requests to, in turn:
/// for a case spread over pages, each of `target`'s [`SPREAD_PAGES`]
/// pages; otherwise the one path. wrk's script and the timed client both
/// take them from here.
fn request_paths(case: &Case, target: Target) -> Vec<String> {
    let pages = if case.path.contains("{page}") {
        SPREAD_PAGES
    } else {
        1
    };
    (1..=pages)
        .map(|page| page_path(case, target, page))
        .collect()
}

/// `case.path` with `{target}` and `{page}` filled in: a write goes to
/// pages of the target's own, so the two targets never contend for a row.
fn page_path(case: &Case, target: Target, page: u32) -> String {
    case.path
        .replace("{target}", target.name())
        .replace("{page}", &page.to_string())
}

/// Checks `case`'s answer on `target` and returns its [`Shape`].
fn check(case: &Case, target: Target, server: &Server) -> anyhow::Result<Shape> {
    let client = reqwest::blocking::Client::new();
    let method = reqwest::Method::from_bytes(case.method.as_bytes())?;
    let mut request = client.request(
        method,
        format!("{}{}", server.url(case.uncached), case_path(case, target)),
    );
    for (name, value) in &case.headers {
        request = request.header(*name, value);
    }
    if let Some(body) = &case.body {
        request = request.body(body.clone());
    }
    let response = request.send()?;
    let status = response.status().as_u16();
    let expected = case.expected_statuses.contains(&status);
    let headers = response.headers().clone();
    let body = response.text()?;
    if !expected {
        bail!(
            "answered {status}, expected {:?}: {body}",
            case.expected_statuses
        );
    }
    (case.check)(&target, &headers, &body).map_err(anyhow::Error::msg)?;
    Ok(Shape {
        names: header_names(&headers),
        body_len: body.len(),
    })
}

/// What one answer is made of, as far as two targets' answers must agree
/// for their figures to compare.
#[derive(Debug)]
struct Shape {
    /// See [`header_names`].
    names: Vec<String>,
    body_len: usize,
}

impl Shape {
    fn names(&self) -> Vec<&str> {
        self.names.iter().map(String::as_str).collect()
    }
}

/// The names of the headers an answer carries (each once, however often
/// it repeats), sorted, without those that only frame its body or that the
/// runtime adds on its own.
fn header_names(headers: &HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = headers
        .keys()
        .map(|n| n.as_str().to_owned())
        .filter(|n| !matches!(n.as_str(), "date" | "content-length" | "transfer-encoding"))
        .collect();
    names.sort();
    names
}

/// What DESIGN.md asks every response to carry (the request id and
/// `server-timing`), and the type of the JSON body the API's `/healthz`
/// answers: all [`Target::HelloRequiredHeaders`] sends.
const REQUIRED_HEADERS: [&str; 3] = ["content-type", "server-timing", "x-request-id"];

/// Bytes by which a ceiling's `/healthz` body may differ from the api's (a
/// `-dirty` build's commit makes the API's a few bytes longer, which costs
/// nothing measurable).
const CEILING_BODY_SLACK: usize = 16;

/// What is wrong, if anything, with `target`'s answer to `case` beside the
/// api's, for their figures to compare:
/// - the reference must send the same headers: one that leaves out a
///   header the API must send (DESIGN.md asks every response for a request
///   id and `server-timing`) does less work per request, and its ratio
///   flatters it;
/// - the second and third ceilings ([`Target::HelloHeaders`],
///   [`Target::HelloFixedHeaders`]) are only ceilings while they send the
///   same headers and a body about as long;
/// - the fourth ([`Target::HelloRequiredHeaders`]) sends exactly
///   [`REQUIRED_HEADERS`], all of which the api must send too, and a body
///   as long;
/// - the bare hello world and the api's own variants need not match.
fn unlike_api(case: &str, target: Target, api: &Shape, other: &Shape) -> Option<String> {
    let who = target.name();
    // The header names `other` must send, exactly, and what they are.
    let (body_too, owed, owed_are): (bool, Vec<&str>, &str) = match target {
        Target::Reference => (false, api.names(), "the api's headers"),
        Target::HelloHeaders | Target::HelloFixedHeaders => {
            (true, api.names(), "the api's headers")
        }
        Target::HelloRequiredHeaders => {
            let unsent: Vec<&str> = REQUIRED_HEADERS
                .into_iter()
                .filter(|n| !api.names().contains(n))
                .collect();
            if !unsent.is_empty() {
                return Some(format!(
                    "{case}: the api does not send {unsent:?}, which DESIGN.md asks of every \
                     response"
                ));
            }
            (
                true,
                REQUIRED_HEADERS.to_vec(),
                "the headers DESIGN.md asks for",
            )
        }
        _ => return None,
    };
    let sent = other.names();
    let missing: Vec<&str> = owed.iter().copied().filter(|n| !sent.contains(n)).collect();
    let extra: Vec<&str> = sent.into_iter().filter(|n| !owed.contains(n)).collect();
    if !missing.is_empty() || !extra.is_empty() {
        return Some(format!(
            "{case}: the answer of {who} lacks {missing:?} and has {extra:?} beyond {owed_are}; \
             both must send the same for their figures to compare"
        ));
    }
    if body_too && api.body_len.abs_diff(other.body_len) > CEILING_BODY_SLACK {
        return Some(format!(
            "{case}: the body of {who} is {} bytes, the api's {}; a ceiling must answer as long",
            other.body_len, api.body_len
        ));
    }
    None
}

/// One wrk run of `case` on `target`.
fn wrk_load(
    wrk: &Path,
    case: &Case,
    target: Target,
    server: &Server,
    connections: u32,
    seconds: u64,
    scripts: &Path,
) -> anyhow::Result<Load> {
    let script = scripts.join(format!("{}-{}.lua", case.name, target.name()));
    std::fs::write(&script, wrk_script(case, target))?;
    let url = format!("{}{}", server.url(case.uncached), case_path(case, target));
    let before = ProcessUse::of(server.process.pid());
    let output = project::output(
        Command::new(wrk)
            .args(["-t1", "--latency", "--timeout", "10s"])
            .arg(format!("-c{connections}"))
            .arg(format!("-d{seconds}s"))
            .arg("-s")
            .arg(&script)
            .arg(&url),
    )?;
    let mut load =
        parse_wrk(&output).with_context(|| format!("reading wrk's output:\n{output}"))?;
    let used = ProcessUse::of(server.process.pid()).since(&before);
    let requests = load.requests.max(1) as f64;
    load.cpu_us_per_request = used.cpu_us as f64 / requests;
    load.core_share = used.cpu_us as f64 / used.elapsed.as_micros().max(1) as f64;
    load.sleeps_per_request = used.sleeps as f64 / requests;
    Ok(load)
}

/// A load of `case` on `target`, served at `ports` (its cached and
/// uncached listeners), whose responses are timed one by one: the same
/// requests wrk sends (for a case spread over pages, each to the next of
/// `target`'s pages), on as many connections.
fn timed_load(
    case: &Case,
    target: Target,
    ports: [u16; 2],
    connections: u32,
    seconds: u64,
) -> timed::Samples {
    timed_load_of(case, ports, connections, seconds, |host| {
        request_paths(case, target)
            .iter()
            .map(|path| {
                timed::request(case.method, path, host, &case.headers, case.body.as_deref())
            })
            .collect()
    })
}

/// A load of `case` at the one of `ports` that serves it, for `seconds`
/// over `connections`, sending `requests(host)` in turn and timing each
/// response.
fn timed_load_of(
    case: &Case,
    ports: [u16; 2],
    connections: u32,
    seconds: u64,
    requests: impl FnOnce(&str) -> Vec<Vec<u8>>,
) -> timed::Samples {
    let port = ports[usize::from(case.uncached)];
    timed::load(
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        &requests(&format!("127.0.0.1:{port}")),
        case.expected_statuses,
        connections,
        Duration::from_secs(seconds),
    )
}

/// A wrk script that sends the case's method, headers and body (for a case
/// spread over pages, to each of `target`'s pages in turn), and counts
/// answers whose status is not the expected one (wrk itself only counts
/// statuses of 400 and above).
fn wrk_script(case: &Case, target: Target) -> String {
    let mut out = format!("wrk.method = {}\n", lua_string(case.method));
    let paths = request_paths(case, target);
    if paths.len() > 1 {
        let paths: Vec<String> = paths.iter().map(|path| lua_string(path)).collect();
        let _ = write!(
            out,
            "local paths = {{ {} }}\n\
             local next_path = 0\n\
             function request()\n  \
             next_path = next_path % #paths + 1\n  \
             return wrk.format(nil, paths[next_path])\n\
             end\n",
            paths.join(", ")
        );
    }
    for (name, value) in &case.headers {
        let _ = writeln!(
            out,
            "wrk.headers[{}] = {}",
            lua_string(name),
            lua_string(value)
        );
    }
    if let Some(body) = &case.body {
        let _ = writeln!(out, "wrk.body = {}", lua_string(body));
    }
    let ok: Vec<String> = case
        .expected_statuses
        .iter()
        .map(|s| format!("[{s}] = true"))
        .collect();
    let _ = write!(
        out,
        r#"local ok = {{ {} }}
unexpected = 0
first = ""
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function response(status, headers, body)
  if not ok[status] then
    unexpected = unexpected + 1
    if first == "" then
      first = status .. " " .. string.sub(string.gsub(body or "", "%s+", " "), 1, 300)
    end
  end
end
function done(summary, latency, requests)
  local total = 0
  local seen = ""
  for _, t in ipairs(threads) do
    total = total + t:get("unexpected")
    if seen == "" then seen = t:get("first") end
  end
  io.write(string.format("unexpected: %d\n", total))
  if seen ~= "" then io.write("first unexpected: " .. seen .. "\n") end
end
"#,
        ok.join(", ")
    );
    out
}

fn lua_string(text: &str) -> String {
    let mut out = String::from("\"");
    for b in text.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
    out.push('"');
    out
}

/// requests/s, p50, p99, request count and unexpected answers from
/// `wrk --latency` output (with the script's `unexpected:` line).
fn parse_wrk(output: &str) -> anyhow::Result<Load> {
    let mut load = Load {
        requests_per_sec: f64::NAN,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        requests: 0,
        unexpected: 0,
        first_unexpected: None,
        socket_errors: 0,
        cpu_us_per_request: f64::NAN,
        core_share: f64::NAN,
        sleeps_per_request: f64::NAN,
    };
    for line in output.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", value] => load.requests_per_sec = value.parse()?,
            ["50%", value] => load.p50_ms = duration_ms(value)?,
            ["99%", value] => load.p99_ms = duration_ms(value)?,
            [count, "requests", "in", ..] => load.requests = count.parse()?,
            ["unexpected:", count] => load.unexpected += count.parse::<u64>()?,
            ["first", "unexpected:", ..] => {
                load.first_unexpected = line
                    .split_once("first unexpected: ")
                    .map(|(_, answer)| answer.to_owned())
            }
            ["Socket", "errors:", rest @ ..] => {
                // "connect 0, read 0, write 0, timeout 3"
                load.socket_errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    if load.requests_per_sec.is_nan() || load.p50_ms.is_nan() || load.p99_ms.is_nan() {
        bail!("no Requests/sec or latency distribution");
    }
    Ok(load)
}

/// wrk's durations: `812.00us`, `1.23ms`, `2.00s`, `1.50m`.
fn duration_ms(text: &str) -> anyhow::Result<f64> {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("no unit in {text:?}"))?;
    let (value, unit) = text.split_at(split);
    let value: f64 = value.parse()?;
    Ok(match unit {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        "m" => value * 60_000.0,
        _ => bail!("unknown unit in {text:?}"),
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Each case's medians over its rounds and its ratios. `loads` holds each
/// case and target's rounds in the order they ran: `rounds` of them per
/// workerd start, one start after the other.
fn summarise(
    cases: &[&Case],
    running: &[Target],
    loads: BTreeMap<(&str, Target), Vec<Load>>,
    rounds: usize,
) -> Vec<CaseResult> {
    cases
        .iter()
        .map(|case| {
            let targets: BTreeMap<Target, Load> = targets_of(case, running)
                .into_iter()
                .filter_map(|t| {
                    let runs = loads.get(&(case.name, t))?;
                    Some((
                        t,
                        Load {
                            requests_per_sec: median(
                                runs.iter().map(|l| l.requests_per_sec).collect(),
                            ),
                            p50_ms: median(runs.iter().map(|l| l.p50_ms).collect()),
                            p99_ms: median(runs.iter().map(|l| l.p99_ms).collect()),
                            requests: runs.iter().map(|l| l.requests).sum(),
                            unexpected: runs.iter().map(|l| l.unexpected).sum(),
                            first_unexpected: runs.iter().find_map(|l| l.first_unexpected.clone()),
                            socket_errors: runs.iter().map(|l| l.socket_errors).sum(),
                            cpu_us_per_request: median(
                                runs.iter().map(|l| l.cpu_us_per_request).collect(),
                            ),
                            core_share: median(runs.iter().map(|l| l.core_share).collect()),
                            sleeps_per_request: median(
                                runs.iter().map(|l| l.sleeps_per_request).collect(),
                            ),
                        },
                    ))
                })
                .collect();
            let ratio = |other: Target| {
                Some(
                    targets.get(&Target::Api)?.requests_per_sec
                        / targets.get(&other)?.requests_per_sec,
                )
            };
            let by_round = |of: fn(&Load) -> f64, api_over_reference: bool| -> Vec<f64> {
                let (Some(api), Some(reference)) = (
                    loads.get(&(case.name, Target::Api)),
                    loads.get(&(case.name, Target::Reference)),
                ) else {
                    return Vec::new();
                };
                api.iter()
                    .zip(reference)
                    .map(|(a, r)| {
                        if api_over_reference {
                            of(a) / of(r)
                        } else {
                            of(r) / of(a)
                        }
                    })
                    .collect()
            };
            let ratio_by_round = by_round(|l| l.requests_per_sec, true);
            let cpu_ratio_by_round = by_round(|l| l.cpu_us_per_request, false);
            let paired = |by_round: &[f64], of_medians: Option<f64>| match by_round {
                [] => of_medians,
                _ => Some(median(by_round.to_vec())),
            };
            let cpu = |t: Target| targets.get(&t).map(|l| l.cpu_us_per_request);
            let cpu_of_medians = cpu(Target::Reference)
                .zip(cpu(Target::Api))
                .map(|(reference, api)| reference / api);
            CaseResult {
                case: case.name,
                ratio_to_reference: paired(&ratio_by_round, ratio(Target::Reference)),
                cpu_ratio_to_reference: paired(&cpu_ratio_by_round, cpu_of_medians),
                ratio_to_reference_by_start: by_start(&ratio_by_round, rounds),
                cpu_ratio_to_reference_by_start: by_start(&cpu_ratio_by_round, rounds),
                ratio_to_reference_by_round: ratio_by_round,
                cpu_ratio_to_reference_by_round: cpu_ratio_by_round,
                ratio_to_hello: ratio(Target::Hello),
                ratio_to_ceilings: Target::HELLO_VARIANTS
                    .into_iter()
                    .filter_map(|t| Some((t, ratio(t)?)))
                    .collect(),
                sinks_ratio_to_api: Target::SINKS
                    .into_iter()
                    .filter_map(|t| {
                        Some((
                            t,
                            targets.get(&t)?.requests_per_sec
                                / targets.get(&Target::Api)?.requests_per_sec,
                        ))
                    })
                    .collect(),
                targets,
            }
        })
        .collect()
}

/// The median of each start's `rounds` consecutive values of `by_round`.
fn by_start(by_round: &[f64], rounds: usize) -> Vec<f64> {
    by_round
        .chunks(rounds.max(1))
        .map(|start| median(start.to_vec()))
        .collect()
}

/// The lowest and highest of per-round ratios (`0.92-0.99`), or `-`.
fn range(ratios: &[f64]) -> String {
    let lowest = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let highest = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if lowest.is_finite() && highest.is_finite() {
        format!("{lowest:.2}-{highest:.2}")
    } else {
        "-".to_owned()
    }
}

fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n  {} s of warm-up (or until {} requests), then {} s x {} rounds per case and target{}, wrk -t1 -c{}; medians over rounds (api/ref: the median of the rounds' ratios)",
        report.warmup_secs,
        report.warmup_requests,
        report.duration_secs,
        report.rounds,
        if report.isolates > 1 {
            format!(", in each of {} workerd starts", report.isolates)
        } else {
            String::new()
        },
        report.connections
    );
    let longer: Vec<String> = report
        .warmups
        .iter()
        .filter(|w| w.seconds > report.warmup_secs)
        .map(|w| {
            format!(
                "{} on {}{} {} s ({} requests)",
                w.case,
                w.target.name(),
                if report.isolates > 1 {
                    format!(" in start {}", w.start)
                } else {
                    String::new()
                },
                w.seconds,
                w.requests
            )
        })
        .collect();
    if !longer.is_empty() {
        let _ = writeln!(out, "  longer warm-ups: {}", longer.join(", "));
    }
    let _ = writeln!(
        out,
        "\n  {:<34} {:>10} {:>8} {:>8} {:>10} {:>8} {:>8} {:>8} {:>11} {:>9}",
        "case",
        "api req/s",
        "p50 ms",
        "p99 ms",
        "ref req/s",
        "p50 ms",
        "p99 ms",
        "api/ref",
        "(rounds)",
        "api/hello"
    );
    for case in &report.cases {
        let api = case.targets.get(&Target::Api);
        let reference = case.targets.get(&Target::Reference);
        let cell = |l: Option<&Load>, f: fn(&Load) -> f64, digits: usize| {
            l.map_or("-".to_owned(), |l| format!("{:.*}", digits, f(l)))
        };
        let ratio = |r: Option<f64>| r.map_or("-".to_owned(), |r| format!("{r:.2}x"));
        let _ = writeln!(
            out,
            "  {:<34} {:>10} {:>8} {:>8} {:>10} {:>8} {:>8} {:>8} {:>11} {:>9}",
            case.case,
            cell(api, |l| l.requests_per_sec, 0),
            cell(api, |l| l.p50_ms, 2),
            cell(api, |l| l.p99_ms, 2),
            cell(reference, |l| l.requests_per_sec, 0),
            cell(reference, |l| l.p50_ms, 2),
            cell(reference, |l| l.p99_ms, 2),
            ratio(case.ratio_to_reference),
            range(&case.ratio_to_reference_by_round),
            ratio(case.ratio_to_hello),
        );
        if let Some(hello) = case.targets.get(&Target::Hello) {
            let _ = writeln!(
                out,
                "  {:<34} {:>10.0} {:>8.2} {:>8.2}",
                "  (hello ceiling)", hello.requests_per_sec, hello.p50_ms, hello.p99_ms
            );
        }
        for target in Target::HELLO_VARIANTS {
            let Some(ceiling) = case.targets.get(&target) else {
                continue;
            };
            let (label, _, what) = target.variant_labels();
            let api_over = case.ratio_to_ceilings.get(&target).copied();
            let of_hello = case
                .targets
                .get(&Target::Hello)
                .map_or("-".to_owned(), |h| {
                    format!("{:.2}x", ceiling.requests_per_sec / h.requests_per_sec)
                });
            let _ = writeln!(
                out,
                "    {:<32} {:>10.0} {:>8.2} {:>8.2}   {what}: {of_hello} of hello; api / this: {}",
                label,
                ceiling.requests_per_sec,
                ceiling.p50_ms,
                ceiling.p99_ms,
                ratio(api_over),
            );
        }
    }
    let _ = writeln!(out, "  p50/p99: {PERCENTILES_ARE}");
    render_by_start(report, &mut out);
    render_timed(report, &mut out);
    let variant_columns: String = Target::HELLO_VARIANTS
        .into_iter()
        .map(|t| format!(" {:>15}", t.variant_labels().1))
        .collect();
    let _ = writeln!(
        out,
        "\n  workerd CPU per request (us, medians over rounds)\n  {:<34} {:>10} {:>10} {:>10}{variant_columns} {:>8} {:>11}",
        "case", "api", "reference", "hello", "ref/api", "(rounds)"
    );
    for case in &report.cases {
        let cpu = |t: Target| case.targets.get(&t).map(|l| l.cpu_us_per_request);
        let cell = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
        let ratio = case
            .cpu_ratio_to_reference
            .map_or("-".to_owned(), |r| format!("{r:.2}x"));
        let variants: String = Target::HELLO_VARIANTS
            .into_iter()
            .map(|t| format!(" {:>15}", cell(cpu(t))))
            .collect();
        let _ = writeln!(
            out,
            "  {:<34} {:>10} {:>10} {:>10}{variants} {:>8} {:>11}",
            case.case,
            cell(cpu(Target::Api)),
            cell(cpu(Target::Reference)),
            cell(cpu(Target::Hello)),
            ratio,
            range(&case.cpu_ratio_to_reference_by_round),
        );
    }
    let _ = writeln!(
        out,
        "\n  workerd's CPU time over the load's wall time (100 % is one core; its helper threads add a few),\n  and its sleeps (waits for I/O) per request (medians over rounds; at 100 % or more the Worker's\n  JS thread, which runs one request's code at a time, was the bottleneck)\n  {:<34} {:>10} {:>10} {:>10} {:>16} {:>16}",
        "case", "api", "reference", "hello", "api sleeps/req", "ref sleeps/req"
    );
    for case in &report.cases {
        let load = |t: Target| case.targets.get(&t);
        let share = |t: Target| {
            load(t).map_or("-".to_owned(), |l| format!("{:.0} %", l.core_share * 100.0))
        };
        let sleeps =
            |t: Target| load(t).map_or("-".to_owned(), |l| format!("{:.2}", l.sleeps_per_request));
        let _ = writeln!(
            out,
            "  {:<34} {:>10} {:>10} {:>10} {:>16} {:>16}",
            case.case,
            share(Target::Api),
            share(Target::Reference),
            share(Target::Hello),
            sleeps(Target::Api),
            sleeps(Target::Reference),
        );
    }
    if report
        .cases
        .iter()
        .any(|c| !c.sinks_ratio_to_api.is_empty())
    {
        let _ = writeln!(
            out,
            "\n  telemetry: req/s, p50 / p99 ms, and req/s over the api's with sinks off"
        );
        let _ = writeln!(
            out,
            "  {:<34} {:>20} {:>28} {:>28} {:>28}",
            "case", "sinks off", "sinks live", "sinks down", "sinks hung"
        );
        for case in &report.cases {
            let cell = |t: Target| {
                let Some(l) = case.targets.get(&t) else {
                    return "-".to_owned();
                };
                let ratio = case
                    .sinks_ratio_to_api
                    .get(&t)
                    .map_or(String::new(), |r| format!(" {r:.2}x"));
                format!(
                    "{:.0} {:.1}/{:.0}{ratio}",
                    l.requests_per_sec, l.p50_ms, l.p99_ms
                )
            };
            let _ = writeln!(
                out,
                "  {:<34} {:>20} {:>28} {:>28} {:>28}",
                case.case,
                cell(Target::Api),
                cell(Target::ApiSinksLive),
                cell(Target::ApiSinksDown),
                cell(Target::ApiSinksHung),
            );
        }
    }
    let _ = writeln!(
        out,
        "\n  {:<22} {:>12} {:>12} {:>14} {:>14} {:>14}",
        "target", "bundle raw", "bundle gzip", "first request", "start->answer", "RSS after load"
    );
    for t in &report.targets {
        let _ = writeln!(
            out,
            "  {:<22} {:>12} {:>12} {:>14} {:>14} {:>14}",
            t.target.name(),
            format_bytes(t.bundle_raw_bytes),
            format_bytes(t.bundle_gzip_bytes),
            t.first_request_ms
                .map_or("-".into(), |ms| format!("{ms:.1} ms")),
            t.start_to_answer_ms
                .map_or("-".into(), |ms| format!("{ms:.0} ms")),
            format_bytes(t.rss_after_load_bytes)
        );
    }
    if let Some(quiet) = &report.quiet {
        let waited = quiet.waited_ms as f64 / 1000.0;
        let _ = if quiet.reached {
            writeln!(
                out,
                "  (first requests timed once the cores were {:.0} % idle, {waited:.1} s after the loads)",
                QUIET_IDLE * 100.0,
            )
        } else {
            writeln!(
                out,
                "  (first requests timed on a busy machine: the cores were not {:.0} % idle in {waited:.1} s)",
                QUIET_IDLE * 100.0,
            )
        };
    }
    if let Some(summary) = &report.statements {
        out.push_str(&statements::render(summary));
    }
    if let Some(profiled) = &report.profile {
        profile::render(profiled, &mut out);
    }
    if !report.goals.is_empty() {
        let _ = writeln!(
            out,
            "\n  {:<56} {:<34} met",
            "performance target", "measured"
        );
        for goal in &report.goals {
            let _ = writeln!(
                out,
                "  {:<56} {:<34} {}",
                goal.goal,
                goal.measured,
                if goal.met { "yes" } else { "no" }
            );
        }
    }
    let _ = writeln!(out, "\n  {} at {}", report.machine, report.commit);
    out
}

/// With several workerd starts, each case's ratios start by start: two
/// isolates of identical code differ by up to 10 %, so whether a case is
/// under in every start or in one says more than the median of all.
fn render_by_start(report: &Report, out: &mut String) {
    if report.isolates < 2 {
        return;
    }
    let _ = writeln!(
        out,
        "\n  api/ref start by start (each start's median over its rounds; isolates of identical code\n  differ by up to 10 %, so a case under 1.0x in every start has a gap; under in one, it may be that start's isolate)\n  {:<34} {:>24} {:>24}",
        "case", "req/s api/ref", "CPU ref/api"
    );
    let cells = |ratios: &[f64]| {
        ratios
            .iter()
            .map(|r| format!("{r:.2}x"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for case in &report.cases {
        if case.ratio_to_reference_by_start.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "  {:<34} {:>24} {:>24}",
            case.case,
            cells(&case.ratio_to_reference_by_start),
            cells(&case.cpu_ratio_to_reference_by_start),
        );
    }
}

/// The table of responses timed one by one, beside wrk's p99 for the same
/// case and target.
fn render_timed(report: &Report, out: &mut String) {
    if report.timed.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n  responses timed one by one, no correction ({} connection{})\n  {:<34} {:<22} {:>9} {:>7} {:>7} {:>8} {:>8} {:>8} {:>10}",
        report.connections,
        if report.connections == 1 { "" } else { "s" },
        "case",
        "target",
        "responses",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        ">=10 ms",
        "wrk's p99"
    );
    for case in &report.timed {
        let wrk = report.cases.iter().find(|c| c.case == case.case);
        for (target, t) in &case.targets {
            let wrk_p99 = wrk
                .and_then(|c| c.targets.get(target))
                .map_or("-".to_owned(), |l| format!("{:.2}", l.p99_ms));
            let _ = writeln!(
                out,
                "  {:<34} {:<22} {:>9} {:>7.2} {:>7.2} {:>8.2} {:>8.1} {:>8} {:>10}",
                case.case,
                target.name(),
                t.responses,
                t.p50_ms,
                t.p99_ms,
                t.p999_ms,
                t.max_ms,
                t.over_10ms,
                wrk_p99
            );
        }
    }
}

/// The share of CPU time idle over [`QUIET_WINDOW`] that counts as quiet.
const QUIET_IDLE: f64 = 0.9;
const QUIET_WINDOW: Duration = Duration::from_millis(250);

/// How long [`wait_until_quiet`] waited, and whether the machine got quiet
/// in that time.
#[derive(Debug, Serialize)]
struct Quiet {
    waited_ms: u64,
    reached: bool,
}

/// Waits until the cores were at least [`QUIET_IDLE`] idle over one
/// [`QUIET_WINDOW`], or `limit` passed. None where the machine does not
/// say (no /proc/stat): then it does not wait.
fn wait_until_quiet(limit: Duration) -> Option<Quiet> {
    let started = Instant::now();
    let mut before = cpu_times(&std::fs::read_to_string("/proc/stat").ok()?)?;
    loop {
        std::thread::sleep(QUIET_WINDOW);
        let now = cpu_times(&std::fs::read_to_string("/proc/stat").ok()?)?;
        let total = now.total.saturating_sub(before.total);
        let idle = now.idle.saturating_sub(before.idle);
        let reached = total == 0 || idle as f64 / total as f64 >= QUIET_IDLE;
        if reached || started.elapsed() >= limit {
            return Some(Quiet {
                waited_ms: started.elapsed().as_millis() as u64,
                reached,
            });
        }
        before = now;
    }
}

/// The machine's CPU time so far, in ticks: all of it, and idle (waiting
/// for I/O included).
#[derive(Debug, PartialEq)]
struct CpuTimes {
    total: u64,
    idle: u64,
}

/// [`CpuTimes`] from the `cpu` line of /proc/stat's text.
fn cpu_times(stat: &str) -> Option<CpuTimes> {
    let ticks: Vec<u64> = stat
        .lines()
        .find_map(|l| l.strip_prefix("cpu "))?
        .split_whitespace()
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is
    // already counted in user and nice).
    Some(CpuTimes {
        total: ticks.iter().take(8).sum(),
        idle: ticks.get(3)? + ticks.get(4).copied().unwrap_or(0),
    })
}

/// What a process has used so far, read at one instant (Linux: /proc; a
/// process with no /proc entry reads as nothing used).
#[derive(Debug, Clone, Copy)]
struct ProcessUse {
    at: Instant,
    /// CPU time, user and system, of all its threads, in microseconds.
    cpu_us: u64,
    /// Voluntary context switches of all its threads.
    sleeps: u64,
}

/// What a process used between two [`ProcessUse`] readings.
struct UsedSince {
    elapsed: Duration,
    cpu_us: u64,
    sleeps: u64,
}

impl ProcessUse {
    fn of(pid: u32) -> ProcessUse {
        // The process's `stat` counts its threads' CPU time, its `status`
        // only the first thread's context switches: those come per thread.
        let cpu_us = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| cpu_ticks(&stat))
            .map_or(0, |ticks| ticks * 10_000);
        let sleeps = std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|task| std::fs::read_to_string(task.path().join("status")).ok())
            .filter_map(|status| voluntary_switches(&status))
            .sum();
        ProcessUse {
            at: Instant::now(),
            cpu_us,
            sleeps,
        }
    }

    fn since(&self, earlier: &ProcessUse) -> UsedSince {
        UsedSince {
            elapsed: self.at.duration_since(earlier.at),
            cpu_us: self.cpu_us.saturating_sub(earlier.cpu_us),
            // A thread that ended in between takes its count with it.
            sleeps: self.sleeps.saturating_sub(earlier.sleeps),
        }
    }
}

/// utime + stime from a `/proc/PID/stat` line, in clock ticks: USER_HZ,
/// which Linux fixes at 100 per second for user space on every
/// architecture it runs on. The command name in parentheses may hold
/// spaces, so fields are counted after its `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of the line, utime 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `voluntary_ctxt_switches` from a `/proc/PID/task/TID/status` text.
fn voluntary_switches(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))?
        .trim()
        .parse()
        .ok()
}

/// Resident memory of a process (Linux: /proc/PID/status).
fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// CPU model and count, for the report; and a warning in it when this run
/// may use fewer cores than the machine has (see [`Cores::shortfall`]).
fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = Cores::of_this_process();
    match cores.shortfall() {
        Some(warning) => format!("{} x {model} ({warning})", cores.open),
        None => format!("{} x {model}", cores.open),
    }
}

/// The cores this process (and every process it starts) may run on, and
/// the cores the machine has online. They differ when the CPU affinity of
/// the shell the bench was started from leaves some out (`taskset`, a
/// cgroup's cpuset) or a cgroup's CPU quota allows fewer (both count in
/// `available_parallelism`): the thirty-first pass in BENCHMARKS.md ran
/// its last loads on one core of two that way without noticing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cores {
    open: usize,
    online: Option<usize>,
}

impl Cores {
    fn of_this_process() -> Cores {
        Cores {
            open: std::thread::available_parallelism().map_or(0, |n| n.get()),
            online: std::fs::read_to_string("/sys/devices/system/cpu/online")
                .ok()
                .and_then(|list| cpu_list_len(&list)),
        }
    }

    /// What to tell the person running the bench when not every online core
    /// is open to it.
    fn shortfall(self) -> Option<String> {
        let online = self.online?;
        (self.open < online).then(|| {
            format!(
                "only {} of the machine's {online} cores open to this run: its CPU affinity \
                 (`taskset -p $$`) or its cgroup's CPU quota leaves the others out, so its \
                 figures do not compare with runs on all of them",
                self.open
            )
        })
    }
}

/// How many CPUs a kernel CPU list names (`0-1`, `0,2-3`; as in
/// /sys/devices/system/cpu/online); `None` when it is not one.
fn cpu_list_len(list: &str) -> Option<usize> {
    list.trim()
        .split(',')
        .map(|part| match part.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (first.parse::<usize>().ok()?, last.parse::<usize>().ok()?);
                (first <= last).then(|| last - first + 1)
            }
            None => part.parse::<usize>().ok().map(|_| 1),
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn answers_compare_by_the_headers_they_send_not_how_they_frame_them() {
        let mut headers = HeaderMap::new();
        headers.insert("vary", HeaderValue::from_static("origin"));
        headers.append("vary", HeaderValue::from_static("accept"));
        headers.insert("date", HeaderValue::from_static("now"));
        headers.insert("content-length", HeaderValue::from_static("2"));
        headers.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        headers.insert("etag", HeaderValue::from_static("\"1.1\""));
        assert_eq!(header_names(&headers), names(&["etag", "vary"]));
    }

    fn shape(names: &[&str], body_len: usize) -> Shape {
        Shape {
            names: self::names(names),
            body_len,
        }
    }

    #[test]
    fn a_reference_that_leaves_out_a_header_fails_the_check() {
        let api = shape(&["location", "server-timing", "vary"], 40);
        // The reference's body may differ in length; its headers may not.
        let same = shape(&["location", "server-timing", "vary"], 400);
        assert!(unlike_api("pages-put", Target::Reference, &api, &same).is_none());
        let error = unlike_api(
            "pages-put",
            Target::Reference,
            &api,
            &shape(&["server-timing", "x-extra"], 40),
        )
        .unwrap();
        assert!(
            error.starts_with("pages-put: the answer of reference"),
            "{error}"
        );
        assert!(error.contains(r#"lacks ["location", "vary"]"#), "{error}");
        assert!(error.contains(r#"has ["x-extra"]"#), "{error}");
    }

    #[test]
    fn a_ceiling_must_send_the_api_headers_and_a_body_as_long() {
        let api = shape(&["server-timing", "x-request-id"], 60);
        for ceiling in [Target::HelloHeaders, Target::HelloFixedHeaders] {
            let near = shape(&["server-timing", "x-request-id"], 60 + CEILING_BODY_SLACK);
            assert!(unlike_api("healthz", ceiling, &api, &near).is_none());
            let long = shape(&["server-timing", "x-request-id"], 61 + CEILING_BODY_SLACK);
            let error = unlike_api("healthz", ceiling, &api, &long).unwrap();
            let expected = format!("body of {} is 77 bytes, the api's 60", ceiling.name());
            assert!(error.contains(&expected), "{error}");
            let bare = shape(&["x-request-id"], 60);
            let error = unlike_api("healthz", ceiling, &api, &bare).unwrap();
            assert!(error.contains(r#"lacks ["server-timing"]"#), "{error}");
        }
        // The bare hello world is the ceiling of the runtime, headers or not.
        let bare = shape(&[], 11);
        assert!(unlike_api("healthz", Target::Hello, &api, &bare).is_none());
    }

    #[test]
    fn the_required_headers_ceiling_sends_only_what_design_asks_and_the_api_sends_it_too() {
        let required = Target::HelloRequiredHeaders;
        let api = shape(
            &[
                "content-type",
                "server-timing",
                "vary",
                "x-frame-options",
                "x-request-id",
            ],
            60,
        );
        let exact = shape(&["content-type", "server-timing", "x-request-id"], 60);
        assert!(unlike_api("healthz", required, &api, &exact).is_none());
        // The api's own choices beyond DESIGN.md are no part of this ceiling.
        let more = shape(
            &["content-type", "server-timing", "vary", "x-request-id"],
            60,
        );
        let error = unlike_api("healthz", required, &api, &more).unwrap();
        assert!(
            error.contains(r#"has ["vary"] beyond the headers DESIGN.md asks for"#),
            "{error}"
        );
        let fewer = shape(&["content-type", "x-request-id"], 60);
        let error = unlike_api("healthz", required, &api, &fewer).unwrap();
        assert!(error.contains(r#"lacks ["server-timing"]"#), "{error}");
        let short = shape(&["content-type", "server-timing", "x-request-id"], 11);
        let error = unlike_api("healthz", required, &api, &short).unwrap();
        assert!(
            error.contains("body of hello-required-headers is 11 bytes"),
            "{error}"
        );
        // An api that stopped sending a required header is the error, not
        // the ceiling that still sends it.
        let api_without_timing = shape(&["content-type", "x-request-id"], 60);
        let error = unlike_api("healthz", required, &api_without_timing, &exact).unwrap();
        assert!(
            error.contains(r#"the api does not send ["server-timing"]"#),
            "{error}"
        );
    }

    #[test]
    fn every_target_goes_first_in_turn() {
        let pair = vec![Target::Api, Target::Reference];
        assert_eq!(in_turn(pair.clone(), 0), [Target::Api, Target::Reference]);
        assert_eq!(in_turn(pair.clone(), 1), [Target::Reference, Target::Api]);
        assert_eq!(in_turn(pair, 2), [Target::Api, Target::Reference]);
        let five = vec![
            Target::Api,
            Target::Reference,
            Target::Hello,
            Target::HelloHeaders,
            Target::HelloFixedHeaders,
        ];
        let firsts: Vec<Target> = (0..5).map(|turn| in_turn(five.clone(), turn)[0]).collect();
        assert_eq!(firsts, five);
        assert_eq!(in_turn(Vec::new(), 3), []);
    }

    #[test]
    fn rounds_starts_and_cases_each_move_the_turn_on() {
        let pair = [Target::Api, Target::Reference];
        let first = |turn| in_turn(pair.to_vec(), turn)[0];
        // One start of three rounds: a case's first target alternates.
        let rounds: Vec<Target> = (1..=3).map(|r| first(load_turn(1, 3, r, 0))).collect();
        assert_eq!(rounds, [Target::Api, Target::Reference, Target::Api]);
        // The second start goes on where the first left off.
        assert_eq!(load_turn(2, 3, 1, 0), 3);
        // In one round (and in one start's timed loads) neighbouring cases
        // begin with different targets.
        let cases: Vec<Target> = (0..4).map(|c| first(load_turn(1, 1, 1, c))).collect();
        assert_eq!(
            cases,
            [
                Target::Api,
                Target::Reference,
                Target::Api,
                Target::Reference
            ]
        );
    }

    #[test]
    fn a_cpu_list_counts_its_ranges_and_single_cpus() {
        assert_eq!(cpu_list_len("0-1\n"), Some(2));
        assert_eq!(cpu_list_len("0"), Some(1));
        assert_eq!(cpu_list_len("0,2-3,8"), Some(4));
        assert_eq!(cpu_list_len(""), None);
        assert_eq!(cpu_list_len("3-1"), None);
        assert_eq!(cpu_list_len("0-x"), None);
    }

    #[test]
    fn a_run_on_fewer_cores_than_the_machine_has_says_so() {
        let pinned = Cores {
            open: 1,
            online: Some(2),
        };
        let warning = pinned.shortfall().expect("one core of two is a shortfall");
        assert!(
            warning.contains("only 1 of the machine's 2 cores"),
            "{warning}"
        );
        let all = Cores {
            open: 2,
            online: Some(2),
        };
        assert_eq!(all.shortfall(), None);
        let unknown = Cores {
            open: 2,
            online: None,
        };
        assert_eq!(unknown.shortfall(), None);
    }

    #[test]
    fn cpu_times_are_the_machine_line_without_guest_time() {
        // The all-cores line, then one per core; guest and guest_nice (the
        // last two) are already inside user and nice.
        let stat = "cpu  100 5 50 800 20 3 2 1 40 7\ncpu0 50 2 25 400 10 1 1 0 20 3\nintr 1 2\n";
        assert_eq!(
            cpu_times(stat),
            Some(CpuTimes {
                total: 100 + 5 + 50 + 800 + 20 + 3 + 2 + 1,
                idle: 800 + 20,
            })
        );
        assert_eq!(cpu_times("cpu0 1 2 3 4\n"), None);
        assert_eq!(cpu_times("cpu  1 2 3\n"), None);
    }

    #[test]
    fn sleeps_are_the_voluntary_switches_of_a_thread_status() {
        let status = "Name:\tworkerd\nState:\tS (sleeping)\nvoluntary_ctxt_switches:\t4619\nnonvoluntary_ctxt_switches:\t2160\n";
        assert_eq!(voluntary_switches(status), Some(4619));
        assert_eq!(voluntary_switches("Name:\tworkerd\n"), None);
    }

    #[test]
    fn a_process_reads_its_own_cpu_and_sleeps_and_what_it_used_since() {
        let pid = std::process::id();
        let before = ProcessUse::of(pid);
        // Sleep (a voluntary switch), then read /proc until the reading
        // itself has used CPU enough to show (its clock ticks are 10 ms; a
        // loaded machine may take a while).
        std::thread::sleep(Duration::from_millis(20));
        let started = Instant::now();
        let used = loop {
            let used = ProcessUse::of(pid).since(&before);
            if used.cpu_us >= 20_000 || started.elapsed() > Duration::from_secs(20) {
                break used;
            }
        };
        assert!(used.sleeps >= 1, "{} sleeps", used.sleeps);
        assert!(used.cpu_us >= 20_000, "{} us of CPU", used.cpu_us);
        assert!(used.elapsed >= Duration::from_millis(20));
        let gone = ProcessUse::of(u32::MAX);
        assert_eq!((gone.cpu_us, gone.sleeps), (0, 0));
    }

    #[test]
    fn cpu_ticks_are_utime_and_stime_even_with_spaces_in_the_name() {
        let stat = "4242 (workerd serve) S 1 4242 4242 0 -1 4194560 9120 0 0 0 \
                    1234 56 0 0 20 0 12 0 100 7610068 13000 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some(1234 + 56));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    const WRK_OUTPUT: &str = "Running 5s test @ http://127.0.0.1:1/healthz
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   612.34us  200.00us   5.01ms   90.00%
    Req/Sec    13.01k   500.00     14.00k    70.00%
  Latency Distribution
     50%  580.00us
     75%  650.00us
     90%  800.00us
     99%    1.52ms
  64750 requests in 5.00s, 10.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
Requests/sec:  12950.00
Transfer/sec:      2.00MB
unexpected: 4
first unexpected: 503 {\"type\":\"about:blank\",\"status\":503}
";

    #[test]
    fn wrk_output_is_read() {
        let load = parse_wrk(WRK_OUTPUT).unwrap();
        assert_eq!(load.requests_per_sec, 12950.0);
        assert_eq!(load.p50_ms, 0.58);
        assert_eq!(load.p99_ms, 1.52);
        assert_eq!(load.requests, 64750);
        assert_eq!(load.unexpected, 4);
        assert_eq!(
            load.first_unexpected.as_deref(),
            Some(r#"503 {"type":"about:blank","status":503}"#)
        );
        assert_eq!(load.socket_errors, 3);
        assert!(parse_wrk("wrk: connection refused").is_err());
    }

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(duration_ms("812.00us").unwrap(), 0.812);
        assert_eq!(duration_ms("2.00s").unwrap(), 2000.0);
        assert_eq!(duration_ms("1.50m").unwrap(), 90_000.0);
        assert!(duration_ms("12").is_err());
    }

    #[test]
    fn sink_variants_keep_remove_or_redirect_the_telemetry_settings() {
        let stack = || {
            vec![
                ("SENTRY_DSN", "http://key@127.0.0.1:9001/1".to_owned()),
                (
                    "PROMETHEUS_REMOTE_WRITE_URL",
                    "http://127.0.0.1:9002/api/v1/write".to_owned(),
                ),
                (
                    "LOKI_PUSH_URL",
                    "http://127.0.0.1:9003/loki/api/v1/push".to_owned(),
                ),
                ("LOKI_PASSWORD", "secret".to_owned()),
                ("TIDB_HTTP_ENDPOINT", "http://127.0.0.1:9004".to_owned()),
            ]
        };
        let mut off = stack();
        apply_sinks(&mut off, Sinks::Off).unwrap();
        assert_eq!(off, [stack()[4].clone()]);
        let mut live = stack();
        apply_sinks(&mut live, Sinks::Live).unwrap();
        assert_eq!(live, stack());
        let mut down = stack();
        apply_sinks(&mut down, Sinks::At(1)).unwrap();
        assert_eq!(down[0].1, "http://key@127.0.0.1:1/1");
        assert_eq!(down[1].1, "http://127.0.0.1:1/api/v1/write");
        assert_eq!(down[2].1, "http://127.0.0.1:1/loki/api/v1/push");
        assert_eq!(down[3].1, "secret", "credentials stay");
        assert_eq!(down[4], stack()[4], "only sinks move");
    }

    #[test]
    fn the_hello_world_worker_only_loads_healthz_and_sinks_run_the_api_bundle() {
        let all = cases("token");
        let running = [
            Target::Api,
            Target::Hello,
            Target::HelloHeaders,
            Target::HelloFixedHeaders,
            Target::HelloRequiredHeaders,
            Target::ApiSinksHung,
        ];
        let healthz = all.iter().find(|c| c.name == "healthz").unwrap();
        let with_ray = all.iter().find(|c| c.name == "healthz-with-ray").unwrap();
        let put = all.iter().find(|c| c.name == "pages-put").unwrap();
        assert_eq!(targets_of(healthz, &running), running);
        // `/healthz` behind the edge is the same route, every ceiling's too.
        assert_eq!(targets_of(with_ray, &running), running);
        assert_eq!(
            targets_of(put, &running),
            [Target::Api, Target::ApiSinksHung]
        );
        assert_eq!(Target::ApiSinksHung.bundle(), Target::Api);
        assert_eq!(Target::HelloHeaders.bundle(), Target::Hello);
        assert_eq!(Target::HelloFixedHeaders.bundle(), Target::Hello);
        assert_eq!(Target::HelloRequiredHeaders.bundle(), Target::Hello);
        assert_eq!(
            case_path(put, Target::ApiSinksDown),
            "/v1/pages/bench-write-api-sinks-down"
        );
    }

    #[test]
    fn the_filters_help_names_every_case() {
        use clap::CommandFactory;
        let command = crate::flags::Xtask::command();
        let bench = command.find_subcommand("bench").expect("a bench command");
        let filter = bench
            .get_arguments()
            .find(|a| a.get_id() == "filter")
            .expect("a filter argument");
        let help = filter
            .get_long_help()
            .or(filter.get_help())
            .expect("the filter's help")
            .to_string();
        let named: Vec<&str> = help
            .rsplit_once("The cases: ")
            .expect("a list of the cases")
            .1
            .split([',', '.', ' '])
            .filter(|word| word.contains('-') || *word == "healthz")
            .collect();
        let cases: Vec<&str> = cases("token").iter().map(|c| c.name).collect();
        assert_eq!(named, cases);
    }

    #[test]
    fn spread_writes_cycle_through_pages_of_their_own_target() {
        let all = cases("token");
        let spread = all.iter().find(|c| c.name == "pages-put-spread").unwrap();
        assert_eq!(
            case_path(spread, Target::Api),
            "/v1/pages/bench-spread-api-1"
        );
        let script = wrk_script(spread, Target::Reference);
        let paths: Vec<&str> = script
            .match_indices("\"/v1/pages/")
            .map(|(at, _)| {
                let rest = &script[at + 1..];
                &rest[..rest.find('"').unwrap()]
            })
            .collect();
        let distinct: std::collections::BTreeSet<&str> = paths.iter().copied().collect();
        assert_eq!(paths.len(), SPREAD_PAGES as usize, "{script}");
        assert_eq!(distinct.len(), paths.len());
        assert!(paths
            .iter()
            .all(|p| p.starts_with("/v1/pages/bench-spread-reference-")));
        assert!(paths.contains(&"/v1/pages/bench-spread-reference-64"));
        assert!(script.contains("function request()"), "{script}");
        assert_eq!(spread.expected_statuses, [200, 201]);
    }

    #[test]
    fn each_target_writes_its_own_page_and_reads_share_one() {
        let all = cases("token");
        let case = |name: &str| {
            all.iter()
                .find(|c| c.name == name)
                .unwrap_or_else(|| panic!("no case {name}"))
        };
        let put = case("pages-put");
        assert_eq!(case_path(put, Target::Api), "/v1/pages/bench-write-api");
        assert_eq!(
            case_path(put, Target::Reference),
            "/v1/pages/bench-write-reference"
        );
        assert_eq!(put.expected_statuses, [200, 201]);
        let read = case("pages-get-cached");
        assert_eq!(
            case_path(read, Target::Api),
            case_path(read, Target::Reference)
        );
        let browser = case("pages-get-cached-browser");
        assert_eq!(
            case_path(browser, Target::Api),
            case_path(read, Target::Api)
        );
        assert_eq!(browser.headers.len(), 19);
        assert!(browser
            .headers
            .contains(&("origin", "http://localhost:8788".into())));
        let same_origin = case("pages-get-cached-browser-no-origin");
        assert_eq!(
            case_path(same_origin, Target::Api),
            case_path(read, Target::Api)
        );
        let without_origin: Vec<_> = browser
            .headers
            .iter()
            .filter(|(name, _)| *name != "origin")
            .cloned()
            .collect();
        assert_eq!(same_origin.headers, without_origin);
    }

    /// One round's load with the given rate and CPU, the rest fixed.
    fn load(requests_per_sec: f64, cpu_us_per_request: f64) -> Load {
        Load {
            requests_per_sec,
            p50_ms: 1.0,
            p99_ms: 2.0,
            requests: 100,
            unexpected: 0,
            first_unexpected: None,
            socket_errors: 0,
            cpu_us_per_request,
            core_share: 1.0,
            sleeps_per_request: 0.0,
        }
    }

    #[test]
    fn ratios_are_given_round_by_round_beside_their_medians() {
        let all = cases("token");
        let case = |name: &str| {
            all.iter()
                .find(|c| c.name == name)
                .unwrap_or_else(|| panic!("no case {name}"))
        };
        let put = case("pages-put");
        let loads = BTreeMap::from([
            (
                ("pages-put", Target::Api),
                vec![load(90.0, 110.0), load(100.0, 100.0), load(99.0, 100.0)],
            ),
            (
                ("pages-put", Target::Reference),
                vec![load(100.0, 99.0), load(100.0, 104.0), load(90.0, 100.0)],
            ),
        ]);
        let result = summarise(&[put], &[Target::Api, Target::Reference], loads, 3);
        let put = &result[0];
        assert_eq!(put.ratio_to_reference_by_round, [0.9, 1.0, 1.1]);
        assert_eq!(put.cpu_ratio_to_reference_by_round, [0.9, 1.04, 1.0]);
        assert_eq!(
            (put.ratio_to_reference, put.cpu_ratio_to_reference),
            (Some(1.0), Some(1.0)),
            "the rounds' median ratios, not the medians' ratio (99 / 100, 100 / 100)"
        );
        assert_eq!(range(&put.ratio_to_reference_by_round), "0.90-1.10");
        assert_eq!(range(&[]), "-");
        let report = Report {
            commit: "c".into(),
            machine: "m".into(),
            warmup_secs: 1,
            warmup_requests: 500,
            warmups: vec![
                Warmup {
                    start: 1,
                    case: "pages-put",
                    target: Target::Api,
                    seconds: 5,
                    requests: 510,
                },
                Warmup {
                    start: 2,
                    case: "pages-put",
                    target: Target::Reference,
                    seconds: 1,
                    requests: 700,
                },
            ],
            duration_secs: 1,
            rounds: 3,
            isolates: 2,
            connections: 1,
            cases: result,
            timed: vec![TimedCase {
                case: "pages-put",
                targets: BTreeMap::from([(
                    Target::Api,
                    timed::Timed {
                        responses: 4321,
                        responses_per_sec: 864.2,
                        p50_ms: 1.25,
                        p99_ms: 3.5,
                        p999_ms: 41.0,
                        max_ms: 152.34,
                        over_10ms: 7,
                        unexpected: 0,
                        rate_limited: 0,
                        socket_errors: 0,
                    },
                )]),
            }],
            targets: Vec::new(),
            quiet: None,
            goals: Vec::new(),
            statements: None,
            profile: None,
        };
        let text = render(&report);
        assert!(text.contains("1.00x   0.90-1.10"), "{text}");
        assert!(
            text.contains("p50/p99: wrk's, corrected for coordinated omission"),
            "the table says what its percentiles are: {text}"
        );
        assert!(text.contains("0.90-1.04"), "{text}");
        let timed = text
            .lines()
            .find(|l| l.contains("pages-put") && l.contains("4321"))
            .unwrap_or_else(|| panic!("no timed line: {text}"));
        assert_eq!(
            timed.split_whitespace().collect::<Vec<_>>(),
            [
                "pages-put",
                "api",
                "4321",
                "1.25",
                "3.50",
                "41.00",
                "152.3",
                "7",
                "2.00"
            ],
            "the responses' own percentiles, beside wrk's p99 of the same case: {text}"
        );
        assert!(
            text.contains("responses timed one by one, no correction (1 connection)\n"),
            "{text}"
        );
        assert!(
            text.contains("longer warm-ups: pages-put on api in start 1 5 s (510 requests)\n"),
            "only the warm-ups that ran longer are listed, with their start: {text}"
        );
        assert!(
            text.contains("1 s x 3 rounds per case and target, in each of 2 workerd starts,"),
            "{text}"
        );
    }

    #[test]
    fn ratios_are_also_given_start_by_start() {
        let all = cases("token");
        let put = all.iter().find(|c| c.name == "pages-put").unwrap();
        // Two starts of two rounds: the api dearer in the first start's
        // isolate, cheaper in the second's.
        let loads = BTreeMap::from([
            (
                ("pages-put", Target::Api),
                vec![
                    load(90.0, 100.0),
                    load(100.0, 100.0),
                    load(110.0, 100.0),
                    load(120.0, 100.0),
                ],
            ),
            (
                ("pages-put", Target::Reference),
                vec![
                    load(100.0, 90.0),
                    load(100.0, 100.0),
                    load(100.0, 110.0),
                    load(100.0, 120.0),
                ],
            ),
        ]);
        let result = summarise(&[put], &[Target::Api, Target::Reference], loads, 2);
        let by_start =
            |ratios: &[f64]| ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>();
        assert_eq!(
            by_start(&result[0].ratio_to_reference_by_start),
            ["0.95", "1.15"]
        );
        assert_eq!(
            by_start(&result[0].cpu_ratio_to_reference_by_start),
            ["0.95", "1.15"]
        );
        assert_eq!(
            by_start(&super::by_start(&[1.0, 0.9, 0.8], 2)),
            ["0.95", "0.80"]
        );
        let report = |isolates| Report {
            commit: "c".into(),
            machine: "m".into(),
            warmup_secs: 1,
            warmup_requests: 0,
            warmups: Vec::new(),
            duration_secs: 1,
            rounds: 2,
            isolates,
            connections: 8,
            cases: summarise(
                &[put],
                &[Target::Api, Target::Reference],
                BTreeMap::from([
                    (("pages-put", Target::Api), vec![load(90.0, 100.0); 4]),
                    (("pages-put", Target::Reference), vec![load(100.0, 90.0); 4]),
                ]),
                2,
            ),
            timed: Vec::new(),
            targets: Vec::new(),
            quiet: None,
            goals: Vec::new(),
            statements: None,
            profile: None,
        };
        let text = render(&report(2));
        let line = text
            .lines()
            .skip_while(|l| !l.contains("api/ref start by start"))
            .find(|l| l.trim_start().starts_with("pages-put"))
            .unwrap_or_else(|| panic!("no start-by-start line: {text}"));
        assert_eq!(
            line.split_whitespace().collect::<Vec<_>>(),
            ["pages-put", "0.90x", "0.90x", "0.90x", "0.90x"]
        );
        assert!(
            !render(&report(1)).contains("start by start"),
            "one start has nothing to set side by side"
        );
    }

    #[test]
    fn goals_judge_the_median_as_printed_and_show_the_rounds() {
        let case = |case, ratio, rounds: [f64; 3], hello| CaseResult {
            case,
            targets: BTreeMap::new(),
            ratio_to_reference: Some(ratio),
            cpu_ratio_to_reference: None,
            ratio_to_reference_by_round: rounds.to_vec(),
            cpu_ratio_to_reference_by_round: Vec::new(),
            ratio_to_reference_by_start: Vec::new(),
            cpu_ratio_to_reference_by_start: Vec::new(),
            ratio_to_hello: hello,
            ratio_to_ceilings: BTreeMap::new(),
            sinks_ratio_to_api: BTreeMap::new(),
        };
        let cases = [
            case("healthz", 1.004, [0.99, 1.0, 1.11], Some(0.54)),
            case("not-found", 0.996, [0.99, 1.0, 1.01], None),
            case("pages-put", 0.994, [0.95, 0.99, 1.03], None),
        ];
        let facts = |target, gzip, from_start| TargetFacts {
            target,
            bundle_raw_bytes: 2 * gzip,
            bundle_gzip_bytes: gzip,
            // Judged from workerd's start, not from its listening.
            first_request_ms: Some(1.0),
            start_to_answer_ms: from_start,
            rss_after_load_bytes: 0,
        };
        let targets = [
            facts(Target::Api, 845_011, Some(100.0)),
            facts(Target::Reference, 2 << 20, Some(1.0)),
        ];
        let judged = goals(&cases, &targets, 1 << 20);
        let verdicts: Vec<(&str, &str, bool)> = judged
            .iter()
            .map(|g| (g.goal.as_str(), g.measured.as_str(), g.met))
            .collect();
        assert_eq!(
            verdicts,
            [
                ("bundle at most 1.00 MiB gzip", "825.2 KiB", true),
                (
                    "first request under 100 ms from workerd's start",
                    "100.0 ms",
                    false
                ),
                ("healthz at 0.9x the hello world or more", "0.54x", false),
                (
                    "healthz at 1.0x the reference or more",
                    "1.00x (rounds 0.99-1.11)",
                    true
                ),
                (
                    "not-found at 1.0x the reference or more",
                    "1.00x (rounds 0.99-1.01)",
                    true
                ),
                (
                    "pages-put at 1.0x the reference or more",
                    "0.99x (rounds 0.95-1.03)",
                    false
                ),
            ]
        );
        let report = Report {
            commit: "c".into(),
            machine: "m".into(),
            warmup_secs: 1,
            warmup_requests: 0,
            warmups: Vec::new(),
            duration_secs: 1,
            rounds: 3,
            isolates: 1,
            connections: 1,
            cases: Vec::new(),
            timed: Vec::new(),
            targets: Vec::new(),
            quiet: None,
            goals: judged,
            statements: None,
            profile: None,
        };
        let text = render(&report);
        assert!(
            text.contains("3 rounds per case and target, wrk"),
            "one start is not mentioned: {text}"
        );
        let line = |goal: &str| {
            text.lines()
                .find(|l| l.trim_start().starts_with(goal))
                .unwrap_or_else(|| panic!("no line for {goal}: {text}"))
                .split_whitespace()
                .last()
                .unwrap()
                .to_owned()
        };
        assert_eq!(line("not-found at 1.0x"), "yes", "{text}");
        assert_eq!(line("pages-put at 1.0x"), "no", "{text}");
        let level = goals(&[case("healthz", 1.0, [1.0; 3], Some(0.896))], &[], 1 << 20);
        assert_eq!(level[0].measured, "0.90x");
        assert!(level[0].met, "0.896 prints as 0.90x, which is the target");
        let over = goals(&[], &[facts(Target::Api, (1 << 20) + 1, None)], 1 << 20);
        assert_eq!(over.len(), 1, "no first request measured, none judged");
        assert!(!over[0].met, "one byte over the budget");
    }

    #[test]
    fn wrong_answers_name_the_case_the_target_and_the_first_answer() {
        let mut load = parse_wrk(WRK_OUTPUT).unwrap();
        assert_eq!(
            wrong_answers("healthz", Target::Api, &load).as_deref(),
            Some(
                r#"healthz on api: 4 wrong statuses (the first: 503 {"type":"about:blank","status":503}), 3 socket errors"#
            )
        );
        load.unexpected = 0;
        load.first_unexpected = None;
        assert_eq!(
            wrong_answers("healthz", Target::Api, &load).as_deref(),
            Some("healthz on api: 0 wrong statuses, 3 socket errors")
        );
        load.socket_errors = 0;
        assert_eq!(wrong_answers("healthz", Target::Api, &load), None);
    }

    #[test]
    fn a_slow_case_warms_up_until_it_has_served_enough_requests() {
        // 3,000 writes in 15 s: 200 a second, 27,000 more take 135 s,
        // bounded by 120 s in all.
        assert_eq!(warmup_extension(3_000, 15, 30_000, 120), 105);
        assert_eq!(warmup_extension(3_000, 15, 30_000, 600), 135);
        // Enough already, or no time left, or counting turned off.
        assert_eq!(warmup_extension(150_000, 15, 30_000, 120), 0);
        assert_eq!(warmup_extension(3_000, 120, 30_000, 120), 0);
        assert_eq!(warmup_extension(3_000, 15, 0, 120), 0);
        // A case that served nothing still gets a bounded second try.
        assert_eq!(warmup_extension(0, 15, 30_000, 120), 105);
        // Rounded up: 90 more at 20 a second is 4.5 s, so 5.
        assert_eq!(warmup_extension(200, 10, 290, 120), 5);
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }

    #[test]
    fn scripts_quote_what_they_send() {
        let case = Case {
            name: "x",
            method: "PUT",
            path: "/".into(),
            headers: vec![("a", "q\"uote\\d\n".into())],
            body: Some("{\"t\":1}".into()),
            uncached: false,
            expected_statuses: &[204],
            check: |_, _, _| Ok(()),
        };
        let script = wrk_script(&case, Target::Api);
        assert!(!script.contains("function request"), "{script}");
        assert!(
            script.contains(r#"io.write("first unexpected: " .. seen .. "\n")"#),
            "the first wrong answer is reported: {script}"
        );
        assert!(
            script.contains(r#"wrk.headers["a"] = "q\"uote\\d\010""#),
            "{script}"
        );
        assert!(script.contains(r#"wrk.body = "{\"t\":1}""#), "{script}");
        assert!(script.contains("[204] = true"), "{script}");
    }

    #[test]
    fn configs_serve_the_bundle_twice_and_escape_values() {
        let dir = project::scratch_dir("bench");
        std::fs::write(dir.join("index.js"), "export default {}").unwrap();
        std::fs::write(dir.join("abc-index_bg.wasm"), "\0asm").unwrap();
        std::fs::write(dir.join("README.md"), "not a module").unwrap();
        let vars = vec![
            ("CACHE_TTL_SECS", "300".to_owned()),
            ("X", "a\"b".to_owned()),
        ];
        let alone = workerd_config(&dir, &vars, &[1001]).unwrap();
        assert_eq!(alone.matches("worker = .").count(), 1, "{alone}");
        assert_eq!(alone.matches("Workerd.Worker = (").count(), 1, "{alone}");
        assert!(!alone.contains("uncached"), "{alone}");
        let config = workerd_config(&dir, &vars, &[1001, 1002]).unwrap();
        assert!(config.contains("address = \"127.0.0.1:1001\""));
        assert!(config.contains("address = \"127.0.0.1:1002\""));
        assert_eq!(
            config
                .matches("(name = \"index.js\", esModule = embed")
                .count(),
            2
        );
        assert_eq!(
            config
                .matches("(name = \"abc-index_bg.wasm\", wasm = embed")
                .count(),
            2
        );
        assert!(!config.contains("README"));
        assert!(config.contains("(name = \"CACHE_TTL_SECS\", text = \"300\")"));
        assert!(config.contains("(name = \"CACHE_TTL_SECS\", text = \"0\")"));
        assert!(config.contains("(name = \"X\", text = \"a\\\"b\")"));
        let index = config.find("index.js").unwrap();
        assert!(
            index < config.find("abc-index_bg.wasm").unwrap(),
            "main module first"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
