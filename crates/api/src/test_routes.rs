//! Routes that exist only to prove failure handling end to end: a handler
//! that panics, one that fails with an internal error (a 500 for Sentry)
//! and one that overruns the request deadline. Compiled only
//! with the `test-routes` feature (the local stack's build), never in a
//! deployed bundle, and left out of the OpenAPI document on purpose: the
//! schema suite must not call them.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use serde::Deserialize;

use crate::extract::Query;
use crate::openapi::documented_routes;

use crate::App;

/// The routes, without their document.
pub fn routes() -> crate::openapi::DocumentedRoutes {
    documented_routes![panic, fail, sleep].undocumented()
}

/// Panics: the Worker must answer 500 with a problem document and serve
/// the next request normally.
#[utoipa::path(get, path = "/_test/panic", responses((status = 500)))]
async fn panic() -> &'static str {
    panic!("deliberate panic from /_test/panic")
}

#[derive(Deserialize, utoipa::IntoParams)]
struct FailParams {
    marker: String,
}

/// Fails like a handler whose dependency broke: a 500 problem whose
/// internal cause (with `marker`, to find the report) goes to the logs and
/// Sentry, never to the client.
#[utoipa::path(get, path = "/_test/fail", params(FailParams), responses((status = 500)))]
async fn fail(Query(params): Query<FailParams>) -> crate::Problem {
    crate::Problem::internal(format!("forced failure {}", params.marker))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct SleepParams {
    ms: u64,
}

/// Waits `ms` milliseconds on the platform timer, like a slow dependency.
#[utoipa::path(get, path = "/_test/sleep", params(SleepParams), responses((status = 200)))]
async fn sleep(State(app): State<Arc<App>>, Query(params): Query<SleepParams>) -> &'static str {
    app.platform
        .timer
        .sleep(Duration::from_millis(params.ms))
        .await;
    "slept"
}
