//! A scripted Redis server and the properties the reply decoder must keep
//! on whatever it is sent, shared by the property tests (`tests/fuzz.rs`)
//! and the coverage-guided fuzz targets (`fuzz/`), so both check the same
//! thing. Never enabled in the Worker.
//!
//! The server is an in-memory stream with its replies preloaded: it hands
//! them out in the chunk sizes the caller chose (answering "not yet"
//! between chunks, as a socket does), then either ends the stream or
//! stalls. The timer fires only once the stream has stalled, so a call
//! that waits for more bytes ends in a timeout at once and nothing depends
//! on the clock.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use outbound::{BoxFuture, Timer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::{cmd, Connection, Error, Options, Pipeline, Protocol, Reply, Script};

/// The server side: `data` in reads of `chunks` sizes (cycled), then the
/// end of the stream or a stall. Writes are accepted and ignored.
pub struct ScriptedServer {
    data: Vec<u8>,
    at: usize,
    chunks: Vec<usize>,
    reads: usize,
    /// Answer `Pending` before the next read, as a socket between packets.
    pause: bool,
    hang_at_end: bool,
    stalled: Arc<AtomicBool>,
}

impl AsyncRead for ScriptedServer {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.at == this.data.len() {
            if this.hang_at_end {
                this.stalled.store(true, Ordering::SeqCst);
                return Poll::Pending;
            }
            return Poll::Ready(Ok(()));
        }
        if this.pause {
            this.pause = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        this.pause = true;
        let chunk = this.chunks[this.reads % this.chunks.len()];
        this.reads += 1;
        let n = chunk
            .min(this.data.len() - this.at)
            .min(buf.remaining())
            .max(1);
        buf.put_slice(&this.data[this.at..this.at + n]);
        this.at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ScriptedServer {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A deadline that passes as soon as the server has stalled.
struct StallTimer(Arc<AtomicBool>);

struct StallSleep(Arc<AtomicBool>);

impl Future for StallSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.load(Ordering::SeqCst) {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

impl Timer for StallTimer {
    fn sleep(&self, _: Duration) -> BoxFuture<'static, ()> {
        Box::pin(StallSleep(self.0.clone()))
    }
}

/// A server that sends `data` in reads of `chunks` sizes (cycled; none is
/// taken as one size of 8 KiB), and the timer that fires once it stalls.
pub fn scripted(
    data: Vec<u8>,
    mut chunks: Vec<usize>,
    hang_at_end: bool,
) -> (ScriptedServer, Arc<dyn Timer>) {
    if chunks.is_empty() {
        chunks.push(8192);
    }
    let stalled = Arc::new(AtomicBool::new(false));
    let server = ScriptedServer {
        data,
        at: 0,
        chunks,
        reads: 0,
        pause: false,
        hang_at_end,
        stalled: stalled.clone(),
    };
    (server, Arc::new(StallTimer(stalled)))
}

/// Runs `future` to its end on a runtime of its own.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
        .block_on(future)
}

/// `HELLO 3` accepted (RESP3), or refused as by Redis 5 (RESP2 fallback;
/// without credentials the fallback sends nothing).
pub fn hello(protocol: Protocol) -> &'static [u8] {
    match protocol {
        Protocol::Resp3 => b"%1\r\n$5\r\nproto\r\n:3\r\n",
        Protocol::Resp2 => b"-ERR unknown command 'HELLO'\r\n",
    }
}

/// One call of each kind against the server, each call's outcome in
/// order: a command, a pipeline, a transaction, [`script_calls`], and a
/// command; with `scripts_first`, the script calls before the rest (the
/// calls after a lost stream are only refused, so arbitrary bytes reach
/// deepest into the first ones). Panics when a pipeline or transaction
/// answers with a number of replies other than its number of commands.
pub async fn calls(
    conn: &mut Connection<ScriptedServer>,
    pipeline_len: usize,
    scripts_first: bool,
) -> Vec<Result<(), Error>> {
    let mut results = Vec::new();
    if scripts_first {
        results.extend(script_calls(conn).await);
    }
    results.push(conn.query::<Reply>(cmd("GET").arg("k")).await.map(drop));
    let mut pipeline = Pipeline::new();
    for i in 0..pipeline_len {
        pipeline.push(cmd("GET").arg(i));
    }
    results.push(conn.pipeline(&pipeline).await.map(|replies| {
        assert_eq!(replies.len(), pipeline_len, "one reply per command");
    }));
    results.push(conn.transaction(&pipeline).await.map(|replies| {
        if let Some(replies) = replies {
            assert_eq!(replies.len(), pipeline_len, "one result per command");
        }
    }));
    if !scripts_first {
        results.extend(script_calls(conn).await);
    }
    results.push(
        conn.query::<Option<String>>(cmd("GET").arg("k"))
            .await
            .map(drop),
    );
    results
}

/// Two scripts invoked together (their `NOSCRIPT` answers send the
/// sources in a second write), then one script alone. Panics when the
/// scripts invoked together answer with a number of results other than
/// theirs, or when one of them has the connection's error as its own.
async fn script_calls(conn: &mut Connection<ScriptedServer>) -> Vec<Result<(), Error>> {
    let script = Script::new("return 1");
    let other = Script::new("return 2");
    let together = [script.call().key("k"), other.call().arg(1)];
    let mut results = Vec::new();
    results.push(conn.invoke_all(&together).await.map(|each| {
        assert_eq!(each.len(), together.len(), "one result per script");
        for result in each {
            // A script's own result is a value or the server's error for
            // it; the connection's error is the outer result.
            assert!(
                matches!(result, Ok(_) | Err(Error::Server(_))),
                "a script's own result claims the connection: {result:?}"
            );
        }
    }));
    results.push(conn.invoke::<Reply>(script.call().key("k")).await.map(drop));
    results
}

/// Whether `result` means the conversation is lost.
fn loses_the_stream(result: &Result<(), Error>) -> bool {
    matches!(
        result,
        Err(Error::Io(_) | Error::Closed | Error::Timeout(_) | Error::Protocol(_))
    )
}

/// Arbitrary `bytes` after a good handshake in `protocol`: every call
/// ends in a value or an error (a panic or a call that never ends fails
/// the caller), the connection says it is unusable exactly when a call
/// lost the stream, every call after that is refused without touching
/// the stream, and when the stream ends rather than stalls no call waits
/// for its deadline. `Err` says which of these failed.
pub fn check_arbitrary_replies(
    protocol: Protocol,
    bytes: &[u8],
    chunks: Vec<usize>,
    hang_at_end: bool,
    pipeline_len: usize,
    scripts_first: bool,
) -> Result<(), String> {
    let mut data = hello(protocol).to_vec();
    data.extend_from_slice(bytes);
    let (stream, timer) = scripted(data, chunks, hang_at_end);
    let (results, protocol_seen, usable) = block_on(async {
        let mut conn = Connection::open(stream, &Options::default(), timer)
            .await
            .map_err(|e| format!("the well-formed handshake failed: {e}"))?;
        let protocol_seen = conn.protocol();
        let results = calls(&mut conn, pipeline_len, scripts_first).await;
        Ok::<_, String>((results, protocol_seen, conn.is_usable()))
    })?;
    if protocol_seen != protocol {
        return Err(format!("agreed {protocol_seen:?}, expected {protocol:?}"));
    }
    if usable == results.iter().any(loses_the_stream) {
        return Err(format!(
            "usable is {usable} after {results:?}: it must be false exactly when a call lost the stream"
        ));
    }
    let lost = results
        .iter()
        .position(|r| loses_the_stream(r) || matches!(r, Err(Error::Unusable(_))));
    if let Some(lost) = lost {
        if let Some(later) = results[lost + 1..]
            .iter()
            .find(|r| !matches!(r, Err(Error::Unusable(_))))
        {
            return Err(format!("a call after the stream was lost got {later:?}"));
        }
    }
    if !hang_at_end && results.iter().any(|r| matches!(r, Err(Error::Timeout(_)))) {
        return Err(format!(
            "a call timed out though the stream ended: {results:?}"
        ));
    }
    Ok(())
}

/// The password [`check_arbitrary_handshake`] authenticates with.
const PASSWORD: &str = "hunter2";

/// How a connection greets the server: each way reads the handshake's
/// answer differently, so each is checked on arbitrary bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opening {
    /// [`Connection::open`]: `HELLO 3` (and the RESP2 fallback) in round
    /// trips of its own.
    Open,
    /// [`Connection::deferred`]: `HELLO 3` in the first call's write.
    Deferred,
    /// [`Connection::deferred_resp2`]: `AUTH`, `CLIENT SETNAME` and
    /// `SELECT` in the first call's write, as a Worker request greets.
    DeferredResp2,
}

impl Opening {
    /// Every way, for a fuzz target to pick one by index.
    pub const ALL: [Opening; 3] = [Opening::Open, Opening::Deferred, Opening::DeferredResp2];
}

/// Arbitrary `bytes` as the answer to the handshake itself, greeted the
/// `opening` way, with or without a password (and with it a client name),
/// on database 0 or not (a deferred handshake that selects one takes a
/// round trip of its own): opening and every call end in a value or an
/// error, a call after the stream was lost is refused, and no error shows
/// the password. With `echo`, the server's first answer, the one to the
/// command that carries the password (`HELLO ... AUTH` or `AUTH`), quotes
/// it back, as Redis' unknown-command error quotes a command's arguments.
pub fn check_arbitrary_handshake(
    opening: Opening,
    bytes: &[u8],
    chunks: Vec<usize>,
    hang_at_end: bool,
    password: bool,
    select: bool,
    echo: bool,
) -> Result<(), String> {
    let mut data = Vec::new();
    if echo {
        data.extend_from_slice(
            format!("-ERR unknown command 'AUTH', with args beginning with: '{PASSWORD}' \r\n")
                .as_bytes(),
        );
    }
    data.extend_from_slice(bytes);
    let (stream, timer) = scripted(data, chunks, hang_at_end);
    let options = Options {
        password: password.then(|| PASSWORD.to_owned()),
        database: u32::from(select),
        client_name: password.then(|| "fuzz".to_owned()),
        ..Options::default()
    };
    let results = block_on(async {
        let mut conn = match opening {
            Opening::Open => match Connection::open(stream, &options, timer).await {
                Ok(conn) => conn,
                Err(e) => return vec![Err(e)],
            },
            Opening::Deferred => Connection::deferred(stream, &options, timer),
            Opening::DeferredResp2 => Connection::deferred_resp2(stream, &options, timer),
        };
        calls(&mut conn, 2, false).await
    });
    // Without a password the client has none to hide: the server is only
    // quoting itself.
    let shows_password =
        |e: &Error| e.to_string().contains(PASSWORD) || format!("{e:?}").contains(PASSWORD);
    if password {
        if let Some(e) = results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .find(|e| shows_password(e))
        {
            return Err(format!("an error shows the password: {e}"));
        }
    }
    if let Some(lost) = results.iter().position(loses_the_stream) {
        if let Some(later) = results[lost + 1..]
            .iter()
            .find(|r| !matches!(r, Err(Error::Unusable(_))))
        {
            return Err(format!(
                "a call after the stream was lost got {later:?} ({opening:?})"
            ));
        }
    }
    Ok(())
}
