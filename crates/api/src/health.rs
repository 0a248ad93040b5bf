//! Liveness and readiness. `/healthz` touches nothing and says which build
//! answers; `/readyz` says whether this isolate can serve traffic, naming
//! what is wrong (configuration today; dependencies as they are added).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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

/// Whether this isolate can serve traffic, check by check.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `unready`.
    pub status: &'static str,
    /// The deployment environment (dev, rc, stg, prd).
    pub environment: String,
    /// Each check by name (`config`, and each dependency as it is added).
    pub checks: BTreeMap<&'static str, Check>,
}

/// One readiness check.
#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    pub ok: bool,
    /// What is wrong, by setting name; never the values.
    pub issues: Vec<ConfigIssue>,
}

pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// Liveness: no I/O, the build that answers.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The Worker is running", body = BuildInfo)))]
async fn healthz() -> Json<BuildInfo> {
    Json(BuildInfo::CURRENT)
}

/// Readiness: every check, and 503 when a required one fails.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, description = "A required check fails", body = Readiness),
    ))]
async fn readyz(State(app): State<Arc<App>>) -> (StatusCode, Json<Readiness>) {
    let config_ok = app.config_issues.is_empty();
    let status = if config_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let checks = BTreeMap::from([(
        "config",
        Check {
            ok: config_ok,
            issues: app.config_issues.clone(),
        },
    )]);
    let body = Readiness {
        status: if config_ok { "ready" } else { "unready" },
        environment: app.config.environment.clone(),
        checks,
    };
    (status, Json(body))
}
