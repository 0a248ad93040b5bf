//! Native implementations for tests and tools: reqwest and tokio.

use std::time::Duration;

use crate::{BoxFuture, Connect, Fetch, FetchError, Request, Response, Stream, Timer};

/// [`Fetch`] over a reqwest client (rustls, no proxies from the environment).
#[derive(Debug, Clone)]
pub struct ReqwestFetch {
    client: reqwest::Client,
}

impl Default for ReqwestFetch {
    fn default() -> Self {
        ReqwestFetch {
            client: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a reqwest client with static settings builds"),
        }
    }
}

impl Fetch for ReqwestFetch {
    fn fetch(
        &self,
        request: Request,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Response, FetchError>> {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let url = parts.uri.to_string();
            let sent = self
                .client
                .request(parts.method, &url)
                .headers(parts.headers)
                .body(body)
                .timeout(timeout)
                .send()
                .await
                .map_err(|e| classify(e, timeout))?;
            let mut response = http::Response::builder().status(sent.status());
            if let Some(headers) = response.headers_mut() {
                *headers = sent.headers().clone();
            }
            let body = sent.bytes().await.map_err(|e| classify(e, timeout))?;
            response
                .body(body)
                .map_err(|e| FetchError::Network(e.to_string()))
        })
    }
}

fn classify(error: reqwest::Error, timeout: Duration) -> FetchError {
    if error.is_timeout() {
        FetchError::Timeout(timeout)
    } else if error.is_builder() {
        FetchError::InvalidRequest(error.to_string())
    } else {
        FetchError::Network(error.to_string())
    }
}

/// [`Timer`] on tokio's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioTimer;

impl Timer for TokioTimer {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// [`Connect`] with tokio's TCP. Plain TCP only: the local servers it
/// reaches listen on 127.0.0.1 without TLS, so asking for TLS is an error
/// rather than a silent downgrade.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioConnect;

impl Connect for TokioConnect {
    fn connect(
        &self,
        host: &str,
        port: u16,
        tls: bool,
    ) -> BoxFuture<'_, std::io::Result<Box<dyn Stream>>> {
        let address = format!("{host}:{port}");
        Box::pin(async move {
            if tls {
                return Err(std::io::Error::other(
                    "TokioConnect has no TLS (local servers only)",
                ));
            }
            let stream = tokio::net::TcpStream::connect(address).await?;
            Ok(Box::new(stream) as Box<dyn Stream>)
        })
    }
}
