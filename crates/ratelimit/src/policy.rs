//! What to do with a request when the limiter cannot decide (Redis down,
//! slow or refusing the script).
//!
//! Not for: errors of the request itself; only for the limiter's own.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::gcra::ceil_secs;

/// How long a client refused by [`Policy::FailClosed`] is told to wait: long
/// enough that retries do not pile onto a Redis that is struggling, short
/// enough that a blip is over by then.
pub const FAIL_CLOSED_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Whether requests go through while the limiter cannot count them.
///
/// Fail-open keeps the API available through a Redis outage at the price
/// of having no limit meanwhile; it suits reads, which are cheap and which
/// the design keeps working without Redis. Fail-closed protects what sits
/// behind the limiter (TiDB's request budget, presigning) at the price of
/// refusing everyone meanwhile; it suits expensive or abusable routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    FailOpen,
    FailClosed,
}

/// A request refused because the limiter could not decide under
/// [`Policy::FailClosed`]. It is not the client's fault, so the API should
/// answer 503 rather than 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub retry_after: Duration,
}

impl Refusal {
    /// Only `Retry-After`: with no count there is nothing true to put in
    /// the `RateLimit-*` fields.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        vec![("Retry-After", ceil_secs(self.retry_after).to_string())]
    }
}

/// Applies `policy` after [`check`](crate::check) failed:
/// `Err(e) => decide_on_error(policy).map_err(unavailable)?`.
pub fn decide_on_error(policy: Policy) -> Result<(), Refusal> {
    match policy {
        Policy::FailOpen => Ok(()),
        Policy::FailClosed => Err(Refusal {
            retry_after: FAIL_CLOSED_RETRY_AFTER,
        }),
    }
}

/// `fail-open` or `fail-closed` (also `open` / `closed`), as a
/// configuration variable says it.
impl FromStr for Policy {
    type Err = UnknownPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fail-open" | "open" => Ok(Policy::FailOpen),
            "fail-closed" | "closed" => Ok(Policy::FailClosed),
            _ => Err(UnknownPolicy(s.to_owned())),
        }
    }
}

/// A policy name that is neither `fail-open` nor `fail-closed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPolicy(pub String);

impl fmt::Display for UnknownPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown rate limit policy {:?} (expected fail-open or fail-closed)",
            self.0
        )
    }
}

impl std::error::Error for UnknownPolicy {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_open_lets_through_and_fail_closed_refuses_with_retry_after() {
        assert_eq!(decide_on_error(Policy::FailOpen), Ok(()));
        let refusal = decide_on_error(Policy::FailClosed).unwrap_err();
        assert_eq!(refusal.headers(), [("Retry-After", "5".to_owned())]);
    }

    #[test]
    fn policies_parse_from_configuration_text() {
        assert_eq!("fail-open".parse(), Ok(Policy::FailOpen));
        assert_eq!(" Closed ".parse(), Ok(Policy::FailClosed));
        assert!("sometimes".parse::<Policy>().is_err());
    }
}
