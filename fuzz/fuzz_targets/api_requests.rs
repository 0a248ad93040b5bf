//! Any request to the API (method, path from the routes' templates or
//! raw, query, headers the API reads, the Access token and the service
//! binding's secret or not, body), with the database, Redis and B2 down:
//! `api::testing::check_any_request` holds: no 500, every refusal a
//! problem document of at most 2 KiB, nothing acknowledged that needed a
//! dependency, and neither secret shown in an answer.
#![no_main]

use api::testing::{check_any_request, AnyRequest, HEADER_NAMES, METHODS, PATH_TEMPLATES};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Method {
    Known(u8),
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum PathInput {
    /// A route's template with its `{...}` filled in.
    Template(u8, String),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum HeaderName {
    Read(u8),
    Other(String),
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    method: Method,
    path: PathInput,
    query: Option<String>,
    headers: Vec<(HeaderName, String)>,
    token: bool,
    binding: bool,
    /// The rest of the input as it is: arbitrary 1.5 puts a continuation
    /// byte before every element of a `Vec`, so JSON that libFuzzer
    /// inserts from a traced comparison never arrived whole.
    body: &'a [u8],
}

fn pick<T: Copy>(items: &[T], i: u8) -> T {
    items[usize::from(i) % items.len()]
}

fuzz_target!(|input: Input<'_>| {
    let path = match input.path {
        PathInput::Template(i, segment) => pick(&PATH_TEMPLATES, i).replace("{}", &segment),
        PathInput::Raw(path) => path,
    };
    let request = AnyRequest {
        method: match input.method {
            Method::Known(i) => pick(&METHODS, i).to_owned(),
            Method::Other(name) => name,
        },
        path_and_query: match input.query {
            Some(query) => format!("{path}?{query}"),
            None => path,
        },
        headers: input
            .headers
            .into_iter()
            .take(8)
            .map(|(name, value)| {
                let name = match name {
                    HeaderName::Read(i) => pick(&HEADER_NAMES, i).to_owned(),
                    HeaderName::Other(name) => name,
                };
                (name, value)
            })
            .collect(),
        token: input.token,
        binding: input.binding,
        body: input.body.to_vec(),
    };
    // What no client could send never reaches the Worker.
    let Some(http_request) = request.to_request() else {
        return;
    };
    if let Err(broken) = check_any_request(http_request) {
        panic!("{broken}\nrequest: {request:?}");
    }
});
