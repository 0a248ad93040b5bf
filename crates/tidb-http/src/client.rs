//! Sending statements to the SQL API: one `POST /v1beta/sql` per statement,
//! with the headers and body serverless-js (`src/serverless.ts`,
//! `src/index.ts`) sends, and the `TiDB-Session` header carried between
//! the statements of a transaction or stateful session.
//!
//! A [`Client`] is stateless: every statement goes out with an empty
//! `TiDB-Session`, so one client can serve concurrent requests. (A
//! serverless-js `Connection` instead re-sends the session of its last
//! answer; the service treats a session without a transaction as a fresh
//! one, so for autocommit statements the two behave alike.) A [`Tx`] or
//! [`StatefulSession`] sends the session of the previous answer with each
//! statement and takes the new one from each answer, as serverless-js does.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use futures_channel::oneshot;
use http::{HeaderMap, HeaderName, HeaderValue};
use outbound::{Background, Bytes, Fetch};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::bind::{self, Params, Value};
use crate::config::{Config, IsolationLevel};
use crate::de::DecodeError;
use crate::decode::{decode_cell_as, decoding, Column, QueryResult, Row};
use crate::error::{DatabaseError, Error, ErrorCode, ErrorKind};

/// Header carrying the session between statements, both ways.
pub const SESSION_HEADER: &str = "TiDB-Session";
/// Header selecting the database.
pub const DATABASE_HEADER: &str = "TiDB-Database";
/// Header giving the isolation level of a `BEGIN`.
pub const ISOLATION_HEADER: &str = "TiDB-Isolation-Level";
/// Header opening (`open`) or closing (`close`) a stateful session.
pub const STATEFUL_ACTION_HEADER: &str = "TiDB-Stateful-Action";
/// Header with a per-request id the service logs, for support requests.
pub const TRACE_ID_HEADER: &str = "X-Debug-Trace-Id";

// The same names, lowercase as HTTP/2 and `http` write them, ready to use
// (a `&str` name is parsed on every use).
const SESSION: HeaderName = HeaderName::from_static("tidb-session");
const DATABASE: HeaderName = HeaderName::from_static("tidb-database");
const ISOLATION: HeaderName = HeaderName::from_static("tidb-isolation-level");
const STATEFUL_ACTION: HeaderName = HeaderName::from_static("tidb-stateful-action");
const TRACE_ID: HeaderName = HeaderName::from_static("x-debug-trace-id");

/// One statement: SQL text, its parameters and an optional timeout.
/// `Debug` shows how many parameters there are, never their values.
#[derive(Clone, Default)]
pub struct Statement {
    sql: String,
    params: Params,
    timeout: Option<Duration>,
}

impl Statement {
    pub fn new(sql: impl Into<String>) -> Self {
        Statement {
            sql: sql.into(),
            ..Statement::default()
        }
    }

    /// Binds the next `?`.
    pub fn bind(mut self, value: impl Into<Value>) -> Self {
        self.params.positional.push(value.into());
        self
    }

    /// Binds every `:name`.
    pub fn bind_named(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.params.named.push((name.into(), value.into()));
        self
    }

    /// How long this statement may take, instead of the config's timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The SQL as written, with placeholders.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The SQL that will be sent, with the parameters bound in. Contains
    /// the values: do not log it where they must not appear.
    pub fn to_sql(&self) -> Result<String, Error> {
        if self.params.is_empty() {
            return Ok(self.sql.clone());
        }
        bind::format(&self.sql, &self.params)
            .map_err(|e| Error::new(Some(&self.sql), ErrorKind::Bind(e.to_string())))
    }
}

impl fmt::Debug for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Statement")
            .field("sql", &self.sql)
            .field("params", &self.params.len())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl From<&str> for Statement {
    fn from(sql: &str) -> Self {
        Statement::new(sql)
    }
}

impl From<String> for Statement {
    fn from(sql: String) -> Self {
        Statement::new(sql)
    }
}

/// Makes the `X-Debug-Trace-Id` of each request.
pub type TraceIds = Arc<dyn Fn() -> String + Send + Sync>;

/// A handle to one cluster's SQL API. Cheap to clone; clones share the
/// transport.
#[derive(Clone)]
pub struct Client {
    config: Arc<Config>,
    /// What every statement sends alike, made once per client, or why it
    /// cannot be made (reported by each statement, as before anything is
    /// sent).
    fixed: Result<Arc<Fixed>, &'static str>,
    fetch: Arc<dyn Fetch>,
    trace_ids: TraceIds,
    /// Where an abandoned transaction's `ROLLBACK` is sent from.
    background: Option<Background>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What to send besides the statement.
#[derive(Default)]
struct Outgoing<'a> {
    session: &'a str,
    isolation: Option<IsolationLevel>,
    stateful_action: Option<&'static str>,
}

impl Client {
    pub fn new(config: Config, fetch: Arc<dyn Fetch>) -> Self {
        Client {
            fixed: Fixed::new(&config).map(Arc::new),
            config: Arc::new(config),
            fetch,
            trace_ids: Arc::new(default_trace_id),
            background: None,
        }
    }

    /// Gives the client a place to run work after its caller has moved on
    /// (the request's `waitUntil` in a Worker): a [`Tx`] dropped unfinished
    /// then sends its `ROLLBACK` there. Without one, such a transaction
    /// keeps its locks until the service's idle timeout ends it (10 minutes
    /// on TiDB Cloud), and every write to the rows it locked waits for it.
    pub fn with_background(mut self, background: Background) -> Self {
        self.background = Some(background);
        self
    }

    /// Replaces how trace ids are made. serverless-js uses the UTC time
    /// (14 digits) and 20 random `[a-z0-9]`; without a clock or random
    /// source in the driver the default is a counter in that shape, so a
    /// Worker should pass one built on its clock and `crypto`.
    pub fn with_trace_ids(mut self, trace_ids: TraceIds) -> Self {
        self.trace_ids = trace_ids;
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Runs one statement in autocommit mode.
    pub async fn execute(&self, statement: impl Into<Statement>) -> Result<QueryResult, Error> {
        let (result, _session) = self.send(&statement.into(), Outgoing::default()).await?;
        result
    }

    /// Runs a query and deserializes every row into `T`.
    pub async fn query_as<T: DeserializeOwned>(
        &self,
        statement: impl Into<Statement>,
    ) -> Result<Vec<T>, Error> {
        self.execute(statement).await?.deserialize()
    }

    /// Runs a query and deserializes its first row, if there is one.
    pub async fn query_optional_as<T: DeserializeOwned>(
        &self,
        statement: impl Into<Statement>,
    ) -> Result<Option<T>, Error> {
        first(self.execute(statement).await?)
    }

    /// Runs a query and deserializes its first row; no row is an error.
    pub async fn query_one_as<T: DeserializeOwned>(
        &self,
        statement: impl Into<Statement>,
    ) -> Result<T, Error> {
        one(self.execute(statement).await?)
    }

    /// Starts a transaction: sends `BEGIN` (with the isolation level in the
    /// `TiDB-Isolation-Level` header, as serverless-js's `begin()` does) and
    /// returns a handle carrying the session it opened.
    ///
    /// A transaction dropped without a successful `commit` or `rollback`
    /// (its caller gave up, a statement failed) is rolled back on the
    /// client's background (see [`Client::with_background`]).
    pub async fn begin(&self, isolation: Option<IsolationLevel>) -> Result<Tx, Error> {
        let send = Outgoing {
            isolation,
            ..Outgoing::default()
        };
        let (result, session) = self.send(&Statement::new("BEGIN"), send).await?;
        result?;
        Ok(Tx {
            client: self.clone(),
            session,
            open: true,
            ended_by_database: None,
            in_flight: None,
            watchers: Vec::new(),
        })
    }

    /// Opens a stateful session (serverless-js's `persist()`): statements
    /// on it share one database connection, so `SET`, `USE` and temporary
    /// tables persist between them until [`StatefulSession::close`].
    pub async fn persist(&self) -> Result<StatefulSession, Error> {
        let send = Outgoing {
            stateful_action: Some("open"),
            ..Outgoing::default()
        };
        let (result, session) = self.send(&Statement::new(""), send).await?;
        result?;
        Ok(StatefulSession {
            client: self.clone(),
            session,
        })
    }

    /// Sends one statement and returns its decoded result and the session
    /// the answer carried. An answer with a session whose cells do not
    /// decode still hands over its session (as serverless-js takes the
    /// session before it parses the rows): the transaction's next
    /// statement, its `ROLLBACK` among them, must go out with it.
    async fn send(
        &self,
        statement: &Statement,
        send: Outgoing<'_>,
    ) -> Result<(Result<QueryResult, Error>, String), Error> {
        let template = statement.sql();
        let sql = statement.to_sql()?;
        let err = |kind| Error::new(Some(template), kind);
        let request = self.request(&sql, &send).map_err(err)?;
        let timeout = statement.timeout.unwrap_or(self.config.timeout());
        let response = self
            .fetch
            .fetch(request, timeout)
            .await
            .map_err(|e| err(ErrorKind::Transport(e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(err(ErrorKind::Database(database_error(
                status,
                response.body(),
            ))));
        }
        let session = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let wire: WireResult = serde_json::from_slice(response.body()).map_err(|e| {
            err(ErrorKind::Protocol(format!(
                "the body is not the SQL API's JSON result: {e}"
            )))
        })?;
        // serverless-js refuses an answer without a session the same way.
        if session.is_empty() {
            return Err(err(ErrorKind::Protocol(format!(
                "no {SESSION_HEADER} header in the answer"
            ))));
        }
        Ok((wire.into_result(template).map_err(err), session))
    }

    fn request(&self, sql: &str, send: &Outgoing<'_>) -> Result<outbound::Request, ErrorKind> {
        let fixed = self
            .fixed
            .as_deref()
            .map_err(|reason| ErrorKind::Config((*reason).into()))?;
        let body = serde_json::to_vec(&QueryBody { query: sql })
            .expect("a JSON object of one string serializes");
        // The error names the header only.
        let invalid =
            |what: &str| ErrorKind::Config(format!("the {what} is not a valid header value"));
        let session = HeaderValue::from_str(send.session).map_err(|_| invalid("session"))?;
        let trace_id =
            HeaderValue::try_from((self.trace_ids)()).map_err(|_| invalid("trace id"))?;
        // In serverless-js's order; the values it would send.
        let mut headers = HeaderMap::with_capacity(10);
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            http::header::USER_AGENT,
            HeaderValue::from_static(concat!("tidb-http/", env!("CARGO_PKG_VERSION"))),
        );
        headers.insert(http::header::AUTHORIZATION, fixed.authorization.clone());
        headers.insert(DATABASE, fixed.database.clone());
        headers.insert(SESSION, session);
        headers.insert(TRACE_ID, trace_id);
        headers.insert(
            http::header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip"),
        );
        if let Some(level) = send.isolation {
            headers.insert(ISOLATION, HeaderValue::from_static(level.as_str()));
        }
        if let Some(action) = send.stateful_action {
            headers.insert(STATEFUL_ACTION, HeaderValue::from_static(action));
        }
        let mut request = http::Request::new(Bytes::from(body));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = fixed.url.clone();
        *request.headers_mut() = headers;
        // The session is the one response header the driver reads.
        request
            .extensions_mut()
            .insert(outbound::ReadHeaders(&[SESSION_HEADER]));
        Ok(request)
    }
}

/// The SQL API's request body.
#[derive(Serialize)]
struct QueryBody<'a> {
    query: &'a str,
}

/// The parts of a statement's request that are the same for every
/// statement of a client: the URL parsed and the credentials encoded once,
/// not per statement (six times in a page write). In the Worker, building
/// the request (the builder, URL and header-name parsing, base64, a JSON
/// value for the body) was about 1.5 % of a page write's CPU profile
/// (BENCHMARKS.md, sixteenth pass).
struct Fixed {
    url: http::Uri,
    /// Marked sensitive: it holds the password.
    authorization: HeaderValue,
    database: HeaderValue,
}

impl Fixed {
    /// Fails with the reason, which never contains the password.
    fn new(config: &Config) -> Result<Fixed, &'static str> {
        let url =
            http::Uri::try_from(config.sql_url()).map_err(|_| "the endpoint is not a valid URL")?;
        let credentials = format!("{}:{}", config.username(), config.password().expose());
        let mut authorization = HeaderValue::try_from(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        ))
        .expect("base64 is a valid header value");
        authorization.set_sensitive(true);
        let database = HeaderValue::from_str(config.database().unwrap_or(""))
            .map_err(|_| "the database name is not a valid header value")?;
        Ok(Fixed {
            url,
            authorization,
            database,
        })
    }
}

/// A transaction: statements run on the session `BEGIN` opened, until
/// `commit` or `rollback`. Not for concurrent statements (the service runs
/// them on one connection, in order), hence `&mut self`.
pub struct Tx {
    client: Client,
    session: String,
    /// Until a `COMMIT` or `ROLLBACK` succeeded: dropped while open, it is
    /// rolled back in the background.
    open: bool,
    /// The error with which the database ended the transaction itself (a
    /// deadlock's victim, a TiDB conflict:
    /// [`Error::is_retryable_transaction`]). Its session is then in no
    /// transaction, so a statement sent on it would run and commit on its
    /// own, and a `COMMIT` would succeed with the statements before it
    /// undone: nothing more is sent, and every later statement and the
    /// commit fail with this error. A rollback is still sent (it finds
    /// nothing to undo).
    ended_by_database: Option<Error>,
    /// The exchange of the statement being sent, kept here and not in the
    /// caller's future: a caller that stops waiting (a request's deadline
    /// dropping it) leaves it here, still running at the database, and the
    /// transaction's next statement, or its rollback once it is dropped,
    /// waits for its answer first. serverless-js forbids sending a
    /// statement while another of the same transaction runs, and TiDB Cloud
    /// does not say what it does with one.
    in_flight: Option<Exchange>,
    /// Told when the transaction has ended ([`Tx::ended`]): dropped with
    /// it, or with the work its drop leaves on the background.
    watchers: Vec<oneshot::Sender<Infallible>>,
}

/// Resolves once a transaction has ended ([`Tx::ended`]).
#[must_use = "a future that does nothing unless awaited"]
pub struct Ended(oneshot::Receiver<Infallible>);

impl Future for Ended {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Nothing is ever sent: the sender dropped is the signal.
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

impl fmt::Debug for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ended")
    }
}

/// A statement's exchange with the service: its result and the session
/// token to send next.
type Exchange = outbound::BoxFuture<'static, Result<(Result<QueryResult, Error>, String), Error>>;

impl fmt::Debug for Tx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tx")
            .field("session", &self.session)
            .field("open", &self.open)
            .field("ended_by_database", &self.ended_by_database.is_some())
            .field("in_flight", &self.in_flight.is_some())
            .finish()
    }
}

impl Tx {
    /// Resolves once this transaction has ended: committed or rolled back
    /// here, or, dropped unfinished, once the statement it had in flight
    /// and the `ROLLBACK` its drop sends on the background are done (at
    /// once when it has no background to send one on). For work that must
    /// come after the transaction's outcome at the database whatever
    /// becomes of its caller: a cache invalidation after a `COMMIT` whose
    /// caller was cut off while it was on its way.
    pub fn ended(&mut self) -> Ended {
        let (sender, receiver) = oneshot::channel();
        self.watchers.push(sender);
        Ended(receiver)
    }

    /// The session the next statement will be sent with.
    pub fn session(&self) -> &str {
        &self.session
    }

    pub async fn execute(&mut self, statement: impl Into<Statement>) -> Result<QueryResult, Error> {
        if let Some(cause) = &self.ended_by_database {
            return Err(cause.clone());
        }
        self.send(statement.into()).await
    }

    async fn send(&mut self, statement: Statement) -> Result<QueryResult, Error> {
        if let Some(abandoned) = self.in_flight.as_mut() {
            if let Ok((_, session)) = abandoned.as_mut().await {
                self.session = session;
            }
            self.in_flight = None;
        }
        let client = self.client.clone();
        let session = self.session.clone();
        let exchange = self.in_flight.insert(Box::pin(async move {
            let send = Outgoing {
                session: &session,
                ..Outgoing::default()
            };
            client.send(&statement, send).await
        }));
        let outcome = exchange.as_mut().await;
        self.in_flight = None;
        let result = outcome.and_then(|(result, session)| {
            self.session = session;
            result
        });
        if let Err(e) = &result {
            if e.is_retryable_transaction() {
                self.ended_by_database = Some(e.clone());
            }
        }
        result
    }

    pub async fn query_as<T: DeserializeOwned>(
        &mut self,
        statement: impl Into<Statement>,
    ) -> Result<Vec<T>, Error> {
        self.execute(statement).await?.deserialize()
    }

    pub async fn query_optional_as<T: DeserializeOwned>(
        &mut self,
        statement: impl Into<Statement>,
    ) -> Result<Option<T>, Error> {
        first(self.execute(statement).await?)
    }

    pub async fn query_one_as<T: DeserializeOwned>(
        &mut self,
        statement: impl Into<Statement>,
    ) -> Result<T, Error> {
        one(self.execute(statement).await?)
    }

    /// Sends `COMMIT`. If it fails, the transaction is rolled back in the
    /// background: had the commit gone through after all, that `ROLLBACK`
    /// finds nothing to undo, and otherwise it releases the locks.
    pub async fn commit(mut self) -> Result<QueryResult, Error> {
        let result = self.execute("COMMIT").await;
        self.open = result.is_err();
        result
    }

    /// Sends `ROLLBACK` (sent again in the background if this one fails).
    pub async fn rollback(mut self) -> Result<QueryResult, Error> {
        let result = self.send(Statement::new("ROLLBACK")).await;
        self.open = result.is_err();
        result
    }
}

/// How long the background `ROLLBACK` of an abandoned transaction may take:
/// longer than a request's statements, since it waits on nobody (a
/// Worker's `waitUntil` allows 30 s after the response).
pub const ABANDONED_ROLLBACK_TIMEOUT: Duration = Duration::from_secs(20);

impl Drop for Tx {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        let Some(background) = self.client.background.clone() else {
            return;
        };
        let client = self.client.clone();
        let mut session = std::mem::take(&mut self.session);
        let abandoned = self.in_flight.take();
        let watchers = std::mem::take(&mut self.watchers);
        background.spawn(Box::pin(async move {
            // Dropped, and so told, when this work is done.
            let _watchers = watchers;
            // The statement its caller stopped waiting for is answered
            // first (see `in_flight`).
            if let Some(abandoned) = abandoned {
                if let Ok((_, after)) = abandoned.await {
                    session = after;
                }
            }
            let send = Outgoing {
                session: &session,
                ..Outgoing::default()
            };
            let rollback = Statement::new("ROLLBACK").timeout(ABANDONED_ROLLBACK_TIMEOUT);
            // Nothing to tell anyone if it fails too: the service's idle
            // timeout remains the last resort.
            let _ = client.send(&rollback, send).await;
        }));
    }
}

/// A stateful session (serverless-js's `StatefulConnection`): statements
/// share one database connection until `close`. Not for concurrent
/// statements.
#[derive(Debug)]
pub struct StatefulSession {
    client: Client,
    session: String,
}

impl StatefulSession {
    pub fn session(&self) -> &str {
        &self.session
    }

    pub async fn execute(&mut self, statement: impl Into<Statement>) -> Result<QueryResult, Error> {
        let send = Outgoing {
            session: &self.session,
            ..Outgoing::default()
        };
        let (result, session) = self.client.send(&statement.into(), send).await?;
        self.session = session;
        result
    }

    pub async fn query_as<T: DeserializeOwned>(
        &mut self,
        statement: impl Into<Statement>,
    ) -> Result<Vec<T>, Error> {
        self.execute(statement).await?.deserialize()
    }

    /// Ends the session and releases its connection.
    pub async fn close(self) -> Result<(), Error> {
        let send = Outgoing {
            session: &self.session,
            stateful_action: Some("close"),
            ..Outgoing::default()
        };
        self.client.send(&Statement::new(""), send).await?.0?;
        Ok(())
    }
}

fn first<T: DeserializeOwned>(result: QueryResult) -> Result<Option<T>, Error> {
    match result.rows().first() {
        Some(row) => row
            .deserialize()
            .map(Some)
            .map_err(|e| Error::decode(result.statement(), e)),
        None => Ok(None),
    }
}

fn one<T: DeserializeOwned>(result: QueryResult) -> Result<T, Error> {
    let statement = result.statement.clone();
    first(result)?.ok_or_else(|| Error::new(Some(&statement), ErrorKind::NoRows))
}

/// A success body: `types` and `rows` for a query, `rowsAffected` and
/// `sLastInsertID` for a change (serverless-js's `QueryExecuteResponse`).
/// Fields it does not know are ignored.
#[derive(Deserialize)]
struct WireResult {
    #[serde(default)]
    types: Option<Vec<WireField>>,
    #[serde(default)]
    rows: Option<Vec<Vec<Option<String>>>>,
    #[serde(default, rename = "rowsAffected")]
    rows_affected: Option<u64>,
    #[serde(default, rename = "sLastInsertID")]
    last_insert_id: Option<String>,
}

#[derive(Deserialize)]
struct WireField {
    name: String,
    #[serde(rename = "type")]
    type_name: String,
    #[serde(default)]
    nullable: bool,
}

impl WireResult {
    fn into_result(self, statement: &str) -> Result<QueryResult, ErrorKind> {
        let columns: Arc<[Column]> = self
            .types
            .unwrap_or_default()
            .into_iter()
            .map(|f| Column {
                name: f.name,
                type_name: f.type_name,
                nullable: f.nullable,
            })
            .collect();
        let decodings: Vec<_> = columns.iter().map(|c| decoding(&c.type_name)).collect();
        let rows = self
            .rows
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(index, raw)| {
                if raw.len() != columns.len() {
                    return Err(ErrorKind::Protocol(format!(
                        "row {index} has {} cells for {} columns",
                        raw.len(),
                        columns.len()
                    )));
                }
                let cells = columns
                    .iter()
                    .zip(&decodings)
                    .zip(&raw)
                    .map(|((column, &decoding), raw)| {
                        decode_cell_as(&column.type_name, decoding, raw.as_deref()).map_err(
                            |message| {
                                ErrorKind::Decode(DecodeError::new(
                                    Some(column.name.clone()),
                                    message,
                                ))
                            },
                        )
                    })
                    .collect::<Result<_, _>>()?;
                Ok(Row::new(columns.clone(), cells))
            })
            .collect::<Result<_, _>>()?;
        let last_insert_id = self
            .last_insert_id
            .map(|id| {
                id.parse().map_err(|_| {
                    ErrorKind::Protocol(format!("sLastInsertID {id:?} is not an integer"))
                })
            })
            .transpose()?;
        Ok(QueryResult {
            statement: statement.to_owned(),
            columns,
            rows,
            rows_affected: self.rows_affected,
            last_insert_id,
        })
    }
}

/// An error answer: serverless-js takes `message` from a JSON body and
/// keeps the whole body as details; a body that is not JSON gives the
/// status text.
fn database_error(status: http::StatusCode, body: &[u8]) -> DatabaseError {
    let json = serde_json::from_slice::<serde_json::Value>(body).ok();
    let message = json
        .as_ref()
        .and_then(|j| j.get("message"))
        .and_then(|m| m.as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("unknown status")
                .to_owned()
        });
    let code = json
        .as_ref()
        .and_then(|j| j.get("code"))
        .and_then(|c| match c {
            serde_json::Value::Number(n) => n.as_i64().map(ErrorCode::Number),
            serde_json::Value::String(s) => Some(ErrorCode::Text(s.clone())),
            _ => None,
        });
    DatabaseError {
        status: status.as_u16(),
        code,
        message,
    }
}

/// serverless-js's trace id shape, `<14 digits><20 of [a-z0-9]>`, from a
/// process-wide counter (see [`Client::with_trace_ids`]).
fn default_trace_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut state = n ^ 0x9e37_79b9_7f4a_7c15 ^ (&COUNTER as *const AtomicU64 as u64);
    // Laid out by hand: `format!("{:014}")` was most of the id's cost in
    // a page write's wasm CPU profile, five ids a write (BENCHMARKS.md,
    // thirty-fifth pass).
    let mut id = [0u8; 34];
    crate::time::put_digits(&mut id[..14], n);
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    for letter in &mut id[14..] {
        // SplitMix64: cheap, well-spread, needs no OS randomness.
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        *letter = ALPHABET[(z % ALPHABET.len() as u64) as usize];
    }
    String::from_utf8(id.to_vec()).expect("ASCII digits and letters")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ready_header_names_are_the_published_ones() {
        for (ready, published) in [
            (SESSION, SESSION_HEADER),
            (DATABASE, DATABASE_HEADER),
            (ISOLATION, ISOLATION_HEADER),
            (STATEFUL_ACTION, STATEFUL_ACTION_HEADER),
            (TRACE_ID, TRACE_ID_HEADER),
        ] {
            assert_eq!(ready, HeaderName::try_from(published).unwrap());
        }
    }

    #[test]
    fn trace_ids_count_in_their_first_14_digits() {
        let a = default_trace_id();
        let b = default_trace_id();
        let (a, b): (u64, u64) = (a[..14].parse().unwrap(), b[..14].parse().unwrap());
        // Tests run in parallel and share the counter: later, not next.
        assert!(b > a, "{a} then {b}");
    }

    #[test]
    fn default_trace_ids_have_serverless_js_shape_and_differ() {
        let a = default_trace_id();
        let b = default_trace_id();
        assert_eq!(a.len(), 34);
        assert!(a[..14].bytes().all(|c| c.is_ascii_digit()));
        assert!(a[14..]
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        assert_ne!(a, b);
    }

    #[test]
    fn statement_debug_hides_values() {
        let s = Statement::new("SELECT ?").bind("secret-value");
        let shown = format!("{s:?}");
        assert!(!shown.contains("secret-value"), "{shown}");
        assert!(shown.contains("SELECT ?"));
    }

    #[test]
    fn error_bodies_parse_like_serverless_js() {
        let e = database_error(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            br#"{"code":151100004,"message":"Rollback transaction fail: invalid connection"}"#,
        );
        assert_eq!(e.status, 500);
        assert_eq!(e.code, Some(ErrorCode::Number(151100004)));
        assert_eq!(e.message, "Rollback transaction fail: invalid connection");
        let e = database_error(http::StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert_eq!(e.message, "Bad Gateway");
        assert_eq!(e.code, None);
        let e = database_error(
            http::StatusCode::BAD_REQUEST,
            br#"{"code":"E1","message":"m"}"#,
        );
        assert_eq!(e.code, Some(ErrorCode::Text("E1".into())));
    }
}
