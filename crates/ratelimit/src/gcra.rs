//! The generic cell rate algorithm (GCRA) as plain arithmetic on
//! microseconds, and what a decision tells the client.
//!
//! This is the reference the Lua script in [`crate::check`] follows step
//! by step (the end-to-end tests run both on the same inputs and compare).
//! Not for: talking to Redis or reading a clock; the caller passes `now`.
//!
//! GCRA keeps one number per client, the *theoretical arrival time* (TAT):
//! when the client's allowance would be fully restored if it stopped now.
//! Each allowed request pushes it one emission interval further; a request
//! is refused when that would put it more than `burst` intervals ahead of
//! now. Unlike a fixed window it has no edge where twice the limit gets
//! through, and unlike a token bucket it needs no refill job: one read,
//! one compare, one write.

use std::time::Duration;

/// The longest burst window (burst × interval) a limit may span. Keeping
/// it under a month keeps every sum in the script below 2^53, where Lua's
/// doubles still count microseconds exactly.
pub const MAX_WINDOW: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// A rate limit: on average `rate` requests per `period`, with up to
/// `burst` of them back to back after a quiet spell.
///
/// `rate` and `burst` below 1 count as 1 (a limit that refuses everything
/// is not a rate limit), and an interval whose burst window would exceed
/// [`MAX_WINDOW`] is shortened to fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Requests per `period`, sustained.
    pub rate: u32,
    pub period: Duration,
    /// Requests allowed at once from an idle client: the burst tolerance
    /// is `burst - 1` emission intervals.
    pub burst: u32,
}

impl Limit {
    /// The emission interval, `period / rate`, in whole microseconds (at
    /// least one), as the script receives it.
    pub fn interval_us(&self) -> u64 {
        let burst = u64::from(self.burst());
        let period = u64::try_from(self.period.as_micros()).unwrap_or(u64::MAX);
        let interval = period / u64::from(self.rate.max(1));
        let widest = MAX_WINDOW.as_micros() as u64 / burst;
        interval.min(widest).max(1)
    }

    /// The burst, at least 1.
    pub fn burst(&self) -> u32 {
        self.burst.max(1)
    }
}

/// What the limiter decided for one request, and what to tell the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The burst: how many requests a client that has been quiet for long
    /// enough may send at once.
    pub limit: u32,
    /// How many more requests would be allowed right now.
    pub remaining: u32,
    /// Until the allowance is back to `limit` if the client sends nothing.
    pub reset_after: Duration,
    /// When refused: until the next request can be allowed.
    pub retry_after: Option<Duration>,
}

impl Decision {
    /// The response header fields of draft-ietf-httpapi-ratelimit-headers-06
    /// (December 2022), the last draft with one field per value, which is
    /// what deployed clients read; later drafts merged them into one
    /// structured `RateLimit` field. `RateLimit-Reset` and `Retry-After`
    /// are delta-seconds, rounded up so a client that waits exactly that
    /// long is not refused again. `Retry-After` only comes with a refusal.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("RateLimit-Limit", self.limit.to_string()),
            ("RateLimit-Remaining", self.remaining.to_string()),
            ("RateLimit-Reset", ceil_secs(self.reset_after).to_string()),
        ];
        if let Some(retry_after) = self.retry_after.filter(|_| !self.allowed) {
            headers.push(("Retry-After", ceil_secs(retry_after).to_string()));
        }
        headers
    }
}

/// Whole seconds, rounded up.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// One request under `limit` at `now_us` (microseconds on any clock that
/// the stored TAT shares), given the client's stored TAT (`None` if it has
/// none or it expired). Returns the decision and, when allowed, the TAT to
/// store; it may expire `new_tat - now_us` from now, when it would count
/// as absent anyway.
///
/// The script in [`crate::check`] is this function in Lua, line for line.
pub fn step(limit: &Limit, stored_tat: Option<u64>, now_us: u64) -> (Decision, Option<u64>) {
    let interval = limit.interval_us();
    let burst = u64::from(limit.burst());
    let tat = stored_tat.unwrap_or(now_us).max(now_us);
    let new_tat = tat + interval;
    // The earliest moment this request fits: `burst` intervals before the
    // TAT it would leave behind.
    let allow_at = new_tat.saturating_sub(burst * interval);
    if now_us < allow_at {
        let decision = Decision {
            allowed: false,
            limit: limit.burst(),
            remaining: 0,
            reset_after: Duration::from_micros(tat - now_us),
            retry_after: Some(Duration::from_micros(allow_at - now_us)),
        };
        return (decision, None);
    }
    let decision = Decision {
        allowed: true,
        limit: limit.burst(),
        remaining: ((now_us - allow_at) / interval) as u32,
        reset_after: Duration::from_micros(new_tat - now_us),
        retry_after: None,
    };
    (decision, Some(new_tat))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10 a second on average, 3 at once.
    const LIMIT: Limit = Limit {
        rate: 10,
        period: Duration::from_secs(1),
        burst: 3,
    };

    /// The limiter as Redis runs it, with a clock the test moves.
    struct FakeRedis {
        now_us: u64,
        tat: Option<u64>,
    }

    impl FakeRedis {
        fn check(&mut self, limit: &Limit) -> Decision {
            if self.tat.is_some_and(|tat| tat <= self.now_us) {
                self.tat = None; // the PEXPIRE fired
            }
            let (decision, store) = step(limit, self.tat, self.now_us);
            if store.is_some() {
                self.tat = store;
            }
            decision
        }
    }

    #[test]
    fn the_interval_is_period_over_rate() {
        assert_eq!(LIMIT.interval_us(), 100_000);
        let per_minute = Limit {
            rate: 60,
            period: Duration::from_secs(60),
            burst: 1,
        };
        assert_eq!(per_minute.interval_us(), 1_000_000);
    }

    #[test]
    fn zero_rate_and_burst_count_as_one_and_windows_are_capped() {
        let zero = Limit {
            rate: 0,
            period: Duration::from_secs(2),
            burst: 0,
        };
        assert_eq!((zero.interval_us(), zero.burst()), (2_000_000, 1));
        let huge = Limit {
            rate: 1,
            period: Duration::from_secs(365 * 24 * 3600),
            burst: 1000,
        };
        assert!(u128::from(huge.interval_us() * 1000) <= MAX_WINDOW.as_micros());
        let instant = Limit {
            rate: u32::MAX,
            period: Duration::from_micros(1),
            burst: 1,
        };
        assert_eq!(instant.interval_us(), 1, "never a zero interval");
    }

    #[test]
    fn a_burst_is_allowed_then_refused_then_allowed_after_the_interval() {
        let mut redis = FakeRedis {
            now_us: 1_700_000_000_000_000,
            tat: None,
        };
        let remaining: Vec<u32> = (0..3)
            .map(|_| {
                let d = redis.check(&LIMIT);
                assert!(d.allowed, "{d:?}");
                assert_eq!(d.retry_after, None);
                d.remaining
            })
            .collect();
        assert_eq!(remaining, [2, 1, 0]);

        let refused = redis.check(&LIMIT);
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        assert_eq!(refused.retry_after, Some(Duration::from_millis(100)));
        assert_eq!(refused.reset_after, Duration::from_millis(300));

        // A refusal does not move the TAT: refused clients are not pushed
        // further back by retrying.
        redis.now_us += 60_000;
        let still = redis.check(&LIMIT);
        assert_eq!(still.retry_after, Some(Duration::from_millis(40)));

        redis.now_us += 40_000;
        let again = redis.check(&LIMIT);
        assert!(again.allowed, "{again:?}");
        assert_eq!(again.remaining, 0);
        assert!(!redis.check(&LIMIT).allowed, "only one interval passed");
    }

    #[test]
    fn a_quiet_client_gets_its_whole_burst_back() {
        let mut redis = FakeRedis {
            now_us: 5_000_000,
            tat: None,
        };
        for _ in 0..3 {
            redis.check(&LIMIT);
        }
        let refused = redis.check(&LIMIT);
        redis.now_us += refused.reset_after.as_micros() as u64;
        assert_eq!(redis.tat, Some(redis.now_us), "reset_after ends at the TAT");
        let back = redis.check(&LIMIT);
        assert_eq!((back.allowed, back.remaining), (true, 2));
    }

    #[test]
    fn the_sustained_rate_is_the_limit() {
        // Hammering every millisecond for ten seconds gets the burst plus
        // one request per interval, nothing more.
        let mut redis = FakeRedis {
            now_us: 0,
            tat: None,
        };
        let mut allowed = 0;
        for _ in 0..10_000 {
            allowed += u32::from(redis.check(&LIMIT).allowed);
            redis.now_us += 1000;
        }
        assert_eq!(allowed, 3 + 100 - 1);
    }

    #[test]
    fn headers_round_up_and_retry_after_only_comes_with_a_refusal() {
        let allowed = Decision {
            allowed: true,
            limit: 3,
            remaining: 2,
            reset_after: Duration::from_millis(100),
            retry_after: None,
        };
        assert_eq!(
            allowed.headers(),
            [
                ("RateLimit-Limit", "3".to_owned()),
                ("RateLimit-Remaining", "2".to_owned()),
                ("RateLimit-Reset", "1".to_owned()),
            ]
        );
        let refused = Decision {
            allowed: false,
            remaining: 0,
            reset_after: Duration::from_secs(4),
            retry_after: Some(Duration::from_millis(1001)),
            ..allowed
        };
        let headers = refused.headers();
        assert_eq!(headers[2], ("RateLimit-Reset", "4".to_owned()));
        assert_eq!(headers[3], ("Retry-After", "2".to_owned()));
    }
}
