//! Liveness and readiness. `/healthz` touches nothing and says which build
//! answers; `/readyz` says whether this isolate can serve traffic: the
//! configuration, and each dependency with its latency, checked
//! concurrently under one deadline.
//!
//! `/readyz` is public (`prd` has no Access in front of the API), so a
//! failed check shows only a fixed category ([`Failure`]); the driver's own
//! error, which names endpoints, buckets and what the server said, goes to
//! the log.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::openapi::{documented_routes, DocumentedRoutes};
use crate::{App, ConfigIssue};

/// Which build of the Worker is answering.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
pub struct BuildInfo {
    /// Always `ok`.
    pub status: &'static str,
    /// The `api` crate version.
    pub version: &'static str,
    /// The git commit the Worker was built from (`-dirty` when the tree had
    /// uncommitted changes), set by `cargo xtask build` through `GIT_COMMIT`.
    pub commit: &'static str,
}

impl BuildInfo {
    pub const CURRENT: BuildInfo = BuildInfo {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        commit: match option_env!("GIT_COMMIT") {
            Some(commit) => commit,
            None => "unknown",
        },
    };
}

/// How long readiness waits for all dependencies together.
const READINESS_DEADLINE: Duration = Duration::from_secs(2);

/// Whether this isolate can serve traffic, check by check.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` when every required check passes, else `unready`.
    pub status: &'static str,
    /// The deployment environment (dev, rc, stg, prd).
    pub environment: String,
    /// Each check by name: `config`, `tidb`, `redis`, `b2`.
    pub checks: BTreeMap<&'static str, Check>,
}

/// One readiness check.
#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    pub ok: bool,
    /// Whether a failure makes the Worker unready. Redis is not required
    /// (reads then bypass the cache and still answer from TiDB), nor is B2
    /// (only uploads and downloads need it).
    pub required: bool,
    /// How long the check took, in milliseconds (dependencies only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Why it failed, as one fixed category: `not configured: NAME[, NAME]`
    /// (the settings it lacks), `unreachable`, `timeout`, `credentials
    /// refused`, `not found` (the database or bucket), `unavailable` (the
    /// service answered that it cannot serve now), `misconfigured` (no
    /// valid request can be made from the settings) or `unexpected
    /// answer`. Never a host, bucket, URL or the service's own message:
    /// those go to the Worker's log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What is wrong with the configuration, by setting name; never values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub issues: Vec<ConfigIssue>,
}

pub fn routes() -> DocumentedRoutes {
    documented_routes![healthz, readyz]
}

/// `/healthz`'s body, the same for every request of a build: serialized
/// once per isolate, where `Json` would serialize it (and allocate for it)
/// on every request. Monitors and load balancers call it most of all.
static HEALTHZ_BODY: LazyLock<Bytes> = LazyLock::new(|| {
    serde_json::to_vec(&BuildInfo::CURRENT)
        .expect("three strings serialize")
        .into()
});

/// Liveness: no I/O, the build that answers.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The Worker is running", body = BuildInfo)))]
async fn healthz() -> Response {
    let mut response = Response::new(Body::from(HEALTHZ_BODY.clone()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Readiness: the configuration, and TiDB, Redis and B2 checked
/// concurrently within one deadline; 503 when a required check fails.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, description = "A required check fails", body = Readiness),
    ))]
async fn readyz(State(app): State<Arc<App>>) -> (StatusCode, Json<Readiness>) {
    let config = Check {
        ok: app.config_issues.is_empty(),
        required: true,
        latency_ms: None,
        error: None,
        issues: app.config_issues.clone(),
    };
    let (tidb, redis, b2) = futures_util::future::join3(
        timed(&app, "tidb", true, check_tidb(&app)),
        timed(&app, "redis", false, check_redis(&app)),
        timed(&app, "b2", false, check_b2(&app)),
    )
    .await;
    let checks = BTreeMap::from([
        ("config", config),
        ("tidb", tidb),
        ("redis", redis),
        ("b2", b2),
    ]);
    let ready = checks.values().all(|c| c.ok || !c.required);
    let body = Readiness {
        status: if ready { "ready" } else { "unready" },
        environment: app.config.environment.clone(),
        checks,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// Why a dependency check failed, as `/readyz` shows it: the same text
/// whatever the driver said, so clients may match on it and nothing about
/// the deployment shows.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// The settings the check needs are missing or malformed, by name.
    NotConfigured(Vec<&'static str>),
    /// No connection (DNS, refused, reset, TLS), or it broke.
    Unreachable,
    /// No answer within the readiness deadline or the driver's timeout.
    Timeout,
    /// The service refused our credentials.
    CredentialsRefused,
    /// The database or the bucket does not exist.
    NotFound,
    /// The service answered that it cannot serve now (a 5xx, busy, out of
    /// connections or quota, loading).
    Unavailable,
    /// The driver could not make a valid request from the settings.
    Misconfigured,
    /// Any other answer.
    UnexpectedAnswer,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::NotConfigured(names) => write!(f, "not configured: {}", names.join(", ")),
            Failure::Unreachable => f.write_str("unreachable"),
            Failure::Timeout => f.write_str("timeout"),
            Failure::CredentialsRefused => f.write_str("credentials refused"),
            Failure::NotFound => f.write_str("not found"),
            Failure::Unavailable => f.write_str("unavailable"),
            Failure::Misconfigured => f.write_str("misconfigured"),
            Failure::UnexpectedAnswer => f.write_str("unexpected answer"),
        }
    }
}

/// A failed check: its category for `/readyz`, and the driver's error for
/// the log (none when there is nothing more to say than the category).
#[derive(Debug)]
struct Failed {
    failure: Failure,
    cause: Option<String>,
}

impl Failed {
    fn because(failure: Failure, cause: impl fmt::Display) -> Self {
        Failed {
            failure,
            cause: Some(cause.to_string()),
        }
    }

    /// The dependency is not configured: names the settings among
    /// `settings` that the configuration reports missing or malformed
    /// (all of them are checked when loading, so at least one is), else
    /// the first.
    fn not_configured(app: &App, settings: &[&'static str]) -> Self {
        let mut names: Vec<&'static str> = app
            .config_issues
            .iter()
            .map(|issue| issue.name)
            .filter(|name| settings.contains(name))
            .collect();
        names.dedup();
        if names.is_empty() {
            names.push(settings[0]);
        }
        Failed {
            failure: Failure::NotConfigured(names),
            cause: None,
        }
    }
}

/// Runs one dependency check under the readiness deadline and measures
/// it; the cause of a failure goes to the log, its category to the report.
async fn timed(
    app: &App,
    name: &'static str,
    required: bool,
    check: impl std::future::Future<Output = Result<(), Failed>>,
) -> Check {
    let started = (app.platform.now_millis)();
    let outcome = outbound::deadline(app.platform.timer.as_ref(), READINESS_DEADLINE, check)
        .await
        .unwrap_or_else(|elapsed| Err(Failed::because(Failure::Timeout, elapsed)));
    let latency_ms = Some((((app.platform.now_millis)() - started) * 10.0).round() / 10.0);
    let error = outcome.err().map(|failed| {
        if let Some(cause) = &failed.cause {
            (app.platform.log_error)(&format!(
                "readiness: {name} failed ({}): {cause}",
                failed.failure
            ));
        }
        failed.failure.to_string()
    });
    Check {
        ok: error.is_none(),
        required,
        latency_ms,
        error,
        issues: Vec::new(),
    }
}

/// The settings each dependency is configured by (see `config`).
const TIDB_SETTINGS: [&str; 2] = ["TIDB_DATABASE_URL", "TIDB_HTTP_ENDPOINT"];
const REDIS_SETTINGS: [&str; 1] = ["REDIS_URL"];
const B2_SETTINGS: [&str; 5] = [
    "B2_ENDPOINT",
    "B2_REGION",
    "B2_BUCKET",
    "B2_KEY_ID",
    "B2_APPLICATION_KEY",
];

async fn check_tidb(app: &App) -> Result<(), Failed> {
    let client = app
        .tidb
        .as_ref()
        .ok_or_else(|| Failed::not_configured(app, &TIDB_SETTINGS))?;
    client
        .execute("SELECT 1")
        .await
        .map(|_| ())
        .map_err(|e| Failed::because(tidb_failure(&e), e))
}

/// MySQL's access denied (1044, 1045) and unknown database (1049).
const MYSQL_ACCESS_DENIED: [u16; 2] = [1044, 1045];
const MYSQL_UNKNOWN_DATABASE: u16 = 1049;

fn tidb_failure(error: &tidb_http::Error) -> Failure {
    use tidb_http::ErrorKind;
    if error.is_timeout() {
        return Failure::Timeout;
    }
    match error.kind() {
        ErrorKind::Transport(outbound::FetchError::InvalidRequest(_)) | ErrorKind::Config(_) => {
            Failure::Misconfigured
        }
        ErrorKind::Transport(_) => Failure::Unreachable,
        ErrorKind::Database(db) => {
            let errno = error.mysql_errno();
            if db.status == 401
                || db.status == 403
                || errno.is_some_and(|n| MYSQL_ACCESS_DENIED.contains(&n))
            {
                Failure::CredentialsRefused
            } else if errno == Some(MYSQL_UNKNOWN_DATABASE) {
                Failure::NotFound
            } else if db.status >= 500 || error.is_temporary() {
                Failure::Unavailable
            } else {
                Failure::UnexpectedAnswer
            }
        }
        _ => Failure::UnexpectedAnswer,
    }
}

async fn check_redis(app: &App) -> Result<(), Failed> {
    let target = app
        .config
        .redis
        .as_ref()
        .ok_or_else(|| Failed::not_configured(app, &REDIS_SETTINGS))?;
    let stream = app
        .platform
        .connect
        .connect(&target.host, target.port, target.tls)
        .await
        .map_err(|e| {
            let failure = match e.kind() {
                std::io::ErrorKind::TimedOut => Failure::Timeout,
                _ => Failure::Unreachable,
            };
            Failed::because(failure, format_args!("cannot connect: {e}"))
        })?;
    let mut connection =
        resp::Connection::open(stream, &target.options, app.platform.timer.clone())
            .await
            .map_err(|e| Failed::because(redis_failure(&e), e))?;
    let pong: String = connection
        .query(resp::cmd("PING"))
        .await
        .map_err(|e| Failed::because(redis_failure(&e), e))?;
    if pong == "PONG" {
        Ok(())
    } else {
        Err(Failed::because(
            Failure::UnexpectedAnswer,
            format_args!("PING answered {pong:?}"),
        ))
    }
}

fn redis_failure(error: &resp::Error) -> Failure {
    match error {
        resp::Error::Timeout(_) => Failure::Timeout,
        resp::Error::Io(_) | resp::Error::Closed => Failure::Unreachable,
        resp::Error::Auth(_) => Failure::CredentialsRefused,
        resp::Error::Server(e) => match e.code() {
            "NOAUTH" | "WRONGPASS" | "NOPERM" => Failure::CredentialsRefused,
            "LOADING" | "BUSY" | "MASTERDOWN" | "TRYAGAIN" | "OOM" => Failure::Unavailable,
            _ => Failure::UnexpectedAnswer,
        },
        resp::Error::Unusable(cause) => redis_failure(cause),
        resp::Error::Protocol(_) | resp::Error::Type { .. } => Failure::UnexpectedAnswer,
    }
}

async fn check_b2(app: &App) -> Result<(), Failed> {
    let client = app
        .b2
        .as_ref()
        .ok_or_else(|| Failed::not_configured(app, &B2_SETTINGS))?;
    client
        .head_bucket(app.platform.now(), READINESS_DEADLINE)
        .await
        .map_err(|e| Failed::because(b2_failure(&e), e))
}

fn b2_failure(error: &b2::Error) -> Failure {
    match error {
        b2::Error::NotFound { .. } => Failure::NotFound,
        b2::Error::AccessDenied { .. } => Failure::CredentialsRefused,
        b2::Error::Timeout(_) => Failure::Timeout,
        b2::Error::Network(_) => Failure::Unreachable,
        b2::Error::Unexpected { status, .. } if *status >= 500 || *status == 429 => {
            Failure::Unavailable
        }
        b2::Error::Unexpected { .. } => Failure::UnexpectedAnswer,
        b2::Error::Invalid(_) => Failure::Misconfigured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::scripted::{ScriptedSql, DONE};
    use crate::Platform;

    thread_local! {
        /// What the app wrote to its error log on this thread
        /// (`tokio::test` runs each test on its own thread).
        static LOGGED: std::cell::RefCell<Vec<String>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }

    fn log_to_thread(line: &str) {
        LOGGED.with(|logged| logged.borrow_mut().push(line.to_owned()));
    }

    /// `/readyz` of an app whose TiDB answers `SELECT 1` with `status`,
    /// `code` and `message`; Redis and B2 are not configured.
    async fn readiness_with_tidb_failing(
        status: u16,
        code: i64,
        message: &str,
    ) -> (StatusCode, serde_json::Value, Vec<String>) {
        let sql = ScriptedSql::new(|_| DONE, "SELECT", (status, code, message), 1);
        let platform = Platform {
            log_error: log_to_thread,
            fetch: sql,
            ..Platform::native()
        };
        let vars = [
            ("ENVIRONMENT", "dev"),
            (
                "TIDB_DATABASE_URL",
                "mysql://app:tidb-s3cret@gateway01.example.com:4000/app",
            ),
        ];
        let app = App::new(
            |name| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            },
            platform,
        );
        LOGGED.with(|logged| logged.borrow_mut().clear());
        let (status, Json(body)) = readyz(State(app)).await;
        let logged = LOGGED.with(|logged| logged.borrow().clone());
        (status, serde_json::to_value(body).unwrap(), logged)
    }

    #[tokio::test]
    async fn a_failed_check_shows_its_category_and_logs_the_database_words() {
        let words = "Access denied for user 'app'@'10.0.3.7' (using password: YES)";
        let (status, body, logged) = readiness_with_tidb_failing(401, 1045, words).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let tidb = &body["checks"]["tidb"];
        assert_eq!(tidb["ok"], false, "{body}");
        assert_eq!(tidb["error"], "credentials refused", "{body}");
        assert!(tidb["latency_ms"].is_number(), "{body}");
        let text = body.to_string();
        for internal in ["Access denied", "10.0.3.7", "1045", "gateway01", "s3cret"] {
            assert!(!text.contains(internal), "{internal:?} in {body}");
        }
        assert!(
            logged
                .iter()
                .any(|line| line.contains("tidb") && line.contains(words)),
            "the database's words go to the log: {logged:?}"
        );
        assert!(!format!("{logged:?}").contains("s3cret"), "{logged:?}");
    }

    #[tokio::test]
    async fn a_database_that_cannot_serve_now_is_unavailable_not_its_message() {
        let words = "TiKV server timeout at 10.0.3.9:20160";
        let (status, body, logged) = readiness_with_tidb_failing(500, 9002, words).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["checks"]["tidb"]["error"], "unavailable", "{body}");
        assert!(!body.to_string().contains("10.0.3.9"), "{body}");
        assert!(logged.iter().any(|l| l.contains(words)), "{logged:?}");
        // Not configured: named by setting, nothing to log.
        assert_eq!(
            body["checks"]["redis"]["error"], "not configured: REDIS_URL",
            "{body}"
        );
        assert!(
            body["checks"]["b2"]["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("not configured: B2_ENDPOINT")),
            "{body}"
        );
        assert_eq!(logged.len(), 1, "{logged:?}");
    }

    /// A timer whose every sleep is over at once: the readiness deadline
    /// passes as soon as a check has to wait.
    struct Expired;

    impl outbound::Timer for Expired {
        fn sleep(&self, _: Duration) -> outbound::BoxFuture<'static, ()> {
            Box::pin(std::future::ready(()))
        }
    }

    #[tokio::test]
    async fn a_check_past_the_deadline_is_a_timeout_with_the_cause_logged() {
        let platform = Platform {
            log_error: log_to_thread,
            timer: Arc::new(Expired),
            ..Platform::native()
        };
        let app = App::new(|_| None, platform);
        LOGGED.with(|logged| logged.borrow_mut().clear());
        let check = timed(&app, "tidb", true, std::future::pending()).await;
        assert!(!check.ok && check.required);
        assert_eq!(check.error.as_deref(), Some("timeout"));
        assert!(check.latency_ms.is_some());
        let logged = LOGGED.with(|logged| logged.borrow().clone());
        assert_eq!(
            logged,
            ["readiness: tidb failed (timeout): deadline of 2000 ms passed"]
        );
    }

    #[test]
    fn b2_and_redis_errors_map_to_categories_that_quote_nothing() {
        let denied = b2::Error::AccessDenied {
            code: Some("InvalidAccessKeyId".into()),
        };
        let cases = [
            (b2_failure(&denied), "credentials refused"),
            (b2_failure(&b2::Error::NotFound { code: None }), "not found"),
            (
                b2_failure(&b2::Error::Network(
                    "error sending request for url (https://s3.example.com/files/?<redacted>)"
                        .into(),
                )),
                "unreachable",
            ),
            (
                b2_failure(&b2::Error::Timeout(READINESS_DEADLINE)),
                "timeout",
            ),
            (
                b2_failure(&b2::Error::Unexpected {
                    status: 503,
                    code: None,
                }),
                "unavailable",
            ),
            (
                b2_failure(&b2::Error::Unexpected {
                    status: 400,
                    code: Some("BadRequest".into()),
                }),
                "unexpected answer",
            ),
            (
                redis_failure(&resp::Error::Io("connection refused".into())),
                "unreachable",
            ),
            (redis_failure(&resp::Error::Closed), "unreachable"),
            (
                redis_failure(&resp::Error::Unusable(Box::new(resp::Error::Timeout(
                    READINESS_DEADLINE,
                )))),
                "timeout",
            ),
            (
                redis_failure(&resp::Error::Protocol("not RESP".into())),
                "unexpected answer",
            ),
        ];
        for (failure, shown) in cases {
            assert_eq!(failure.to_string(), shown, "{failure:?}");
        }
        assert_eq!(
            Failure::NotConfigured(vec!["B2_KEY_ID", "B2_APPLICATION_KEY"]).to_string(),
            "not configured: B2_KEY_ID, B2_APPLICATION_KEY"
        );
    }
}
