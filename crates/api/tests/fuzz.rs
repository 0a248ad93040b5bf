//! Property test ("fuzzing") of request decoding on the write routes
//! (`PUT /v1/pages/{slug}`, `POST /v1/uploads`): arbitrary bodies (random
//! bytes, random JSON, near-valid documents with a field mutated, huge
//! strings, deep nesting), content types, tokens and slugs never produce
//! a panic or a 5xx other than the dependency being down; every error is
//! an RFC 9457 problem whose `status` is the HTTP status; invalid requests
//! are refused (400/401/413/415/422) before any dependency is called; and
//! valid ones are not refused at all.
//!
//! The fixture, the validity rules and the property are `api::testing`'s,
//! which the coverage-guided target in `fuzz/` checks too.
//!
//! Run long with `PROPTEST_CASES=20000 cargo test -p api --test fuzz --release`.

use api::testing::{
    check_any_request, check_write, fixture, max_upload, AnyRequest, Auth, Case, Route, Verdict,
    HEADER_NAMES, MAX_BODY, MAX_FILE_NAME, MAX_REQUEST, MAX_TITLE, METHODS, PATH_TEMPLATES, TYPES,
};
use proptest::prelude::*;
use serde_json::{json, Value};
use tower::ServiceExt;

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
        prop_assert_eq!(check_write(&case), Ok(()));
    }
}

fn any_request() -> impl Strategy<Value = AnyRequest> {
    let segment = prop_oneof![
        4 => "[a-z0-9-]{1,20}",
        1 => "[A-Za-z0-9._~%!$&'()*+,;=:@-]{0,24}",
        1 => (127..131usize).prop_map(|n| "a".repeat(n)),
    ];
    let path = prop_oneof![
        6 => (prop::sample::select(PATH_TEMPLATES.to_vec()), segment)
            .prop_map(|(template, segment)| template.replace("{}", &segment)),
        1 => "/[ -~]{0,40}",
    ];
    let query = prop::option::weighted(
        0.4,
        prop_oneof![
            "limit=[0-9-]{0,4}",
            "cursor=[A-Za-z0-9_=-]{0,24}",
            "limit=[0-9]{1,3}&cursor=[A-Za-z0-9_=-]{0,24}",
            "[ -~]{0,30}",
        ],
    );
    let header = (
        prop_oneof![
            6 => prop::sample::select(HEADER_NAMES.to_vec()).prop_map(str::to_owned),
            1 => "[a-z-]{1,12}",
        ],
        prop_oneof![
            "[ -~]{0,30}",
            Just("application/json".to_owned()),
            Just("http://localhost:8788".to_owned()),
            Just("PUT".to_owned()),
            "[0-9]{1,8}",
        ],
    );
    (
        prop::sample::select(METHODS.to_vec()),
        path,
        query,
        prop::collection::vec(header, 0..5),
        (any::<bool>(), any::<bool>()),
        prop_oneof![
            Just(Vec::new()),
            any_json().prop_map(|d| serde_json::to_vec(&d).unwrap()),
            prop::collection::vec(any::<u8>(), 0..64),
        ],
    )
        .prop_map(
            |(method, path, query, headers, (token, binding), body)| AnyRequest {
                method: method.to_owned(),
                path_and_query: match query {
                    Some(query) => format!("{path}?{query}"),
                    None => path,
                },
                headers,
                token,
                binding,
                body,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any request, every dependency down: no 500, every refusal a
    /// problem document, nothing acknowledged that needed a dependency,
    /// neither the binding secret nor the Access token shown.
    #[test]
    fn fuzz_any_request_is_answered_without_a_500(request in any_request()) {
        let http_request = request.to_request();
        prop_assume!(http_request.is_some(), "no client could send it");
        prop_assert_eq!(check_any_request(http_request.unwrap()), Ok(()), "{:?}", request);
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
