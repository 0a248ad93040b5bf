//! The write routes' request decoding under arbitrary input (feature
//! `testing`): a router whose database, Redis and B2 are on port 1, where
//! nothing listens (a valid request gets as far as the database and is
//! answered 503), a signed token for it, and the rules that say whether a
//! request is valid, decided from the documented rules (the OpenAPI
//! schema's limits and the slug pattern in the API's own /openapi.json)
//! independently of the handlers. Shared by the property test
//! (`tests/fuzz.rs`) and the coverage-guided target in `fuzz/`, so both
//! check the same property. Never enabled in the Worker.

use std::sync::OnceLock;

use access::testing::{user_claims, SigningKey};
use axum::body::Body;
use axum::http::{header, Request};
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};
use tower::ServiceExt;

use crate::request_headers::READ;
use crate::{App, Platform};

pub const AUD: &str = "api-aud";
/// The secret the fixture shares with its Pages shim (`BINDING_SECRET`).
pub const BINDING_SECRET: &str = "fuzz-binding-secret-7c1e0d95a4b8f236";
/// `MAX_REQUEST_BODY_BYTES`: larger requests are 413.
pub const MAX_REQUEST: usize = crate::layers::MAX_REQUEST_BODY_BYTES;
pub const MAX_TITLE: usize = crate::pages::MAX_TITLE_CHARS;
pub const MAX_BODY: usize = crate::pages::MAX_BODY_CHARS;
pub const MAX_FILE_NAME: usize = crate::uploads::MAX_FILE_NAME_CHARS;
/// The default `UPLOAD_MAX_BYTES` (the fixture does not set it).
pub fn max_upload() -> u64 {
    crate::config::Uploads::default().max_bytes
}
pub const TYPES: [&str; 6] = crate::config::DEFAULT_UPLOAD_CONTENT_TYPES;

/// The database, Redis and B2 on port 1 of this machine, where nothing
/// listens: a request that needs one fails fast with 503.
pub const UNREACHABLE_DEPENDENCIES: [(&str, &str); 7] = [
    ("TIDB_DATABASE_URL", "mysql://app:pw@127.0.0.1:1/app"),
    ("REDIS_URL", "redis://:pw@127.0.0.1:1"),
    ("B2_ENDPOINT", "https://127.0.0.1:1"),
    ("B2_REGION", "us-west-004"),
    ("B2_BUCKET", "files"),
    ("B2_KEY_ID", "key"),
    ("B2_APPLICATION_KEY", "b2-pw"),
];

pub struct Fixture {
    pub runtime: tokio::runtime::Runtime,
    pub router: crate::Api,
    pub token: String,
    /// The slug rule as the API documents it (the `slug` parameter's
    /// pattern in its own /openapi.json), not a copy of the code's check.
    pub slug: regex::Regex,
}

/// One runtime, JWKS server, router and token for all cases.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let key = SigningKey::generate("fuzz-key");
        let jwks = json!({ "keys": [key.jwk()] });
        let team = runtime.block_on(async {
            // The team's certs endpoint, answering GETs on any path (no
            // router: the API's routes are only ever added documented).
            let certs = axum::routing::get(move || async move { axum::Json(jwks) });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, certs.into_make_service()).await });
            format!("http://{addr}")
        });
        let vars: std::collections::HashMap<String, String> = [
            ("ENVIRONMENT", "dev"),
            ("ALLOWED_ORIGINS", "http://localhost:8788"),
            ("ACCESS_TEAM_DOMAIN", team.as_str()),
            ("ACCESS_AUD", AUD),
            ("BINDING_SECRET", BINDING_SECRET),
        ]
        .iter()
        .chain(&UNREACHABLE_DEPENDENCIES)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let router = crate::router(App::new(|n| vars.get(n).cloned(), Platform::native()));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        // Valid for the whole run, however long.
        let mut claims = user_claims(&team, AUD, "ada@example.com", now);
        claims["exp"] = json!(now + 24 * 3600);
        let token = key.sign(&claims);
        let document: Value = runtime.block_on(async {
            let response = router
                .clone()
                .oneshot(
                    axum::http::Request::get("/openapi.json")
                        .body(axum::body::Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            serde_json::from_slice(
                &axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .unwrap(),
            )
            .unwrap()
        });
        let pattern = document["paths"]["/v1/pages/{slug}"]["put"]["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == "slug"))
            .and_then(|p| p["schema"]["pattern"].as_str())
            .expect("the slug parameter documents its pattern")
            .to_owned();
        Fixture {
            runtime,
            router,
            token,
            slug: regex::Regex::new(&pattern).unwrap(),
        }
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Route {
    Page,
    Upload,
}

#[derive(Debug, Clone)]
pub enum Auth {
    Token,
    None,
    Garbage(String),
}

#[derive(Debug, Clone)]
pub struct Case {
    pub route: Route,
    pub slug: String,
    pub auth: Auth,
    /// The header value, and whether axum takes it as JSON.
    pub content_type: Option<(&'static str, bool)>,
    /// `If-Match`/`If-None-Match` on page writes, whose own rules are not
    /// modelled here: a case with one is neither surely valid nor surely not.
    pub precondition: Option<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// What the rules say about a case.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Valid,
    Invalid,
    Unknown,
}

impl Case {
    pub fn verdict(&self) -> Verdict {
        let ok = matches!(self.auth, Auth::Token)
            && self.body.len() <= MAX_REQUEST
            && matches!(self.content_type, Some((_, true)))
            && (self.route == Route::Upload || valid_slug(&self.slug))
            && !has_duplicate_keys(&self.body)
            && match serde_json::from_slice::<Value>(&self.body) {
                Ok(Value::Object(doc)) => match self.route {
                    Route::Page => valid_page(&doc),
                    Route::Upload => valid_upload(&doc),
                },
                _ => false,
            };
        match (ok, &self.precondition) {
            (false, _) => Verdict::Invalid,
            (true, None) => Verdict::Valid,
            (true, Some(_)) => Verdict::Unknown,
        }
    }

    pub fn request(&self) -> Request<Body> {
        let mut request = match self.route {
            Route::Page => Request::put(format!("/v1/pages/{}", self.slug)),
            Route::Upload => Request::post("/v1/uploads"),
        };
        match &self.auth {
            Auth::Token => {
                request = request.header("cf-access-jwt-assertion", &fixture().token);
            }
            Auth::None => {}
            Auth::Garbage(token) => request = request.header("cf-access-jwt-assertion", token),
        }
        if let Some((content_type, _)) = self.content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        if let Some((name, value)) = &self.precondition {
            request = request.header(*name, value);
        }
        request.body(Body::from(self.body.clone())).unwrap()
    }
}

/// Whether the body is a JSON object naming a key twice (a `Value`
/// keeps only the last; the routes' types refuse the document).
pub fn has_duplicate_keys(body: &[u8]) -> bool {
    struct Keys(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Visitor;
            impl<'de> serde::de::Visitor<'de> for Visitor {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some((key, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                        keys.push(key);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(Visitor)
        }
    }
    match serde_json::from_slice::<Keys>(body) {
        Ok(Keys(mut keys)) => {
            let all = keys.len();
            keys.sort();
            keys.dedup();
            keys.len() != all
        }
        Err(_) => false,
    }
}

pub fn valid_slug(slug: &str) -> bool {
    fixture().slug.is_match(slug)
}

/// The schema of `PageDraft`: exactly `title` and `body`.
pub fn valid_page(doc: &Map<String, Value>) -> bool {
    let (Some(Value::String(title)), Some(Value::String(body))) =
        (doc.get("title"), doc.get("body"))
    else {
        return false;
    };
    doc.len() == 2
        && body.chars().count() <= MAX_BODY
        && !title.trim().is_empty()
        && title.chars().count() <= MAX_TITLE
        && !title.chars().any(char::is_control)
}

/// The schema of `UploadRequest`, with the default allowlist and limit.
pub fn valid_upload(doc: &Map<String, Value>) -> bool {
    let (Some(Value::String(name)), Some(Value::String(content_type)), Some(size)) = (
        doc.get("file_name"),
        doc.get("content_type"),
        doc.get("size_bytes").and_then(Value::as_u64),
    ) else {
        return false;
    };
    let trimmed = name.trim();
    doc.len() == 3
        && !trimmed.is_empty()
        && trimmed != "."
        && trimmed != ".."
        && name.chars().count() <= MAX_FILE_NAME
        && !name
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\')
        && TYPES.contains(&content_type.to_ascii_lowercase().as_str())
        && (1..=max_upload()).contains(&size)
}

/// The largest problem document the API may answer with: a refusal names
/// what is wrong, it does not repeat the request.
pub const MAX_PROBLEM_BYTES: usize = 2048;

/// An answer of the router, read whole.
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub headers: http::HeaderMap,
    pub body: bytes::Bytes,
}

/// Sends `request` through the fixture's router.
pub fn send(request: Request<Body>) -> Result<Answer, String> {
    let fixture = fixture();
    fixture.runtime.block_on(async {
        let response = fixture
            .router
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| format!("the router failed: {e}"))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("the body failed: {e}"))?
            .to_bytes();
        Ok(Answer {
            status,
            content_type,
            headers: parts.headers,
            body,
        })
    })
}

/// The problem document `answer` must be: RFC 9457 JSON of at most
/// [`MAX_PROBLEM_BYTES`] with a `type`, a `title` and the HTTP status as
/// its `status`.
pub fn problem_of(answer: &Answer) -> Result<Value, String> {
    let status = answer.status;
    if answer.content_type.as_deref() != Some("application/problem+json") {
        return Err(format!("{status} answered as {:?}", answer.content_type));
    }
    if answer.body.len() > MAX_PROBLEM_BYTES {
        return Err(format!(
            "a problem of {} bytes: {}",
            answer.body.len(),
            String::from_utf8_lossy(&answer.body[..MAX_PROBLEM_BYTES])
        ));
    }
    let problem: Value = serde_json::from_slice(&answer.body)
        .map_err(|e| format!("{status}: the problem is not JSON ({e})"))?;
    if !problem["type"].is_string() || !problem["title"].is_string() {
        return Err(format!("no type or title: {problem}"));
    }
    if problem["status"].as_u64() != Some(u64::from(status)) {
        return Err(format!("answered {status} with {problem}"));
    }
    Ok(problem)
}

/// Sends `case` through the router and checks the property the write
/// routes keep on any request: every answer is a problem document
/// ([`problem_of`]); a request the documented rules call invalid is
/// refused (400/401/413/415/422, or 404 for a slug that is no route)
/// before any dependency is called; and a valid one is not refused at all
/// but reaches the database, which is down (503). `Err` says what broke.
pub fn check_write(case: &Case) -> Result<(), String> {
    let answer = send(case.request())?;
    let status = answer.status;
    let verdict = case.verdict();
    if status < 400 {
        return Err(format!("{status} for a case judged {verdict:?}"));
    }
    let problem = problem_of(&answer)?;
    let mut refused = vec![400, 401, 413, 415, 422];
    if case.route == Route::Page && !valid_slug(&case.slug) {
        // `/v1/pages/` and `/v1/pages/a/b` are no route at all.
        refused.push(404);
    }
    let expected = match verdict {
        Verdict::Valid => status == 503,
        Verdict::Invalid => refused.contains(&status),
        Verdict::Unknown => refused.contains(&status) || status == 503,
    };
    if !expected {
        return Err(format!("{status} for a case judged {verdict:?}: {problem}"));
    }
    Ok(())
}

/// A request of any shape, as plain data for generators (the property
/// test's strategies, the fuzz target's `Arbitrary` input).
#[derive(Debug, Clone)]
pub struct AnyRequest {
    pub method: String,
    /// The path, and the query after `?` if any.
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
    /// Add the fixture's genuine Access token.
    pub token: bool,
    /// Add the binding secret, as the Pages shim does.
    pub binding: bool,
    pub body: Vec<u8>,
}

/// The method names [`AnyRequest`] generators draw from: every one the API
/// routes, and some it does not.
pub const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PURGE",
];

/// The paths [`AnyRequest`] generators start from: every route's template
/// with `{...}` to fill in.
pub const PATH_TEMPLATES: [&str; 10] = [
    "/healthz",
    "/readyz",
    "/openapi.json",
    "/v1/admin/whoami",
    "/v1/files/{}",
    "/v1/pages",
    "/v1/pages/{}",
    "/v1/pages/{}/revisions",
    "/v1/uploads",
    "/v1/uploads/{}/complete",
];

/// Request headers no code of the API reads: it must ignore them.
const IGNORED_HEADERS: [&str; 4] = ["x-request-id", "traceparent", "accept", "authorization"];

/// The request headers [`AnyRequest`] generators name most often: every
/// one the API reads ([`crate::request_headers::READ`]), then some it must
/// ignore.
pub const HEADER_NAMES: [&str; READ.len() + IGNORED_HEADERS.len()] = {
    let mut names = [""; READ.len() + IGNORED_HEADERS.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = if i < READ.len() {
            READ[i]
        } else {
            IGNORED_HEADERS[i - READ.len()]
        };
        i += 1;
    }
    names
};

impl AnyRequest {
    /// The request, or `None` when no client could send it (a method, URI
    /// or header the HTTP types refuse).
    pub fn to_request(&self) -> Option<Request<Body>> {
        let mut request = Request::builder()
            .method(http::Method::from_bytes(self.method.as_bytes()).ok()?)
            .uri(self.path_and_query.parse::<http::Uri>().ok()?);
        for (name, value) in &self.headers {
            let name = http::HeaderName::from_bytes(name.as_bytes()).ok()?;
            let value = http::HeaderValue::from_str(value).ok()?;
            request = request.header(name, value);
        }
        if self.token {
            request = request.header("cf-access-jwt-assertion", &fixture().token);
        }
        if self.binding {
            request = request.header(crate::trust::BINDING_TOKEN, BINDING_SECRET);
        }
        request.body(Body::from(self.body.clone())).ok()
    }
}

/// Paths that may answer 2xx while the database, Redis and B2 are down:
/// they need none of them (`whoami` needs only Access, whose certs the
/// fixture serves). Everything else needs one or does not exist.
const ANSWERABLE_WITHOUT_DEPENDENCIES: [&str; 3] =
    ["/healthz", "/openapi.json", "/v1/admin/whoami"];

/// Whether `text` holds `secret`.
fn shows(text: &[u8], secret: &str) -> bool {
    text.windows(secret.len())
        .any(|window| window == secret.as_bytes())
}

/// Any request at all (method, path and query, headers, body, the Access
/// token and the binding secret or not), with every dependency down: no
/// answer shows the binding secret or the token (unless the request put it
/// elsewhere too, where an answer may quote it back to its sender); the
/// router answers it without a 500; every answer of
/// 400 or more is a problem document ([`problem_of`]), but for `/readyz`'s
/// documented report (503, as the database is down); and nothing is
/// acknowledged that needed a dependency, so only an `OPTIONS` (a
/// preflight or not: it changes nothing), or a `GET` or `HEAD` of a path in
/// [`ANSWERABLE_WITHOUT_DEPENDENCIES`], may succeed
/// (a successful write here would claim what cannot have happened). The
/// test-only routes (`/_test/...`, which exist to fail) are left out.
pub fn check_any_request(request: Request<Body>) -> Result<(), String> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    if path.starts_with("/_test/") {
        return Ok(());
    }
    let (parts, body) = request.into_parts();
    let body = fixture()
        .runtime
        .block_on(body.collect())
        .map_err(|e| format!("the request body failed: {e}"))?
        .to_bytes();
    // A secret the request carries only in its own header is one the
    // answer must not show; one it also put in its path, another header or
    // its body may be echoed back to it (a 404 quotes the path).
    let secrets: Vec<&str> = [
        (BINDING_SECRET, crate::trust::BINDING_TOKEN.as_str()),
        (fixture().token.as_str(), "cf-access-jwt-assertion"),
    ]
    .into_iter()
    .filter(|(secret, own_header)| {
        let elsewhere = shows(parts.uri.to_string().as_bytes(), secret)
            || shows(&body, secret)
            || parts
                .headers
                .iter()
                .any(|(name, value)| name != own_header && shows(value.as_bytes(), secret));
        !elsewhere
    })
    .map(|(secret, _)| secret)
    .collect();
    let answer = send(Request::from_parts(parts, Body::from(body)))?;
    for secret in secrets {
        let named =
            |what: &str| format!("{method} {path}: its {what} shows a secret the request sent");
        if shows(&answer.body, secret) {
            return Err(named("body"));
        }
        if let Some((name, _)) = answer
            .headers
            .iter()
            .find(|(_, value)| shows(value.as_bytes(), secret))
        {
            return Err(named(&format!("header {name}")));
        }
    }
    let status = answer.status;
    if status == 500 {
        return Err(format!(
            "500 for {method} {path}: {}",
            String::from_utf8_lossy(&answer.body)
        ));
    }
    // A refusal before the handler (a wrong binding token, for one) is a
    // problem document on `/readyz` too.
    let readiness = matches!(method, http::Method::GET | http::Method::HEAD)
        && path == "/readyz"
        && !(400..500).contains(&status);
    if readiness {
        // Documented: a readiness report, 503 when a required check fails.
        if status != 503 || answer.content_type.as_deref() != Some("application/json") {
            return Err(format!(
                "{status} {:?} for {method} /readyz",
                answer.content_type
            ));
        }
    } else if status >= 400 {
        problem_of(&answer).map_err(|e| format!("{method} {path}: {e}"))?;
    } else if !(method == http::Method::OPTIONS
        || (matches!(method, http::Method::GET | http::Method::HEAD)
            && ANSWERABLE_WITHOUT_DEPENDENCIES.contains(&path.as_str())))
    {
        return Err(format!(
            "{status} for {method} {path}, which needs a dependency that is down"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every documented route, and no other path, is a template the
    /// generators fill in, so a new route is fuzzed from the day it lands.
    #[test]
    fn the_generators_start_from_every_documented_route() {
        let answer = send(
            Request::get("/openapi.json")
                .body(Body::empty())
                .expect("a valid request"),
        )
        .expect("the router answers");
        let document: Value = serde_json::from_slice(&answer.body).expect("a JSON document");
        let placeholder = regex::Regex::new(r"\{[^}]*\}").expect("a valid pattern");
        let mut documented: Vec<String> = document["paths"]
            .as_object()
            .expect("the document has paths")
            .keys()
            .filter(|path| !path.starts_with("/_test/"))
            .map(|path| placeholder.replace_all(path, "{}").into_owned())
            .collect();
        documented.sort();
        let mut templates: Vec<String> = PATH_TEMPLATES.iter().map(|t| t.to_string()).collect();
        templates.sort();
        assert_eq!(templates, documented);
    }
}
