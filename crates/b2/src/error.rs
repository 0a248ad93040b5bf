//! What can go wrong talking to B2, typed so callers can tell "the bucket
//! is not there" from "the key was refused" from "B2 did not answer"
//! (`/readyz` reports each differently). No message here ever holds a
//! credential or a signed URL.

use std::fmt;
use std::time::Duration;

use outbound::FetchError;

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// 404: the bucket (or, where a missing object is not a plain answer,
    /// the object) does not exist.
    NotFound { code: Option<String> },
    /// 401/403: the key id or application key was refused, the key lacks a
    /// capability for this bucket, or the signature is wrong (clock skew).
    AccessDenied { code: Option<String> },
    /// No complete answer within the timeout the caller gave.
    Timeout(Duration),
    /// The connection failed or broke (DNS, refused, reset, TLS). The text
    /// has any signed URL's query and the key id taken out.
    Network(String),
    /// Any other status, with the S3 error code when the body had one.
    Unexpected { status: u16, code: Option<String> },
    /// The request could not be built from what the caller gave (an object
    /// key that would leave the bucket, an expiry SigV4 does not allow, a
    /// header value that cannot be sent).
    Invalid(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = |code: &Option<String>| match code {
            Some(c) => format!(" ({c})"),
            None => String::new(),
        };
        match self {
            Error::NotFound { code: c } => write!(f, "B2: not found{}", code(c)),
            Error::AccessDenied { code: c } => write!(f, "B2: access denied{}", code(c)),
            Error::Timeout(d) => write!(f, "B2: no answer within {} ms", d.as_millis()),
            Error::Network(e) => write!(f, "B2: network error: {e}"),
            Error::Unexpected { status, code: c } => {
                write!(f, "B2: unexpected status {status}{}", code(c))
            }
            Error::Invalid(e) => write!(f, "B2: invalid request: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// Maps a response status (not 2xx) and its body to an error.
    pub(crate) fn from_status(status: u16, body: &[u8]) -> Self {
        let code = error_code(body);
        match status {
            404 => Error::NotFound { code },
            401 | 403 => Error::AccessDenied { code },
            _ => Error::Unexpected { status, code },
        }
    }

    /// Maps a transport failure, scrubbing what the runtime put in its text
    /// (reqwest, for one, quotes the whole URL, signature and key id included).
    pub(crate) fn from_fetch(error: FetchError, secrets: &[&str]) -> Self {
        match error {
            FetchError::Timeout(d) => Error::Timeout(d),
            FetchError::Network(e) => Error::Network(redact(&e, secrets)),
            FetchError::InvalidRequest(e) => Error::Invalid(redact(&e, secrets)),
        }
    }
}

/// The `<Code>` of an S3 error document. Only a short token of letters,
/// digits and dots is kept: it is all a real code is, and nothing else from
/// a body (which could echo a request) reaches a message.
pub(crate) fn error_code(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    let code = text[start..start + len].trim();
    let plausible = !code.is_empty()
        && code.len() <= 64
        && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '.');
    plausible.then(|| code.to_owned())
}

/// Takes every `secrets` value and every URL query string out of `text`.
/// Queries go whole: a presigned URL's query holds the credential scope
/// (key id) and the signature.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_query = false;
    for c in text.chars() {
        if in_query {
            if c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '>') {
                in_query = false;
                out.push(c);
            }
        } else if c == '?' {
            in_query = true;
            out.push_str("?<redacted>");
        } else {
            out.push(c);
        }
    }
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret, "<redacted>");
    }
    out
}
