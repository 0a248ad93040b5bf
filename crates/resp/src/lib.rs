//! A Redis client for the API Worker's cache and rate limiter: one
//! connection over any tokio `AsyncRead + AsyncWrite` stream, so the same
//! code runs over the Worker's TCP socket (`worker::Socket`, TLS to Redis
//! Cloud) and over tokio's `TcpStream` in tests and tools. Frames are
//! encoded and decoded by `redis-protocol`; this crate adds the handshake
//! (RESP3 with a RESP2 fallback), typed commands and replies, pipelines,
//! `MULTI`/`EXEC`, `EVALSHA` scripts, a deadline on every exchange, and a
//! connection opened lazily on first use.
//!
//! Not for: pooling or reconnecting (a connection that fails stays failed;
//! the caller decides whether to open another), Redis Cluster or Sentinel
//! redirects, pub/sub, `MONITOR` or client-side caching (RESP3 push frames
//! are dropped), or anything that needs a runtime: time comes from
//! [`outbound::Timer`], the stream from the caller.
//!
//! ```no_run
//! # async fn demo(stream: tokio::io::DuplexStream, timer: std::sync::Arc<dyn outbound::Timer>) -> Result<(), resp::Error> {
//! use resp::{cmd, Connection, Options, Pipeline};
//!
//! let options = Options { password: Some("secret".into()), ..Options::default() };
//! let mut conn = Connection::open(stream, &options, timer).await?;
//! let _: () = conn.query(cmd("SET").arg("k").arg(b"\x00bytes")).await?;
//! let value: Option<Vec<u8>> = conn.query(cmd("GET").arg("k")).await?;
//!
//! let mut replies = conn
//!     .pipeline(&Pipeline::new().with(cmd("INCR").arg("n")).with(cmd("EXPIRE").arg("n").arg(60)))
//!     .await?;
//! let count: i64 = replies.take()?;
//! let expiry_set: bool = replies.take()?;
//! # let _ = (value, count, expiry_set);
//! # Ok(())
//! # }
//! ```

mod cmd;
mod connection;
mod error;
mod lazy;
mod reply;
mod scan;
mod script;
#[cfg(feature = "testing")]
pub mod testing;

pub use cmd::{cmd, Cmd, Pipeline, ToArg};
pub use connection::{Connection, Options, Protocol};
pub use error::{Error, ServerError};
pub use lazy::LazyConnection;
pub use reply::{FromReply, Replies, Reply};
pub use script::{RunScript, Script, ScriptCall};
