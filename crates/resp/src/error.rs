//! What can go wrong talking to Redis, split by what the caller can do
//! about it: a server error reply is an answer (the connection stays
//! usable), everything from [`Error::Io`] to [`Error::Protocol`] means the
//! conversation is lost and the connection is dropped for good.

use std::fmt;
use std::time::Duration;

/// An error reply from the server (`-WRONGTYPE ...`, `-NOSCRIPT ...`),
/// kept whole: its first word is the machine-readable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    message: String,
}

impl ServerError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        ServerError {
            message: message.into(),
        }
    }

    /// The error code: the message's first word (`ERR`, `WRONGTYPE`,
    /// `NOAUTH`, `NOSCRIPT`, `EXECABORT`, ...).
    pub fn code(&self) -> &str {
        self.message.split(' ').next().unwrap_or_default()
    }

    /// The whole error line as the server sent it, code included.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Masks every occurrence of `secret`: some servers echo a rejected
    /// command's arguments (the password of an `AUTH` or `HELLO`) back in
    /// their error message.
    pub(crate) fn redact(&mut self, secret: &str) {
        mask(&mut self.message, secret);
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ServerError {}

/// Masks every occurrence of `secret` in `text`, which is left as it is
/// (no copy) where it has none; an empty secret is in no text.
fn mask(text: &mut String, secret: &str) {
    if !secret.is_empty() && text.contains(secret) {
        *text = text.replace(secret, "<redacted>");
    }
}

/// Why a Redis call gave no usable value.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// Opening, reading or writing the stream failed (refused, reset,
    /// TLS). The connection is unusable from then on.
    Io(String),
    /// The server closed the connection (end of stream, broken pipe). The
    /// connection is unusable from then on.
    Closed,
    /// No complete reply within the deadline. The reply may still come, so
    /// the connection cannot be resynchronised and is unusable from then on.
    Timeout(Duration),
    /// The server sent bytes that are not RESP, or a reply of a shape the
    /// exchange does not allow. The connection is unusable from then on.
    Protocol(String),
    /// The server answered with an error reply. Only this command failed;
    /// the connection stays usable.
    Server(ServerError),
    /// The server refused the credentials during the handshake (or wanted
    /// some and got none). The message is the server's, with the password
    /// masked.
    Auth(ServerError),
    /// The reply arrived but is not of the type asked for (a `nil` read as
    /// a `String`, a bulk string that is not UTF-8). The connection stays
    /// usable.
    Type {
        /// What the caller asked for.
        expected: &'static str,
        /// What the server sent (a reply kind, or why it did not fit).
        found: String,
    },
    /// An earlier call failed in a way that lost the conversation (the
    /// boxed error); this connection will not be used again.
    Unusable(Box<Error>),
}

impl Error {
    /// True when Redis could not be reached or spoken to at all, as opposed
    /// to answering with an error or a value of an unexpected type: the
    /// case for the cache bypass and the rate limiter's fail-open policy.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Io(_)
            | Error::Closed
            | Error::Timeout(_)
            | Error::Protocol(_)
            | Error::Auth(_)
            | Error::Unusable(_) => true,
            Error::Server(_) | Error::Type { .. } => false,
        }
    }

    /// The error code when the server answered with an error reply.
    pub fn server_code(&self) -> Option<&str> {
        match self {
            Error::Server(e) | Error::Auth(e) => Some(e.code()),
            _ => None,
        }
    }

    /// Whether this error leaves the stream in an unknown state, so the
    /// connection must not be used again.
    pub(crate) fn breaks_connection(&self) -> bool {
        matches!(
            self,
            Error::Io(_) | Error::Closed | Error::Timeout(_) | Error::Protocol(_)
        )
    }

    /// Masks `secret` wherever the error carries text that came from the
    /// server.
    pub(crate) fn redact(&mut self, secret: &str) {
        match self {
            Error::Server(e) | Error::Auth(e) => e.redact(secret),
            Error::Protocol(why) | Error::Io(why) => mask(why, secret),
            Error::Type { found, .. } => mask(found, secret),
            Error::Unusable(cause) => cause.redact(secret),
            Error::Closed | Error::Timeout(_) => {}
        }
    }

    pub(crate) fn type_mismatch(expected: &'static str, found: impl Into<String>) -> Self {
        Error::Type {
            expected,
            found: found.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(message) => write!(f, "redis i/o error: {message}"),
            Error::Closed => f.write_str("redis closed the connection"),
            Error::Timeout(limit) => {
                write!(f, "no reply from redis within {} ms", limit.as_millis())
            }
            Error::Protocol(message) => write!(f, "redis protocol error: {message}"),
            Error::Server(e) => write!(f, "redis error reply: {e}"),
            Error::Auth(e) => write!(f, "redis refused the credentials: {e}"),
            Error::Type { expected, found } => {
                write!(f, "cannot read a redis reply ({found}) as {expected}")
            }
            Error::Unusable(cause) => {
                write!(
                    f,
                    "redis connection unusable after an earlier failure: {cause}"
                )
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Server(e) | Error::Auth(e) => Some(e),
            Error::Unusable(cause) => Some(cause.as_ref()),
            _ => None,
        }
    }
}

/// Stream errors that mean the peer went away are [`Error::Closed`], so a
/// caller sees the same error whether the close was noticed on write or
/// on read.
pub(crate) fn from_io(error: std::io::Error) -> Error {
    use std::io::ErrorKind::*;
    match error.kind() {
        BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof | NotConnected => {
            Error::Closed
        }
        _ => Error::Io(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_is_the_first_word_of_the_message() {
        let e =
            ServerError::new("WRONGTYPE Operation against a key holding the wrong kind of value");
        assert_eq!(e.code(), "WRONGTYPE");
        assert_eq!(
            Error::Server(e).server_code(),
            Some("WRONGTYPE"),
            "server_code reads through the variant"
        );
    }

    #[test]
    fn redaction_masks_every_occurrence_of_the_secret() {
        let mut e = ServerError::new(
            "ERR unknown command 'HELLO', with args beginning with: 'hunter2' 'x hunter2'",
        );
        e.redact("hunter2");
        assert!(!e.message().contains("hunter2"), "{e}");
        assert_eq!(e.code(), "ERR");
    }

    #[test]
    fn an_empty_secret_does_not_mangle_the_message() {
        let mut e = ServerError::new("NOAUTH Authentication required.");
        e.redact("");
        assert_eq!(e.message(), "NOAUTH Authentication required.");
    }

    #[test]
    fn peer_gone_io_errors_are_closed_others_are_io() {
        use std::io::{Error as IoError, ErrorKind};
        assert_eq!(from_io(IoError::from(ErrorKind::BrokenPipe)), Error::Closed);
        assert_eq!(
            from_io(IoError::from(ErrorKind::ConnectionReset)),
            Error::Closed
        );
        assert!(matches!(
            from_io(IoError::other("tls handshake failed")),
            Error::Io(m) if m.contains("tls")
        ));
    }

    #[test]
    fn only_lost_conversations_break_the_connection() {
        assert!(Error::Timeout(Duration::from_millis(5)).breaks_connection());
        assert!(Error::Closed.breaks_connection());
        assert!(!Error::Server(ServerError::new("ERR x")).breaks_connection());
        assert!(!Error::type_mismatch("i64", "nil").breaks_connection());
        assert!(Error::Unusable(Box::new(Error::Closed)).is_unavailable());
        assert!(!Error::Server(ServerError::new("ERR x")).is_unavailable());
    }
}
