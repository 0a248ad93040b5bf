//! Liveness and readiness. `/healthz` touches nothing and says which build
//! answers; `/readyz` says whether this isolate can serve traffic: the
//! configuration, and each dependency with its latency, checked
//! concurrently under one deadline.

use std::collections::BTreeMap;
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
    /// Why it failed; never a secret.
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
        timed(&app, true, check_tidb(&app)),
        timed(&app, false, check_redis(&app)),
        timed(&app, false, check_b2(&app)),
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

/// Runs one dependency check under the readiness deadline and measures it.
async fn timed(
    app: &App,
    required: bool,
    check: impl std::future::Future<Output = Result<(), String>>,
) -> Check {
    let started = (app.platform.now_millis)();
    let outcome = outbound::deadline(app.platform.timer.as_ref(), READINESS_DEADLINE, check)
        .await
        .unwrap_or_else(|elapsed| Err(elapsed.to_string()));
    Check {
        ok: outcome.is_ok(),
        required,
        latency_ms: Some((((app.platform.now_millis)() - started) * 10.0).round() / 10.0),
        error: outcome.err(),
        issues: Vec::new(),
    }
}

async fn check_tidb(app: &App) -> Result<(), String> {
    let client = app
        .tidb
        .as_ref()
        .ok_or("not configured (TIDB_DATABASE_URL)")?;
    client
        .execute("SELECT 1")
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn check_redis(app: &App) -> Result<(), String> {
    let target = app
        .config
        .redis
        .as_ref()
        .ok_or("not configured (REDIS_URL)")?;
    let stream = app
        .platform
        .connect
        .connect(&target.host, target.port, target.tls)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let mut connection =
        resp::Connection::open(stream, &target.options, app.platform.timer.clone())
            .await
            .map_err(|e| e.to_string())?;
    let pong: String = connection
        .query(resp::cmd("PING"))
        .await
        .map_err(|e| e.to_string())?;
    if pong == "PONG" {
        Ok(())
    } else {
        Err(format!("PING answered {pong:?}"))
    }
}

async fn check_b2(app: &App) -> Result<(), String> {
    let client = app.b2.as_ref().ok_or("not configured (B2_*)")?;
    client
        .head_bucket(app.platform.now(), READINESS_DEADLINE)
        .await
        .map_err(|e| e.to_string())
}
