//! TCP from the Worker: `connect()` from `cloudflare:sockets` as a tokio
//! `AsyncRead + AsyncWrite`, for the RESP client.
//!
//! Written here instead of using `worker::Socket` because that one makes
//! five or six calls into JS for every read and write (take a reader or
//! writer lock, read, release it, and read `done` and `value` through
//! `Reflect`), which a CPU profile of the cached page read showed (then
//! two exchanges with Redis a read; one since its cache lookup goes out
//! with its rate limit count). Here the
//! JS half (`js/socket.js`) takes the socket's reader and writer once.
//! A read is one call, and its outcome comes back through one callback
//! made with the stream (awaiting a promise from wasm makes two closures
//! every time); a write is one call and no wait: the bytes are queued on
//! the socket's stream at once and the exchange goes on to read the reply
//! (a write that fails fails the next read). Connecting does not wait for
//! the connection either: the first request goes out with it, and a
//! refused connection fails the first read ("cannot connect: ...").

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use worker::js_sys::Uint8Array;
use worker::wasm_bindgen::{self, prelude::wasm_bindgen, prelude::Closure, JsCast, JsValue};

#[wasm_bindgen(module = "/js/socket.js")]
extern "C" {
    type Tcp;

    #[wasm_bindgen(constructor, catch)]
    fn new(
        hostname: &str,
        port: u16,
        tls: bool,
        on_read: &Closure<dyn FnMut(JsValue, JsValue)>,
    ) -> Result<Tcp, JsValue>;

    #[wasm_bindgen(method)]
    fn read(this: &Tcp);

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

/// Where the read in flight stands, shared with the `onRead` callback.
#[derive(Default)]
struct Reading {
    /// A read was started and its outcome has not come yet.
    in_flight: bool,
    /// The outcome that came: a chunk (undefined at the end), or an error.
    outcome: Option<Result<JsValue, JsValue>>,
    /// The task to wake when it comes.
    waker: Option<Waker>,
}

/// An open TCP connection; closed when dropped.
pub struct TcpStream {
    tcp: Tcp,
    reading: Rc<RefCell<Reading>>,
    /// Freed after `tcp` is closed, which stops JS from calling it.
    _on_read: Closure<dyn FnMut(JsValue, JsValue)>,
    /// Bytes received that did not fit the caller's buffer.
    leftover: Vec<u8>,
    /// How far `leftover` has been handed out.
    consumed: usize,
}

// SAFETY: wasm32 Workers are single-threaded; a stream never leaves the
// thread (and the request) that opened it.
unsafe impl Send for TcpStream {}

impl TcpStream {
    /// Starts connecting. Fails here only on an address the runtime
    /// refuses outright; a connection that cannot be made fails the first
    /// read.
    pub fn connect(hostname: &str, port: u16, tls: bool) -> io::Result<TcpStream> {
        let reading = Rc::new(RefCell::new(Reading::default()));
        let shared = reading.clone();
        let on_read = Closure::new(move |chunk: JsValue, error: JsValue| {
            let waker = {
                let mut reading = shared.borrow_mut();
                reading.in_flight = false;
                reading.outcome = Some(if error.is_undefined() {
                    Ok(chunk)
                } else {
                    Err(error)
                });
                reading.waker.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        });
        let tcp = Tcp::new(hostname, port, tls, &on_read).map_err(io_error)?;
        Ok(TcpStream {
            tcp,
            reading,
            _on_read: on_read,
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
        let outcome = {
            let mut reading = this.reading.borrow_mut();
            match reading.outcome.take() {
                Some(outcome) => outcome,
                None => {
                    if !reading.in_flight {
                        reading.in_flight = true;
                        this.tcp.read();
                    }
                    if !reading
                        .waker
                        .as_ref()
                        .is_some_and(|w| w.will_wake(cx.waker()))
                    {
                        reading.waker = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
            }
        };
        let chunk = outcome.map_err(io_error)?;
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
