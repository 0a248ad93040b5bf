//! One Redis connection: the handshake, request/reply exchanges under a
//! deadline, pipelines, transactions and scripts.
//!
//! The connection is strictly sequential (`&mut self`): a request is
//! written, then exactly as many replies as commands are read. Whenever
//! that rhythm may have been lost (deadline passed, stream broke, garbage
//! read, a call cancelled halfway) the connection refuses all later work,
//! because a late reply would otherwise be taken as the answer to the next
//! command.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use outbound::{deadline, Elapsed, Timer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::cmd::{cmd, Cmd, Pipeline};
use crate::error::{from_io, Error, ServerError};
use crate::reply::{self, Frame, FromReply, Replies, Reply};
use crate::scan::{self, Scan, Scanner, MAX_NESTING, MAX_REPLY_BYTES};
use crate::script::ScriptCall;

/// How much to grow the read buffer by when a reply is incomplete.
const READ_CHUNK: usize = 8 * 1024;

/// The protocol version agreed in the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Redis before 6, or a server that refused `HELLO 3`.
    Resp2,
    Resp3,
}

/// How to open a connection. `Debug` masks the username and password.
#[derive(Clone)]
pub struct Options {
    /// ACL user; `None` is Redis' `default` user (Redis Cloud's too).
    pub username: Option<String>,
    /// `None` skips authentication (a server without `requirepass`).
    pub password: Option<String>,
    /// Database index for `SELECT`; 0 sends no `SELECT`.
    pub database: u32,
    /// Sent as `CLIENT SETNAME` so `CLIENT LIST` shows who is connected.
    pub client_name: Option<String>,
    /// Deadline for each exchange: connecting (in [`LazyConnection`](crate::LazyConnection)),
    /// each handshake round trip,
    /// each command, a whole pipeline, a whole transaction.
    pub timeout: Duration,
}

impl Default for Options {
    /// No credentials, database 0, no name, one second per exchange: a
    /// cache or a rate limiter that waits longer than that is worse than
    /// one that is skipped.
    fn default() -> Self {
        Options {
            username: None,
            password: None,
            database: 0,
            client_name: None,
            timeout: Duration::from_secs(1),
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let masked = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("Options")
            .field("username", &masked(&self.username))
            .field("password", &masked(&self.password))
            .field("database", &self.database)
            .field("client_name", &self.client_name)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What a call dropped before its reply was read leaves behind.
const DROPPED_MIDWAY: &str = "an earlier call was dropped before its reply was read";

/// Where the request/reply rhythm stands.
#[derive(Debug, Clone)]
enum State {
    Ready,
    /// A request was written and its replies are not all read yet. Seen at
    /// the start of a call, it means the previous call was dropped midway.
    InFlight,
    /// The rhythm is lost; the error that lost it.
    Broken(Error),
}

/// A Redis connection over a stream `S` (the Worker's TCP socket,
/// tokio's `TcpStream`, or anything else that reads and writes bytes).
pub struct Connection<S> {
    wire: Wire<S>,
    timer: Arc<dyn Timer>,
    timeout: Duration,
    state: State,
    /// The handshake of a [`Connection::deferred`] connection until it
    /// goes out, in the same write as the first request.
    handshake: Option<Box<Options>>,
    /// Whether that handshake is `HELLO 3` or RESP2's commands.
    greeting: Greeting,
    /// The password, masked in every reply and error the connection
    /// hands out: a server may quote it in its answer to the command that
    /// carried it (`AUTH`, `HELLO`), and an answer read out of step (a
    /// server that answered the handshake short) reaches a later call.
    secret: Option<Box<str>>,
}

/// How a connection introduces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Greeting {
    /// `HELLO 3 AUTH ... SETNAME ...`: RESP3 where the server has it.
    Hello,
    /// `AUTH`, `CLIENT SETNAME` and `SELECT` in RESP2 (see
    /// [`Connection::deferred_resp2`]).
    Resp2,
}

impl<S> fmt::Debug for Connection<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("protocol", &self.wire.protocol)
            .field("timeout", &self.timeout)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<S> Connection<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Runs the handshake over an already connected `stream`:
    /// `HELLO 3 AUTH user password SETNAME name`, then `SELECT` if needed,
    /// in one round trip. A server that does not know `HELLO` (Redis
    /// before 6) gets `AUTH`, `CLIENT SETNAME` and `SELECT` in a second
    /// round trip and is spoken to in RESP2.
    pub async fn open(stream: S, options: &Options, timer: Arc<dyn Timer>) -> Result<Self, Error> {
        let mut connection = Connection::new(stream, options, timer);
        connection.handshake_now(options).await?;
        Ok(connection)
    }

    /// The handshake in a round trip of its own (two on a server without
    /// `HELLO`).
    async fn handshake_now(&mut self, options: &Options) -> Result<(), Error> {
        let hello = hello_pipeline(options);
        let mut request = BytesMut::new();
        hello.encode(&mut request)?;
        let replies = self.round_trip_now(&request, hello.len(), 0).await?;
        if self.check_hello(replies)? {
            self.fall_back(options).await?;
        }
        Ok(())
    }

    /// A connection over `stream` whose handshake has not been sent: it
    /// goes out in the same write as the first request, whose replies are
    /// read after the handshake's, so a short-lived connection (one per
    /// Worker request) saves a whole round trip. The first call fails with
    /// the handshake's error if the handshake fails; the server refuses
    /// that call's commands then (`NOAUTH`), since the connection is not
    /// authenticated. On a server without `HELLO`, the fallback handshake
    /// follows and the first request is sent again if it was refused for
    /// want of credentials.
    pub fn deferred(stream: S, options: &Options, timer: Arc<dyn Timer>) -> Self {
        let mut connection = Connection::new(stream, options, timer);
        connection.handshake = Some(Box::new(options.clone()));
        connection
    }

    /// [`Connection::deferred`] in RESP2 from the start: the handshake is
    /// `AUTH`, `CLIENT SETNAME` and `SELECT` (those the options ask for),
    /// each answered `+OK`, instead of `HELLO 3`, whose answer is a map of
    /// the server's details that the server builds and the client decodes
    /// on every connection. For a connection that lives one request and
    /// sends commands whose replies read the same in both protocols (no
    /// maps, sets, doubles or push frames), as a Worker's are
    /// (BENCHMARKS.md, thirty-fifth pass).
    pub fn deferred_resp2(stream: S, options: &Options, timer: Arc<dyn Timer>) -> Self {
        let mut connection = Connection::new(stream, options, timer);
        connection.wire.protocol = Protocol::Resp2;
        connection.greeting = Greeting::Resp2;
        connection.handshake = Some(Box::new(options.clone()));
        connection
    }

    fn new(stream: S, options: &Options, timer: Arc<dyn Timer>) -> Self {
        Connection {
            wire: Wire {
                stream,
                buffer: BytesMut::new(),
                scanner: Scanner::new(MAX_NESTING, MAX_REPLY_BYTES),
                // The HELLO reply is read with the RESP3 decoder: a map if
                // HELLO worked, an error line (the same in both) if not.
                protocol: Protocol::Resp3,
            },
            timer,
            timeout: options.timeout,
            state: State::Ready,
            handshake: None,
            greeting: Greeting::Hello,
            secret: options
                .password
                .as_deref()
                .filter(|p| !p.is_empty())
                .map(Box::from),
        }
    }

    /// Takes the replies to [`hello_pipeline`]: sets the protocol, or says
    /// (`true`) that the server has no `HELLO` and needs [`Self::fall_back`].
    fn check_hello(&mut self, replies: Vec<Reply>) -> Result<bool, Error> {
        let mut replies = replies.into_iter();
        let hello = replies
            .next()
            .expect("exchange reads one reply per command");
        self.wire.protocol = agreed_protocol(&hello, self.wire.protocol);
        match hello {
            Reply::Error(e) if hello_unsupported(&e) => Ok(true),
            // Read through `round_trip_now`, which masked the password.
            Reply::Error(e) => Err(if is_auth_error(&e) {
                Error::Auth(e)
            } else {
                Error::Server(e)
            }),
            _ => match replies.next() {
                Some(Reply::Error(e)) => Err(Error::Server(e)),
                _ => Ok(false),
            },
        }
    }

    /// The handshake for servers without HELLO, in RESP2. Their error
    /// message for HELLO may echo its arguments, password included, so it
    /// is never shown.
    async fn fall_back(&mut self, options: &Options) -> Result<(), Error> {
        let greeting = resp2_pipeline(options);
        if greeting.is_empty() {
            return Ok(());
        }
        let mut request = BytesMut::new();
        greeting.encode(&mut request)?;
        let replies = self.round_trip_now(&request, greeting.len(), 0).await?;
        check_resp2_greeting(options, replies)
    }

    /// The protocol agreed in the handshake.
    pub fn protocol(&self) -> Protocol {
        self.wire.protocol
    }

    /// False once the connection has lost track of the conversation; every
    /// call then fails at once with [`Error::Unusable`].
    pub fn is_usable(&self) -> bool {
        matches!(self.state, State::Ready)
    }

    /// Why the connection is not usable: the error that lost the
    /// conversation, or a call dropped before its reply was read (a
    /// caller's deadline). `None` while it is usable.
    pub fn lost_to(&self) -> Option<Error> {
        match &self.state {
            State::Ready => None,
            State::InFlight => Some(Error::Protocol(DROPPED_MIDWAY.into())),
            State::Broken(cause) => Some(cause.clone()),
        }
    }

    /// Changes the deadline for the following exchanges, e.g. around a
    /// blocking command that is expected to take longer.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Gives the stream back, for a runtime whose sockets need an explicit
    /// close.
    pub fn into_inner(self) -> S {
        self.wire.stream
    }

    /// Sends one command and reads its reply as `T`:
    /// `let v: Option<String> = conn.query(cmd("GET").arg("k")).await?`.
    pub async fn query<T: FromReply>(&mut self, command: Cmd) -> Result<T, Error> {
        let mut request = BytesMut::new();
        command.encode(&mut request)?;
        let reply = self.round_trip(&request, 1).await?.pop();
        T::from_reply(reply.expect("one reply per command").into_result()?)
    }

    /// Sends every command of `pipeline` in one write and reads their
    /// replies in order. The outer error is for the connection (nothing
    /// usable came back); each command's own error reply is in
    /// [`Replies`].
    pub async fn pipeline(&mut self, pipeline: &Pipeline) -> Result<Replies, Error> {
        Ok(Replies::new(self.exchange(pipeline).await?))
    }

    /// Runs `pipeline` as a transaction: `MULTI`, the commands, `EXEC`,
    /// all in one write.
    ///
    /// - `Ok(Some(replies))`: it ran; one reply per command (a command
    ///   failing at run time, like `WRONGTYPE`, is an error in its slot,
    ///   the others still ran, as Redis does).
    /// - `Ok(None)`: a key `WATCH`ed before it changed, so nothing ran.
    /// - `Err(Error::Server)` with code `EXECABORT`: a command was refused
    ///   when queued (unknown command, wrong arity), so nothing ran; the
    ///   message ends with the first refusal.
    pub async fn transaction(&mut self, pipeline: &Pipeline) -> Result<Option<Replies>, Error> {
        let mut request = BytesMut::new();
        cmd("MULTI").encode(&mut request)?;
        pipeline.encode(&mut request)?;
        cmd("EXEC").encode(&mut request)?;
        let mut replies = self
            .round_trip(&request, pipeline.len() + 2)
            .await?
            .into_iter();
        let multi = replies.next().expect("MULTI reply");
        let exec = replies.next_back().expect("EXEC reply");
        if let Reply::Error(e) = multi {
            // Without MULTI the commands ran on their own; say so rather
            // than report EXEC's "EXEC without MULTI".
            return Err(Error::Server(e));
        }
        let refused = replies.find_map(|queued| match queued {
            Reply::Error(e) => Some(e),
            _ => None,
        });
        match exec {
            Reply::Array(results) if results.len() == pipeline.len() => {
                Ok(Some(Replies::new(results)))
            }
            Reply::Array(results) => Err(self.lose(Error::Protocol(format!(
                "EXEC gave {} results for {} commands",
                results.len(),
                pipeline.len()
            )))),
            Reply::Nil => Ok(None),
            Reply::Error(e) => Err(Error::Server(match refused {
                Some(first) => ServerError::new(format!("{} ({first})", e.message())),
                None => e,
            })),
            other => Err(self.lose(Error::Protocol(format!(
                "EXEC answered with a {}",
                other.kind()
            )))),
        }
    }

    /// Runs a Lua script by its SHA-1 (`EVALSHA`, one round trip), and
    /// only when the server does not have it cached (`NOSCRIPT`) sends the
    /// source (`EVAL`, which also caches it).
    pub async fn invoke<T: FromReply>(&mut self, call: ScriptCall<'_>) -> Result<T, Error> {
        match self.query(call.command("EVALSHA")).await {
            Err(Error::Server(e)) if e.code() == "NOSCRIPT" => {
                self.query(call.command("EVAL")).await
            }
            result => result,
        }
    }

    /// Runs several Lua scripts in one write (`EVALSHA` each) and, only
    /// for those the server does not have cached (`NOSCRIPT`, which ran
    /// nothing), sends their source (`EVAL`) in a second write. One result
    /// per call, in order: a script's error reply is its own result, so
    /// one script refused (a full Redis refusing a write) does not lose
    /// the others' answers. The outer error is for the connection.
    ///
    /// For calls that do not depend on each other's outcome: a request's
    /// rate limit count and its cache lookup, say, in one round trip
    /// instead of two.
    pub async fn invoke_all(
        &mut self,
        calls: &[ScriptCall<'_>],
    ) -> Result<Vec<Result<Reply, Error>>, Error> {
        let mut pipeline = Pipeline::new();
        for call in calls {
            pipeline.push(call.command("EVALSHA"));
        }
        let mut replies = self.exchange(&pipeline).await?;
        let missing: Vec<usize> = (0..replies.len())
            .filter(|&i| matches!(&replies[i], Reply::Error(e) if e.code() == "NOSCRIPT"))
            .collect();
        if !missing.is_empty() {
            let mut sources = Pipeline::new();
            for &i in &missing {
                sources.push(calls[i].command("EVAL"));
            }
            let evaluated = self.exchange(&sources).await?;
            for (i, reply) in missing.into_iter().zip(evaluated) {
                replies[i] = reply;
            }
        }
        Ok(replies.into_iter().map(Reply::into_result).collect())
    }

    /// One pipeline's worth of replies, error replies included as values.
    async fn exchange(&mut self, pipeline: &Pipeline) -> Result<Vec<Reply>, Error> {
        let mut request = BytesMut::new();
        pipeline.encode(&mut request)?;
        self.round_trip(&request, pipeline.commands().len()).await
    }

    /// Writes `request` and reads `count` replies, under the deadline,
    /// keeping track of whether the conversation is still in step; the
    /// deferred handshake goes first, in the same write.
    async fn round_trip(&mut self, request: &[u8], count: usize) -> Result<Vec<Reply>, Error> {
        let Some(options) = self.handshake.take() else {
            return self.round_trip_now(request, count, 0).await;
        };
        if options.database != 0 {
            // A failed SELECT must not leave the first request run on
            // database 0: the handshake gets a round trip of its own.
            let greeted = match self.greeting {
                Greeting::Hello => self.handshake_now(&options).await,
                Greeting::Resp2 => self.fall_back(&options).await,
            };
            greeted.map_err(|e| self.lose(e))?;
            return self.round_trip_now(request, count, 0).await;
        }
        if self.greeting == Greeting::Resp2 {
            let greeting = resp2_pipeline(&options);
            let (replies, own) = self
                .round_trip_greeted(&greeting, request, count, 0)
                .await?;
            return match check_resp2_greeting(&options, replies) {
                Ok(()) => Ok(own),
                Err(e) => Err(self.lose(e)),
            };
        }
        let hello = hello_pipeline(&options);
        let (replies, own) = self
            .round_trip_greeted(&hello, request, count, hello.len())
            .await?;
        match self.check_hello(replies) {
            Ok(false) => Ok(own),
            Ok(true) => {
                self.fall_back(&options).await.map_err(|e| self.lose(e))?;
                if options.password.is_some() {
                    // Refused (NOAUTH) before the fallback authenticated.
                    self.round_trip_now(request, count, 0).await
                } else {
                    Ok(own)
                }
            }
            Err(e) => Err(self.lose(e)),
        }
    }

    /// `greeting`'s commands and then `request` in one write: the
    /// greeting's replies, and the request's `count` after them. `hello`
    /// as for [`Self::round_trip_now`]: how many of the greeting's
    /// commands agree a protocol for the replies after theirs (0 for a
    /// RESP2 greeting).
    async fn round_trip_greeted(
        &mut self,
        greeting: &Pipeline,
        request: &[u8],
        count: usize,
        hello: usize,
    ) -> Result<(Vec<Reply>, Vec<Reply>), Error> {
        let mut both = BytesMut::new();
        greeting.encode(&mut both)?;
        both.extend_from_slice(request);
        let mut replies = self
            .round_trip_now(&both, greeting.len() + count, hello)
            .await?;
        let own = replies.split_off(greeting.len());
        Ok((replies, own))
    }

    /// [`Self::round_trip`] without the handshake. When the request
    /// starts with the `hello` commands of a handshake (0 for none), the
    /// replies after theirs are read in the protocol they agreed.
    async fn round_trip_now(
        &mut self,
        request: &[u8],
        count: usize,
        hello: usize,
    ) -> Result<Vec<Reply>, Error> {
        match &self.state {
            State::Ready => {}
            State::InFlight => {
                let cause = Error::Protocol(DROPPED_MIDWAY.into());
                self.state = State::Broken(cause.clone());
                return Err(Error::Unusable(Box::new(cause)));
            }
            State::Broken(cause) => return Err(Error::Unusable(Box::new(cause.clone()))),
        }
        self.state = State::InFlight;
        let exchange = self.wire.round_trip(request, count, hello);
        let mut result = match deadline(self.timer.as_ref(), self.timeout, exchange).await {
            Ok(result) => result,
            Err(Elapsed(limit)) => Err(Error::Timeout(limit)),
        };
        if let Some(secret) = self.secret.as_deref() {
            match &mut result {
                Ok(replies) => replies.iter_mut().for_each(|reply| reply.redact(secret)),
                Err(e) => e.redact(secret),
            }
        }
        self.state = match &result {
            Err(e) if e.breaks_connection() => State::Broken(e.clone()),
            _ => State::Ready,
        };
        result
    }

    /// Marks the connection unusable because of `error`, and returns it.
    fn lose(&mut self, error: Error) -> Error {
        self.state = State::Broken(error.clone());
        error
    }
}

/// RESP2's handshake: `AUTH`, `CLIENT SETNAME` and `SELECT`, each only if
/// the options ask for it (so possibly none).
fn resp2_pipeline(options: &Options) -> Pipeline {
    let mut greeting = Pipeline::new();
    if let Some(password) = options.password.as_deref() {
        greeting.push(match options.username.as_deref() {
            Some(user) if user != "default" => cmd("AUTH").arg(user).arg(password),
            _ => cmd("AUTH").arg(password),
        });
    }
    if let Some(name) = &options.client_name {
        greeting.push(cmd("CLIENT").arg("SETNAME").arg(name));
    }
    if options.database != 0 {
        greeting.push(cmd("SELECT").arg(options.database));
    }
    greeting
}

/// The first refusal among the replies to [`resp2_pipeline`], an
/// authentication error if it was `AUTH`'s (the password already masked,
/// as in every reply `round_trip_now` reads).
fn check_resp2_greeting(options: &Options, replies: Vec<Reply>) -> Result<(), Error> {
    for (i, reply) in replies.into_iter().enumerate() {
        if let Reply::Error(e) = reply {
            return Err(if i == 0 && options.password.is_some() {
                Error::Auth(e)
            } else {
                Error::Server(e)
            });
        }
    }
    Ok(())
}

/// `HELLO 3 AUTH user password SETNAME name`, and `SELECT` if needed.
fn hello_pipeline(options: &Options) -> Pipeline {
    let mut hello = cmd("HELLO").arg("3");
    if let Some(password) = options.password.as_deref() {
        let user = options.username.as_deref().unwrap_or("default");
        hello = hello.arg("AUTH").arg(user).arg(password);
    }
    if let Some(name) = &options.client_name {
        hello = hello.arg("SETNAME").arg(name);
    }
    let mut first = Pipeline::new().with(hello);
    if options.database != 0 {
        first.push(cmd("SELECT").arg(options.database));
    }
    first
}

/// The protocol to speak after `hello`'s reply: RESP2 where HELLO is
/// unknown, what it agreed where it worked, and `current` where it failed
/// (an error line reads the same in both).
fn agreed_protocol(hello: &Reply, current: Protocol) -> Protocol {
    match hello {
        Reply::Error(e) if hello_unsupported(e) => Protocol::Resp2,
        Reply::Error(_) => current,
        agreed => negotiated(agreed),
    }
}

/// HELLO itself is unknown (Redis < 6: `ERR unknown command`) or RESP3 is
/// (`NOPROTO`): fall back to AUTH and RESP2.
fn hello_unsupported(e: &ServerError) -> bool {
    e.code() == "NOPROTO" || e.message().to_ascii_lowercase().contains("unknown command")
}

/// HELLO failed because of the credentials rather than, say, a bad client
/// name.
fn is_auth_error(e: &ServerError) -> bool {
    matches!(e.code(), "WRONGPASS" | "NOAUTH" | "NOPERM")
        || e.message().to_ascii_lowercase().contains("password")
}

/// The protocol HELLO's reply confirms (its `proto` field), RESP3 if it
/// does not say.
fn negotiated(hello: &Reply) -> Protocol {
    let proto = match hello {
        Reply::Map(pairs) => pairs.iter().find_map(|(k, v)| match (k, v) {
            (Reply::Bulk(k), Reply::Integer(p)) if k == b"proto" => Some(*p),
            (Reply::Status(k), Reply::Integer(p)) if k == "proto" => Some(*p),
            _ => None,
        }),
        _ => None,
    };
    match proto {
        Some(2) => Protocol::Resp2,
        _ => Protocol::Resp3,
    }
}

/// The stream with its read buffer: bytes in, frames out.
struct Wire<S> {
    stream: S,
    /// Bytes read but not decoded yet (a partial reply).
    buffer: BytesMut,
    /// How far the reply at the start of `buffer` has been framed.
    scanner: Scanner,
    protocol: Protocol,
}

impl<S> Wire<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn round_trip(
        &mut self,
        request: &[u8],
        count: usize,
        hello: usize,
    ) -> Result<Vec<Reply>, Error> {
        self.stream.write_all(request).await.map_err(from_io)?;
        self.stream.flush().await.map_err(from_io)?;
        let mut replies = Vec::with_capacity(count);
        while replies.len() < count {
            if hello > 0 && replies.len() == hello {
                self.protocol = agreed_protocol(&replies[0], self.protocol);
            }
            replies.push(self.read_reply().await?);
        }
        Ok(replies)
    }

    async fn read_reply(&mut self) -> Result<Reply, Error> {
        loop {
            while let Some(frame) = self.decode()? {
                match frame {
                    Frame::Reply(reply) => return Ok(reply),
                    Frame::Push => continue,
                }
            }
            // The scan refuses a reply whose headers announce too much;
            // this catches one that gets there otherwise (a line without
            // its CRLF, many elements each larger than the least).
            if self.buffer.len() > MAX_REPLY_BYTES {
                return Err(too_large());
            }
            self.buffer.reserve(READ_CHUNK);
            let read = self
                .stream
                .read_buf(&mut self.buffer)
                .await
                .map_err(from_io)?;
            if read == 0 {
                return Err(Error::Closed);
            }
        }
    }

    /// The next whole frame in the buffer, or `None` if more bytes are
    /// needed.
    fn decode(&mut self) -> Result<Option<Frame>, Error> {
        // Framed first (linear in the bytes read, however they arrive), so
        // redis-protocol, which decodes recursively and from the start,
        // runs once per reply and never on one nested deep enough to
        // exhaust the stack.
        let (len, attributes) = match self.scanner.scan(&self.buffer, self.protocol) {
            Scan::Incomplete => return Ok(None),
            Scan::TooDeep => {
                return Err(Error::Protocol(format!(
                    "reply nested deeper than {MAX_NESTING} levels"
                )))
            }
            Scan::TooLarge => return Err(too_large()),
            Scan::Invalid(why) => return Err(Error::Protocol(format!("undecodable reply: {why}"))),
            Scan::Complete { len, attributes } => (len, attributes),
        };
        // Attributes are metadata the client has no use for. Dropped
        // before decoding, wherever they are, because redis-protocol
        // refuses some ("Null cannot have attributes", found by the
        // fuzzing in tests/fuzz.rs).
        let bytes = scan::without_attributes(&self.buffer[..len], &attributes);
        let frame = match self.protocol {
            Protocol::Resp2 => whole(redis_protocol::resp2::decode::decode(&bytes), bytes.len())
                .map(|frame| Frame::Reply(reply::from_resp2(frame)))?,
            Protocol::Resp3 => reply::from_resp3(whole(
                redis_protocol::resp3::decode::complete::decode(&bytes),
                bytes.len(),
            )?)?,
        };
        self.buffer.advance(len);
        Ok(Some(frame))
    }
}

/// A reply over the size limit, found by the scan or by the buffer.
fn too_large() -> Error {
    Error::Protocol(format!("reply larger than {MAX_REPLY_BYTES} bytes"))
}

/// The frame redis-protocol decoded from a whole reply of `len` bytes.
fn whole<F>(
    decoded: Result<Option<(F, usize)>, redis_protocol::error::RedisProtocolError>,
    len: usize,
) -> Result<F, Error> {
    match decoded {
        Ok(Some((frame, used))) if used == len => Ok(frame),
        // The scan and the decoder disagree on where the reply ends.
        Ok(_) => Err(Error::Protocol(
            "undecodable reply: not framed as its headers say".into(),
        )),
        Err(e) => Err(Error::Protocol(format!(
            "undecodable reply: {}",
            e.details()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_debug_masks_the_credentials() {
        let options = Options {
            username: Some("svc-api".into()),
            password: Some("hunter2".into()),
            client_name: Some("api-worker".into()),
            ..Options::default()
        };
        let shown = format!("{options:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("svc-api"),
            "{shown}"
        );
        assert!(shown.contains("api-worker"), "{shown}");
    }

    #[test]
    fn hello_fallback_is_only_for_servers_without_hello_or_resp3() {
        assert!(hello_unsupported(&ServerError::new(
            "ERR unknown command 'HELLO', with args beginning with: '3' "
        )));
        assert!(hello_unsupported(&ServerError::new(
            "NOPROTO unsupported protocol version"
        )));
        assert!(!hello_unsupported(&ServerError::new(
            "WRONGPASS invalid username-password pair or user is disabled."
        )));
    }

    #[test]
    fn credential_errors_are_told_from_other_hello_errors() {
        assert!(is_auth_error(&ServerError::new(
            "WRONGPASS invalid username-password pair"
        )));
        assert!(is_auth_error(&ServerError::new(
            "ERR AUTH <password> called without any password configured for the default user."
        )));
        assert!(!is_auth_error(&ServerError::new(
            "ERR Client names cannot contain spaces"
        )));
    }

    #[test]
    fn hello_reply_proto_field_decides_the_protocol() {
        let map = |p| Reply::Map(vec![(Reply::Bulk(b"proto".to_vec()), Reply::Integer(p))]);
        assert_eq!(negotiated(&map(3)), Protocol::Resp3);
        assert_eq!(negotiated(&map(2)), Protocol::Resp2);
        assert_eq!(negotiated(&Reply::Map(vec![])), Protocol::Resp3);
    }
}
