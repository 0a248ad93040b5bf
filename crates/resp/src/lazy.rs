//! A connection opened on first use, so a request that never needs Redis
//! (a health check, a CORS preflight, a cache-free route) never pays for
//! a TCP and TLS handshake with it.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use outbound::{deadline, Elapsed, Timer};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::cmd::{Cmd, Pipeline};
use crate::connection::{Connection, Options};
use crate::error::Error;
use crate::reply::{FromReply, Replies};
use crate::script::ScriptCall;

enum State<S, F> {
    NotOpened(F),
    Open(Connection<S>),
    /// Opening failed (or was cancelled); the error is given again,
    /// wrapped in [`Error::Unusable`], without another attempt: if Redis
    /// is down, one request should wait for it once, not at every use.
    Failed(Error),
}

/// At most one connection, opened by `connect` and the handshake the
/// first time it is needed.
///
/// `connect` opens the stream (for the Worker: `Socket::builder()...
/// .connect(host, port)` and wait for `opened()`; natively
/// `TcpStream::connect`). It runs at most once, under the same deadline
/// as every exchange ([`Options::timeout`]).
pub struct LazyConnection<S, F> {
    state: State<S, F>,
    options: Options,
    timer: Arc<dyn Timer>,
}

impl<S, F> fmt::Debug for LazyConnection<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::NotOpened(_) => "not opened".to_owned(),
            State::Open(c) => format!("{c:?}"),
            State::Failed(e) => format!("failed: {e}"),
        };
        f.debug_struct("LazyConnection")
            .field("state", &state)
            .field("options", &self.options)
            .finish()
    }
}

impl<S, F, Fut, E> LazyConnection<S, F>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<S, E>>,
    E: fmt::Display,
{
    pub fn new(connect: F, options: Options, timer: Arc<dyn Timer>) -> Self {
        LazyConnection {
            state: State::NotOpened(connect),
            options,
            timer,
        }
    }

    /// Whether a connection was attempted at all: false means Redis was
    /// never contacted.
    pub fn was_attempted(&self) -> bool {
        !matches!(self.state, State::NotOpened(_))
    }

    /// The connection, opened now if this is the first use.
    pub async fn connection(&mut self) -> Result<&mut Connection<S>, Error> {
        if matches!(self.state, State::NotOpened(_)) {
            let cancelled = Error::Io("opening the connection was cancelled".into());
            let State::NotOpened(connect) =
                std::mem::replace(&mut self.state, State::Failed(cancelled))
            else {
                unreachable!("checked just above")
            };
            // Clones, not `&self`, across the await: the future then stays
            // `Send` whatever the stream type (a `&Self` would need `Sync`).
            let (options, timer) = (self.options.clone(), self.timer.clone());
            match Self::open(connect, &options, timer).await {
                Ok(connection) => self.state = State::Open(connection),
                Err(e) => {
                    self.state = State::Failed(e.clone());
                    return Err(e);
                }
            }
        }
        match &mut self.state {
            State::Open(connection) => Ok(connection),
            State::Failed(cause) => Err(Error::Unusable(Box::new(cause.clone()))),
            State::NotOpened(_) => unreachable!("opened or failed above"),
        }
    }

    async fn open(
        connect: F,
        options: &Options,
        timer: Arc<dyn Timer>,
    ) -> Result<Connection<S>, Error> {
        let stream = match deadline(timer.as_ref(), options.timeout, connect()).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(Error::Io(format!("cannot connect: {e}"))),
            Err(Elapsed(limit)) => return Err(Error::Timeout(limit)),
        };
        Connection::open(stream, options, timer).await
    }

    /// [`Connection::query`], opening the connection first if needed.
    pub async fn query<T: FromReply>(&mut self, command: Cmd) -> Result<T, Error> {
        self.connection().await?.query(command).await
    }

    /// [`Connection::pipeline`], opening the connection first if needed.
    pub async fn pipeline(&mut self, pipeline: &Pipeline) -> Result<Replies, Error> {
        self.connection().await?.pipeline(pipeline).await
    }

    /// [`Connection::transaction`], opening the connection first if needed.
    pub async fn transaction(&mut self, pipeline: &Pipeline) -> Result<Option<Replies>, Error> {
        self.connection().await?.transaction(pipeline).await
    }

    /// [`Connection::invoke`], opening the connection first if needed.
    pub async fn invoke<T: FromReply>(&mut self, call: ScriptCall<'_>) -> Result<T, Error> {
        self.connection().await?.invoke(call).await
    }

    /// [`Connection::invoke_all`], opening the connection first if needed.
    pub async fn invoke_all(
        &mut self,
        calls: &[ScriptCall<'_>],
    ) -> Result<Vec<Result<crate::Reply, Error>>, Error> {
        self.connection().await?.invoke_all(calls).await
    }
}
