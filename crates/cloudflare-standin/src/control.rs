//! The control API, for tests that run the stand-in as a separate process.
//! Everything [`crate::StandInHandle`] offers, over HTTP under `/__standin/`
//! (no auth: the stand-in listens on loopback):
//!
//! | request | effect |
//! | --- | --- |
//! | `GET /__standin/requests` | the request log ([`crate::RequestRecord`]s) |
//! | `GET /__standin/violations` | schema violations ([`crate::Violation`]s) |
//! | `GET /__standin/response-mismatches` | own answers off the response schema |
//! | `GET /__standin/counters` | `{"total": N, "writes": N}` |
//! | `POST /__standin/counters/reset` | zero counters, empty the request log |
//! | `GET /__standin/faults` | pending fault rules |
//! | `POST /__standin/faults` | add a rule: a [`crate::Fault`] as JSON, e.g. `{"kind":{"kind":"rate_limit","retry_after_secs":2},"times":3}` |
//! | `DELETE /__standin/faults` | drop all pending rules |
//! | `GET /__standin/state` | snapshot of all state in API shapes |
//! | `POST /__standin/health` | `{"version_id"?: ID, "hostname"?: HOST, "healthy": bool}` for the edge emulation |
//!
//! To change state behind the deploy tool's back (drift tests), call the
//! API itself with the token.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use crate::{json_response, Fault, Shared, StandInHandle};

pub(crate) fn handle(shared: &Arc<Shared>, method: &Method, path: &str, body: &[u8]) -> Response {
    let handle = StandInHandle {
        shared: shared.clone(),
    };
    let ok = |value: Value| json_response(StatusCode::OK, &value);
    let bad = |message: String| json_response(StatusCode::BAD_REQUEST, &json!({"error": message}));
    match (method.as_str(), path.trim_end_matches('/')) {
        ("GET", "/requests") => ok(json!(handle.requests())),
        ("GET", "/violations") => ok(json!(handle.violations())),
        ("GET", "/response-mismatches") => ok(json!(handle.response_mismatches())),
        ("GET", "/counters") => ok(json!({
            "total": handle.request_count(),
            "writes": handle.write_count(),
        })),
        ("POST", "/counters/reset") => {
            handle.reset_counters();
            ok(json!({"reset": true}))
        }
        ("GET", "/faults") => ok(json!(handle.pending_faults())),
        ("POST", "/faults") => match serde_json::from_slice::<Fault>(body) {
            Ok(fault) => {
                handle.inject(fault);
                ok(json!(handle.pending_faults()))
            }
            Err(e) => bad(format!("not a fault rule: {e}")),
        },
        ("DELETE", "/faults") => {
            handle.clear_faults();
            ok(json!([]))
        }
        ("GET", "/state") => ok(handle.snapshot()),
        ("POST", "/health") => {
            let Ok(request) = serde_json::from_slice::<Value>(body) else {
                return bad("body must be JSON".into());
            };
            let healthy = request["healthy"].as_bool().unwrap_or(true);
            if let Some(version) = request["version_id"].as_str() {
                handle.set_version_healthy(version, healthy);
            }
            if let Some(host) = request["hostname"].as_str() {
                handle.set_host_healthy(host, healthy);
            }
            ok(json!({"healthy": healthy}))
        }
        _ => json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": format!("no control endpoint {method} /__standin{path}")}),
        ),
    }
}
