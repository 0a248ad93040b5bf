//! When to try a request again, and how long to wait first.
//!
//! # Which failures are retried
//!
//! | failure | GET, HEAD, PUT, PATCH, DELETE, or a POST marked idempotent | other POST |
//! | --- | --- | --- |
//! | HTTP 429 | yes | yes |
//! | connection never established | yes | yes |
//! | HTTP 5xx, timeout, connection lost mid-request | yes | **no** |
//! | any other status | no | no |
//!
//! A 429 is a refusal before any work, and a failed connect means nothing
//! reached the API, so both are safe for any method. After a 5xx or a
//! timeout a creating POST (new DNS record, new Worker version, new Access
//! app) may have been applied; repeating it could create a duplicate, so the
//! error goes back to the caller, who can list and reconcile. PUT, PATCH and
//! DELETE set state rather than add to it, so repeating them is harmless (a
//! repeated DELETE may answer "not found", which callers already handle).
//! POSTs whose effect does not depend on repetition (a Worker deployment of
//! a fixed version split, a Pages rollback) are marked idempotent by their
//! typed wrappers.
//!
//! # How long to wait
//!
//! Exponential backoff with full jitter: before retry `n` (1-based) the
//! client sleeps a uniformly random duration in
//! `[0, min(max_delay, base_delay * 2^(n-1))]`. A `Retry-After` header
//! (seconds or HTTP date) overrides that: the client waits the requested
//! time, up to `max_retry_after`. Cloudflare's global rate limit (1,200
//! requests per 5 minutes) locks a client out for up to 5 minutes after a
//! 429, so the default honours 300 s; a longer (or absurd) `Retry-After` is
//! not waited out but returned at once as [`crate::Error::RetryAfterTooLong`].
//! The sum of all waits for one call never exceeds `max_total_delay`; when
//! the next wait would, the last error is returned (as `RetryAfterTooLong`
//! when that wait was a `Retry-After`, so the message says what was asked).

use std::time::{Duration, SystemTime};

use rand::Rng;

/// How long Cloudflare's global rate limit blocks a client after a 429
/// (its documented lockout), and so the longest `Retry-After` worth waiting.
pub const RATE_LIMIT_LOCKOUT: Duration = Duration::from_secs(300);

/// Retry settings; see the module docs for the rules.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per call, including the first. 1 disables retries.
    pub max_attempts: u32,
    /// Backoff ceiling before the first retry; doubled for each further one.
    pub base_delay: Duration,
    /// Cap on any single computed backoff (not on `Retry-After`).
    pub max_delay: Duration,
    /// Cap on the sum of all waits of one call.
    pub max_total_delay: Duration,
    /// The longest single `Retry-After` honoured; a longer one ends the call.
    pub max_retry_after: Duration,
    /// Full jitter (true) or the deterministic ceiling (false, for tests).
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            // Room for one full rate-limit lockout plus other retries.
            max_total_delay: Duration::from_secs(420),
            max_retry_after: RATE_LIMIT_LOCKOUT,
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The backoff before retry number `retry` (1-based), before
    /// `Retry-After` is considered.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(30);
        let ceiling = self
            .base_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay);
        if !self.jitter || ceiling.is_zero() {
            return ceiling;
        }
        let nanos = ceiling.as_nanos().min(u64::MAX as u128) as u64;
        Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP date (a date in
/// the past means "now"). A number too large for a `Duration` saturates,
/// so the caller sees an absurd wait rather than none.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    if let Ok(seconds) = value.parse::<f64>() {
        if seconds.is_finite() && seconds >= 0.0 {
            return Some(Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX));
        }
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// What kind of failure an attempt ended in, for the retry decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    RateLimited,
    ServerError,
    ConnectFailed,
    /// Timed out or lost the connection after the request may have left.
    InFlight,
    Permanent,
}

impl Failure {
    pub(crate) fn from_status(status: u16) -> Self {
        match status {
            429 => Failure::RateLimited,
            500..=599 => Failure::ServerError,
            _ => Failure::Permanent,
        }
    }

    pub(crate) fn retryable(self, idempotent: bool) -> bool {
        match self {
            Failure::RateLimited | Failure::ConnectFailed => true,
            Failure::ServerError | Failure::InFlight => idempotent,
            Failure::Permanent => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after(" 1.5 ", now),
            Some(Duration::from_millis(1500))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(42));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(42))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(42));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        // Too large for u64 seconds: parsed as a float, which must not panic.
        assert_eq!(
            parse_retry_after("100000000000000000000", now),
            Some(Duration::MAX)
        );
        assert_eq!(parse_retry_after("1e300", now), Some(Duration::MAX));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_stays_below_the_ceiling() {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
            jitter: false,
            ..RetryPolicy::default()
        };
        let delays: Vec<_> = (1..=4).map(|n| policy.backoff(n)).collect();
        assert_eq!(
            delays,
            [100, 200, 350, 350].map(Duration::from_millis).to_vec()
        );
        let jittered = RetryPolicy {
            jitter: true,
            ..policy
        };
        for n in 1..=10 {
            assert!(jittered.backoff(n) <= Duration::from_millis(350));
        }
    }

    #[test]
    fn creating_posts_are_retried_only_when_nothing_can_have_happened() {
        assert!(Failure::RateLimited.retryable(false));
        assert!(Failure::ConnectFailed.retryable(false));
        assert!(!Failure::ServerError.retryable(false));
        assert!(!Failure::InFlight.retryable(false));
        assert!(Failure::ServerError.retryable(true));
        assert!(!Failure::Permanent.retryable(true));
    }
}
