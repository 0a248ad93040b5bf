//! Everything that applies to every route, in one place: request ids,
//! `server-timing`, service-binding trust, the request deadline, problem
//! documents for what axum answers by itself (405), CORS and security
//! headers. [`apply`] wraps a router in all of them, in the order
//! documented there.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::convert::Infallible;
use std::task::Poll;

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures_util::future::{BoxFuture, FutureExt};
use tower::Service;
use tower_http::cors::{AllowOrigin, Cors, CorsLayer};

use crate::problem::{Problem, ProblemType};
use crate::redis::RequestRedis;
use crate::telemetry::{self, DependencyTime, RouteTemplates};
use crate::{limits, trust, App};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(crate) const CF_RAY: &str = "cf-ray";
const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// Sent on every response unless a handler set its own. An API serves no
/// documents: nothing may load, sniff or frame what it returns.
pub const SECURITY_HEADERS: [(HeaderName, &str); 6] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
    (
        header::STRICT_TRANSPORT_SECURITY,
        "max-age=31536000; includeSubDomains",
    ),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    ),
    (
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-site",
    ),
];

/// Durations of the dependency calls a request made, for `server-timing`.
/// Handlers get it from the request extensions and record into it.
#[derive(Debug, Clone, Default)]
pub struct Timings(Arc<Mutex<Vec<Timing>>>);

#[derive(Debug)]
struct Timing {
    name: &'static str,
    description: Option<&'static str>,
    millis: f64,
}

impl Timings {
    /// Records that `name` (a short token such as `db` or `cache`) took
    /// `millis`; repeated names are summed.
    pub fn record(&self, name: &'static str, millis: f64) {
        self.record_described(name, None, millis);
    }

    /// Like [`Timings::record`], with a description (`cache;desc="hit"`).
    pub fn record_described(
        &self,
        name: &'static str,
        description: Option<&'static str>,
        millis: f64,
    ) {
        let mut entries = self.0.lock().expect("timings lock");
        match entries.iter_mut().find(|t| t.name == name) {
            Some(timing) => {
                timing.millis += millis;
                timing.description = description.or(timing.description);
            }
            None => entries.push(Timing {
                name,
                description,
                millis,
            }),
        }
    }

    /// Every recorded dependency, for telemetry.
    pub fn entries(&self) -> Vec<DependencyTime> {
        let entries = self.0.lock().expect("timings lock");
        entries
            .iter()
            .map(|t| DependencyTime {
                name: t.name,
                outcome: t.description,
                millis: t.millis,
            })
            .collect()
    }

    /// The `server-timing` header value with `total` last.
    fn header(&self, total_millis: f64) -> String {
        let entries = self.0.lock().expect("timings lock");
        let mut out = String::with_capacity(24 + 32 * entries.len());
        for t in entries.iter() {
            out.push_str(t.name);
            if let Some(desc) = t.description {
                out.push_str(";desc=\"");
                out.push_str(desc);
                out.push('"');
            }
            out.push_str(";dur=");
            push_tenths(&mut out, t.millis);
            out.push_str(", ");
        }
        out.push_str("total;dur=");
        push_tenths(&mut out, total_millis);
        out
    }
}

/// `millis` with one decimal (ties to even, as `{:.1}` would), written
/// with `itoa` (already built in for serde_json): float formatting is a
/// large piece of code for every response to pull in, and `write!` runs
/// the formatting machinery for two integers.
fn push_tenths(out: &mut String, millis: f64) {
    let tenths = (millis.max(0.0) * 10.0).round_ties_even() as u64;
    out.push_str(itoa::Buffer::new().format(tenths / 10));
    out.push('.');
    out.push(char::from(b'0' + (tenths % 10) as u8));
}

/// Wraps `router` in the cross-cutting layers. From the outside in:
/// 1. request id, timing, trust, deadline and problem finishing
///    ([`Edge`]), so that every response, CORS preflights and 405s
///    included, carries `x-request-id`, `server-timing` and
///    [`SECURITY_HEADERS`], every problem document its `instance`, and no
///    request runs past its deadline;
/// 2. CORS: preflights are answered here, before any route or storage.
///
/// CORS wraps the routed router as one service rather than each route
/// (`Router::layer` would): a preflight is then answered without being
/// routed at all (no path match, no method dispatch, no `Allow` header
/// that axum adds to what a route's fallback answers), and the CORS
/// service is not cloned with each route's service for every request.
///
/// The two layers are plain tower services around the routed router, not
/// a second `Router` with `middleware::from_fn`: that outer router matched
/// every path against no routes to reach its fallback, and `from_fn`
/// boxed the edge's inner service and its future again, all on every
/// request and again on each of its wake-ups.
///
/// `templates` are the routes' path templates, which telemetry counts
/// requests under ([`RouteTemplates`]).
pub fn apply(router: Router<Arc<App>>, templates: Vec<String>, app: &Arc<App>) -> Edge {
    Edge {
        app: app.clone(),
        routes: Arc::new(RouteTemplates::new(templates)),
        inner: Inner {
            routes: router.with_state(app.clone()),
            cors: Arc::new(cors(app)),
        },
    }
}

/// What the edge hands requests on to: the routes, and CORS around them
/// for the requests CORS concerns ([`inner_call`]). Kept apart rather than
/// as one `Cors<Router>`: the edge takes a clone for every request, and
/// the CORS settings (their `Vary` a `Vec` of its own) were then copied
/// and freed again for every request, CORS or not. Now a request clones
/// two reference counts, and only a CORS request copies the settings.
#[derive(Clone)]
struct Inner {
    routes: Router,
    cors: Arc<CorsLayer>,
}

/// The whole API as one tower service: [`edge`] around CORS around the
/// routes (see [`apply`]). Cloned per request, like any tower service
/// shared by concurrent requests.
#[derive(Clone)]
pub struct Edge {
    app: Arc<App>,
    routes: Arc<RouteTemplates>,
    inner: Inner,
}

impl tower::Service<Request> for Edge {
    type Response = Response;
    type Error = Infallible;
    /// [`Edge::handle`]'s future, its answer as a `Result`.
    type Future = futures_util::future::Map<
        BoxFuture<'static, Response>,
        fn(Response) -> Result<Response, Infallible>,
    >;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), Infallible>> {
        // The routes are always ready (axum's `Router` is), and so is CORS
        // around them; each request calls its own clone ([`Edge::handle`]).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.handle(request).map(Ok)
    }
}

impl Edge {
    /// The answer to `request`, as `Service::call` gives it, but from a
    /// shared `Edge`: the future owns what it needs (the app, the routes
    /// and the shared CORS settings, each a reference count cloned here),
    /// so a caller that keeps one `Edge` (the Worker keeps one per
    /// isolate) need not clone the whole service per request only for
    /// `call`'s `&mut self`.
    pub fn handle(&self, mut request: Request) -> BoxFuture<'static, Response> {
        // The API sees the headers it reads and no others, natively as in
        // the Worker (see `request_headers`); telemetry too.
        crate::request_headers::keep_only_read(request.headers_mut());
        // What telemetry needs from the request, taken only when a sink will
        // receive it (nothing at all on the hot path otherwise).
        let seen = telemetry::Seen::capture(&self.app, &self.routes, &request);
        Box::pin(edge(self.app.clone(), request, self.inner.clone(), seen))
    }
}

/// CORS for the browser origins of this environment (the Pages hostnames
/// plus configured extras), exact matches only. Credentials are allowed so
/// that Access cookies reach the API; with credentials, the allowed origin
/// is always echoed, never `*`.
fn cors(app: &App) -> CorsLayer {
    // A predicate over a shared list rather than `AllowOrigin::list`: the
    // service is cloned for every request, and a list would be a fresh
    // `Vec` each time.
    let origins: Arc<[HeaderValue]> = app.config.allowed_origins.clone().into();
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            origins.contains(origin)
        }))
        .allow_credentials(true)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::POST,
            Method::DELETE,
        ])
        .allow_headers([
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            header::AUTHORIZATION,
        ])
        .expose_headers([
            header::ETAG,
            header::RETRY_AFTER,
            X_REQUEST_ID,
            SERVER_TIMING,
            HeaderName::from_static("ratelimit-limit"),
            HeaderName::from_static("ratelimit-remaining"),
            HeaderName::from_static("ratelimit-reset"),
        ])
        .max_age(std::time::Duration::from_secs(7200))
}

/// The outermost layer: assigns the request id, measures the request,
/// sorts binding from internet traffic ([`trust::classify`]), cuts the
/// request off at its deadline (504), turns axum's bare 405 into a problem
/// document and stamps `instance`.
async fn edge(
    app: Arc<App>,
    mut request: Request,
    inner: Inner,
    seen: Option<telemetry::Seen>,
) -> Response {
    let started = (app.platform.now_millis)();
    let id = request_id(&app, request.headers());
    let timings = Timings::default();
    request.extensions_mut().insert(timings.clone());
    if let Some(seen) = &seen {
        request.extensions_mut().insert(seen.notes());
    }

    // For the answers the edge makes itself, which the CORS layer around
    // the routes never sees ([`through_cors`]); a preflight is the layer's
    // alone to answer.
    let actual_origin = match request.method() {
        &Method::OPTIONS => None,
        method => request
            .headers()
            .get(header::ORIGIN)
            .map(|origin| (method.clone(), origin.clone())),
    };
    let secret = app.config.binding_secret.as_deref();
    // With whether the answer came from the routes (through CORS, when
    // the request is a CORS one) or from the edge itself.
    let (mut response, routed) = match trust::classify(request.headers_mut(), secret) {
        Err(refused) => (Problem::from(refused).into_response(), false),
        Ok((caller, client_ip)) => {
            if app.missed_drain.is_due() {
                crate::pages::missed::drain_after_response(
                    &app,
                    request.extensions().get::<outbound::Background>(),
                );
            }
            let timer = (app.platform.request_timer)();
            let redis = RequestRedis::new(&app, timer.clone());
            // Only what routes read goes into the extensions: each is a
            // boxed value in a map made per request.
            request.extensions_mut().insert(caller);
            request.extensions_mut().insert(redis.clone());
            let limit = Duration::from_millis(app.config.request_deadline_ms);
            // Whether the deadline passed after the body had come: a 504
            // then, and a 408 while the client was still sending it.
            let body_read = AtomicBool::new(false);
            let handled = async {
                let request = match read_body(request).await {
                    Ok(request) => request,
                    Err(problem) => return (problem.into_response(), false),
                };
                body_read.store(true, Ordering::Relaxed);
                let Some(class) = limits::class(&app.config.rate_limits, &request) else {
                    return (inner_call(inner, request).await, true);
                };
                let started = (app.platform.now_millis)();
                // Boxed: its state (a Redis connection and exchange) would
                // otherwise make every request's future larger, /healthz's
                // and preflights' too.
                let ahead = crate::pages::cached::lookup_ahead(&app, &request);
                let decision =
                    Box::pin(limits::check(&app, &redis, class, &client_ip, ahead)).await;
                timings.record("ratelimit", (app.platform.now_millis)() - started);
                match decision {
                    Some(Err(problem)) => (problem.into_response(), false),
                    Some(Ok(decision)) => {
                        let mut response = inner_call(inner, request).await;
                        limits::add_headers(response.headers_mut(), &decision);
                        (response, true)
                    }
                    None => (inner_call(inner, request).await, true),
                }
            };
            outbound::deadline(timer.as_ref(), limit, handled)
                .await
                .unwrap_or_else(|_| {
                    let answer = if body_read.load(Ordering::Relaxed) {
                        timed_out(limit)
                    } else {
                        body_timed_out(limit)
                    };
                    (answer, false)
                })
        }
    };
    if !routed {
        response = through_cors(&app, actual_origin, response).await;
    }

    if response.status() == StatusCode::METHOD_NOT_ALLOWED
        && response.extensions().get::<Problem>().is_none()
    {
        response = method_not_allowed(response);
    }
    if let Some(problem) = response.extensions_mut().remove::<Problem>() {
        response = finish_problem(&app, &id, response, problem);
    }

    let total = (app.platform.now_millis)() - started;
    if let Some(seen) = seen {
        report(&app, seen, &id, &timings, &response, started, total);
    }
    let headers = response.headers_mut();
    // tower-http's CORS layer adds these to every answer; without an
    // allowed origin (no Origin at all, or one not on the list) they mean
    // nothing to anyone, and each header costs the Worker time to hand over.
    if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        headers.remove(header::ACCESS_CONTROL_ALLOW_CREDENTIALS);
        headers.remove(header::ACCESS_CONTROL_EXPOSE_HEADERS);
    }
    // Room for what follows at once: the map grows (rehashing every
    // header) each time it fills, and a response arrives here with only
    // its own few headers.
    headers.reserve(SECURITY_HEADERS.len() + 2);
    for (name, value) in SECURITY_HEADERS {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        headers.insert(X_REQUEST_ID, value);
    }
    if let Ok(value) = HeaderValue::from_str(&timings.header(total)) {
        headers.insert(SERVER_TIMING, value);
    }
    response
}

/// What tower-http's CORS layer sends as `Vary` (its default: the request
/// headers a CORS answer depends on), for the requests that skip the layer
/// (see [`inner_call`]; a test checks it against the layer's own).
const CORS_VARY: HeaderValue = HeaderValue::from_static(
    "origin, access-control-request-method, access-control-request-headers",
);

/// Hands `request` on to the service inside the edge.
///
/// A request without an `Origin` that is not an `OPTIONS` is no CORS
/// request, and for it the CORS layer only adds `Vary` (its credentials
/// and exposed headers mean nothing without an allowed origin, and the edge
/// drops them): it goes to the routes directly and gets that `Vary` here.
/// The layer builds a header map and joins its `Vary` anew for every
/// request it sees, which health checks, monitors and server-to-server
/// callers need not pay for. An `OPTIONS` always goes through the layer,
/// which answers it as a preflight with or without an `Origin`.
async fn inner_call(inner: Inner, request: Request) -> Response {
    let Inner { mut routes, cors } = inner;
    if request.method() != Method::OPTIONS && !request.headers().contains_key(header::ORIGIN) {
        let mut response = ready_call(&mut routes, request).await;
        response.headers_mut().append(header::VARY, CORS_VARY);
        return response;
    }
    let mut cors: Cors<Router> = tower::Layer::layer(cors.as_ref(), routes);
    ready_call(&mut cors, request).await
}

/// An answer the edge made itself (a refused binding token, a body too
/// large or too slow, a rate limit or a limiter that fails closed, the
/// deadline), given what the CORS layer gives a routed one: a browser on
/// an allowed origin must be able to read it (a 429's `Retry-After` and
/// `RateLimit-*` above all), and it is a network error to the browser
/// without `Access-Control-Allow-Origin`. `origin` is the request's
/// method and `Origin`, absent for a request without one and for a
/// preflight; those get the `Vary` alone, as in [`inner_call`].
///
/// The layer itself makes the headers, around a service that hands back
/// the answer, so that they are the same as on every other answer. These
/// answers are rare: the layer is built anew for each.
async fn through_cors(
    app: &App,
    origin: Option<(Method, HeaderValue)>,
    mut answer: Response,
) -> Response {
    let Some((method, origin)) = origin else {
        answer.headers_mut().append(header::VARY, CORS_VARY);
        return answer;
    };
    let mut answer = Some(answer);
    let made = tower::service_fn(move |_: Request| {
        let answer = answer
            .take()
            .expect("the CORS layer calls its service once");
        std::future::ready(Ok::<_, Infallible>(answer))
    });
    let mut cors = tower::Layer::layer(&cors(app), made);
    let mut request = Request::new(axum::body::Body::empty());
    *request.method_mut() = method;
    request.headers_mut().insert(header::ORIGIN, origin);
    ready_call(&mut cors, request).await
}

/// `service`'s answer to `request`. Always ready (see `Edge::poll_ready`),
/// asked anyway as tower's contract wants; the error types are Infallible.
async fn ready_call<S>(service: &mut S, request: Request) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let Ok(()) = std::future::poll_fn(|cx| service.poll_ready(cx)).await;
    let Ok(response) = service.call(request).await;
    response
}

// What follows is the edge's work for some requests only, kept out of
// line: every request runs through `edge`, and the less code its common
// path touches, the less a cold request pays for fetching it.

/// The id of the request: Cloudflare's `cf-ray` when it looks like one,
/// otherwise 32 random hex digits (with the `hex` crate: `format!` would
/// pull the formatting machinery into every request). A client's own
/// `x-request-id` is not trusted (it could collide or mislead the logs).
fn request_id(app: &App, headers: &axum::http::HeaderMap) -> String {
    if let Some(ray) = headers
        .get(CF_RAY)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
    {
        return ray.to_owned();
    }
    let mut random = [0u8; 16];
    random[..8].copy_from_slice(&(app.platform.random_u64)().to_be_bytes());
    random[8..].copy_from_slice(&(app.platform.random_u64)().to_be_bytes());
    hex::encode(random)
}

/// The 504 of a request that ran past its deadline.
#[cold]
#[inline(never)]
fn timed_out(limit: Duration) -> Response {
    Problem::new(
        ProblemType::Timeout,
        format!(
            "The request did not finish within {} ms; nothing was changed \
             unless a later read shows it.",
            limit.as_millis()
        ),
    )
    .into_response()
}

/// The deadline passed while the client was still sending its body (it
/// stalled, or trickles): nothing was read, so nothing was done.
#[cold]
#[inline(never)]
fn body_timed_out(limit: Duration) -> Response {
    Problem::new(
        ProblemType::RequestTimeout,
        format!(
            "The request body did not arrive within {} ms; nothing was changed.",
            limit.as_millis()
        ),
    )
    .into_response()
}

/// axum's bare 405 as a problem document, keeping its `Allow` and the
/// other headers the layers set.
#[cold]
#[inline(never)]
fn method_not_allowed(mut response: Response) -> Response {
    let allow = response.headers().get(header::ALLOW).cloned();
    let detail = match allow.as_ref().and_then(|a| a.to_str().ok()) {
        Some(allowed) => format!("This resource supports {allowed}."),
        None => "This resource does not support the method.".to_owned(),
    };
    let mut problem = Problem::new(ProblemType::MethodNotAllowed, detail);
    if let Some(allow) = allow {
        problem = problem.with_header(header::ALLOW, allow);
    }
    let headers = std::mem::take(response.headers_mut());
    let mut response = problem.into_response();
    for (name, value) in headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            response.headers_mut().entry(name).or_insert(value.clone());
        }
    }
    response
}

/// A problem document's `instance` (the request id), and its internal
/// cause to the log under that id (the client sees only the id).
#[inline(never)]
fn finish_problem(app: &App, id: &str, response: Response, mut problem: Problem) -> Response {
    problem.instance = Some(id.to_owned());
    if let Some(cause) = &problem.internal {
        (app.platform.log_error)(&format!(
            "request {id}: {} {}: {cause}",
            problem.kind.status().as_u16(),
            problem.kind.uri()
        ));
    }
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let mut response = Response::from_parts(parts, problem.body().into());
    response.extensions_mut().insert(problem);
    response
}

/// Hands the finished request to telemetry (only when a sink is set).
#[cold]
#[inline(never)]
fn report(
    app: &Arc<App>,
    seen: telemetry::Seen,
    id: &str,
    timings: &Timings,
    response: &Response,
    started: f64,
    total: f64,
) {
    let problem = response.extensions().get::<Problem>();
    telemetry::report(
        app,
        seen,
        telemetry::Outcome {
            request_id: id.to_owned(),
            status: response.status().as_u16(),
            started_ms: started,
            duration_ms: total,
            dependencies: timings.entries(),
            problem: problem.map(|p| p.kind.uri()),
            cause: problem.and_then(|p| p.internal.clone()),
        },
    );
}

/// The largest request body any route accepts, enforced here before
/// routing ([`read_body`]). A route that needs a lower one sets it with
/// axum's `DefaultBodyLimit` on that route alone: a layer on a whole
/// router wraps each of its routes and costs every request to them a
/// boxed service level and an extension insert.
pub const MAX_REQUEST_BODY_BYTES: usize = 1024 * 1024;
/// How much of a larger body is read and thrown away before answering 413.
const DRAIN_BYTES: usize = 32 * 1024 * 1024;

/// Reads the whole request body before routing. The API's bodies are small
/// JSON documents that handlers buffer anyway; reading them here means no
/// response ever goes out while the client is still sending, which leaves
/// HTTP/1.1 connections in a state proxies handle badly (`wrangler dev`'s
/// answers the next request on that connection with 503). A body over
/// [`MAX_REQUEST_BODY_BYTES`] is drained (up to 32 MiB) and refused.
async fn read_body(request: Request) -> Result<Request, Problem> {
    use axum::body::HttpBody as _;
    use futures_util::StreamExt;

    // Most requests have none (GET, HEAD, OPTIONS): nothing to stream.
    if request.body().is_end_stream() {
        return Ok(request);
    }

    let (parts, body) = request.into_parts();
    let mut stream = body.into_data_stream();
    let mut buffer = bytes::BytesMut::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| {
            Problem::new(
                ProblemType::BadRequest,
                "The request body could not be read.",
            )
        })?;
        total += chunk.len();
        if total <= MAX_REQUEST_BODY_BYTES {
            buffer.extend_from_slice(&chunk);
        } else if total > DRAIN_BYTES {
            break;
        }
    }
    if total > MAX_REQUEST_BODY_BYTES {
        return Err(Problem::new(
            ProblemType::PayloadTooLarge,
            format!("The body is larger than {MAX_REQUEST_BODY_BYTES} bytes."),
        ));
    }
    Ok(Request::from_parts(
        parts,
        axum::body::Body::from(buffer.freeze()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests without an `Origin` skip the CORS layer ([`inner_call`]):
    /// the `Vary` the edge gives them must be the one the layer sends, and
    /// every answer carries it once, whichever way it went.
    #[tokio::test]
    async fn requests_that_skip_the_cors_layer_get_the_vary_it_sends() {
        use axum::body::Body;
        use tower::ServiceExt;

        const ALLOWED: &str = "https://www.example.com";
        let app = App::new(
            |name| (name == "ALLOWED_ORIGINS").then(|| ALLOWED.to_owned()),
            crate::Platform::native(),
        );
        let vary = |response: &Response| -> Vec<HeaderValue> {
            response
                .headers()
                .get_all(header::VARY)
                .iter()
                .cloned()
                .collect()
        };

        let layer_alone = Router::new()
            .route("/", axum::routing::get(|| async { "ok" }))
            .layer(cors(&app));
        let response = layer_alone
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(vary(&response), [CORS_VARY], "the layer's own Vary");

        let requests = [
            ("GET", "/healthz", None, StatusCode::OK),
            ("GET", "/healthz", Some(ALLOWED), StatusCode::OK),
            (
                "GET",
                "/healthz",
                Some("https://evil.example"),
                StatusCode::OK,
            ),
            ("GET", "/nope", None, StatusCode::NOT_FOUND),
            ("PUT", "/healthz", None, StatusCode::METHOD_NOT_ALLOWED),
            ("OPTIONS", "/healthz", None, StatusCode::OK),
        ];
        for (method, path, origin, status) in requests {
            let mut request = Request::builder().method(method).uri(path);
            if let Some(origin) = origin {
                request = request.header(header::ORIGIN, origin);
            }
            let request = request.body(Body::empty()).unwrap();
            let response = crate::router(app.clone()).oneshot(request).await.unwrap();
            let what = format!("{method} {path} from {origin:?}");
            assert_eq!(response.status(), status, "{what}");
            assert_eq!(vary(&response), [CORS_VARY], "{what}");
            let allowed = response
                .headers()
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .is_some();
            assert_eq!(allowed, origin == Some(ALLOWED), "{what}");
        }
    }

    /// What the edge answers itself (here a limiter that fails closed,
    /// and a body over the limit) never reaches the CORS layer around the
    /// routes; a browser on an allowed origin must still be able to read
    /// it, its `Retry-After` included.
    #[tokio::test]
    async fn answers_the_edge_makes_itself_carry_cors_for_an_allowed_origin() {
        use axum::body::Body;
        use tower::ServiceExt;

        const ALLOWED: &str = "https://www.example.com";
        let app = App::new(
            |name| match name {
                "ALLOWED_ORIGINS" => Some(ALLOWED.to_owned()),
                // No Redis to count in: every limited request is refused.
                "RATE_LIMIT_POLICY" => Some("fail-closed".to_owned()),
                _ => None,
            },
            crate::Platform::native(),
        );
        let too_large = || vec![b'x'; 2 << 20];
        let requests = [
            (
                "GET",
                "/v1/pages",
                Vec::new(),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                "PUT",
                "/v1/pages/a",
                too_large(),
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
        ];
        for (method, path, body, status) in requests {
            for origin in [Some(ALLOWED), Some("https://evil.example"), None] {
                let mut request = Request::builder().method(method).uri(path);
                if let Some(origin) = origin {
                    request = request.header(header::ORIGIN, origin);
                }
                let request = request.body(Body::from(body.clone())).unwrap();
                let response = crate::router(app.clone()).oneshot(request).await.unwrap();
                let what = format!("{method} {path} from {origin:?}");
                assert_eq!(response.status(), status, "{what}");
                let headers = response.headers();
                let vary: Vec<_> = headers.get_all(header::VARY).iter().collect();
                assert_eq!(vary, [CORS_VARY], "{what}");
                let allowed = headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN);
                let exposed = headers.get(header::ACCESS_CONTROL_EXPOSE_HEADERS);
                if origin == Some(ALLOWED) {
                    assert_eq!(allowed.unwrap(), ALLOWED, "{what}");
                    assert_eq!(
                        headers[header::ACCESS_CONTROL_ALLOW_CREDENTIALS],
                        "true",
                        "{what}"
                    );
                    assert!(
                        exposed.unwrap().to_str().unwrap().contains("retry-after"),
                        "{what}"
                    );
                } else {
                    assert!(allowed.is_none() && exposed.is_none(), "{what}");
                }
                assert!(headers.contains_key(X_REQUEST_ID), "{what}");
                assert_eq!(
                    headers[header::CONTENT_TYPE],
                    "application/problem+json",
                    "{what}"
                );
            }
        }
    }

    #[test]
    fn durations_have_one_decimal_rounded_like_format() {
        for millis in [0.0, 0.04, 0.25, 1.25, 3.75, 12.34, 999.96, 86_400_000.0] {
            let mut written = String::new();
            push_tenths(&mut written, millis);
            assert_eq!(written, format!("{millis:.1}"), "{millis}");
        }
        let mut written = String::new();
        push_tenths(&mut written, -2.0);
        assert_eq!(
            written, "0.0",
            "a clock that went back is no negative duration"
        );
    }

    #[test]
    fn generated_request_ids_are_32_hex_digits_and_a_plausible_ray_is_kept() {
        let app = App::new(|_| None, crate::Platform::native());
        let mut headers = axum::http::HeaderMap::new();
        let id = request_id(&app, &headers);
        assert_eq!(id.len(), 32);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(id, request_id(&app, &headers));
        headers.insert(CF_RAY, HeaderValue::from_static("8f1e2d3c4b5a6978-AMS"));
        assert_eq!(request_id(&app, &headers), "8f1e2d3c4b5a6978-AMS");
        headers.insert(CF_RAY, HeaderValue::from_static("has space"));
        assert_eq!(request_id(&app, &headers).len(), 32);
    }

    #[test]
    fn timings_sum_repeats_and_end_with_total() {
        let timings = Timings::default();
        timings.record("db", 1.25);
        timings.record("cache", 0.5);
        timings.record("db", 2.0);
        assert_eq!(
            timings.header(9.0),
            "db;dur=3.2, cache;dur=0.5, total;dur=9.0"
        );
        timings.record_described("cache", Some("hit"), 0.25);
        assert_eq!(
            timings.header(9.0),
            "db;dur=3.2, cache;desc=\"hit\";dur=0.8, total;dur=9.0"
        );
    }
}
