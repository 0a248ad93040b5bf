//! A stateful stand-in for the Cloudflare API v4 (`api.cloudflare.com/client/v4`),
//! used by the deploy tool's tests because no local Cloudflare API exists.
//!
//! It follows Cloudflare's published OpenAPI document (a subset vendored in
//! `openapi/`, see its README; embedded with `include_str!`) and the API docs.
//!
//! # What it covers
//! - **Validation** ([`openapi`]): every request is matched to an operation
//!   of the document by method and path template; its query parameters
//!   (unknown names included) and JSON body, or the JSON part of a multipart
//!   upload (`metadata` of script and version uploads, `settings` of the
//!   settings PATCH, plus the module parts the metadata names), are validated
//!   against the operation's schemas, and so are path parameters
//!   (identifiers, UUIDs) and the `Content-Type` of each multipart part (the
//!   operation's `encoding`). A failing request is answered 400 with
//!   code 9207 (`Request body is invalid: <validator message>`, or `Invalid
//!   query parameter: ...`; a path parameter: 7003, below) and recorded as
//!   a [`Violation`]; a path/method the document lacks is answered 400 with
//!   code 7000 (`No route for that URI`, as Cloudflare answers) and recorded
//!   as `unknown operation`, except the three asset endpoints of `wrangler
//!   pages deploy`. The stand-in checks its own answers
//!   against the response schemas too
//!   ([`StandInHandle::response_mismatches`]). The document is applied as
//!   published: e.g. a DNS PATCH must carry `name`, `type` and `ttl`.
//! - **State** (in memory, one lock): accounts and zones from the [`Config`]
//!   (`GET /zones` with `name`/`account.id`/`status` filters, zone
//!   create/get/patch/delete); DNS records (CRUD, filters, pagination, batch,
//!   Cloudflare's conflicts); Workers scripts (multipart upload, versions,
//!   percentage deployments, secrets that create versions, settings,
//!   script-settings), zone routes and Workers custom domains; Pages projects
//!   (deployment configs merged like Cloudflare, secret values never
//!   returned), domains, deployments, rollback, upload tokens and the asset
//!   endpoints `wrangler pages deploy` uses; Access apps, reusable policies
//!   and service tokens (secret shown once); token verification. Ids are 32
//!   hex digits (UUIDs where Cloudflare uses them), timestamps RFC 3339.
//! - **Auth**: `Authorization: Bearer <token>` must be the configured token:
//!   missing → 400/9106, malformed (not `Bearer` + token characters) →
//!   400/6003 "Invalid request headers" (6111 in Cloudflare's chain), wrong
//!   → 403/10000 "Authentication error", or 401/9109 "Invalid access token"
//!   on `tokens/verify`. An account the config lacks → 400/7003 "Could not
//!   route to /accounts/<id>/..., perhaps your object identifier is
//!   invalid?" (what Cloudflare answers for a wrong `account_id`); a zone →
//!   400/7003 "Could not route to /zones/<id>, ...".
//! - **Faults and inspection** ([`faults`], [`StandInHandle`], over HTTP in
//!   [`control`]): 429 with `Retry-After` and code 971, 5xx as envelope
//!   (code 10013) or the edge's HTML page, hangs, the Nth call from now, and
//!   faults after the call was applied; the request log, counters, violations
//!   and state readers.
//! - **Edge emulation** ([`edge`]): requests for a hostname the stand-in
//!   knows, by `Host` header or under `/__edge/{hostname}/...`, answer as the
//!   deployment would, behind Access service tokens.
//!
//! Error codes (Cloudflare's where known, else plausible and fixed here):
//! DNS 81044 not found, 81053 A/AAAA/CNAME name clash, 81054 CNAME exists,
//! 81058 identical record, 9004 not proxiable; Workers 10007 script not
//! found, 10217 version not found, 10216 percentages not summing to 100,
//! 10056 secret not found, 10020 duplicate route, 10005 route not found,
//! 10021 unresolvable `inherit` binding in a `bindings_inherit=strict` upload,
//! 100114 custom domain not found; Pages 8000007 project not found, 8000002
//! duplicate project, 8000009 deployment not found, 8000034 live production
//! deployment, 8000018 duplicate domain, 8000010 domain not found; Access
//! 12130 not found, 12132 domain taken, 12133 policy in use. An operation of
//! the document the stand-in does not emulate is answered 501 with code
//! 7000.
//!
//! # Not covered
//! API keys (`X-Auth-Key`), token permissions, zone-level Access apps,
//! Workers for Platforms, Workers assets uploads, Pages builds from git and
//! checks that a manifest's assets were uploaded, cursor pagination, DNS
//! record-type specific content checks beyond the schema's formats, and
//! filters other than those named above.

pub mod control;
pub mod edge;
mod envelope;
pub mod faults;
mod multipart;
pub mod openapi;
mod resources;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use envelope::{ApiError, Reply};
use faults::FaultQueue;
pub use faults::{Fault, FaultKind};
use openapi::{BodyKind, Operation};
use resources::{Call, Store};

/// An account the stand-in knows.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub name: String,
}

/// A zone the stand-in knows, owned by `account_id`.
#[derive(Debug, Clone)]
pub struct Zone {
    pub id: String,
    pub name: String,
    pub account_id: String,
}

/// How the stand-in is set up.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The API token every call must present as `Authorization: Bearer`.
    pub token: String,
    pub accounts: Vec<Account>,
    pub zones: Vec<Zone>,
}

impl Config {
    /// One account and one zone in it: what every test of the deploy tool
    /// and of its client starts from.
    pub fn single(token: &str, account_id: &str, zone_id: &str, zone_name: &str) -> Config {
        Config {
            token: token.into(),
            accounts: vec![Account {
                id: account_id.into(),
                name: "Test account".into(),
            }],
            zones: vec![Zone {
                id: zone_id.into(),
                name: zone_name.into(),
                account_id: account_id.into(),
            }],
        }
    }
}

/// One API call (under `/client/v4`) as the stand-in saw it; control API
/// and edge requests are not logged.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub query: String,
    /// The matched operation id (`None` for unknown operations).
    pub operation: Option<String>,
    /// The answer's status; 0 when a hang fault held the answer back.
    pub status: u16,
    /// Not GET/HEAD.
    pub write: bool,
    /// Passed schema validation (false for unknown operations too).
    pub valid: bool,
    /// Answered by an injected fault.
    pub faulted: bool,
}

/// A request that did not match Cloudflare's published schema.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub method: String,
    pub path: String,
    /// Operation id, or `unknown operation`.
    pub operation: String,
    pub message: String,
}

pub(crate) struct Shared {
    pub config: Config,
    pub store: Mutex<Store>,
    pub log: Mutex<Log>,
    pub faults: Mutex<FaultQueue>,
}

#[derive(Default)]
pub(crate) struct Log {
    pub requests: Vec<RequestRecord>,
    pub violations: Vec<Violation>,
    pub response_mismatches: Vec<Violation>,
    pub total: u64,
    pub writes: u64,
}

impl Shared {
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub(crate) fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running stand-in, serving on the current tokio runtime until dropped.
pub struct StandIn {
    addr: SocketAddr,
    handle: StandInHandle,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The HTTP app over a fresh state.
fn router(config: Config) -> (Router, StandInHandle) {
    let shared = Arc::new(Shared {
        store: Mutex::new(Store::new(&config)),
        config,
        log: Mutex::default(),
        faults: Mutex::default(),
    });
    let app = Router::new().fallback(handle).with_state(shared.clone());
    (app, StandInHandle { shared })
}

impl StandIn {
    /// Binds 127.0.0.1 on a free port and serves on the current runtime.
    pub async fn start(config: Config) -> anyhow::Result<StandIn> {
        Self::start_on("127.0.0.1:0".parse()?, config).await
    }

    /// Binds `listen` and serves on the current runtime.
    pub async fn start_on(listen: SocketAddr, config: Config) -> anyhow::Result<StandIn> {
        // Parse the document before the first request, not during it.
        let _ = openapi::spec();
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (app, handle) = router(config);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(StandIn {
            addr,
            handle,
            server,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/client/v4`, the API base URL to give the client.
    pub fn base_url(&self) -> String {
        format!("http://{}/client/v4", self.addr)
    }
}

/// Inspection, fault injection and state readers; to keep them after the
/// `StandIn` moves, clone them: `StandInHandle::clone(&standin)`.
impl std::ops::Deref for StandIn {
    type Target = StandInHandle;
    fn deref(&self) -> &StandInHandle {
        &self.handle
    }
}

/// Inspection and control of a stand-in's state (cheap to clone).
#[derive(Clone)]
pub struct StandInHandle {
    shared: Arc<Shared>,
}

impl StandInHandle {
    /// Adds a fault rule.
    pub fn inject(&self, fault: Fault) {
        self.shared.faults.lock().unwrap().push(fault);
    }

    /// Removes every fault rule not yet used up.
    pub fn clear_faults(&self) {
        self.shared.faults.lock().unwrap().clear();
    }

    /// Fault rules still waiting to fire.
    pub fn pending_faults(&self) -> Vec<Fault> {
        self.shared.faults.lock().unwrap().pending()
    }

    /// Every API call since start (or the last [`Self::reset_counters`]).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.log().requests.clone()
    }

    /// Requests that broke the published schema (never cleared by resets).
    pub fn violations(&self) -> Vec<Violation> {
        self.shared.log().violations.clone()
    }

    /// The stand-in's own answers that did not match the response schema.
    pub fn response_mismatches(&self) -> Vec<Violation> {
        self.shared.log().response_mismatches.clone()
    }

    /// API calls counted since the last reset.
    pub fn request_count(&self) -> u64 {
        self.shared.log().total
    }

    /// Calls other than GET/HEAD since the last reset.
    pub fn write_count(&self) -> u64 {
        self.shared.log().writes
    }

    /// Zeroes the counters and empties the request log.
    pub fn reset_counters(&self) {
        let mut log = self.shared.log();
        log.total = 0;
        log.writes = 0;
        log.requests.clear();
    }

    /// A read-only snapshot of the state, in API shapes (see [`control`]).
    pub fn snapshot(&self) -> Value {
        self.shared.store().snapshot()
    }

    /// DNS records of a zone, as the API lists them.
    pub fn dns_records(&self, zone_id: &str) -> Vec<Value> {
        self.shared.store().dns_records(zone_id)
    }

    /// The script's current deployment, as the API shows it.
    pub fn current_deployment(&self, script: &str) -> Option<Value> {
        self.shared.store().current_deployment(script)
    }

    /// A script version's detail (bindings without secret values).
    pub fn version(&self, script: &str, version_id: &str) -> Option<Value> {
        self.shared.store().version_detail(script, version_id)
    }

    /// The value of a script's secret in its current version (the latest
    /// one when nothing is deployed), for tests.
    pub fn secret_value(&self, script: &str, name: &str) -> Option<String> {
        self.shared.store().secret_value(script, name)
    }

    /// A Pages project as the API shows it.
    pub fn pages_project(&self, name: &str) -> Option<Value> {
        self.shared.store().pages_project(name)
    }

    /// A script's Cron Triggers, in the order they were put.
    pub fn schedules(&self, script: &str) -> Vec<String> {
        self.shared.store().schedules(script)
    }

    /// The value of a Pages env var (secret or not), for tests.
    pub fn pages_env_var(&self, project: &str, environment: &str, name: &str) -> Option<String> {
        self.shared
            .store()
            .pages_env_var(project, environment, name)
    }

    /// A Pages deployment's manifest (path → asset hash).
    pub fn pages_manifest(&self, project: &str, deployment_id: &str) -> Option<Value> {
        self.shared.store().pages_manifest(project, deployment_id)
    }

    /// Access applications, reusable policies and service tokens (no secrets).
    pub fn access(&self) -> Value {
        self.shared.store().access_snapshot()
    }

    /// Marks a Worker version unhealthy for the edge emulation.
    pub fn set_version_healthy(&self, version_id: &str, healthy: bool) {
        self.shared.store().set_version_health(version_id, healthy);
    }

    /// Marks a hostname unhealthy for the edge emulation.
    pub fn set_host_healthy(&self, hostname: &str, healthy: bool) {
        self.shared.store().set_host_health(hostname, healthy);
    }
}

/// Every request enters here: control API, edge emulation, then the API.
async fn handle(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, 512 * 1024 * 1024).await {
        Ok(body) => body,
        Err(_) => return (StatusCode::BAD_REQUEST, "unreadable body").into_response(),
    };
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or_default().to_owned();
    if let Some(rest) = path.strip_prefix("/__standin") {
        return control::handle(&shared, &parts.method, rest, &body);
    }
    if let Some(response) = edge::handle(&shared, &path, &parts.headers) {
        return response;
    }
    match path.strip_prefix("/client/v4") {
        Some(api_path) => {
            api(
                &shared,
                &parts.method,
                api_path,
                &query,
                &parts.headers,
                body,
            )
            .await
        }
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

/// A JSON answer (the API's envelopes, and the control and edge answers).
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `application/x-www-form-urlencoded` pairs (query strings).
pub(crate) fn form_pairs(text: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(text);
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| openapi::percent_decode(&s.replace('+', " "));
            (decode(name), decode(value))
        })
        .collect()
}

/// The auth check, answered with Cloudflare's codes.
fn authenticate(shared: &Shared, headers: &HeaderMap, verify_call: bool) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::bad_request(
            9106,
            "Missing X-Auth-Key, X-Auth-Email or Authorization headers",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        });
    let Some(token) = token else {
        return Err(ApiError::bad_request(
            6003,
            "Invalid request headers: Invalid format for Authorization header (6111)",
        ));
    };
    if token == shared.config.token {
        Ok(())
    } else if verify_call {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            9109,
            "Invalid access token",
        ))
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            10000,
            "Authentication error",
        ))
    }
}

async fn api(
    shared: &Arc<Shared>,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let spec = openapi::spec();
    let write = method != Method::GET && method != Method::HEAD;
    let mut record = RequestRecord {
        method: method.to_string(),
        path: path.to_owned(),
        query: query.to_owned(),
        operation: None,
        status: 0,
        write,
        valid: false,
        faulted: false,
    };
    let fault = shared.faults.lock().unwrap().take(method.as_str(), path);
    if let Some(fault) = fault.as_ref().filter(|f| !f.after_apply) {
        record.faulted = true;
        return fault_response(shared, record, &fault.kind).await;
    }

    let matched = spec.find(method.as_str(), path);
    let matched_op: Option<&Operation> = matched.as_ref().map(|(op, _)| *op);
    record.operation = matched_op.map(|op| op.id.clone());
    let outcome = match matched {
        Some((op, params)) => {
            call_operation(
                shared,
                op,
                params,
                method,
                path,
                query,
                headers,
                &body,
                &mut record,
            )
            .await
        }
        None => match resources::wrangler_assets(shared, method, path, headers, &body) {
            Some(result) => {
                record.valid = true;
                record.operation = Some(format!(
                    "wrangler {}",
                    path.rsplit('/').next().unwrap_or("")
                ));
                result.map(|reply| (StatusCode::OK, reply))
            }
            None => {
                shared.log().violations.push(Violation {
                    method: method.to_string(),
                    path: path.to_owned(),
                    operation: "unknown operation".into(),
                    message: format!("{method} {path} is not in Cloudflare's published schema"),
                });
                Err(ApiError::no_route())
            }
        },
    };
    if let Some(fault) = fault {
        record.faulted = true;
        return fault_response(shared, record, &fault.kind).await;
    }
    let (status, body) = match outcome {
        Ok((
            status,
            Reply {
                raw: Some((content_type, data)),
                ..
            },
        )) => {
            record.status = status.as_u16();
            finish(shared, record);
            let mut response = (status, data).into_response();
            if let Ok(value) = HeaderValue::from_str(&content_type) {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            return response;
        }
        Ok((status, reply)) => (status, reply.body()),
        Err(error) => (error.status, error.body()),
    };
    if let Some(op) = matched_op {
        if let Err(message) = spec.validate_response(op, status.as_u16(), &body) {
            shared.log().response_mismatches.push(Violation {
                method: method.to_string(),
                path: path.to_owned(),
                operation: op.id.clone(),
                message,
            });
        }
    }
    record.status = status.as_u16();
    finish(shared, record);
    json_response(status, &body)
}

#[allow(clippy::too_many_arguments)]
async fn call_operation(
    shared: &Arc<Shared>,
    op: &Operation,
    params: HashMap<String, String>,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &Bytes,
    record: &mut RequestRecord,
) -> Result<(StatusCode, Reply), ApiError> {
    let spec = openapi::spec();
    let verify_call = path.ends_with("/tokens/verify");
    authenticate(shared, headers, verify_call)?;
    let violation = |message: String| {
        shared.log().violations.push(Violation {
            method: method.to_string(),
            path: path.to_owned(),
            operation: op.id.clone(),
            message,
        });
    };
    // An identifier that breaks its schema (an account id of 33
    // characters, a deployment id that is no UUID) leads nowhere: Cloudflare
    // answers 7003 for it.
    if let Err(message) = spec.validate_path(op, &params) {
        violation(message);
        return Err(ApiError::unroutable(path));
    }
    let query_pairs = form_pairs(query.as_bytes());
    if let Err(message) = spec.validate_query(op, &query_pairs) {
        violation(message.clone());
        return Err(ApiError::bad_request(
            9207,
            format!("Invalid query parameter: {message}"),
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut call = Call {
        op_id: op.id.clone(),
        path: path.to_owned(),
        params,
        query: query_pairs,
        json: None,
        parts: Vec::new(),
        default_per_page: spec.query_default(op, "per_page"),
    };
    let invalid = |message: String| {
        violation(message.clone());
        ApiError::bad_request(9207, format!("Request body is invalid: {message}"))
    };
    match &op.body {
        BodyKind::None => {}
        BodyKind::Json => {
            if body.is_empty() {
                spec.validate_body(op, None).map_err(invalid)?;
            } else {
                let value: Value = serde_json::from_slice(body)
                    .map_err(|e| invalid(format!("body is not JSON: {e}")))?;
                spec.validate_body(op, Some(&value)).map_err(invalid)?;
                call.json = Some(value);
            }
        }
        BodyKind::Multipart { json_part } => {
            if content_type.starts_with("multipart/form-data") {
                let parts = multipart::parse(&content_type, body.clone())
                    .await
                    .map_err(invalid)?;
                spec.validate_part_types(
                    op,
                    parts
                        .iter()
                        .map(|p| (p.name.as_str(), p.content_type.as_deref())),
                )
                .map_err(invalid)?;
                if let Some(name) = json_part {
                    let part = parts
                        .iter()
                        .find(|p| &p.name == name)
                        .ok_or_else(|| invalid(format!("multipart part `{name}` is missing")))?;
                    let value: Value = serde_json::from_slice(&part.data)
                        .map_err(|e| invalid(format!("part `{name}` is not JSON: {e}")))?;
                    spec.validate_body(op, Some(&value)).map_err(invalid)?;
                    multipart::check_named_parts(&value, &parts).map_err(invalid)?;
                    call.json = Some(value);
                }
                call.parts = parts;
            } else if op.id == "worker-script-upload-worker-module"
                && (content_type.starts_with("application/javascript")
                    || content_type.starts_with("text/javascript"))
            {
                call.parts = vec![multipart::Part {
                    name: "worker.js".into(),
                    content_type: Some(content_type.clone()),
                    data: body.clone(),
                }];
            } else {
                return Err(invalid(format!(
                    "expected multipart/form-data, got `{content_type}`"
                )));
            }
        }
    }
    record.valid = true;
    let outcome = shared.store().dispatch(&shared.config, &call);
    let reply = outcome.inspect_err(|error| {
        if error.violation {
            record.valid = false;
            violation(error.message.clone());
        }
    })?;
    Ok((
        StatusCode::from_u16(op.success_status()).unwrap_or(StatusCode::OK),
        reply,
    ))
}

fn finish(shared: &Shared, record: RequestRecord) {
    let mut log = shared.log();
    log.total += 1;
    if record.write {
        log.writes += 1;
    }
    log.requests.push(record);
}

async fn fault_response(shared: &Shared, mut record: RequestRecord, kind: &FaultKind) -> Response {
    if let Some(delay) = kind.hang_for() {
        record.status = 0;
        finish(shared, record);
        match delay {
            Some(delay) => tokio::time::sleep(delay).await,
            None => std::future::pending::<()>().await,
        }
        return json_response(
            StatusCode::GATEWAY_TIMEOUT,
            &ApiError::new(StatusCode::GATEWAY_TIMEOUT, 10013, "Request timed out").body(),
        );
    }
    let response = match kind {
        FaultKind::RateLimit { retry_after_secs } => {
            let error = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                971,
                "Please wait and consider throttling your request speed",
            );
            let mut response = json_response(error.status, &error.body());
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&retry_after_secs.to_string()).expect("digits"),
            );
            response
        }
        FaultKind::ServerError { status, html } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if *html {
                let page = format!(
                    "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n",
                    code = status.as_u16(),
                    reason = status.canonical_reason().unwrap_or("Error"),
                );
                let mut response = (status, page).into_response();
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
                response
            } else {
                let error = ApiError::new(status, 10013, "An unknown error has occurred");
                json_response(status, &error.body())
            }
        }
        FaultKind::Hang { .. } => unreachable!("handled above"),
    };
    record.status = response.status().as_u16();
    finish(shared, record);
    response
}
