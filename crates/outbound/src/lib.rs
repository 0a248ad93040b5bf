//! What protocol code needs from its runtime to reach other services: an
//! HTTP [`Fetch`], a TCP [`Connect`], a [`Timer`], and [`Background`] for
//! work that outlives the request. Protocol crates (the TiDB HTTP driver,
//! the Access JWKS cache, S3, Sentry, Loki) are written against these two
//! traits only, so they run unchanged in the Worker (bound to the
//! runtime's `fetch()` and `setTimeout` in `api-worker`) and natively
//! (reqwest and tokio, behind the `native` feature) in tests and tools.
//!
//! [`Deadlines`] is the bookkeeping for keeping many deadlines on one
//! runtime timer, which the Worker's per-request timer is built on.
//!
//! Futures are boxed and `Send` because axum handlers must be `Send`; in
//! the single-threaded Worker the implementations wrap their JS futures to
//! satisfy that.
//!
//! Not for: retries, caching or anything protocol-specific; those belong to
//! the crate that knows the protocol.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use bytes::Bytes;

/// A boxed `Send` future, the return type of the traits here.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An outgoing HTTP request with its whole body.
pub type Request = http::Request<Bytes>;
/// A response with its whole body read.
pub type Response = http::Response<Bytes>;

/// A request extension naming the only response headers its caller reads
/// (in any case); transports leave every other one out of the response.
/// Without it a response carries all its headers. The Worker's `fetch()`
/// pays for each header it hands to wasm (a JS iteration step and two
/// strings): about 16 us per call in a JS micro-benchmark answering six
/// headers (about what the local TiDB gateway stand-in sends), of which
/// the TiDB driver reads one.
/// Native transports honour it too, so tests catch a caller reading a
/// header it did not name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadHeaders(pub &'static [&'static str]);

impl ReadHeaders {
    /// Whether `name` is one of the headers to keep.
    pub fn keeps(&self, name: &str) -> bool {
        self.0.iter().any(|kept| kept.eq_ignore_ascii_case(name))
    }
}

/// Sends HTTP requests to other services.
pub trait Fetch: Send + Sync {
    /// Sends `request` and reads the whole response, giving up after
    /// `timeout` (connect, send and read together). Any HTTP status is a
    /// response, not an error.
    fn fetch(
        &self,
        request: Request,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Response, FetchError>>;
}

/// Why no response came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// No complete response within the timeout.
    Timeout(Duration),
    /// The connection failed or broke (DNS, refused, reset, TLS).
    Network(String),
    /// The request could not be sent as given (bad URL, header).
    InvalidRequest(String),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Timeout(d) => write!(f, "no response within {} ms", d.as_millis()),
            FetchError::Network(e) => write!(f, "network error: {e}"),
            FetchError::InvalidRequest(e) => write!(f, "invalid request: {e}"),
        }
    }
}

impl std::error::Error for FetchError {}

/// A connected byte stream (a TCP socket, TLS or not).
pub trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

/// Opens TCP connections (`connect()` from `cloudflare:sockets` in the
/// Worker), with TLS when asked.
pub trait Connect: Send + Sync {
    fn connect(
        &self,
        host: &str,
        port: u16,
        tls: bool,
    ) -> BoxFuture<'_, std::io::Result<Box<dyn Stream>>>;
}

/// Runs work after the response has gone out: `ctx.waitUntil` in the
/// Worker, a spawned task natively. Per request (the Worker's `ctx` is), so
/// the runtime hands one to each request; telemetry sends and the rollback
/// of an abandoned TiDB transaction run on it.
#[derive(Clone)]
pub struct Background(std::sync::Arc<dyn Fn(BoxFuture<'static, ()>) + Send + Sync>);

impl Background {
    pub fn new(spawn: impl Fn(BoxFuture<'static, ()>) + Send + Sync + 'static) -> Self {
        Background(std::sync::Arc::new(spawn))
    }

    pub fn spawn(&self, work: BoxFuture<'static, ()>) {
        (self.0)(work)
    }
}

impl fmt::Debug for Background {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Background")
    }
}

/// Sleeps without blocking the thread (`setTimeout` in the Worker).
pub trait Timer: Send + Sync {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

/// `future` did not finish within its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(pub Duration);

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "deadline of {} ms passed", self.0.as_millis())
    }
}

impl std::error::Error for Elapsed {}

/// Runs `future` until it finishes or `limit` passes, whichever is first.
/// The loser is dropped, which cancels it.
pub async fn deadline<F: Future>(
    timer: &dyn Timer,
    limit: Duration,
    future: F,
) -> Result<F::Output, Elapsed> {
    let mut future = std::pin::pin!(future);
    let mut sleep = timer.sleep(limit);
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(cx) {
            return std::task::Poll::Ready(Ok(output));
        }
        sleep.as_mut().poll(cx).map(|()| Err(Elapsed(limit)))
    })
    .await
}

mod deadlines;
pub use deadlines::{Arm, Deadlines};

#[cfg(feature = "native")]
mod native;
#[cfg(feature = "native")]
pub use native::{ReqwestFetch, TokioConnect, TokioTimer};

#[cfg(test)]
mod tests {
    use super::*;

    struct Tokio;
    impl Timer for Tokio {
        fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
            Box::pin(tokio::time::sleep(duration))
        }
    }

    #[tokio::test]
    async fn a_future_that_finishes_in_time_gives_its_output() {
        let out = deadline(&Tokio, Duration::from_secs(5), async { 7 }).await;
        assert_eq!(out, Ok(7));
    }

    #[tokio::test]
    async fn a_slow_future_is_cut_off_at_the_deadline() {
        let started = std::time::Instant::now();
        let out = deadline(
            &Tokio,
            Duration::from_millis(30),
            std::future::pending::<()>(),
        )
        .await;
        assert_eq!(out, Err(Elapsed(Duration::from_millis(30))));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
