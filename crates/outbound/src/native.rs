//! Native implementations for tests and tools: reqwest and tokio.

use std::time::Duration;

use crate::{BoxFuture, Fetch, FetchError, Request, Response, Timer};

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
