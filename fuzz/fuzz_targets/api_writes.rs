//! Arbitrary requests to the write routes (`PUT /v1/pages/{slug}`, `POST
//! /v1/uploads`): slug, token, content type, precondition and body bytes
//! from the fuzzer. `api::testing::check_write` holds: every answer is a
//! problem document agreeing with its status, invalid requests are refused
//! with a 4xx before any dependency is called, valid ones reach the
//! database (503, as it is down), and nothing panics.
#![no_main]

use api::testing::{check_write, Auth, Case, Route};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

/// Content types and whether axum takes each as JSON.
const CONTENT_TYPES: [(&str, bool); 5] = [
    ("application/json", true),
    ("application/json; charset=utf-8", true),
    ("application/merge-patch+json", true),
    ("text/plain", false),
    ("application/jsonx", false),
];

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    upload: bool,
    slug: String,
    /// None: the fixture's genuine token; Some: this text as the token.
    token: Option<Option<String>>,
    content_type: Option<u8>,
    precondition: Option<(bool, String)>,
    /// The rest of the input as it is (see `api_requests`' input).
    body: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let route = if input.upload {
        Route::Upload
    } else {
        Route::Page
    };
    // A header value cannot hold these; the router never sees them.
    let header_safe = |s: &str| !s.chars().any(|c| c.is_control() || !c.is_ascii());
    let auth = match input.token {
        None => Auth::Token,
        Some(None) => Auth::None,
        Some(Some(token)) if header_safe(&token) => Auth::Garbage(token),
        Some(Some(_)) => return,
    };
    let precondition = match input.precondition {
        Some((_, value)) if !header_safe(&value) => return,
        Some((if_match, value)) if route == Route::Page => Some((
            if if_match {
                "if-match"
            } else {
                "if-none-match"
            },
            value,
        )),
        _ => None,
    };
    // One path segment as a client can send it.
    let uri = format!("/v1/pages/{}", input.slug);
    if input.slug.contains(['/', '?', '#']) || uri.parse::<http::Uri>().is_err() {
        return;
    }
    let case = Case {
        route,
        slug: input.slug,
        auth,
        content_type: input
            .content_type
            .map(|i| CONTENT_TYPES[usize::from(i) % CONTENT_TYPES.len()]),
        precondition,
        body: input.body.to_vec(),
    };
    if let Err(broken) = check_write(&case) {
        panic!("{broken}\ncase: {case:?}");
    }
});
