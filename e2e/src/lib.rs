//! Shared helpers for the end-to-end tests: the running stack's manifest
//! and an HTTP client. The tests themselves live in `tests/`, one file per
//! area, and talk to the stack only over the network, as production does.

use std::sync::OnceLock;
use std::time::Duration;

pub use stack_manifest::StackManifest;

/// The stack these tests run against (from `E2E_STACK`, which
/// `cargo xtask test` sets). Panics with instructions when there is none.
pub fn stack() -> &'static StackManifest {
    static STACK: OnceLock<StackManifest> = OnceLock::new();
    STACK.get_or_init(|| StackManifest::from_env().unwrap_or_else(|e| panic!("{e}")))
}

/// An HTTP client with a timeout, so a hung server fails a test instead of
/// hanging the suite.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// A connection to the stack's MariaDB as the app's user, to check what the
/// Worker wrote (or change the server, as the outage tests do).
pub async fn database() -> sqlx::MySqlConnection {
    use sqlx::Connection as _;
    sqlx::MySqlConnection::connect(&stack().mariadb.url)
        .await
        .unwrap_or_else(|e| panic!("connecting to MariaDB: {e}"))
}

/// A value unique to this test run, to find what a test wrote.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// The repository's root.
pub fn repository() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e is in the repository")
        .to_path_buf()
}

/// `cargo xtask` as a user runs it, in the repository: the xtask binary
/// that runs this suite (`EDGE_API_XTASK`, set by `cargo xtask test`), else
/// through `cargo run`.
pub fn xtask() -> std::process::Command {
    let mut command = match std::env::var_os("EDGE_API_XTASK") {
        Some(xtask) => std::process::Command::new(xtask),
        None => {
            let mut cargo = std::process::Command::new(
                std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
            );
            cargo.args(["run", "--quiet", "--package", "xtask", "--"]);
            cargo
        }
    };
    command.current_dir(repository());
    command
}

/// The commit the checkout is at (`git rev-parse HEAD`).
pub fn git_head() -> String {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git");
    assert!(out.status.success(), "git rev-parse HEAD failed");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Base URL of the API Worker under `wrangler dev`.
pub fn api() -> &'static str {
    &stack()
        .api
        .as_ref()
        .expect("the stack runs the API Worker")
        .url
}

/// The head (lowercase, without its blank line) of the HTTP answer read
/// from `socket`, within `limit`: for the tests that write a request by
/// hand (a body sent late, or never).
pub async fn answer_head(socket: &mut tokio::net::TcpStream, limit: Duration) -> String {
    use tokio::io::AsyncReadExt;

    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(limit, socket.read(&mut buffer))
            .await
            .expect("an answer within the limit")
            .unwrap();
        assert!(read > 0, "closed without an answer: {answer:?}");
        answer.extend_from_slice(&buffer[..read]);
        if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            return String::from_utf8_lossy(&answer[..end]).to_lowercase();
        }
    }
}

/// The status, the page's title and what the cache did for the read
/// (`server-timing`'s `cache;desc`: `hit`, `miss`, `unavailable`,
/// `pending`) of the page at `url`.
pub async fn title_and_cache(url: &str) -> (u16, serde_json::Value, String) {
    let response = http().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let timing = response.headers()["server-timing"].to_str().unwrap();
    let cache = timing
        .split(", ")
        .find_map(|metric| metric.strip_prefix("cache;desc=\""))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned();
    let page: serde_json::Value = response.json().await.unwrap();
    (status, page["title"].clone(), cache)
}

/// Runs the Worker's cron handler once (`wrangler dev --test-scheduled`:
/// `GET /__scheduled`), with the schedule wrangler.toml gives it.
pub async fn run_cron() {
    let response = http()
        .get(format!("{}/__scheduled?cron=*+*+*+*+*", api()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// The notes of page `slug` in `page_cache_pending` (its invalidation
/// Redis missed): their tokens, none once an invalidation landed.
pub async fn missed_invalidations(slug: &str) -> Vec<i64> {
    sqlx::query_scalar("SELECT note FROM page_cache_pending WHERE slug = ?")
        .bind(slug)
        .fetch_all(&mut database().await)
        .await
        .unwrap()
}

/// Sends `request` and parses the answer as JSON, failing the test on a
/// transport error or a body that is not JSON.
pub async fn json(request: reqwest::RequestBuilder) -> serde_json::Value {
    let response = request.send().await.expect("request sent");
    let status = response.status();
    let text = response.text().await.expect("body read");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text}"))
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Polls `probe` until it returns something, for at most 30 s: for what
/// the Worker does after its response (telemetry, in the background).
pub async fn eventually<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually_within(what, Duration::from_secs(30), probe).await
}

/// Polls `probe` every 250 ms until it returns something, for at most
/// `limit`.
pub async fn eventually_within<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} never arrived within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A client of the stack's S3 server (the B2 stand-in), with its keys.
pub fn storage() -> b2::Client {
    let s3 = &stack().s3;
    b2::Client::new(
        b2::Config {
            endpoint: s3.endpoint.clone(),
            region: s3.region.clone(),
            bucket: s3.bucket.clone(),
            credentials: b2::Credentials::new(&s3.access_key_id, &s3.secret_access_key),
        },
        std::sync::Arc::new(outbound::ReqwestFetch::default()),
    )
    .expect("the stack's S3 endpoint is a valid URL")
}

/// The API behind a caller that aborts its call.
pub mod caller;
/// Servers frozen or stopped and started again.
pub mod faults;

/// Events stored by the stack's Bugsink, read through its REST API.
pub mod sentry {
    use serde_json::Value;

    use super::{http, json, stack};

    /// The stored event whose JSON mentions `marker`, if there is one yet
    /// (Bugsink has no lookup by event id: this walks the project's
    /// issues and their events).
    pub async fn event_containing(marker: &str) -> Option<Value> {
        let sentry = &stack().sentry;
        let api = format!("{}/api/canonical/0", sentry.url);
        let issues = json(
            http()
                .get(format!("{api}/issues/?project={}", sentry.project_id))
                .bearer_auth(&sentry.api_token),
        )
        .await;
        for issue in issues["results"].as_array()? {
            let events = json(
                http()
                    .get(format!("{api}/events/?issue={}", issue["id"].as_str()?))
                    .bearer_auth(&sentry.api_token),
            )
            .await;
            for summary in events["results"].as_array()? {
                let event = json(
                    http()
                        .get(format!("{api}/events/{}/", summary["id"].as_str()?))
                        .bearer_auth(&sentry.api_token),
                )
                .await;
                if event.to_string().contains(marker) {
                    return Some(event);
                }
            }
        }
        None
    }
}

/// The Access team of the stack: its signing key and the tokens it issues.
pub mod access {
    use std::sync::OnceLock;

    pub use access::testing::{encode_json, service_claims, user_claims, SigningKey};

    use super::stack;

    /// The key the stack's Access stand-in publishes.
    pub fn team_key() -> &'static SigningKey {
        static KEY: OnceLock<SigningKey> = OnceLock::new();
        KEY.get_or_init(|| {
            let team = &stack().access;
            let pem = std::fs::read_to_string(&team.key_file).expect("the team key file");
            SigningKey::from_pem(&team.kid, &pem).expect("the team key")
        })
    }

    /// A token for `email`, as Access issues it for the API's application.
    pub fn user_token(email: &str) -> String {
        let team = &stack().access;
        team_key().sign(&user_claims(
            &team.team_domain,
            &team.aud,
            email,
            super::now(),
        ))
    }

    /// Publishes one more key on the stand-in (a rotation begins).
    pub async fn publish(key: &SigningKey) {
        let url = format!("{}/_standin/keys", stack().access.team_domain);
        let response = super::http()
            .post(url)
            .json(&key.jwk())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204, "publishing a key");
    }

    /// How many times the certs endpoint was fetched.
    pub async fn certs_fetches() -> u64 {
        let url = format!("{}/_standin/stats", stack().access.team_domain);
        let stats = super::json(super::http().get(url)).await;
        stats["certs_fetches"].as_u64().expect("certs_fetches")
    }
}

/// The stack's Redis over plain TCP, as the native tests of the Redis
/// crates (cache, rate limiter) use it.
pub mod redis {
    use std::sync::Arc;
    use std::time::Duration;

    use outbound::TokioTimer;
    use resp::{Connection, Options};
    use tokio::net::TcpStream;

    use super::stack;

    /// Login with the stack's password and a generous per-command deadline.
    pub fn options() -> Options {
        Options {
            password: Some(stack().redis.password.clone()),
            timeout: Duration::from_secs(5),
            ..Options::default()
        }
    }

    /// A new connection, after the handshake.
    pub async fn open() -> Connection<TcpStream> {
        let redis = &stack().redis;
        let tcp = TcpStream::connect((redis.host.as_str(), redis.port))
            .await
            .expect("redis listens");
        Connection::open(tcp, &options(), Arc::new(TokioTimer))
            .await
            .expect("handshake with the stack's password")
    }
}
