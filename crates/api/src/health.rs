//! Liveness and readiness. `/healthz` touches nothing and says which build
//! answers; `/readyz` says whether this isolate can serve traffic, naming
//! what is wrong (configuration today; dependencies as they are added).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

use crate::App;

/// Which build of the Worker is answering.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BuildInfo {
    pub status: &'static str,
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

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<BuildInfo> {
    Json(BuildInfo::CURRENT)
}

async fn readyz(State(app): State<Arc<App>>) -> (StatusCode, Json<serde_json::Value>) {
    let config_ok = app.config_issues.is_empty();
    let status = if config_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if config_ok { "ready" } else { "unready" },
        "environment": app.config.environment,
        "checks": {
            "config": { "ok": config_ok, "issues": app.config_issues },
        },
    });
    (status, Json(body))
}
