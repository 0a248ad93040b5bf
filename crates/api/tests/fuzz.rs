//! Property test ("fuzzing") of request decoding on the write routes
//! (`PUT /v1/pages/{slug}`, `POST /v1/uploads`): arbitrary bodies (random
//! bytes, random JSON, near-valid documents with a field mutated, huge
//! strings, deep nesting), content types, tokens and slugs never produce
//! a panic or a 5xx other than the dependency being down; every error is
//! an RFC 9457 problem whose `status` is the HTTP status; invalid requests
//! are refused (400/401/413/415/422) before any dependency is called; and
//! valid ones are not refused at all.
//!
//! The database, Redis and B2 are configured on port 1, where nothing
//! listens: a valid request gets as far as the database and is answered
//! 503. Validity is decided here, from the documented rules (the OpenAPI
//! schema's limits), independently of the handlers.
//!
//! Run long with `PROPTEST_CASES=20000 cargo test -p api --test fuzz --release`.

use std::sync::OnceLock;

use access::testing::{user_claims, SigningKey};
use api::{App, Platform};
use axum::body::Body;
use axum::http::{header, Request};
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use tower::ServiceExt;

const AUD: &str = "api-aud";
/// `MAX_REQUEST_BODY_BYTES`: larger requests are 413.
const MAX_REQUEST: usize = api::layers::MAX_REQUEST_BODY_BYTES;
const MAX_TITLE: usize = api::pages::MAX_TITLE_CHARS;
const MAX_BODY: usize = api::pages::MAX_BODY_CHARS;
const MAX_FILE_NAME: usize = api::uploads::MAX_FILE_NAME_CHARS;
/// The default `UPLOAD_MAX_BYTES` (the fixture does not set it).
fn max_upload() -> u64 {
    api::config::Uploads::default().max_bytes
}
const TYPES: [&str; 6] = api::config::DEFAULT_UPLOAD_CONTENT_TYPES;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    router: api::Api,
    token: String,
    /// The slug rule as the API documents it (the `slug` parameter's
    /// pattern in its own /openapi.json), not a copy of the code's check.
    slug: regex::Regex,
}

/// One runtime, JWKS server, router and token for all cases.
fn fixture() -> &'static Fixture {
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
            let certs = axum::Router::new().route(
                "/cdn-cgi/access/certs",
                axum::routing::get(move || async move { axum::Json(jwks) }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, certs).await });
            format!("http://{addr}")
        });
        let vars: std::collections::HashMap<String, String> = [
            ("ENVIRONMENT", "dev"),
            ("ALLOWED_ORIGINS", "http://localhost:8788"),
            ("ACCESS_TEAM_DOMAIN", team.as_str()),
            ("ACCESS_AUD", AUD),
            // Nothing listens on port 1: dependencies fail fast.
            ("TIDB_DATABASE_URL", "mysql://app:pw@127.0.0.1:1/app"),
            ("REDIS_URL", "redis://:pw@127.0.0.1:1"),
            ("B2_ENDPOINT", "https://127.0.0.1:1"),
            ("B2_REGION", "us-west-004"),
            ("B2_BUCKET", "files"),
            ("B2_KEY_ID", "key"),
            ("B2_APPLICATION_KEY", "b2-pw"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let router = api::router(App::new(|n| vars.get(n).cloned(), Platform::native()));
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
enum Route {
    Page,
    Upload,
}

#[derive(Debug, Clone)]
enum Auth {
    Token,
    None,
    Garbage(String),
}

#[derive(Debug, Clone)]
struct Case {
    route: Route,
    slug: String,
    auth: Auth,
    /// The header value, and whether axum takes it as JSON.
    content_type: Option<(&'static str, bool)>,
    /// `If-Match`/`If-None-Match` on page writes, whose own rules are not
    /// modelled here: a case with one is neither surely valid nor surely not.
    precondition: Option<(&'static str, String)>,
    body: Vec<u8>,
}

/// What the rules say about a case.
#[derive(Debug, PartialEq)]
enum Verdict {
    Valid,
    Invalid,
    Unknown,
}

impl Case {
    fn verdict(&self) -> Verdict {
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

    fn request(&self) -> Request<Body> {
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
fn has_duplicate_keys(body: &[u8]) -> bool {
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

fn valid_slug(slug: &str) -> bool {
    fixture().slug.is_match(slug)
}

/// The schema of `PageDraft`: exactly `title` and `body`.
fn valid_page(doc: &Map<String, Value>) -> bool {
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
fn valid_upload(doc: &Map<String, Value>) -> bool {
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

// ---------------------------------------------------------------------
// Strategies.

fn title() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z0-9 ]{1,40}".prop_filter("not blank", |t| !t.trim().is_empty()),
        1 => "\\PC{0,60}",
        1 => "(?s).{0,10}",
        1 => Just(" ".to_owned()),
        1 => Just(String::new()),
        1 => (MAX_TITLE - 1..MAX_TITLE + 2).prop_map(|n| "é".repeat(n)),
    ]
}

fn markdown() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "(?s).{0,200}",
        1 => (MAX_BODY - 1..MAX_BODY + 2).prop_map(|n| "x".repeat(n)),
        // Under the character limit, over 1 MiB of UTF-8 only when wide.
        1 => Just("🐢".repeat(MAX_BODY)),
        // A request over 1 MiB.
        1 => Just("y".repeat(MAX_REQUEST + 1)),
    ]
}

fn file_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9_-]{1,20}\\.(png|pdf|txt)",
        1 => "\\PC{0,30}",
        1 => "(?s).{0,10}",
        1 => prop::sample::select(vec![".", "..", " .. ", "a/b", "a\\b", " ", "a\u{0}b", "a\u{85}b"])
            .prop_map(str::to_owned),
        1 => (MAX_FILE_NAME - 1..MAX_FILE_NAME + 2).prop_map(|n| "n".repeat(n)),
    ]
}

fn media_type() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(TYPES.to_vec()).prop_map(str::to_owned),
        1 => Just("IMAGE/PNG".to_owned()),
        1 => Just("image/png; charset=x".to_owned()),
        1 => Just("text/html".to_owned()),
        1 => "\\PC{0,20}",
    ]
}

fn size() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (1..=max_upload()).prop_map(Value::from),
        1 => prop_oneof![Just(0u64), Just(max_upload() + 1), Just(u64::MAX)].prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => Just(json!(1.0)),
        1 => Just(json!("10")),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,16}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("title".to_owned()),
                    Just("body".to_owned()),
                    Just("file_name".to_owned()),
                    Just("content_type".to_owned()),
                    Just("size_bytes".to_owned()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A document of the route's shape with its fields drawn from valid and
/// invalid values, sometimes with a field dropped, retyped or added.
fn document(route: Route) -> BoxedStrategy<Value> {
    let doc = match route {
        Route::Page => (title(), markdown())
            .prop_map(|(title, body)| json!({"title": title, "body": body}))
            .boxed(),
        Route::Upload => (file_name(), media_type(), size())
            .prop_map(|(name, content_type, size)| {
                json!({"file_name": name, "content_type": content_type, "size_bytes": size})
            })
            .boxed(),
    };
    (doc, prop::option::weighted(0.2, (0..4usize, any_json())))
        .prop_map(|(mut doc, mutation)| {
            if let Some((how, value)) = mutation {
                let fields: Vec<String> = doc.as_object().unwrap().keys().cloned().collect();
                let field = fields[how % fields.len()].clone();
                match how {
                    0 => {
                        doc.as_object_mut().unwrap().remove(&field);
                    }
                    1 | 2 => doc[field] = value,
                    _ => doc["extra"] = value,
                }
            }
            doc
        })
        .boxed()
}

fn body(route: Route) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => document(route).prop_map(|d| serde_json::to_vec(&d).unwrap()),
        2 => any_json().prop_map(|d| serde_json::to_vec(&d).unwrap()),
        2 => prop::collection::vec(any::<u8>(), 0..200),
        // Valid JSON with a field given twice.
        1 => document(route).prop_map(|d| {
            let text = serde_json::to_string(&d).unwrap();
            match text.strip_prefix('{') {
                Some(rest) if rest != "}" => format!(r#"{{"title":"t",{rest}"#).into_bytes(),
                _ => text.into_bytes(),
            }
        }),
        // Deep nesting, as a value and as the whole body.
        1 => (1..5000usize).prop_map(|depth| {
            format!(r#"{{"title":{}1{}}}"#, "[".repeat(depth), "]".repeat(depth)).into_bytes()
        }),
        1 => (1..5000usize).prop_map(|depth| "[".repeat(depth).into_bytes()),
        // Truncated and byte-flipped documents.
        2 => (document(route), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(d, at, b)| {
            let mut bytes = serde_json::to_vec(&d).unwrap();
            let i = at.index(bytes.len());
            if b % 2 == 0 {
                bytes.truncate(i);
            } else {
                bytes[i] = b;
            }
            bytes
        }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let route = prop_oneof![Just(Route::Page), Just(Route::Upload)];
    route.prop_flat_map(|route| {
        (
            prop_oneof![
                6 => "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?",
                1 => "[A-Za-z0-9_.~%-]{0,20}",
                1 => (127..131usize).prop_map(|n| "a".repeat(n)),
            ],
            prop_oneof![
                8 => Just(Auth::Token),
                1 => Just(Auth::None),
                1 => "[A-Za-z0-9._-]{0,40}".prop_map(Auth::Garbage),
            ],
            prop_oneof![
                6 => Just(Some(("application/json", true))),
                1 => Just(Some(("application/json; charset=utf-8", true))),
                1 => Just(Some(("application/merge-patch+json", true))),
                1 => Just(Some(("text/plain", false))),
                1 => Just(Some(("application/jsonx", false))),
                1 => Just(None),
            ],
            prop::option::weighted(
                0.1,
                (
                    prop_oneof![Just("if-match"), Just("if-none-match")],
                    prop_oneof![Just("*".to_owned()), "\"[a-z0-9]{0,8}\"", "[ -~]{0,12}"],
                ),
            ),
            body(route),
        )
            .prop_map(move |(slug, auth, content_type, precondition, body)| Case {
                route,
                slug,
                auth,
                content_type,
                precondition: precondition.filter(|_| route == Route::Page),
                body,
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn fuzz_write_requests_are_answered_with_problems_never_5xx(case in case()) {
        let fixture = fixture();
        let (status, content_type, problem) = fixture.runtime.block_on(async {
            let response = fixture.router.clone().oneshot(case.request()).await.unwrap();
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_owned());
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (status, content_type, serde_json::from_slice::<Value>(&bytes).ok())
        });

        // Every refusal is a problem document that agrees with the status.
        prop_assert!(status >= 400, "{status} for {:?}", case.verdict());
        prop_assert_eq!(content_type.as_deref(), Some("application/problem+json"));
        let problem = problem.expect("a JSON problem document");
        prop_assert!(problem["type"].is_string(), "{problem}");
        prop_assert!(problem["title"].is_string(), "{problem}");
        prop_assert_eq!(problem["status"].as_u64(), Some(u64::from(status)));

        let mut refused = vec![400, 401, 413, 415, 422];
        if case.route == Route::Page && !valid_slug(&case.slug) {
            // `/v1/pages/` and `/v1/pages/a/b` are no route at all.
            refused.push(404);
        }
        match case.verdict() {
            // Accepted and taken to the database, which is down.
            Verdict::Valid => prop_assert_eq!(status, 503, "{}", problem),
            // Refused before any dependency is called.
            Verdict::Invalid => prop_assert!(refused.contains(&status), "{} {}", status, problem),
            Verdict::Unknown => prop_assert!(refused.contains(&status) || status == 503, "{}", problem),
        }
    }
}

/// The oracle and the fixture behind the property: documents the rules
/// call valid are judged so, and reach the (unreachable) database.
#[test]
fn valid_documents_reach_the_database() {
    let cases = [
        (
            Route::Page,
            json!({"title": "Getting started", "body": "# Hi"}),
        ),
        (
            Route::Upload,
            json!({"file_name": "a.png", "content_type": "Image/PNG", "size_bytes": 10}),
        ),
    ];
    for (route, doc) in cases {
        let case = Case {
            route,
            slug: "getting-started".into(),
            auth: Auth::Token,
            content_type: Some(("application/json", true)),
            precondition: None,
            body: serde_json::to_vec(&doc).unwrap(),
        };
        assert_eq!(case.verdict(), Verdict::Valid, "{doc}");
        let fixture = fixture();
        let status = fixture
            .runtime
            .block_on(fixture.router.clone().oneshot(case.request()))
            .unwrap()
            .status();
        assert_eq!(status, 503, "{doc}");
    }
}
