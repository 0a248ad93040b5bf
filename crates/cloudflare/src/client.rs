//! The HTTP client: authentication, envelopes, retries, the request budget,
//! call accounting and pagination. Typed operations live in the resource
//! modules and are all built on [`Client::send`] and friends.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
pub use reqwest::Method;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Serialize;

use crate::budget::{is_write, Admission, BudgetState, CallStats, RequestBudget};
use crate::clock::{Clock, TokioClock};
use crate::envelope::{Envelope, Page, ResultInfo};
use crate::error::{ApiError, Error, Result, UNROUTABLE_CODES};
use crate::retry::{parse_retry_after, Failure, RetryPolicy};
use crate::secret::Sensitive;

/// Cloudflare's production API root.
pub const DEFAULT_BASE_URL: &str = "https://api.cloudflare.com/client/v4";

/// Safety stop for pagination loops against a misbehaving server.
const MAX_PAGES: u64 = 10_000;

/// How much of a non-JSON error body is kept in the error.
const SNIPPET_CHARS: usize = 300;

/// Waits at least this long are announced through [`WaitNotices`], so a
/// rate-limit lockout does not look like a hang.
const ANNOUNCED_WAIT: Duration = Duration::from_secs(10);

/// Where the client tells the person running it that it is about to wait
/// a long time (a `Retry-After` lockout, a full request budget): one line
/// per wait. Lines go to stderr unless the caller routes them elsewhere
/// with [`ClientConfig::on_wait`].
#[derive(Clone)]
pub struct WaitNotices(Arc<dyn Fn(&str) + Send + Sync>);

impl Default for WaitNotices {
    fn default() -> Self {
        Self(Arc::new(|line| eprintln!("{line}")))
    }
}

impl fmt::Debug for WaitNotices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WaitNotices")
    }
}

/// Everything needed to build a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// API root without a trailing slash; point it at a stand-in in tests.
    pub base_url: String,
    /// API token, sent as `Authorization: Bearer`.
    pub token: Sensitive,
    /// Timeout of one attempt (connect, send and read the whole response).
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub budget: RequestBudget,
    /// Source of time for backoff and the budget; [`TokioClock`] by default.
    pub clock: Arc<dyn Clock>,
    pub user_agent: String,
    /// Receives a line before each long wait; stderr by default.
    pub wait_notices: WaitNotices,
}

impl ClientConfig {
    /// Defaults: production API, 60 s timeout, default retry policy and
    /// budget (1000 requests per 300 s, no hard cap).
    pub fn new(token: impl Into<Sensitive>) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_string(),
            token: token.into(),
            timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            budget: RequestBudget::default(),
            clock: Arc::new(TokioClock),
            user_agent: concat!("edge-deploy-cloudflare/", env!("CARGO_PKG_VERSION")).to_string(),
            wait_notices: WaitNotices::default(),
        }
    }

    pub fn base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn budget(mut self, budget: RequestBudget) -> Self {
        self.budget = budget;
        self
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sends the lines announcing long waits to `notice` instead of stderr.
    pub fn on_wait(mut self, notice: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.wait_notices = WaitNotices(Arc::new(notice));
        self
    }
}

/// One part of a `multipart/form-data` body. Kept as shared bytes so the
/// body can be rebuilt for each retry without copying them.
#[derive(Clone)]
pub struct MultipartPart {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: String,
    pub bytes: Bytes,
}

impl fmt::Debug for MultipartPart {
    // Parts may carry secret bindings: show their shape, never their bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultipartPart")
            .field("name", &self.name)
            .field("filename", &self.filename)
            .field("content_type", &self.content_type)
            .field("len", &self.bytes.len())
            .finish()
    }
}

#[derive(Clone)]
enum Body {
    Empty,
    Json(Bytes),
    Multipart(Vec<MultipartPart>),
}

impl fmt::Debug for Body {
    // Bodies may carry secret values: show only their size.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Empty => f.write_str("Empty"),
            Body::Json(bytes) => write!(f, "Json({} bytes)", bytes.len()),
            Body::Multipart(parts) => f.debug_tuple("Multipart").field(parts).finish(),
        }
    }
}

/// A request to send with [`Client::send`]: method, path below the base
/// URL, query, body, and whether repeating it after an ambiguous failure is
/// safe (see [`crate::retry`]).
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    body: Body,
    idempotent: bool,
}

impl Request {
    /// A request without body. Every method but POST counts as idempotent.
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        let idempotent = method != Method::POST;
        Self {
            method,
            path: path.into(),
            query: Vec::new(),
            body: Body::Empty,
            idempotent,
        }
    }

    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    pub fn post(path: impl Into<String>) -> Self {
        Self::new(Method::POST, path)
    }

    pub fn put(path: impl Into<String>) -> Self {
        Self::new(Method::PUT, path)
    }

    pub fn patch(path: impl Into<String>) -> Self {
        Self::new(Method::PATCH, path)
    }

    pub fn delete(path: impl Into<String>) -> Self {
        Self::new(Method::DELETE, path)
    }

    /// Adds a query parameter.
    pub fn query(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.query.push((key.into(), value.to_string()));
        self
    }

    /// Adds a query parameter when `value` is `Some`.
    pub fn query_opt(self, key: impl Into<String>, value: Option<impl ToString>) -> Self {
        match value {
            Some(value) => self.query(key, value),
            None => self,
        }
    }

    /// Sets a JSON body.
    pub fn json<B: Serialize + ?Sized>(mut self, body: &B) -> Result<Self> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| Error::InvalidRequest(format!("body does not serialize: {e}")))?;
        self.body = Body::Json(bytes.into());
        Ok(self)
    }

    /// Sets a `multipart/form-data` body.
    pub fn multipart(mut self, parts: Vec<MultipartPart>) -> Self {
        self.body = Body::Multipart(parts);
        self
    }

    /// Declares whether the request may be repeated after a 5xx or timeout.
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn query_pairs(&self) -> &[(String, String)] {
        &self.query
    }
}

/// A Cloudflare API v4 client. Cheap to clone; clones share the budget and
/// the call accounting.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: ClientConfig,
    budget: Mutex<BudgetState>,
    stats: Mutex<CallStats>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.config.base_url)
            .field("token", &self.inner.config.token)
            .field("retry", &self.inner.config.retry)
            .field("budget", &self.inner.config.budget)
            .finish()
    }
}

/// How one attempt failed, with what the retry decision needs.
struct AttemptFailure {
    error: Error,
    failure: Failure,
    retry_after: Option<Duration>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Self> {
        // Built once: the token header (marked sensitive, so it is never
        // logged) and the per-attempt timeout apply to every request.
        let mut auth =
            HeaderValue::try_from(format!("Bearer {}", config.token.expose())).map_err(|_| {
                Error::InvalidRequest("the API token is not a valid header value".into())
            })?;
        auth.set_sensitive(true);
        let http = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .default_headers(HeaderMap::from_iter([(AUTHORIZATION, auth)]))
            .timeout(config.timeout)
            .build()
            .map_err(|e| Error::InvalidRequest(format!("cannot build the HTTP client: {e}")))?;
        let mut config = config;
        config.base_url = config.base_url.trim_end_matches('/').to_string();
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                config,
                budget: Mutex::new(BudgetState::default()),
                stats: Mutex::new(CallStats::default()),
            }),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// A snapshot of the call accounting.
    pub fn stats(&self) -> CallStats {
        *lock(&self.inner.stats)
    }

    /// Clears the call accounting (the budget window is kept).
    pub fn reset_stats(&self) {
        *lock(&self.inner.stats) = CallStats::default();
    }

    /// GET `path` and return its `result`.
    pub async fn get<T: DeserializeOwned>(&self, path: impl Into<String>) -> Result<T> {
        self.send(Request::get(path)).await
    }

    /// POST a JSON body. Not retried after a 5xx or timeout.
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: impl Into<String>,
        body: &B,
    ) -> Result<T> {
        self.send(Request::post(path).json(body)?).await
    }

    pub async fn put<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: impl Into<String>,
        body: &B,
    ) -> Result<T> {
        self.send(Request::put(path).json(body)?).await
    }

    pub async fn patch<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: impl Into<String>,
        body: &B,
    ) -> Result<T> {
        self.send(Request::patch(path).json(body)?).await
    }

    /// DELETE `path`. The result (`{"id": ...}` or `null`) is not needed
    /// by any caller and is not decoded.
    pub async fn delete(&self, path: impl Into<String>) -> Result<()> {
        self.send_delete(Request::delete(path)).await
    }

    /// Sends a DELETE built as a [`Request`] (for query parameters), like
    /// [`Client::delete`].
    pub(crate) async fn send_delete(&self, request: Request) -> Result<()> {
        self.send::<IgnoredAny>(request).await.map(drop)
    }

    /// Sends `request` and decodes the envelope's `result` as `T` (a `null`
    /// or missing result decodes as JSON `null`, which suits `Option<_>`,
    /// `()` and `serde_json::Value`).
    pub async fn send<T: DeserializeOwned>(&self, request: Request) -> Result<T> {
        let (envelope, request) = self.send_envelope(request).await?;
        decode(&request, envelope.result.unwrap_or(serde_json::Value::Null))
    }

    /// Sends `request` and returns the `result` with the envelope's
    /// `result_info`, for endpoints whose paged result is an object (such
    /// as `{"items": [...]}`) rather than an array.
    pub async fn send_with_info<T: DeserializeOwned>(
        &self,
        request: Request,
    ) -> Result<(T, Option<ResultInfo>)> {
        let (envelope, request) = self.send_envelope(request).await?;
        let result = decode(&request, envelope.result.unwrap_or(serde_json::Value::Null))?;
        Ok((result, envelope.result_info))
    }

    /// Sends a list request and returns that one page.
    pub async fn send_page<T: DeserializeOwned>(&self, request: Request) -> Result<Page<T>> {
        let (envelope, request) = self.send_envelope(request).await?;
        let items = match envelope.result {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(result) => decode(&request, result)?,
        };
        Ok(Page {
            items,
            result_info: envelope.result_info,
        })
    }

    /// Follows page-based pagination (`page`, `per_page`, stopping at
    /// `result_info.total_pages`, or at a short page when the server does
    /// not say) and returns the items of all pages.
    pub async fn get_all_pages<T: DeserializeOwned>(
        &self,
        request: Request,
        per_page: u32,
    ) -> Result<Vec<T>> {
        let mut items = Vec::new();
        let mut page = 1u64;
        loop {
            let this = request
                .clone()
                .query("page", page)
                .query("per_page", per_page);
            let result: Page<T> = self.send_page(this).await?;
            let count = result.items.len();
            items.extend(result.items);
            let more = match result.result_info.as_ref().and_then(|i| i.total_pages) {
                Some(total_pages) => page < total_pages,
                None => count > 0 && count >= per_page as usize,
            };
            if !more || page >= MAX_PAGES {
                return Ok(items);
            }
            page += 1;
        }
    }

    /// Sends with retries and budget, returning the raw envelope.
    async fn send_envelope(
        &self,
        request: Request,
    ) -> Result<(Envelope<serde_json::Value>, Request)> {
        let policy = &self.inner.config.retry;
        let clock = &self.inner.config.clock;
        let url = self.url(&request)?;
        let mut waited = Duration::ZERO;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.admit().await?;
            let failure = match self.attempt(&request, &url, attempt).await {
                Ok(envelope) => return Ok((envelope, request)),
                Err(failure) => failure,
            };
            if attempt >= policy.max_attempts.max(1)
                || !failure.failure.retryable(request.idempotent)
            {
                return Err(failure.error);
            }
            let delay = match failure.retry_after {
                Some(asked) => {
                    let left = policy.max_total_delay.saturating_sub(waited);
                    let allowed = policy.max_retry_after.min(left);
                    if asked > allowed {
                        return Err(Error::RetryAfterTooLong {
                            method: request.method.to_string(),
                            path: request.path.clone(),
                            asked,
                            allowed,
                            last: Box::new(failure.error),
                        });
                    }
                    asked
                }
                None => policy.backoff(attempt),
            };
            if waited.saturating_add(delay) > policy.max_total_delay {
                return Err(failure.error);
            }
            if delay >= ANNOUNCED_WAIT {
                let reason = match (failure.retry_after, failure.error.status()) {
                    (Some(_), Some(status)) => {
                        format!("the API answered HTTP {status} with Retry-After")
                    }
                    (Some(_), None) => "the API asked for it with Retry-After".to_string(),
                    (None, _) => format!("backing off after: {}", failure.error),
                };
                self.notice(format!(
                    "  waiting {}s before retrying {} {} ({reason})",
                    delay.as_secs(),
                    request.method,
                    request.path
                ));
            }
            clock.sleep(delay).await;
            waited += delay;
        }
    }

    fn notice(&self, line: String) {
        (self.inner.config.wait_notices.0)(&line);
    }

    /// Waits until the sliding window has room, or fails at the hard cap.
    async fn admit(&self) -> Result<()> {
        let config = &self.inner.config;
        loop {
            let admission = lock(&self.inner.budget).admit(&config.budget, config.clock.now());
            match admission {
                Admission::Send => return Ok(()),
                Admission::Exhausted(cap) => return Err(Error::BudgetExhausted { cap }),
                Admission::Wait(delay) => {
                    if delay >= ANNOUNCED_WAIT {
                        self.notice(format!(
                            "  waiting {}s for room in the request budget ({} per {}s)",
                            delay.as_secs(),
                            config.budget.max_requests,
                            config.budget.window.as_secs()
                        ));
                    }
                    {
                        let mut stats = lock(&self.inner.stats);
                        stats.throttled += 1;
                        stats.throttled_for += delay;
                    }
                    config.clock.sleep(delay).await;
                }
            }
        }
    }

    /// Counts one request sent.
    fn record(&self, request: &Request, attempt: u32) {
        let mut stats = lock(&self.inner.stats);
        stats.requests += 1;
        if is_write(&request.method) {
            stats.writes += 1;
        }
        if attempt > 1 {
            stats.retries += 1;
        }
    }

    /// The full URL of `request`, query included; built once per call.
    fn url(&self, request: &Request) -> Result<reqwest::Url> {
        let url = format!("{}{}", self.inner.config.base_url, request.path);
        let mut url = reqwest::Url::parse(&url)
            .map_err(|e| Error::InvalidRequest(format!("bad URL {url:?}: {e}")))?;
        if !request.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&request.query);
        }
        Ok(url)
    }

    /// One HTTP exchange, classified for the retry decision.
    async fn attempt(
        &self,
        request: &Request,
        url: &reqwest::Url,
        attempt: u32,
    ) -> std::result::Result<Envelope<serde_json::Value>, AttemptFailure> {
        let config = &self.inner.config;
        let builder = self.inner.http.request(request.method.clone(), url.clone());
        let builder = match &request.body {
            Body::Empty => builder,
            Body::Json(bytes) => builder
                .header(CONTENT_TYPE, "application/json")
                .body(bytes.clone()),
            Body::Multipart(parts) => match multipart_form(parts) {
                Ok(form) => builder.multipart(form),
                Err(error) => {
                    return Err(AttemptFailure {
                        error,
                        failure: Failure::Permanent,
                        retry_after: None,
                    })
                }
            },
        };

        self.record(request, attempt);
        let mut response = match builder.send().await {
            Ok(response) => response,
            Err(e) => return Err(self.transport_failure(request, &e)),
        };
        let status = response.status().as_u16();
        // Kept (not copied) for the error path: Retry-After, Content-Type.
        let headers = std::mem::take(response.headers_mut());
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(e) => return Err(self.transport_failure(request, &e)),
        };

        let success_status = (200..300).contains(&status);
        let envelope = match serde_json::from_slice::<Envelope<serde_json::Value>>(&bytes) {
            Ok(envelope) if success_status && envelope.success => return Ok(envelope),
            other => other,
        };
        // The error path only from here.
        let failure_for_status = Failure::from_status(status);
        let wait_hint = || retry_after(&headers, config.clock.system_now());
        match envelope {
            Ok(envelope) => Err(AttemptFailure {
                error: api_error(request, status, envelope.errors),
                failure: failure_for_status,
                retry_after: wait_hint(),
            }),
            Err(e) if success_status => Err(AttemptFailure {
                error: Error::Decode {
                    method: request.method.to_string(),
                    path: request.path.clone(),
                    message: format!("the body is not a Cloudflare envelope: {e}"),
                },
                failure: Failure::Permanent,
                retry_after: None,
            }),
            Err(_) => Err(AttemptFailure {
                error: Error::UnexpectedBody {
                    status,
                    content_type: headers
                        .get(CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("none")
                        .to_string(),
                    snippet: self.snippet(&bytes),
                },
                failure: failure_for_status,
                retry_after: wait_hint(),
            }),
        }
    }

    fn transport_failure(&self, request: &Request, e: &reqwest::Error) -> AttemptFailure {
        let method = request.method.to_string();
        let path = request.path.clone();
        if e.is_timeout() {
            return AttemptFailure {
                error: Error::Timeout {
                    method,
                    path,
                    after: self.inner.config.timeout,
                },
                failure: Failure::InFlight,
                retry_after: None,
            };
        }
        let connect = e.is_connect();
        AttemptFailure {
            error: Error::Transport {
                method,
                path,
                message: self.scrub(&error_chain(e)),
                connect,
            },
            failure: if connect {
                Failure::ConnectFailed
            } else {
                Failure::InFlight
            },
            retry_after: None,
        }
    }

    /// The start of a body for an error message, with the token removed.
    fn snippet(&self, bytes: &[u8]) -> String {
        let text = String::from_utf8_lossy(bytes);
        let text = self.scrub(&text);
        let mut snippet: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(SNIPPET_CHARS)
            .collect();
        if text.chars().count() > SNIPPET_CHARS {
            snippet.push('…');
        }
        snippet
    }

    fn scrub(&self, text: &str) -> String {
        let token = self.inner.config.token.expose();
        if token.is_empty() {
            text.to_string()
        } else {
            text.replace(token, "[redacted]")
        }
    }
}

fn decode<T: DeserializeOwned>(request: &Request, value: serde_json::Value) -> Result<T> {
    serde_json::from_value(value).map_err(|e| Error::Decode {
        method: request.method.to_string(),
        path: request.path.clone(),
        message: e.to_string(),
    })
}

fn retry_after(headers: &HeaderMap, now: std::time::SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, now)
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// An error envelope as an [`Error`]: [`Error::Unroutable`] when it carries
/// a routing code (7000, 7003), so that no caller takes a wrong account or
/// zone for a missing object, else [`Error::Api`].
fn api_error(request: &Request, status: u16, errors: Vec<ApiError>) -> Error {
    if errors.iter().any(|e| UNROUTABLE_CODES.contains(&e.code)) {
        Error::Unroutable {
            method: request.method.to_string(),
            path: request.path.clone(),
            status,
            errors,
        }
    } else {
        Error::Api { status, errors }
    }
}

fn multipart_form(parts: &[MultipartPart]) -> Result<reqwest::multipart::Form> {
    let mut form = reqwest::multipart::Form::new();
    for part in parts {
        // A cheap clone of shared bytes; the length lets the form compute
        // its Content-Length.
        let length = part.bytes.len() as u64;
        let mut body = reqwest::multipart::Part::stream_with_length(part.bytes.clone(), length)
            .mime_str(&part.content_type)
            .map_err(|e| {
                Error::InvalidRequest(format!(
                    "bad content type {:?} for part {:?}: {e}",
                    part.content_type, part.name
                ))
            })?;
        if let Some(filename) = &part.filename {
            body = body.file_name(filename.clone());
        }
        form = form.part(part.name.clone(), body);
    }
    Ok(form)
}

/// Percent-encodes one path segment (names of scripts, projects, domains).
pub(crate) fn seg(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(seg("api-worker_1.x"), "api-worker_1.x");
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn request_debug_hides_bodies() {
        let request = Request::put("/x")
            .json(&serde_json::json!({"text": "hunter2"}))
            .unwrap();
        assert!(!format!("{request:?}").contains("hunter2"));
        let request = Request::put("/x").multipart(vec![MultipartPart {
            name: "metadata".into(),
            filename: None,
            content_type: "application/json".into(),
            bytes: Bytes::from_static(b"hunter2"),
        }]);
        assert!(!format!("{request:?}").contains("hunter2"));
    }
}
