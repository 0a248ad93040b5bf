//! TCP from the Worker: `connect()` from `cloudflare:sockets` as a tokio
//! `AsyncRead + AsyncWrite`, for the RESP client.
//!
//! Written here instead of using `worker::Socket` because that one makes
//! five or six calls into JS for every read and write (take a reader or
//! writer lock, read, release it, and read `done` and `value` through
//! `Reflect`), which a CPU profile of the cached page read showed; a
//! request that hits the cache makes two exchanges with Redis. Here the
//! JS half (`js/socket.js`) takes the socket's reader and writer once, so
//! a read is one call and one promise, and a write one call and no wait:
//! the bytes are queued on the socket's stream at once and the exchange
//! goes on to read the reply (a write that fails fails the next read).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use worker::js_sys::{Promise, Uint8Array};
use worker::wasm_bindgen::{self, prelude::wasm_bindgen, JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;

#[wasm_bindgen(module = "/js/socket.js")]
extern "C" {
    type Tcp;

    #[wasm_bindgen(constructor, catch)]
    fn new(hostname: &str, port: u16, tls: bool) -> Result<Tcp, JsValue>;

    #[wasm_bindgen(method)]
    fn opened(this: &Tcp) -> Promise;

    #[wasm_bindgen(method)]
    fn read(this: &Tcp) -> Promise;

    #[wasm_bindgen(method)]
    fn write(this: &Tcp, bytes: &[u8]);

    #[wasm_bindgen(method)]
    fn close(this: &Tcp);
}

fn io_error(value: JsValue) -> io::Error {
    let message = value
        .dyn_ref::<worker::js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| value.as_string())
        .unwrap_or_else(|| format!("{value:?}"));
    io::Error::other(message)
}

/// An open TCP connection; closed when dropped.
pub struct TcpStream {
    tcp: Tcp,
    /// The read in flight, if any.
    reading: Option<JsFuture>,
    /// Bytes received that did not fit the caller's buffer.
    leftover: Vec<u8>,
    /// How far `leftover` has been handed out.
    consumed: usize,
}

// SAFETY: wasm32 Workers are single-threaded; a stream never leaves the
// thread (and the request) that opened it.
unsafe impl Send for TcpStream {}

impl TcpStream {
    /// Connects, and waits until the connection is open so that a refused
    /// connection fails here rather than at the first write.
    pub async fn connect(hostname: &str, port: u16, tls: bool) -> io::Result<TcpStream> {
        let tcp = Tcp::new(hostname, port, tls).map_err(io_error)?;
        JsFuture::from(tcp.opened()).await.map_err(io_error)?;
        Ok(TcpStream {
            tcp,
            reading: None,
            leftover: Vec::new(),
            consumed: 0,
        })
    }

    /// Hands out what is left of the last chunk first.
    fn give_leftover(&mut self, buf: &mut ReadBuf<'_>) {
        let rest = &self.leftover[self.consumed..];
        let n = rest.len().min(buf.remaining());
        buf.put_slice(&rest[..n]);
        self.consumed += n;
        if self.consumed == self.leftover.len() {
            self.leftover.clear();
            self.consumed = 0;
        }
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        self.tcp.close();
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.leftover.is_empty() {
            this.give_leftover(buf);
            return Poll::Ready(Ok(()));
        }
        let reading = this
            .reading
            .get_or_insert_with(|| JsFuture::from(this.tcp.read()));
        let chunk = match Pin::new(reading).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(result) => {
                this.reading = None;
                result.map_err(io_error)?
            }
        };
        if chunk.is_undefined() {
            // The end of the stream: a read of zero bytes.
            return Poll::Ready(Ok(()));
        }
        let chunk: Uint8Array = chunk.unchecked_into();
        let length = chunk.length() as usize;
        if length <= buf.remaining() {
            let target = &mut buf.initialize_unfilled_to(length)[..length];
            chunk.copy_to(target);
            buf.advance(length);
        } else {
            this.leftover = chunk.to_vec();
            this.give_leftover(buf);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for TcpStream {
    /// Queues `buf` on the socket's writable stream (copied there) and is
    /// done: waiting for each write's promise cost the RESP exchange a
    /// promise round trip through wasm before it could read the reply.
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.tcp.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    /// Nothing is held back on this side: written bytes are already the
    /// socket's.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = self.as_mut().poll_flush(cx);
        if flushed.is_ready() {
            self.tcp.close();
        }
        flushed
    }
}
