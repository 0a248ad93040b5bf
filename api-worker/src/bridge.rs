//! The request bridge: the runtime's JS `Request` to an `http::Request` for
//! axum, and axum's `http::Response` back to a JS `Response`.
//!
//! Written here instead of using workers-rs' `http` conversion because that
//! one is general and costs the API most of its time on small requests: it
//! wraps every response body in a `ReadableStream` pulled from wasm (several
//! promise round trips between JS and wasm per response) and reads the `cf`
//! object, abort signal and redirect mode of every request. The API's
//! answers are small, complete JSON documents, so here the body goes back
//! as one buffer, and a request carries only what the router reads: method,
//! URL, the headers it reads and body.
//!
//! Crossings between wasm and JS are the cost that remains, so each side
//! crosses once: the request's method, URL and the headers the API reads
//! (`api::request_headers`, each read by name) come over as one string,
//! the response's headers go back as one, both through the small JS half
//! in `js/bridge.js` (a CPU profile of `/healthz` had a third of the
//! Worker's time in per-header glue, string decoding and `Headers.append`).
//! Headers that most responses share go back as a template index instead
//! (see [`SHARED_HEADERS`]).
//!
//! Request bodies up to [`BUFFERED_BODY_LIMIT`] (declared by
//! `Content-Length`) are read in one piece; larger or undeclared ones keep
//! workers-rs' streaming body, so a huge upload is never buffered here (the
//! API refuses bodies over 1 MiB as it reads them). A `GET`, `HEAD` or
//! `OPTIONS` that declares no body has none (see [`request_from_js`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderName, HeaderValue, Method, Request, Response, Uri};
use http_body::{Frame, SizeHint};
use worker::js_sys::{self, Uint8Array};
use worker::wasm_bindgen::{self, prelude::wasm_bindgen, JsValue};
use worker::web_sys;

use crate::promise::Wait;

#[wasm_bindgen(module = "/js/bridge.js")]
extern "C" {
    /// `method\0url\0name\0value...` of `request`, with only the headers
    /// named by `set_read_headers`.
    #[wasm_bindgen(js_name = requestHead)]
    fn request_head(request: &web_sys::Request) -> String;

    /// The names (`name\0name...`) `request_head` reads.
    #[wasm_bindgen(js_name = setReadHeaders)]
    fn set_read_headers(names: &str);

    /// A JS Response with the shared headers of template `template`
    /// (first defined, or redefined, by `template_fields`), then `own`
    /// (`name\0value\0...`). Throws (an `Err` here) on what the Response
    /// constructor refuses.
    #[wasm_bindgen(js_name = makeResponse, catch)]
    fn make_response(
        status: u16,
        template: u32,
        template_fields: Option<&str>,
        own: &str,
        body: Option<&[u8]>,
    ) -> Result<web_sys::Response, JsValue>;
}

/// Headers whose values come from a small set (the security headers, the
/// content types, CORS for the configured origins): they go to JS as a
/// template, built once into a JS `Headers` that the `Response`
/// constructor copies inside the runtime. Every other header is the
/// response's own and crosses as text (request ids, timings, ETags, rate
/// limit counters). A CPU profile of `/healthz` had a quarter of the
/// Worker's time in appending its ten headers one by one.
const SHARED_HEADERS: [&str; 16] = [
    "content-type",
    "vary",
    "cache-control",
    "allow",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
    "strict-transport-security",
    "content-security-policy",
    "cross-origin-resource-policy",
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-expose-headers",
    "access-control-max-age",
];

/// At most this many templates per isolate: enough for every combination
/// the API answers with, and a bound if some header on the list ever
/// carried unbounded values (responses past it send every header as their
/// own).
const MAX_TEMPLATES: usize = 64;

/// The template for "no template": every header is the response's own.
const NO_TEMPLATE: u32 = u32::MAX;

thread_local! {
    /// The templates JS holds, by index (this isolate's wasm instance;
    /// a re-instantiated one starts empty and redefines them).
    static TEMPLATES: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The template index for `fields`, and whether JS must (re)define it.
fn template_for(fields: &str) -> (u32, bool) {
    TEMPLATES.with_borrow_mut(|templates| {
        if let Some(index) = templates.iter().position(|t| t == fields) {
            return (index as u32, false);
        }
        if templates.len() >= MAX_TEMPLATES {
            return (NO_TEMPLATE, false);
        }
        templates.push(fields.to_owned());
        ((templates.len() - 1) as u32, true)
    })
}

thread_local! {
    /// Whether this wasm instance told JS which request headers to read
    /// (`api::request_headers::READ`, the only ones axum sees).
    static READ_HEADERS_SET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Appends `name\0value` to `fields` (fields separated by NUL), the form
/// in which headers cross to JS, both ways and for the Worker's own
/// `fetch()` too (platform.rs).
pub(crate) fn push_field(fields: &mut String, name: &str, value: &axum::http::HeaderValue) {
    if !fields.is_empty() {
        fields.push(SEPARATOR);
    }
    fields.push_str(name);
    fields.push(SEPARATOR);
    // Header values the API sets are ASCII; anything else is passed as
    // Latin-1, as HTTP defines header octets.
    match value.to_str() {
        Ok(text) => fields.push_str(text),
        Err(_) => fields.extend(value.as_bytes().iter().map(|&b| b as char)),
    }
}

/// Separates the fields of the strings that cross to and from JS (see
/// `js/bridge.js`: no method, URL, header name or value holds it).
pub(crate) const SEPARATOR: char = '\0';

/// Bodies declared up to this size are read whole (above the API's 1 MiB
/// JSON limit, so that limit still answers with its own 413 problem).
pub const BUFFERED_BODY_LIMIT: u64 = 2 * 1024 * 1024;

/// Statuses whose responses must not have a body (the JS `Response`
/// constructor throws on one).
fn is_null_body_status(status: u16) -> bool {
    matches!(status, 101 | 204 | 205 | 304)
}

fn js_error(message: impl std::fmt::Display) -> JsValue {
    js_sys::Error::new(&message.to_string()).into()
}

/// A request's head as axum's request without a body, and what says
/// whether it has one.
struct Head {
    request: Request<()>,
    declared_length: Option<u64>,
    chunked: bool,
}

/// `method\0url\0name\0value...` as a request without a body. Built part
/// by part rather than with `Request::builder()`, which moves the whole
/// head through a `Result` at every step.
///
/// The URL and the header values stay in the head's own buffer (shared
/// slices of it, one reference count for them all) instead of each being
/// copied into an allocation of its own: a browser's request carries a
/// dozen headers or more, cookies and user agents among them.
fn parse_head(head: String) -> Result<Head, String> {
    let head = Bytes::from(head);
    // The fields between separators, found a word at a time rather than by
    // a byte-by-byte split (a browser's head is a kilobyte or two).
    let mut start = 0;
    let mut ends = memchr::memchr_iter(SEPARATOR as u8, &head).chain([head.len()]);
    let mut fields = std::iter::from_fn(|| {
        let end = ends.next()?;
        let field = &head[start..end];
        start = end + 1;
        Some(field)
    });
    let (Some(method), Some(url)) = (fields.next(), fields.next()) else {
        return Err("the request has no method or URL".into());
    };
    let mut request = Request::new(());
    *request.method_mut() = Method::from_bytes(method).map_err(|e| e.to_string())?;
    *request.uri_mut() = Uri::from_maybe_shared(head.slice_ref(url)).map_err(|e| e.to_string())?;
    let headers = request.headers_mut();
    // Sized once for all the headers: a map that fills up grows and
    // rehashes every header it holds.
    let separators = memchr::memchr_iter(SEPARATOR as u8, &head).count();
    headers.reserve(separators.saturating_sub(1) / 2);
    let mut declared_length = None;
    let mut chunked = false;
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        let name = HeaderName::from_bytes(name).map_err(|e| e.to_string())?;
        if name == header::CONTENT_LENGTH {
            declared_length = std::str::from_utf8(value)
                .ok()
                .and_then(|length| length.parse::<u64>().ok());
        } else if name == header::TRANSFER_ENCODING {
            chunked = true;
        }
        let value =
            HeaderValue::from_maybe_shared(head.slice_ref(value)).map_err(|e| e.to_string())?;
        headers.append(name, value);
    }
    Ok(Head {
        request,
        declared_length,
        chunked,
    })
}

/// The JS request as axum's request.
///
/// The runtime's `body` is looked at only when the head leaves the body
/// open: a declared length says how much to read, and a `GET`, `HEAD` or
/// `OPTIONS` that declares neither a length nor chunks has none the API
/// would read (HTTP/1.1 gives such a request no body at all). The getter
/// costs a call into the runtime on every request otherwise.
pub async fn request_from_js(request: web_sys::Request) -> Result<Request<Body>, JsValue> {
    READ_HEADERS_SET.with(|set| {
        if !set.replace(true) {
            set_read_headers(&api::request_headers::READ.join("\0"));
        }
    });
    let Head {
        request: head,
        declared_length,
        chunked,
    } = parse_head(request_head(&request)).map_err(js_error)?;
    let bodiless = matches!(*head.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let body = match declared_length {
        Some(0) => Body::empty(),
        Some(length) if length <= BUFFERED_BODY_LIMIT => Body::new(WholeBody {
            wait: Some(Wait::on(&request.array_buffer()?)),
            length,
        }),
        None if bodiless && !chunked => Body::empty(),
        _ => match request.body() {
            None => Body::empty(),
            Some(stream) => Body::new(worker::Body::new(stream)),
        },
    };
    Ok(head.map(|()| body))
}

/// A body declared up to [`BUFFERED_BODY_LIMIT`]: one `arrayBuffer()`,
/// asked for when the request arrives and awaited only when the API reads
/// the body, inside the request's deadline. Awaited here before routing,
/// a body the client stopped sending held the request for as long as the
/// client stayed connected; now the deadline answers it (a 408).
struct WholeBody {
    wait: Option<Wait>,
    length: u64,
}

impl http_body::Body for WholeBody {
    type Data = Bytes;
    type Error = BodyUnreadable;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyUnreadable>>> {
        let Some(wait) = self.wait.as_mut() else {
            return Poll::Ready(None);
        };
        let outcome = std::task::ready!(Pin::new(wait).poll(cx));
        self.wait = None;
        Poll::Ready(Some(match outcome {
            Ok(buffer) => Ok(Frame::data(Bytes::from(Uint8Array::new(&buffer).to_vec()))),
            Err(_) => Err(BodyUnreadable),
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.wait.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.length)
    }
}

/// The runtime could not read a request body (the client went away); the
/// API answers it as a body it could not read (400).
#[derive(Debug)]
struct BodyUnreadable;

impl std::fmt::Display for BodyUnreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body could not be read")
    }
}

impl std::error::Error for BodyUnreadable {}

/// axum's response as a JS response, its body in one buffer.
pub async fn response_to_js(response: Response<Body>) -> Result<web_sys::Response, JsValue> {
    let (parts, body) = response.into_parts();
    let mut shared = String::with_capacity(400);
    let mut own = String::with_capacity(128);
    for (name, value) in &parts.headers {
        let fields = if SHARED_HEADERS.contains(&name.as_str()) {
            &mut shared
        } else {
            &mut own
        };
        push_field(fields, name.as_str(), value);
    }
    let (template, define) = template_for(&shared);
    if template == NO_TEMPLATE && !shared.is_empty() {
        if !own.is_empty() {
            shared.push(SEPARATOR);
        }
        shared.push_str(&own);
        own = shared;
        shared = String::new();
    }
    let status = parts.status.as_u16();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(js_error)?;
    let body = (!is_null_body_status(status) && !bytes.is_empty()).then_some(&bytes[..]);
    make_response(status, template, define.then_some(&shared[..]), &own, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_becomes_a_request_with_every_header_and_what_says_it_has_a_body() {
        let head = parse_head(
            "PUT\0https://api.example.com/v1/pages/a?x=1\0content-length\x0012\0\
             if-match\0\"r1\"\0x-repeat\0one\0x-repeat\0two"
                .to_owned(),
        )
        .expect("a valid head");
        let request = head.request;
        assert_eq!(request.method(), Method::PUT);
        assert_eq!(
            request.uri().to_string(),
            "https://api.example.com/v1/pages/a?x=1"
        );
        assert_eq!(request.headers()["if-match"], "\"r1\"");
        let repeated: Vec<_> = request.headers().get_all("x-repeat").iter().collect();
        assert_eq!(repeated, ["one", "two"]);
        assert_eq!(head.declared_length, Some(12));
        assert!(!head.chunked);

        let head = parse_head("POST\0https://api.example.com/\0transfer-encoding\0chunked".into())
            .expect("a valid head");
        assert_eq!(head.declared_length, None);
        assert!(head.chunked);

        let head = parse_head("GET\0https://api.example.com/healthz".into()).expect("a valid head");
        assert!(head.request.headers().is_empty());
        assert_eq!((head.declared_length, head.chunked), (None, false));
    }

    #[test]
    fn the_url_and_header_values_stay_in_the_heads_buffer() {
        let text = "GET\0https://api.example.com/v1/pages/a\0user-agent\0Mozilla/5.0\0\
                    cookie\0a=1; b=2\0x-custom\0value"
            .to_owned();
        let buffer = text.as_bytes().as_ptr_range();
        let in_buffer = |bytes: &[u8]| buffer.contains(&bytes.as_ptr());
        let request = parse_head(text).expect("a valid head").request;
        assert!(in_buffer(request.uri().path().as_bytes()));
        for (name, value) in request.headers() {
            assert!(in_buffer(value.as_bytes()), "{name} was copied");
        }
        assert_eq!(request.headers()["cookie"], "a=1; b=2");
        assert_eq!(request.uri().path(), "/v1/pages/a");
    }

    #[test]
    fn a_head_the_http_types_refuse_is_an_error() {
        for head in [
            "GET",
            "G ET\0https://api.example.com/",
            "GET\0https://api example.com/",
            "GET\0https://api.example.com/\0bad name\0v",
            "GET\0https://api.example.com/\0x-ok\0line\nbreak",
        ] {
            assert!(parse_head(head.to_owned()).is_err(), "{head:?} was taken");
        }
    }

    /// What Chrome sends for a cross-site `fetch()` of a page, with the
    /// headers Cloudflare adds: 21 headers, 882 bytes.
    const BROWSER_HEAD: &str = "GET\0https://api.example.com/v1/pages/welcome\0\
        accept\0application/json, text/plain, */*\0accept-encoding\0gzip, deflate, br, zstd\0\
        accept-language\0en-GB,en;q=0.9,de;q=0.8\0cf-connecting-ip\x00203.0.113.7\0\
        cf-ipcountry\0GB\0cf-ray\x008f1a2b3c4d5e6f70-LHR\0cf-visitor\0{\"scheme\":\"https\"}\0\
        connection\0Keep-Alive\0cookie\0CF_Authorization=eyJhbGciOiJSUzI1NiIsImtpZCI6ImFiYyJ9.\
        eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiYWRtaW4iOnRydWV9.\
        c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl; theme=dark\0host\0api.example.com\0\
        origin\0https://example.com\0referer\0https://example.com/pages/welcome\0\
        sec-ch-ua\0\"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"\0sec-ch-ua-mobile\0?0\0\
        sec-ch-ua-platform\0\"Linux\"\0sec-fetch-dest\0empty\0sec-fetch-mode\0cors\0\
        sec-fetch-site\0same-site\0user-agent\0Mozilla/5.0 (X11; Linux x86_64) \
        AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\0\
        x-forwarded-proto\0https\0x-real-ip\x00203.0.113.7";

    #[test]
    fn a_browsers_head_keeps_every_header() {
        let head = parse_head(BROWSER_HEAD.to_owned()).expect("a valid head");
        let headers = head.request.headers();
        assert_eq!(headers.len(), 21);
        assert_eq!(headers["cf-visitor"], r#"{"scheme":"https"}"#);
        assert_eq!(headers["x-real-ip"], "203.0.113.7");
        assert!(headers["cookie"]
            .to_str()
            .unwrap()
            .ends_with("; theme=dark"));
        assert_eq!((head.declared_length, head.chunked), (None, false));
    }

    /// What turning a browser's head into a request costs natively; a
    /// measurement, not a test: `cargo test --release -p api-worker --lib
    /// parse_head_cost -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn parse_head_cost() {
        const HEADS: u32 = 200_000;
        for round in 1..=5 {
            let start = std::time::Instant::now();
            for _ in 0..HEADS {
                let head = parse_head(std::hint::black_box(BROWSER_HEAD.to_owned()));
                std::hint::black_box(head.expect("a valid head").request);
            }
            let each = start.elapsed() / HEADS;
            eprintln!("round {round}: {} ns per head", each.as_nanos());
        }
    }
}
