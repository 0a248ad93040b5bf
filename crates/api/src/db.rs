//! What every route that uses TiDB shares: the client (or a 503 when it is
//! not configured), timing of calls for `server-timing`, and how a database
//! failure is shown to clients.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use outbound::Background;

use crate::layers::Timings;
use crate::problem::{Problem, ProblemType};
use crate::App;

/// What clients are told to wait when the database is down.
pub const RETRY_AFTER_SECS: &str = "5";

/// The TiDB client, or a 503 problem when it is not configured.
pub fn database(app: &App) -> Result<&tidb_http::Client, Problem> {
    app.tidb.as_ref().ok_or_else(|| {
        Problem::new(
            ProblemType::Unavailable,
            "The database is not configured (see /readyz).",
        )
    })
}

/// The TiDB client for a route that writes in a transaction (an
/// extractor; a 503 problem when TiDB is not configured). A transaction the
/// request abandons (its deadline passed, a statement failed) is rolled
/// back on the request's [`Background`] (`waitUntil`) at once, instead of
/// holding its row locks, and with them every later write to those rows,
/// until TiDB's idle timeout ends it. The runtime gives every request a
/// background; without one (a bare test harness) the idle timeout stays.
pub struct Transactional(pub tidb_http::Client);

impl FromRequestParts<Arc<App>> for Transactional {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Problem> {
        let db = database(app)?.clone();
        Ok(Transactional(match parts.extensions.get::<Background>() {
            Some(background) => db.with_background(background.clone()),
            None => db,
        }))
    }
}

/// Runs a dependency call and records its duration for `server-timing`.
pub async fn timed<T>(
    app: &App,
    timings: &Timings,
    name: &'static str,
    call: impl std::future::Future<Output = T>,
) -> T {
    let started = (app.platform.now_millis)();
    let out = call.await;
    timings.record(name, (app.platform.now_millis)() - started);
    out
}

/// A database failure as the client sees it: 504 when it was too slow,
/// 503 with `Retry-After` when it is unreachable or failing, 500 (cause
/// kept for the logs) when our SQL was refused.
pub fn db_problem(error: tidb_http::Error) -> Problem {
    let unavailable = |detail: &str| {
        let mut problem = Problem::new(ProblemType::Unavailable, detail).with_header(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECS),
        );
        problem.internal = Some(error.to_string());
        problem
    };
    if error.is_timeout() {
        let mut problem =
            Problem::new(ProblemType::Timeout, "The database did not answer in time.");
        problem.internal = Some(error.to_string());
        return problem;
    }
    match error.kind() {
        tidb_http::ErrorKind::Transport(_) | tidb_http::ErrorKind::Protocol(_) => {
            unavailable("The database cannot be reached; try again shortly.")
        }
        tidb_http::ErrorKind::Database(db) if db.status >= 500 || db.status == 401 => {
            unavailable("The database is unavailable; try again shortly.")
        }
        _ => Problem::internal(error),
    }
}

/// A `DATETIME(3)` as TiDB sends it (`2026-11-23 10:00:00.123`, UTC) in
/// RFC 3339 (`2026-11-23T10:00:00.123Z`).
pub fn rfc3339(stored: &str) -> String {
    format!("{}Z", stored.replacen(' ', "T", 1))
}
