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

use crate::{App, Platform};

pub const AUD: &str = "api-aud";
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

/// The largest problem document a write may be answered with.
pub const MAX_PROBLEM_BYTES: usize = 2048;

/// Sends `case` through the router and checks the property the write
/// routes keep on any request: every answer is an RFC 9457 problem of at
/// most [`MAX_PROBLEM_BYTES`] whose `status` is the HTTP status; a request
/// the documented rules call invalid is refused (400/401/413/415/422, or
/// 404 for a slug that is no route) before any dependency is called; and a
/// valid one is not refused at all but reaches the database, which is
/// down (503). `Err` says what broke.
pub fn check_write(case: &Case) -> Result<(), String> {
    let fixture = fixture();
    let (status, content_type, body) = fixture.runtime.block_on(async {
        let response = fixture
            .router
            .clone()
            .oneshot(case.request())
            .await
            .map_err(|e| format!("the router failed: {e}"))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("the body failed: {e}"))?
            .to_bytes();
        Ok::<_, String>((status, content_type, bytes))
    })?;
    let verdict = case.verdict();
    if status < 400 {
        return Err(format!("{status} for a case judged {verdict:?}"));
    }
    if content_type.as_deref() != Some("application/problem+json") {
        return Err(format!("{status} answered as {content_type:?}"));
    }
    // A refusal names what is wrong, it does not repeat the request.
    if body.len() > MAX_PROBLEM_BYTES {
        return Err(format!(
            "a problem of {} bytes: {}",
            body.len(),
            String::from_utf8_lossy(&body[..MAX_PROBLEM_BYTES])
        ));
    }
    let problem: Value = serde_json::from_slice(&body)
        .map_err(|e| format!("{status}: the problem is not JSON ({e})"))?;
    if !problem["type"].is_string() || !problem["title"].is_string() {
        return Err(format!("no type or title: {problem}"));
    }
    if problem["status"].as_u64() != Some(u64::from(status)) {
        return Err(format!("answered {status} with {problem}"));
    }
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
