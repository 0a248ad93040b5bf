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
//! Request bodies up to [`BUFFERED_BODY_LIMIT`] (declared by
//! `Content-Length`) are read in one piece; larger or undeclared ones keep
//! workers-rs' streaming body, so a huge upload is never buffered here (the
//! API refuses bodies over 1 MiB as it reads them).

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, Response};
use worker::js_sys::{self, Uint8Array};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys;

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

/// The JS request as axum's request.
pub async fn request_from_js(request: web_sys::Request) -> Result<Request<Body>, JsValue> {
    let method = Method::from_bytes(request.method().as_bytes()).map_err(js_error)?;
    let mut builder = Request::builder().method(method).uri(request.url());
    let headers = builder
        .headers_mut()
        .ok_or_else(|| js_error("invalid request line"))?;
    let mut declared_length = None;
    let entries = js_sys::try_iter(&request.headers())?
        .ok_or_else(|| js_error("request headers are not iterable"))?;
    for entry in entries {
        let pair: js_sys::Array = entry?.unchecked_into();
        let (Some(name), Some(value)) = (pair.get(0).as_string(), pair.get(1).as_string()) else {
            continue;
        };
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(js_error)?;
        if name == axum::http::header::CONTENT_LENGTH {
            declared_length = value.parse::<u64>().ok();
        }
        headers.append(name, HeaderValue::from_str(&value).map_err(js_error)?);
    }
    let body = match (request.body(), declared_length) {
        (None, _) => Body::empty(),
        (Some(_), Some(length)) if length <= BUFFERED_BODY_LIMIT => {
            let buffer = JsFuture::from(request.array_buffer()?).await?;
            Body::from(Uint8Array::new(&buffer).to_vec())
        }
        (Some(stream), _) => Body::new(worker::Body::new(stream)),
    };
    builder.body(body).map_err(js_error)
}

/// axum's response as a JS response, its body in one buffer.
pub async fn response_to_js(response: Response<Body>) -> Result<web_sys::Response, JsValue> {
    let (parts, body) = response.into_parts();
    let headers = web_sys::Headers::new()?;
    for (name, value) in &parts.headers {
        // Header values the API sets are ASCII; anything else is passed
        // as Latin-1, as HTTP defines header octets.
        let value = match value.to_str() {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => value.as_bytes().iter().map(|&b| b as char).collect(),
        };
        headers.append(name.as_str(), &value)?;
    }
    let init = web_sys::ResponseInit::new();
    let status = parts.status.as_u16();
    init.set_status(status);
    init.set_headers(&headers);
    let mut bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(js_error)?
        .to_vec();
    if is_null_body_status(status) || bytes.is_empty() {
        web_sys::Response::new_with_opt_u8_array_and_init(None, &init)
    } else {
        web_sys::Response::new_with_opt_u8_array_and_init(Some(&mut bytes), &init)
    }
}
