//! Dependencies failing under the real Worker: Redis and MariaDB frozen
//! (SIGSTOP: connections open but nothing answers, the hardest case for
//! timeouts) and thawed again; then the telemetry sinks (Bugsink,
//! Prometheus, the Loki stand-in) frozen together. In its own test binary on purpose: while a
//! server is frozen, every other test would fail or slow down.

use std::time::Duration;

use e2e::access::user_token;
use e2e::{api, http, stack, unique};
use serde_json::{json, Value};

/// The stack's process whose command line names `program` and `mark`.
fn pid_of(program: &str, mark: &str) -> String {
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(program) && cmdline.contains(mark) {
            return entry.file_name().to_string_lossy().into_owned();
        }
    }
    panic!("no {program} of this stack is running");
}

/// SIGSTOPs a process (or, for `-PGID`, its whole group) and SIGCONTs it
/// when dropped, even if the test fails.
struct Frozen(String);

impl Frozen {
    fn new(program: &str, mark: &str) -> Self {
        let pid = pid_of(program, mark);
        signal("-STOP", &pid);
        Frozen(pid)
    }

    /// The process and every process of its group (gunicorn's workers).
    fn group(program: &str, mark: &str) -> Self {
        let pid = pid_of(program, mark);
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let group = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(2))
            .unwrap()
            .to_owned();
        let target = format!("-{group}");
        signal("-STOP", &target);
        Frozen(target)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal("-CONT", &self.0);
    }
}

fn signal(which: &str, pid: &str) {
    let status = std::process::Command::new("kill")
        .args([which, "--", pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill {which} {pid}");
}

async fn create_page() -> String {
    let slug = unique("outage-");
    let created = http()
        .put(format!("{}/v1/pages/{slug}", api()))
        .header("cf-access-jwt-assertion", user_token("ops@example.com"))
        .json(&json!({"title": "t", "body": "b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    slug
}

/// One server frozen at a time, so each scenario sees only its own outage.
#[tokio::test]
async fn dependencies_freeze_and_recover() {
    reads_bypass_a_frozen_redis_and_the_cache_returns_after_it().await;
    a_frozen_database_is_a_503_problem_and_recovery_needs_no_restart().await;
    frozen_telemetry_sinks_change_no_answer().await;
}

/// Bugsink, Prometheus and Loki hung together: every answer is still what
/// it would be, and none waits for a sink (their sends time out after 3 s
/// in the background).
async fn frozen_telemetry_sinks_change_no_answer() {
    // Each is found by the address it listens on.
    let listen = |url: &str| {
        let url: url::Url = url.parse().unwrap();
        format!("127.0.0.1:{}", url.port().unwrap())
    };
    let state = stack().state_dir.to_string_lossy().into_owned();
    let slug = create_page().await;
    let _sentry = Frozen::group("gunicorn", &listen(&stack().sentry.url));
    let _prometheus = Frozen::new("prometheus", &state);
    let _loki = Frozen::new("loki-standin", &listen(&stack().loki.url));
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let health = http()
            .get(format!("{}/healthz", api()))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        let page = http()
            .get(format!("{}/v1/pages/{slug}", api()))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let failed = http()
            .get(format!("{}/_test/fail?marker={}", api(), unique("frozen-")))
            .send()
            .await
            .unwrap();
        assert_eq!(failed.status(), 500);
        let body: Value = failed.json().await.unwrap();
        assert_eq!(body["type"], "/problems/internal");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "answers waited for a frozen sink: {:?}",
            started.elapsed()
        );
    }
}

async fn reads_bypass_a_frozen_redis_and_the_cache_returns_after_it() {
    let slug = create_page().await;
    let url = format!("{}/v1/pages/{slug}", api());
    {
        // redis-server retitles itself `redis-server 127.0.0.1:PORT`.
        let port = format!(":{}", stack().redis.port);
        let _frozen = Frozen::new("redis-server", &port);
        let response = http().get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "reads still answer from TiDB");
        let timing = response.headers()["server-timing"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(timing.contains("cache;desc=\"unavailable\""), "{timing}");
        assert!(timing.contains("db;dur="), "{timing}");
        // The limiter is fail-open locally: no RateLimit fields, no refusal.
        assert!(response.headers().get("ratelimit-limit").is_none());
        let page: Value = response.json().await.unwrap();
        assert_eq!(page["title"], "t");
    }
    let mut timing = String::new();
    for _ in 0..2 {
        let response = http().get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers().get("ratelimit-limit").is_some());
        timing = response.headers()["server-timing"]
            .to_str()
            .unwrap()
            .to_owned();
    }
    assert!(
        timing.contains("cache;desc=\"hit\""),
        "back in use: {timing}"
    );
}

async fn a_frozen_database_is_a_503_problem_and_recovery_needs_no_restart() {
    let slug = create_page().await;
    let url = format!("{}/v1/pages/{slug}/revisions", api());
    {
        let state = stack().state_dir.to_string_lossy().into_owned();
        let _frozen = Frozen::new("mariadbd", &state);
        // The gateway gives up after 2 s and reports the database
        // unreachable, within the Worker's 3 s deadline.
        let response = http().get(&url).send().await.unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        assert_eq!(response.headers()["retry-after"], "5");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["type"], "/problems/unavailable");
    }
    // The gateway's connections wake up with the server; give it a moment.
    let mut status = 0;
    for _ in 0..20 {
        status = http().get(&url).send().await.unwrap().status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(status, 200, "the same Worker answers again");
}
