//! A local stand-in for TiDB Cloud Serverless's HTTP SQL gateway
//! (`POST /v1beta/sql`), executing every statement on a real MariaDB, so
//! the Worker's driver (`tidb-http`) and serverless-js run unchanged in
//! tests and in `cargo xtask dev`.
//!
//! # What it covers
//!
//! - **Request**: `POST /v1beta/sql`, body `{"query": "<one statement>"}`,
//!   `Authorization: Basic` with the database user and password,
//!   `TiDB-Database`, `TiDB-Session`, `TiDB-Isolation-Level` (`READ
//!   COMMITTED` or `REPEATABLE READ`, for the transaction a `BEGIN` or
//!   `START TRANSACTION` opens; checked on any statement, ignored on
//!   others), `TiDB-Stateful-Action` (`open`/`close`), `X-Debug-Trace-Id`
//!   (echoed back), `Accept-Encoding: gzip` (answers of 1 KiB or more are
//!   gzipped).
//! - **Authentication** is MariaDB's: the gateway logs in with the request's
//!   credentials, so a wrong user or password is refused by the database,
//!   and answered `401` with MySQL error 1045.
//! - **Answer** (`200`): `{"types": [{"name", "type", "nullable"}], "rows":
//!   [[cell, ...]]}` for a statement with a result set, `{"rowsAffected":
//!   n, "sLastInsertID": "id"}` for one without, and always a
//!   `TiDB-Session` header (serverless-js refuses an answer without one).
//!   Type names are TiDB's (`BIGINT`, `UNSIGNED INT`, `VARCHAR`, `DECIMAL`,
//!   `DATETIME`, `JSON`, `MEDIUMBLOB`, ...; see `result.rs`); every cell is
//!   the database's text or `null`; binary types (`BINARY`, `VARBINARY`,
//!   `*BLOB`, `BIT`) are lowercase hex, as serverless-js decodes them.
//! - **Sessions**: a statement that leaves a transaction open (`BEGIN`,
//!   `START TRANSACTION`) gets a session token that holds its connection;
//!   statements sent with that token run on that connection; the statement
//!   that ends the transaction (`COMMIT`, `ROLLBACK`, an implicit commit)
//!   releases it. A session idle for `--session-timeout-secs` (600, TiDB
//!   Cloud's 10 minutes, by default) is rolled back and its connection
//!   returned; using its token afterwards is an error. Stateful sessions
//!   (`open` ... `close`) hold their connection whatever the transaction
//!   state; the answer to `close` carries the closed token, so using the
//!   session afterwards is an error. `TiDB-Database` applies when a session starts; after that the
//!   session keeps its own (a `USE` in it sticks). A statement runs to its
//!   end even if its client hangs up first, as in a database server, and
//!   the session's next statement waits for it (serverless-js forbids
//!   sending one while another runs; a client that stopped waiting does).
//! - **Session defaults** as on TiDB Cloud: `utf8mb4_bin`, UTC, and TiDB's
//!   default `sql_mode` (MariaDB applies its `ONLY_FULL_GROUP_BY` more
//!   strictly: it does not see that a column depends on a grouped primary
//!   key, so a few queries TiDB accepts are refused here). Each stateless
//!   request starts from a fresh session (pooled connections are reset
//!   before reuse).
//! - **Errors**: `{"code": <number>, "message": "<text>"}`, the shape
//!   serverless-js reads (its issue #61 shows a real one: status 500, code
//!   151100004). SQL errors are `400` with the MySQL error number as `code`
//!   and `Error <n> (<state>): <message>` (the Go driver's wording) as
//!   message. Observed from the real service: only the body shape and the
//!   numeric code. The statuses and the codes of the gateway's own errors
//!   are this stand-in's choice, documented here: bad or missing Basic auth
//!   and refused logins `401`/1045; a malformed request (body, headers)
//!   `400`/1105; an unknown, ended or timed-out session `400`/1105; the
//!   database unreachable, or not answering one statement within
//!   `--query-timeout-secs`, `500`/1105.
//!
//! # What it does not cover
//!
//! - TiDB itself: SQL runs on MariaDB, so TiDB-only syntax and functions
//!   fail and MariaDB-only ones pass; error numbers and messages are
//!   MariaDB's; the types of computed columns are MariaDB's (`SELECT 1` is
//!   `INT` here, `BIGINT` on TiDB; table columns match); `JSON` text comes
//!   back as stored, not in TiDB's normalized form (the driver decodes both
//!   to the same value). Keep SQL to what TiDB and MariaDB both accept,
//!   and MySQL 8 where it can be (a page write's `FOR UPDATE WAIT n` is
//!   TiDB's and MariaDB's only).
//! - Multiple statements in one query are refused (MariaDB's syntax error
//!   1064, where TiDB answers 8130); so are `LOAD DATA LOCAL` and
//!   procedures returning result sets.
//! - TiDB Cloud's limits (request and result sizes, rows per answer, rate
//!   limits, connection quotas) and its branch/region routing; the request
//!   body limit here is 16 MiB.
//! - TLS, IP allow lists and the `https://http-<host>` naming: the gateway
//!   serves plain HTTP on the address given.
//! - Concurrent statements on one session run one after the other (the
//!   real service documents them as unsupported).
//! - Connection limits: each concurrent stateless request or open session
//!   uses its own MariaDB connection (up to 16 idle ones per login are kept
//!   for reuse); MariaDB's `max_connections` is the only cap.
//!
//! # Diagnostics (not TiDB's)
//!
//! - One line per request on stderr (`log_requests`): method, path,
//!   status, duration.
//! - `--trace-statements FILE`: a JSON line per statement with when it
//!   came and when its answer was ready (see `trace.rs`).

mod mysql;
mod pool;
mod result;
mod session;
mod trace;

pub use trace::StatementTrace;

use std::future::Future;
use std::io::Write as _;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::mysql::{Conn, Credentials, Outcome};
use crate::pool::Pool;
use crate::result::SqlResult;
use crate::session::{Kind, Sessions};
use stack_manifest::StatementRecord;

/// Default for how long a held session may sit idle: TiDB Cloud rolls back
/// transactions idle for 10 minutes.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 16 << 20;
/// Answers at least this long are gzipped when the client accepts it.
const GZIP_MIN_BYTES: usize = 1024;

/// MySQL's error number for refused logins.
const ER_ACCESS_DENIED: i64 = 1045;
/// TiDB's generic error number, for the gateway's own errors.
const ER_UNKNOWN: i64 = 1105;

const SESSION_HEADER: &str = "tidb-session";
const DATABASE_HEADER: &str = "tidb-database";
const ISOLATION_HEADER: &str = "tidb-isolation-level";
const STATEFUL_ACTION_HEADER: &str = "tidb-stateful-action";
const TRACE_ID_HEADER: &str = "x-debug-trace-id";

/// How the gateway reaches the database and how long sessions live.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// MariaDB's `host:port`.
    pub mysql: String,
    /// Idle time after which a held session is rolled back.
    pub session_timeout: Duration,
    /// Write one line per request to stderr.
    pub log_requests: bool,
    /// The longest one statement may run; a database that does not answer
    /// within it is reported as unreachable (500, code 1105).
    pub query_timeout: Duration,
    /// Where to record when each statement came and was answered, if
    /// anywhere (`--trace-statements`).
    pub trace_statements: Option<Arc<StatementTrace>>,
}

impl GatewayConfig {
    pub fn new(mysql: impl Into<String>) -> Self {
        GatewayConfig {
            mysql: mysql.into(),
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            log_requests: true,
            query_timeout: mysql::DEFAULT_QUERY_TIMEOUT,
            trace_statements: None,
        }
    }
}

struct App {
    pool: Arc<Pool>,
    sessions: Sessions,
    trace: Option<Arc<StatementTrace>>,
}

/// Serves the gateway on `listener` until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: GatewayConfig,
) -> std::io::Result<()> {
    serve_until(listener, config, std::future::pending()).await
}

/// Serves the gateway on `listener` until `shutdown` completes, then
/// finishes the requests in progress.
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    config: GatewayConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(config))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The gateway's routes. Starts the task that times out idle sessions, so
/// it must be called inside a tokio runtime.
pub fn router(config: GatewayConfig) -> Router {
    let app = Arc::new(App {
        pool: Arc::new(Pool::new(config.mysql.clone(), 16, config.query_timeout)),
        sessions: Sessions::default(),
        trace: config.trace_statements.clone(),
    });
    tokio::spawn(expire_sessions(
        Arc::downgrade(&app),
        config.session_timeout,
    ));
    let router = Router::new()
        .route("/v1beta/sql", post(sql))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(app);
    if config.log_requests {
        router.layer(axum::middleware::from_fn(log_request))
    } else {
        router
    }
}

/// One line per request: method, path, status, duration. Headers (and so
/// the credentials) are never logged.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let line = format!(
        "{method} {path} {} {:.1}ms\n",
        response.status().as_u16(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    response
}

/// Rolls back sessions idle for `timeout`, until the gateway is gone.
async fn expire_sessions(app: Weak<App>, timeout: Duration) {
    let tick = (timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    loop {
        tokio::time::sleep(tick).await;
        let Some(app) = app.upgrade() else { return };
        for (login, conn) in app.sessions.take_expired(timeout) {
            app.pool.rollback_and_release(login, conn);
        }
    }
}

/// An error answer.
#[derive(Debug, Serialize)]
struct GatewayError {
    #[serde(skip)]
    status: StatusCode,
    code: i64,
    message: String,
}

impl GatewayError {
    fn bad_request(message: impl Into<String>) -> Self {
        GatewayError {
            status: StatusCode::BAD_REQUEST,
            code: ER_UNKNOWN,
            message: message.into(),
        }
    }

    fn access_denied(message: impl Into<String>) -> Self {
        GatewayError {
            status: StatusCode::UNAUTHORIZED,
            code: ER_ACCESS_DENIED,
            message: message.into(),
        }
    }

    fn session_not_found() -> Self {
        Self::bad_request(
            "session not found: it ended, or it was idle too long and was rolled back",
        )
    }

    /// A statement's error: the database's number and message.
    fn statement(error: mysql::Error) -> Self {
        match error {
            mysql::Error::Server(e) => GatewayError {
                status: StatusCode::BAD_REQUEST,
                code: i64::from(e.code),
                message: format!("Error {} ({}): {}", e.code, e.state, e.message),
            },
            other => GatewayError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: ER_UNKNOWN,
                message: other.to_string(),
            },
        }
    }

    /// A login's error: a refusal is 401, like a bad Authorization header.
    fn login(error: mysql::Error) -> Self {
        match error {
            mysql::Error::Server(e) if i64::from(e.code) == ER_ACCESS_DENIED => {
                Self::access_denied(format!("Error {} ({}): {}", e.code, e.state, e.message))
            }
            other => Self::statement(other),
        }
    }
}

#[derive(Deserialize)]
struct SqlRequest {
    query: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatefulAction {
    Open,
    Close,
}

/// What a request asks for, from its headers and body.
struct Parsed {
    login: Credentials,
    query: String,
    session: String,
    /// The isolation level of the transaction the statement opens; `None`
    /// for a statement that opens none, whatever the header said.
    isolation: Option<&'static str>,
    action: Option<StatefulAction>,
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, GatewayError> {
    match headers.get(name) {
        None => Ok(""),
        Some(value) => value
            .to_str()
            .map_err(|_| GatewayError::bad_request(format!("header {name} is not ASCII"))),
    }
}

fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Parsed, GatewayError> {
    let denied = || {
        GatewayError::access_denied("Error 1045 (28000): Access denied: send Basic authorization with the database user and password")
    };
    let auth = header_str(headers, header::AUTHORIZATION.as_str()).map_err(|_| denied())?;
    let encoded = auth
        .strip_prefix("Basic ")
        .or_else(|| auth.strip_prefix("basic "))
        .ok_or_else(denied)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(denied)?;
    let (user, password) = decoded.split_once(':').ok_or_else(denied)?;
    let request: SqlRequest = serde_json::from_slice(body).map_err(|e| {
        GatewayError::bad_request(format!(
            "the body must be JSON {{\"query\": \"<SQL>\"}}: {e}"
        ))
    })?;
    let isolation = match header_str(headers, ISOLATION_HEADER)?
        .to_ascii_uppercase()
        .as_str()
    {
        "" => None,
        "READ COMMITTED" => Some("READ COMMITTED"),
        "REPEATABLE READ" => Some("REPEATABLE READ"),
        other => {
            return Err(GatewayError::bad_request(format!(
                "unsupported isolation level {other:?}: use READ COMMITTED or REPEATABLE READ"
            )))
        }
    };
    let action = match header_str(headers, STATEFUL_ACTION_HEADER)? {
        "" => None,
        "open" => Some(StatefulAction::Open),
        "close" => Some(StatefulAction::Close),
        other => {
            return Err(GatewayError::bad_request(format!(
                "unsupported stateful action {other:?}: use open or close"
            )))
        }
    };
    Ok(Parsed {
        login: Credentials {
            user: user.to_owned(),
            password: password.to_owned(),
            database: header_str(headers, DATABASE_HEADER)?.to_owned(),
        },
        session: header_str(headers, SESSION_HEADER)?.to_owned(),
        // The header describes the transaction a `BEGIN` opens: serverless-js
        // sends it with its `begin()`'s `BEGIN` only. On another statement
        // there is no transaction for it to describe, and applying it there
        // inside a transaction fails (MySQL error 1568), so it is ignored.
        isolation: isolation.filter(|_| opens_transaction(&request.query)),
        query: request.query,
        action,
    })
}

/// Whether `query` opens a transaction: `BEGIN` or `START TRANSACTION`,
/// with or without modifiers (the statements the `TiDB-Isolation-Level`
/// header is for).
fn opens_transaction(query: &str) -> bool {
    let mut words = query
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty());
    match words.next() {
        Some(first) if first.eq_ignore_ascii_case("BEGIN") => true,
        Some(first) if first.eq_ignore_ascii_case("START") => words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("TRANSACTION")),
        _ => false,
    }
}

async fn sql(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let received_us = app.trace.as_ref().map(|_| StatementRecord::clock_us());
    let request = parse(&headers, &body);
    // The trace names the statement from the parsed request, before
    // `handle` takes it; a refused request from its body, if that is the
    // API's JSON.
    let statement = received_us.map(|_| match &request {
        Ok(request) => trace::kind(&request.query),
        Err(_) => trace::kind_of_body(&body),
    });
    let handled = match request {
        Ok(request) => run_to_its_end(&app, request).await,
        Err(error) => Err(error),
    };
    let (status, session, json) = match handled {
        Ok((session, result)) => (
            StatusCode::OK,
            session,
            serde_json::to_vec(&result).expect("results serialize"),
        ),
        Err(error) => (
            error.status,
            session::stateless_token(),
            serde_json::to_vec(&error).expect("errors serialize"),
        ),
    };
    let gzip = json.len() >= GZIP_MIN_BYTES
        && headers
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|c| c.trim().starts_with("gzip")));
    let mut response = if gzip {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&json).expect("writing to memory");
        let body = encoder.finish().expect("writing to memory");
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        response
    } else {
        (status, json).into_response()
    };
    let out = response.headers_mut();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    out.insert(
        SESSION_HEADER,
        HeaderValue::from_str(&session).expect("tokens are hex"),
    );
    if let Some(trace) = headers.get(TRACE_ID_HEADER) {
        out.insert(TRACE_ID_HEADER, trace.clone());
    }
    if let (Some(trace), Some(received_us), Some(statement)) = (&app.trace, received_us, statement)
    {
        let session_in = headers
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        trace.record(received_us, statement, session_in, &session);
    }
    response
}

/// [`handle`] on a task of its own, so that the statement runs to its end
/// whatever becomes of the HTTP request, as in a database server. A client
/// that stops waiting hangs up, and hyper drops the handler: dropped with
/// it, a statement still running at MariaDB (waiting for a row lock, say)
/// left its answer unread on the session's connection, and the session's
/// next statement (the client's `ROLLBACK`) read that answer as its own
/// and left the transaction open.
async fn run_to_its_end(
    app: &Arc<App>,
    request: Parsed,
) -> Result<(String, SqlResult), GatewayError> {
    let app = app.clone();
    match tokio::spawn(async move { handle(&app, request).await }).await {
        Ok(handled) => handled,
        Err(failed) => std::panic::resume_unwind(failed.into_panic()),
    }
}

/// Runs the request's statement; gives the session token to answer with.
async fn handle(app: &Arc<App>, request: Parsed) -> Result<(String, SqlResult), GatewayError> {
    if session::is_held(&request.session) {
        return in_session(app, request).await;
    }
    if request.action == Some(StatefulAction::Close) {
        return Err(GatewayError::session_not_found());
    }
    let mut conn = app
        .pool
        .checkout(&request.login)
        .await
        .map_err(GatewayError::login)?;
    if request.action == Some(StatefulAction::Open) {
        let result = if request.query.trim().is_empty() {
            SqlResult::default()
        } else {
            match run(&mut conn, &request).await {
                Ok(outcome) => SqlResult::from_outcome(outcome),
                Err(e) => {
                    app.pool.release(request.login, conn);
                    return Err(GatewayError::statement(e));
                }
            }
        };
        let token = app.sessions.open(request.login, Kind::Stateful, conn);
        return Ok((token, result));
    }
    match run(&mut conn, &request).await {
        Ok(outcome) if outcome.in_transaction() => {
            let result = SqlResult::from_outcome(outcome);
            let token = app.sessions.open(request.login, Kind::Transaction, conn);
            Ok((token, result))
        }
        Ok(outcome) => {
            app.pool.release(request.login, conn);
            Ok((session::stateless_token(), SqlResult::from_outcome(outcome)))
        }
        Err(e) => {
            app.pool.release(request.login, conn);
            Err(GatewayError::statement(e))
        }
    }
}

/// Runs the statement on a held session's connection.
async fn in_session(app: &Arc<App>, request: Parsed) -> Result<(String, SqlResult), GatewayError> {
    let token = request.session.as_str();
    let session = app
        .sessions
        .get(token)
        .ok_or_else(GatewayError::session_not_found)?;
    if session.login.user != request.login.user || session.login.password != request.login.password
    {
        return Err(GatewayError::access_denied(format!(
            "Error 1045 (28000): Access denied for user '{}': the session belongs to another login",
            request.login.user
        )));
    }
    session.touch();
    let mut slot = session.conn.lock().await;
    let Some(conn) = slot.as_mut() else {
        return Err(GatewayError::session_not_found());
    };
    if request.action == Some(StatefulAction::Close) {
        let conn = slot.take().expect("checked above");
        app.sessions.remove(token);
        app.pool.rollback_and_release(session.login.clone(), conn);
        // The closed token, so a later statement on the closed session
        // fails (serverless-js's integration test expects that) instead of
        // running in a fresh session unnoticed.
        return Ok((token.to_owned(), SqlResult::default()));
    }
    let outcome = run(conn, &request).await;
    session.touch();
    match outcome {
        Ok(outcome) => {
            let ended = session.kind == Kind::Transaction && !outcome.in_transaction();
            let result = SqlResult::from_outcome(outcome);
            if ended {
                let conn = slot.take().expect("checked above");
                app.sessions.remove(token);
                app.pool.release(session.login.clone(), conn);
                return Ok((session::stateless_token(), result));
            }
            Ok((token.to_owned(), result))
        }
        Err(e) => {
            if !conn.is_usable() {
                slot.take();
                app.sessions.remove(token);
            }
            Err(GatewayError::statement(e))
        }
    }
}

/// Runs the request's statement, after setting the isolation level of the
/// transaction it may open.
async fn run(conn: &mut Conn, request: &Parsed) -> Result<Outcome, mysql::Error> {
    if let Some(level) = request.isolation {
        conn.query(&format!("SET TRANSACTION ISOLATION LEVEL {level}"))
            .await?;
    }
    conn.query(&request.query).await
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    /// A router whose database is a closed port: enough for every answer
    /// given before a statement reaches the database.
    fn offline_router() -> Router {
        router(GatewayConfig {
            log_requests: false,
            ..GatewayConfig::new("127.0.0.1:1")
        })
    }

    async fn call(
        pairs: &[(&str, &str)],
        body: &str,
    ) -> (StatusCode, HeaderMap, serde_json::Value) {
        let mut request = axum::http::Request::post("/v1beta/sql");
        for (k, v) in pairs {
            request = request.header(*k, *v);
        }
        let response = offline_router()
            .oneshot(
                request
                    .body(axum::body::Body::from(body.to_owned()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn a_traced_gateway_records_every_request_it_answers_refused_ones_too() {
        let dir = std::env::temp_dir().join(format!("gateway-sql-trace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("statements.jsonl");
        let traced = router(GatewayConfig {
            log_requests: false,
            trace_statements: Some(Arc::new(StatementTrace::create(&path).unwrap())),
            ..GatewayConfig::new("127.0.0.1:1")
        });
        let held = "h0123456789abcdef";
        let auth = basic("u", "p");
        for (headers, body, status) in [
            // Refused before the database: no credentials.
            (
                &[][..],
                r#"{"query":"select 1 for update"}"#,
                StatusCode::UNAUTHORIZED,
            ),
            // Not the API's body.
            (
                &[("authorization", auth.as_str())],
                "not json",
                StatusCode::BAD_REQUEST,
            ),
            // A session the gateway does not hold.
            (
                &[("authorization", auth.as_str()), ("tidb-session", held)],
                r#"{"query":"COMMIT"}"#,
                StatusCode::BAD_REQUEST,
            ),
        ] {
            let mut request = axum::http::Request::post("/v1beta/sql");
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let response = traced
                .clone()
                .oneshot(request.body(axum::body::Body::from(body)).unwrap())
                .await
                .unwrap();
            assert_eq!(response.status(), status, "{body}");
        }
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(!text.contains(held), "no session token is traced");
        let records: Vec<(String, bool)> = text
            .lines()
            .map(|line| serde_json::from_str::<StatementRecord>(line).unwrap())
            .map(|r| (r.statement, r.session.is_some()))
            .collect();
        assert_eq!(
            records,
            [
                ("SELECT FOR UPDATE".to_owned(), false),
                (String::new(), false),
                ("COMMIT".to_owned(), true),
            ]
        );
    }

    #[tokio::test]
    async fn every_answer_is_json_with_a_session_and_the_trace_id() {
        let (status, headers, body) = call(
            &[("x-debug-trace-id", "20240101000000abc")],
            r#"{"query":"SELECT 1"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["code"], 1045);
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["x-debug-trace-id"], "20240101000000abc");
        let session = headers["tidb-session"].to_str().unwrap();
        assert!(!session.is_empty() && !session::is_held(session));
    }

    #[tokio::test]
    async fn an_unknown_session_or_a_close_without_one_is_refused() {
        let auth = basic("u", "p");
        let (status, _, body) = call(
            &[
                ("authorization", &auth),
                ("tidb-session", "h0123456789abcdef"),
            ],
            r#"{"query":"SELECT 1"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["code"], 1105);
        assert!(body["message"]
            .as_str()
            .unwrap()
            .contains("session not found"));

        let (status, _, _) = call(
            &[("authorization", &auth), ("tidb-stateful-action", "close")],
            r#"{"query":""}"#,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn an_unreachable_database_is_500() {
        let (status, _, body) = call(
            &[("authorization", &basic("u", "p"))],
            r#"{"query":"SELECT 1"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["code"], 1105);
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn basic(user: &str, password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    }

    #[test]
    fn a_request_gives_login_statement_and_session_headers() {
        let h = headers(&[
            ("authorization", &basic("2x.root", "pa:ss")),
            ("tidb-database", "app"),
            ("tidb-session", "habc"),
            ("tidb-isolation-level", "READ COMMITTED"),
            ("tidb-stateful-action", "open"),
        ]);
        let parsed = parse(&h, br#"{"query":"BEGIN","extra":1}"#).unwrap();
        assert_eq!(parsed.login.user, "2x.root");
        assert_eq!(parsed.login.password, "pa:ss");
        assert_eq!(parsed.login.database, "app");
        assert_eq!(parsed.query, "BEGIN");
        assert_eq!(parsed.session, "habc");
        assert_eq!(parsed.isolation, Some("READ COMMITTED"));
        assert_eq!(parsed.action, Some(StatefulAction::Open));
    }

    /// serverless-js sends `TiDB-Isolation-Level` with `BEGIN` only; on
    /// another statement it sets nothing (it did, and a `SELECT 1` in an
    /// open transaction failed with MySQL error 1568), and a bad level is
    /// refused on any statement.
    #[test]
    fn the_isolation_level_applies_only_to_a_statement_opening_a_transaction() {
        let auth = basic("u", "p");
        for (query, applies) in [
            ("BEGIN", true),
            ("begin", true),
            (" BEGIN WORK", true),
            ("START TRANSACTION", true),
            ("start transaction read only", true),
            ("SELECT 1", false),
            ("COMMIT", false),
            ("START SLAVE", false),
            ("SELECT 'BEGIN'", false),
            ("", false),
        ] {
            let h = headers(&[
                ("authorization", &auth),
                ("tidb-session", "habc"),
                ("tidb-isolation-level", "read committed"),
            ]);
            let body = serde_json::json!({ "query": query }).to_string();
            let parsed = parse(&h, body.as_bytes()).unwrap();
            assert_eq!(
                parsed.isolation,
                applies.then_some("READ COMMITTED"),
                "{query:?}"
            );
            let h = headers(&[
                ("authorization", &auth),
                ("tidb-isolation-level", "SERIALIZABLE"),
            ]);
            let err = parse(&h, body.as_bytes()).err().unwrap();
            assert_eq!((err.status, err.code), (StatusCode::BAD_REQUEST, 1105));
        }
    }

    #[test]
    fn missing_or_malformed_auth_is_401_with_1045() {
        for auth in [
            None,
            Some("Bearer x"),
            Some("Basic !!!"),
            Some("Basic dXNlcg=="),
        ] {
            let h = match auth {
                Some(a) => headers(&[("authorization", a)]),
                None => HeaderMap::new(),
            };
            let err = parse(&h, br#"{"query":"SELECT 1"}"#).err().unwrap();
            assert_eq!(err.status, StatusCode::UNAUTHORIZED, "{auth:?}");
            assert_eq!(err.code, 1045);
        }
    }

    #[test]
    fn malformed_bodies_and_headers_are_400() {
        let auth = basic("u", "p");
        for (body, extra) in [
            (&br#"{"sql":"SELECT 1"}"#[..], None),
            (b"SELECT 1", None),
            (
                br#"{"query":"BEGIN"}"#,
                Some(("tidb-isolation-level", "SERIALIZABLE")),
            ),
            (br#"{"query":""}"#, Some(("tidb-stateful-action", "reopen"))),
        ] {
            let mut pairs = vec![("authorization", auth.as_str())];
            pairs.extend(extra);
            let err = parse(&headers(&pairs), body).err().unwrap();
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
            assert_eq!(err.code, 1105);
        }
    }

    #[test]
    fn database_errors_keep_their_number_and_logins_refused_are_401() {
        let refused = mysql::Error::Server(mysql::ServerError {
            code: 1045,
            state: "28000".into(),
            message: "Access denied for user 'app'@'localhost' (using password: YES)".into(),
        });
        let err = GatewayError::login(refused);
        assert_eq!(err.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            serde_json::to_value(&err).unwrap(),
            serde_json::json!({
                "code": 1045,
                "message": "Error 1045 (28000): Access denied for user 'app'@'localhost' (using password: YES)"
            })
        );
        let syntax = mysql::Error::Server(mysql::ServerError {
            code: 1064,
            state: "42000".into(),
            message: "You have an error in your SQL syntax".into(),
        });
        let err = GatewayError::statement(syntax);
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.code, 1064);
        let down = mysql::Error::Io(std::io::Error::other("refused"));
        assert_eq!(
            GatewayError::login(down).status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
