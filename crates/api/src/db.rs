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
/// 503 with `Retry-After` when it is unreachable, failing or refusing for
/// now (out of connections or quota, busy, a lock or conflict: see
/// [`tidb_http::Error::is_temporary`]), 500 (cause kept for the logs) when
/// our SQL was refused.
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
        _ if error.is_temporary() => unavailable("The database is busy; try again shortly."),
        _ => Problem::internal(error),
    }
}

/// A `DATETIME(3)` as TiDB sends it (`2026-11-23 10:00:00.123`, UTC) in
/// RFC 3339 (`2026-11-23T10:00:00.123Z`).
pub fn rfc3339(stored: &str) -> String {
    // One allocation, not two (a write answers with one of these).
    let mut out = String::with_capacity(stored.len() + 1);
    match stored.split_once(' ') {
        Some((date, time)) => {
            out.push_str(date);
            out.push('T');
            out.push_str(time);
        }
        None => out.push_str(stored),
    }
    out.push('Z');
    out
}

/// TiDB Cloud's SQL API for unit tests, scripted: every statement gets
/// the answer its kind is given, except that those starting with a given
/// text get an error answer for as many times as asked. Keeps every query.
#[cfg(test)]
pub(crate) mod scripted {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// An answer to a change (or a query that found nothing).
    pub const DONE: &str = r#"{"types":[],"rows":[],"rowsAffected":1}"#;

    pub struct ScriptedSql {
        answer: fn(&str) -> &'static str,
        fail_on: &'static str,
        /// The error answer's status and body.
        failure: (u16, String),
        failures: Mutex<usize>,
        queries: Mutex<Vec<String>>,
    }

    impl ScriptedSql {
        /// Answers with `answer(query)`, except the first `failures`
        /// statements starting with `fail_on`, which get `status` and the
        /// error `code` with `message`.
        pub fn new(
            answer: fn(&str) -> &'static str,
            fail_on: &'static str,
            (status, code, message): (u16, i64, &str),
            failures: usize,
        ) -> Arc<Self> {
            let body = format!(r#"{{"code":{code},"message":"{message}"}}"#);
            Arc::new(ScriptedSql {
                answer,
                fail_on,
                failure: (status, body),
                failures: Mutex::new(failures),
                queries: Mutex::new(Vec::new()),
            })
        }

        /// A driver talking to this API.
        pub fn client(self: &Arc<Self>) -> tidb_http::Client {
            let config = tidb_http::Config::new("gateway01.example.com", "user", "password");
            tidb_http::Client::new(config, self.clone())
        }

        /// How many statements sent start with `prefix`.
        pub fn count(&self, prefix: &str) -> usize {
            self.sent(prefix).len()
        }

        /// The statements sent that start with `prefix`, in order.
        pub fn sent(&self, prefix: &str) -> Vec<String> {
            let queries = self.queries.lock().unwrap();
            queries
                .iter()
                .filter(|q| q.starts_with(prefix))
                .cloned()
                .collect()
        }
    }

    impl outbound::Fetch for ScriptedSql {
        fn fetch(
            &self,
            request: outbound::Request,
            _: Duration,
        ) -> outbound::BoxFuture<'_, Result<outbound::Response, outbound::FetchError>> {
            let sent: serde_json::Value = serde_json::from_slice(request.body()).unwrap();
            let query = sent["query"].as_str().unwrap().to_owned();
            self.queries.lock().unwrap().push(query.clone());
            let mut failures = self.failures.lock().unwrap();
            let (status, body) = if query.starts_with(self.fail_on) && *failures > 0 {
                *failures -= 1;
                self.failure.clone()
            } else {
                (200, (self.answer)(&query).to_owned())
            };
            let response = axum::http::Response::builder()
                .status(status)
                .header("TiDB-Session", "session-1")
                .body(outbound::Bytes::from(body))
                .expect("a response");
            Box::pin(async move { Ok(response) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::scripted::{ScriptedSql, DONE};
    use super::*;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    /// What a client is told when a statement failed with the SQL API's
    /// `status` and error `code`: status, `Retry-After` and body.
    async fn answer(
        status: u16,
        code: i64,
        message: &str,
    ) -> (StatusCode, Option<HeaderValue>, String) {
        let api = ScriptedSql::new(|_| DONE, "SELECT", (status, code, message), 1);
        let error = api.client().execute("SELECT 1").await.unwrap_err();
        let response = db_problem(error).into_response();
        let status = response.status();
        let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        (
            status,
            retry_after,
            String::from_utf8(bytes.to_vec()).unwrap(),
        )
    }

    #[test]
    fn stored_times_become_rfc3339_in_utc() {
        assert_eq!(
            rfc3339("2026-11-23 10:00:00.123"),
            "2026-11-23T10:00:00.123Z"
        );
        assert_eq!(rfc3339("2026-11-23 10:00:00"), "2026-11-23T10:00:00Z");
        // Only the first space separates the date from the time.
        assert_eq!(rfc3339("2026-11-23 10 00"), "2026-11-23T10 00Z");
        assert_eq!(rfc3339("2026-11-23"), "2026-11-23Z");
    }

    #[tokio::test]
    async fn a_database_out_of_connections_or_quota_is_a_503_to_retry_not_our_500() {
        for (status, code, message) in [
            (400, 1040, "Too many connections"),
            (400, 8252, "Exceeded resource group quota limitation"),
            (
                400,
                1205,
                "Lock wait timeout exceeded; try restarting transaction",
            ),
            (400, 9007, "Write conflict"),
            (429, 0, "too many requests"),
        ] {
            let (got, retry_after, body) = answer(status, code, message).await;
            assert_eq!(got, StatusCode::SERVICE_UNAVAILABLE, "{code}: {body}");
            assert_eq!(
                retry_after.as_ref().map(|v| v.as_bytes()),
                Some(RETRY_AFTER_SECS.as_bytes())
            );
            assert!(body.contains("The database is busy"), "{body}");
            // The database's own words stay in the logs.
            assert!(!body.contains(message), "{body}");
        }
        // Our SQL refused: a bug of ours, reported as one.
        let (got, retry_after, body) =
            answer(400, 1064, "You have an error in your SQL syntax").await;
        assert_eq!(got, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        assert_eq!(retry_after, None);
    }
}
