//! Native implementations for tests and tools: reqwest and tokio.

use std::time::Duration;

use crate::{BoxFuture, Connect, Fetch, FetchError, ReadHeaders, Request, Response, Stream, Timer};

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
            let read = parts.extensions.get::<ReadHeaders>().copied();
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
                for (name, value) in sent.headers() {
                    if read.is_none_or(|read| read.keeps(name.as_str())) {
                        headers.append(name.clone(), value.clone());
                    }
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Bytes;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Serves one HTTP/1.1 answer with three headers on a fresh port.
    async fn one_answer() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = vec![0; 4096];
            let _ = stream.read(&mut request).await.unwrap();
            stream
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nTiDB-Session: s1\r\n\
                      x-other: o\r\nconnection: close\r\n\r\nok",
                )
                .await
                .unwrap();
        });
        format!("http://{address}/")
    }

    async fn header_names(read: Option<ReadHeaders>) -> Vec<String> {
        let mut request = http::Request::get(one_answer().await);
        if let Some(read) = read {
            request = request.extension(read);
        }
        let response = ReqwestFetch::default()
            .fetch(request.body(Bytes::new()).unwrap(), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(response.body().as_ref(), b"ok");
        let mut names: Vec<String> = response.headers().keys().map(|n| n.to_string()).collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn a_response_keeps_only_the_headers_the_request_reads() {
        assert_eq!(
            header_names(Some(ReadHeaders(&["TiDB-Session", "x-absent"]))).await,
            ["tidb-session"]
        );
        assert_eq!(
            header_names(None).await,
            ["connection", "content-length", "tidb-session", "x-other"]
        );
    }
}
