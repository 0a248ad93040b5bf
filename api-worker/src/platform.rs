//! The `outbound` traits on the Workers runtime: `fetch()`, `connect()`
//! and `setTimeout`. Their futures hold JS values and are not `Send`; the
//! Worker runs on one thread, so wrapping them in `SendFuture` is sound,
//! and it is what lets the `api` crate's axum handlers await them.

use std::time::Duration;

use outbound::{BoxFuture, Bytes, Connect, Fetch, FetchError, Request, Response, Stream, Timer};
use worker::send::SendFuture;
use worker::{AbortController, Delay, Headers, Method, RequestInit};

/// Outbound HTTP through the Worker's `fetch()`.
pub struct WorkerFetch;

impl Fetch for WorkerFetch {
    fn fetch(
        &self,
        request: Request,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Response, FetchError>> {
        Box::pin(SendFuture::new(async move {
            let controller = AbortController::default();
            let sent = send(request, &controller);
            match outbound::deadline(&WorkerTimer, timeout, sent).await {
                Ok(result) => result,
                Err(_) => {
                    // Stop the subrequest too, not only our wait for it.
                    controller.abort();
                    Err(FetchError::Timeout(timeout))
                }
            }
        }))
    }
}

async fn send(request: Request, controller: &AbortController) -> Result<Response, FetchError> {
    let (parts, body) = request.into_parts();
    let headers = Headers::new();
    for (name, value) in &parts.headers {
        let value = value
            .to_str()
            .map_err(|_| FetchError::InvalidRequest(format!("header {name} is not text")))?;
        headers
            .append(name.as_str(), value)
            .map_err(|e| FetchError::InvalidRequest(e.to_string()))?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::from(parts.method.as_str().to_owned()))
        .with_headers(headers);
    if !body.is_empty() {
        init.with_body(Some(worker::js_sys::Uint8Array::from(&body[..]).into()));
    }
    let request = worker::Request::new_with_init(&parts.uri.to_string(), &init)
        .map_err(|e| FetchError::InvalidRequest(e.to_string()))?;
    let mut response = worker::Fetch::Request(request)
        .send_with_signal(&controller.signal())
        .await
        .map_err(|e| FetchError::Network(e.to_string()))?;
    let mut out = http::Response::builder().status(response.status_code());
    for (name, value) in response.headers().entries() {
        out = out.header(name, value);
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| FetchError::Network(e.to_string()))?;
    out.body(Bytes::from(body))
        .map_err(|e| FetchError::Network(e.to_string()))
}

/// Timers through `setTimeout`.
pub struct WorkerTimer;

impl Timer for WorkerTimer {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(SendFuture::new(Delay::from(duration)))
    }
}

/// TCP through `connect()` from `cloudflare:sockets`, TLS when asked (see
/// socket.rs).
pub struct WorkerConnect;

impl Connect for WorkerConnect {
    fn connect(
        &self,
        host: &str,
        port: u16,
        tls: bool,
    ) -> BoxFuture<'_, std::io::Result<Box<dyn Stream>>> {
        let host = host.to_owned();
        Box::pin(SendFuture::new(async move {
            let stream = crate::socket::TcpStream::connect(&host, port, tls).await?;
            Ok(Box::new(stream) as Box<dyn Stream>)
        }))
    }
}
