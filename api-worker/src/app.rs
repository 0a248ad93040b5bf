//! Assembles the axum router from the per-area modules. Cross-cutting layers
//! (errors, request ids, CORS, auth) are added here, in one place.

use axum::{routing::get, Router};

use crate::health;

/// The whole API as one router. Built per request for now: it holds no state,
/// and building it is a handful of allocations.
pub fn router() -> Router {
    Router::new().route("/healthz", get(health::healthz))
}
