//! Errors, typed by Cloudflare's error codes so callers can branch on
//! "not found" and "already exists" instead of matching message text.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One entry of an envelope's `errors` (or `messages`) array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// Cloudflare's numeric error code (for example 10007, 81044).
    pub code: u64,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation_url: Option<String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// Codes meaning "the thing you addressed does not exist".
///
/// Collected from the API's behaviour for the resources the deploy tool
/// manages; an HTTP 404 counts too, whatever the code, unless the answer
/// carries one of the [`UNROUTABLE_CODES`].
pub const NOT_FOUND_CODES: &[u64] = &[
    10007,   // workers: script (or one of its versions/deployments) not found
    8000007, // pages: project not found
    81044,   // dns: record does not exist
];

/// Codes meaning "the API could not route the request": 7000 "No route for
/// that URI" (a path the API does not have) and 7003 "Could not route to
/// /accounts/<id>/..., perhaps your object identifier is invalid?" (an
/// account or zone id the token cannot reach, or a malformed id).
///
/// They say nothing about whether the object exists: with a wrong
/// `account_id` every read of a Worker or a Pages project answers 7003, so
/// taking these for "not found" made a wrong account look like an empty one
/// (a plan of creations, a lock taken before the first write failed).
/// They become [`Error::Unroutable`] instead. The objects the deploy tool
/// reads by a name it chose answer their own codes when missing (10007,
/// 8000007, 81044); only `GET /zones/{id}` answers 7003 for an unknown zone
/// id, and the deploy tool finds zones by name, never by id.
pub const UNROUTABLE_CODES: &[u64] = &[7000, 7003];

/// Codes meaning "what you tried to create is already there".
///
/// An HTTP 409 counts too, which covers the Access and Workers endpoints
/// that report conflicts by status.
pub const ALREADY_EXISTS_CODES: &[u64] = &[
    81053,   // dns: a record with that host already exists
    81054,   // dns: a CNAME with that host already exists
    81057,   // dns: identical record already exists
    81058,   // dns: identical record already exists
    8000002, // pages: project name already taken
];

/// Everything a call can fail with.
///
/// Display and Debug never contain the API token or secret values: the token
/// travels only in a header, request bodies are never echoed, and response
/// snippets are scrubbed of the token before they are stored.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API answered with an envelope whose `success` was false, or with
    /// an HTTP error status.
    #[error("Cloudflare API error (HTTP {status}): {}", join_errors(.errors))]
    Api { status: u16, errors: Vec<ApiError> },

    /// The API could not route the request (codes 7000, 7003; see
    /// [`UNROUTABLE_CODES`]): the account or zone id in the path is wrong,
    /// or the path is not one the API has. Never "not found".
    #[error(
        "the Cloudflare API could not route {method} {path} (HTTP {status}): {}; check the \
         account_id and zone this request names",
        join_errors(.errors)
    )]
    Unroutable {
        method: String,
        path: String,
        status: u16,
        errors: Vec<ApiError>,
    },

    /// The API (or the edge in front of it) answered with a body that is not
    /// an envelope, such as an HTML 502 page.
    #[error(
        "Cloudflare API answered HTTP {status} with a non-JSON body ({content_type}): {snippet}"
    )]
    UnexpectedBody {
        status: u16,
        content_type: String,
        /// The first few hundred characters of the body, token removed.
        snippet: String,
    },

    /// The request could not be sent or its response not read.
    #[error("transport error on {method} {path}: {message}")]
    Transport {
        method: String,
        path: String,
        message: String,
        /// True when the connection was never made, so the API cannot have
        /// acted on the request and any method may be retried.
        connect: bool,
    },

    /// No response arrived within the configured timeout.
    #[error("timed out after {after:?} on {method} {path}")]
    Timeout {
        method: String,
        path: String,
        after: Duration,
    },

    /// A successful response's `result` did not have the expected shape.
    #[error("could not decode the response to {method} {path}: {message}")]
    Decode {
        method: String,
        path: String,
        message: String,
    },

    /// The per-run hard cap on requests was reached; nothing was sent.
    #[error("request budget exhausted: the hard cap of {cap} requests for this run was reached")]
    BudgetExhausted { cap: u64 },

    /// The request could not be built (for example a body failed to
    /// serialize); nothing was sent.
    #[error("invalid request: {0}")]
    InvalidRequest(String),

    /// The API answered with a `Retry-After` longer than the client will
    /// wait (more than [`crate::RetryPolicy::max_retry_after`], or more
    /// than is left of the call's `max_total_delay`). `last` is the answer
    /// that carried it; [`Error::status`] and the `is_*` helpers look
    /// through to it.
    #[error(
        "{method} {path}: the Cloudflare API asked to wait {asked:?} (Retry-After) before \
         retrying, more than the {allowed:?} this client will wait; giving up: {last}"
    )]
    RetryAfterTooLong {
        method: String,
        path: String,
        asked: Duration,
        allowed: Duration,
        last: Box<Error>,
    },
}

fn join_errors(errors: &[ApiError]) -> String {
    if errors.is_empty() {
        return "no error details".to_string();
    }
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// The HTTP status, when a response was received.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. }
            | Error::Unroutable { status, .. }
            | Error::UnexpectedBody { status, .. } => Some(*status),
            Error::RetryAfterTooLong { last, .. } => last.status(),
            _ => None,
        }
    }

    /// The Cloudflare error codes carried by the response, if any.
    pub fn codes(&self) -> Vec<u64> {
        match self {
            Error::Api { errors, .. } | Error::Unroutable { errors, .. } => {
                errors.iter().map(|e| e.code).collect()
            }
            Error::RetryAfterTooLong { last, .. } => last.codes(),
            _ => Vec::new(),
        }
    }

    /// Whether the response carried this Cloudflare error code.
    pub fn has_code(&self, code: u64) -> bool {
        self.codes().contains(&code)
    }

    /// The addressed resource does not exist (HTTP 404 or a known code),
    /// and the API did route the request to where it would be.
    pub fn is_not_found(&self) -> bool {
        !self.is_unroutable()
            && (self.status() == Some(404)
                || self.codes().iter().any(|c| NOT_FOUND_CODES.contains(c)))
    }

    /// The API could not route the request (codes 7000, 7003): a wrong
    /// account or zone id, not a missing object.
    pub fn is_unroutable(&self) -> bool {
        self.codes().iter().any(|c| UNROUTABLE_CODES.contains(c))
    }

    /// The resource to create already exists (HTTP 409 or a known code).
    pub fn is_already_exists(&self) -> bool {
        self.status() == Some(409)
            || self
                .codes()
                .iter()
                .any(|c| ALREADY_EXISTS_CODES.contains(c))
    }

    /// The API asked us to slow down (HTTP 429).
    pub fn is_rate_limited(&self) -> bool {
        self.status() == Some(429)
    }

    /// The API rejected the credentials (HTTP 401/403, or codes 9109, 10000,
    /// 10001 that it uses for invalid or insufficient tokens).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self.status(), Some(401) | Some(403))
            || self
                .codes()
                .iter()
                .any(|c| [9109, 10000, 10001].contains(c))
    }

    /// A server-side failure (HTTP 5xx) that may be transient.
    pub fn is_server_error(&self) -> bool {
        matches!(self.status(), Some(s) if s >= 500)
    }
}

/// The result type of every call in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
