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
//! URL, headers and body.
//!
//! Crossings between wasm and JS are the cost that remains, so each side
//! crosses once: the request's method, URL and headers come over as one
//! string, the response's headers go back as one, both through the small
//! JS half in `js/bridge.js` (a CPU profile of `/healthz` had a third of the
//! Worker's time in per-header glue, string decoding and `Headers.append`).
//! Headers that most responses share go back as a template index instead
//! (see [`SHARED_HEADERS`]).
//!
//! Request bodies up to [`BUFFERED_BODY_LIMIT`] (declared by
//! `Content-Length`) are read in one piece; larger or undeclared ones keep
//! workers-rs' streaming body, so a huge upload is never buffered here (the
//! API refuses bodies over 1 MiB as it reads them). A `GET`, `HEAD` or
//! `OPTIONS` that declares no body has none (see [`request_from_js`]).

use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue, Method, Request, Response, Uri};
use worker::js_sys::{self, Uint8Array};
use worker::wasm_bindgen::{self, prelude::wasm_bindgen, JsValue};
use worker::web_sys;

#[wasm_bindgen(module = "/js/bridge.js")]
extern "C" {
    /// `method\0url\0name\0value...` of `request`.
    #[wasm_bindgen(js_name = requestHead)]
    fn request_head(request: &web_sys::Request) -> String;

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
fn parse_head(head: &str) -> Result<Head, JsValue> {
    let mut fields = head.split(SEPARATOR);
    let (Some(method), Some(url)) = (fields.next(), fields.next()) else {
        return Err(js_error("the request has no method or URL"));
    };
    let mut request = Request::new(());
    *request.method_mut() = Method::from_bytes(method.as_bytes()).map_err(js_error)?;
    *request.uri_mut() = Uri::try_from(url).map_err(js_error)?;
    let headers = request.headers_mut();
    // Sized once for all the headers: a map that fills up grows and
    // rehashes every header it holds.
    let separators = head.bytes().filter(|&b| b == SEPARATOR as u8).count();
    headers.reserve(separators.saturating_sub(1) / 2);
    let mut declared_length = None;
    let mut chunked = false;
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(js_error)?;
        if name == header::CONTENT_LENGTH {
            declared_length = value.parse::<u64>().ok();
        } else if name == header::TRANSFER_ENCODING {
            chunked = true;
        }
        headers.append(name, HeaderValue::from_str(value).map_err(js_error)?);
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
    let Head {
        request: head,
        declared_length,
        chunked,
    } = parse_head(&request_head(&request))?;
    let bodiless = matches!(*head.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let body = match declared_length {
        Some(0) => Body::empty(),
        Some(length) if length <= BUFFERED_BODY_LIMIT => {
            let buffer = crate::promise::Wait::on(&request.array_buffer()?).await?;
            Body::from(Uint8Array::new(&buffer).to_vec())
        }
        None if bodiless && !chunked => Body::empty(),
        _ => match request.body() {
            None => Body::empty(),
            Some(stream) => Body::new(worker::Body::new(stream)),
        },
    };
    Ok(head.map(|()| body))
}

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
             if-match\0\"r1\"\0x-repeat\0one\0x-repeat\0two",
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

        let head = parse_head("POST\0https://api.example.com/\0transfer-encoding\0chunked")
            .expect("a valid head");
        assert_eq!(head.declared_length, None);
        assert!(head.chunked);

        let head = parse_head("GET\0https://api.example.com/healthz").expect("a valid head");
        assert!(head.request.headers().is_empty());
        assert_eq!((head.declared_length, head.chunked), (None, false));
    }
}
