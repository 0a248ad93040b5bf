//! Rate limiting for the API in Redis: per client address and route class,
//! GCRA in one Lua script per request, timed by Redis' own clock so every
//! isolate, wherever it runs and however its clock drifts, counts against
//! the same timeline. Also the `RateLimit-*` and `Retry-After` response
//! fields, and what to do when Redis cannot be asked ([`Policy`]).
//!
//! Not for: choosing limits or route classes (the API does), global or
//! per-user quotas, or anything needing more than one round trip per
//! request. There is no local fallback counter: an isolate only sees a
//! sliver of the traffic, so its count would mean nothing.
//!
//! ```no_run
//! # async fn demo<R: ratelimit::Redis>(redis: &mut R, ip: &str) -> Result<(), resp::Error> {
//! use std::time::Duration;
//! use ratelimit::{check, key, Limit};
//!
//! const READS: Limit = Limit { rate: 300, period: Duration::from_secs(60), burst: 60 };
//! let decision = check(redis, &key("read", ip), &READS).await?;
//! if !decision.allowed {
//!     // 429 with decision.headers()
//! }
//! # Ok(())
//! # }
//! ```

mod gcra;
mod key;
mod policy;

use std::sync::LazyLock;
use std::time::Duration;

use resp::{Reply, Script, ScriptCall};

pub use gcra::{step, Decision, Limit, MAX_WINDOW};
pub use key::{key, PREFIX};
pub use policy::{decide_on_error, Policy, Refusal, UnknownPolicy, FAIL_CLOSED_RETRY_AFTER};

/// Where the limiter's script runs: resp's `Connection` or, as the API
/// uses it, its `LazyConnection` (no connection until first use).
pub use resp::RunScript as Redis;

/// [`step`] in Lua. KEYS[1] holds the TAT in microseconds; ARGV are the
/// interval (µs) and the burst, then optionally `now` (µs) in place of
/// Redis' `TIME` (see [`check_at`]). Replies `{allowed, remaining,
/// reset_after_us, retry_after_us}`.
///
/// Numbers written back are formatted with `%.0f` rather than left to
/// Redis: Lua's own number-to-text keeps 14 significant digits, which
/// would round a microsecond timestamp (16), and how Redis converts a
/// number argument has changed between versions. Every value stays below
/// 2^53 (see [`MAX_WINDOW`]), where Lua's doubles are exact integers.
const SOURCE: &str = r#"
-- Before Redis 5, a script that reads TIME may only write if it asks for
-- its effects to be replicated instead of its source; later it is the
-- default and this is a no-op.
if redis.replicate_commands then redis.replicate_commands() end
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now
if ARGV[3] then
  now = tonumber(ARGV[3])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return {0, 0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat),
  'PX', string.format('%.0f', math.ceil((new_tat - now) / 1000)))
return {1, math.floor((now - allow_at) / interval), new_tat - now, 0}
"#;

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(SOURCE));

/// Counts one request against `limit` for `key` (see [`key()`]), in one
/// round trip, and says whether it may go through.
///
/// The state is one string key holding the TAT, with a `PEXPIRE` at the
/// moment it stops mattering, so idle clients leave nothing behind. A
/// refused request writes nothing.
pub async fn check<R: Redis + ?Sized>(
    redis: &mut R,
    key: &str,
    limit: &Limit,
) -> Result<Decision, resp::Error> {
    run(redis, key, limit, None).await
}

/// [`check`] with the caller's `now` (since the Unix epoch) instead of
/// Redis' clock: for tests that hold the script to [`step`], and for
/// replaying traffic. Never mix it with [`check`] on one key unless `now`
/// comes from Redis' `TIME`.
pub async fn check_at<R: Redis + ?Sized>(
    redis: &mut R,
    key: &str,
    limit: &Limit,
    now: Duration,
) -> Result<Decision, resp::Error> {
    run(redis, key, limit, Some(now)).await
}

async fn run<R: Redis + ?Sized>(
    redis: &mut R,
    key: &str,
    limit: &Limit,
    now: Option<Duration>,
) -> Result<Decision, resp::Error> {
    let mut call = call(key, limit);
    if let Some(now) = now {
        call = call.arg(u64::try_from(now.as_micros()).unwrap_or(u64::MAX));
    }
    decision(limit, redis.run_script(call).await?)
}

/// [`check`]'s script call, to send in one write with other scripts
/// (`resp::Connection::invoke_all`): a request's count and its first read
/// in one round trip. Its reply goes to [`decision`].
pub fn call(key: &str, limit: &Limit) -> ScriptCall<'static> {
    SCRIPT
        .call()
        .key(key)
        .arg(limit.interval_us())
        .arg(limit.burst())
}

/// The script's reply ([`call`]) as a [`Decision`].
pub fn decision(limit: &Limit, reply: Reply) -> Result<Decision, resp::Error> {
    let unexpected = |found: String| resp::Error::Type {
        expected: "the rate limit script's four non-negative integers",
        found,
    };
    let values: Vec<i64> = reply.convert()?;
    let [allowed, remaining, reset_after, retry_after] = values[..] else {
        return Err(unexpected(format!("{} values", values.len())));
    };
    let micros = |v: i64| u64::try_from(v).map_err(|_| unexpected(format!("{v}")));
    let allowed = allowed == 1;
    Ok(Decision {
        allowed,
        limit: limit.burst(),
        remaining: u32::try_from(micros(remaining)?).unwrap_or(u32::MAX),
        reset_after: Duration::from_micros(micros(reset_after)?),
        retry_after: (!allowed).then_some(Duration::from_micros(micros(retry_after)?)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Limit = Limit {
        rate: 1,
        period: Duration::from_secs(1),
        burst: 4,
    };

    fn ints(values: &[i64]) -> Reply {
        Reply::Array(values.iter().map(|v| Reply::Integer(*v)).collect())
    }

    #[test]
    fn an_allowed_reply_becomes_a_decision_without_retry_after() {
        let d = decision(&LIMIT, ints(&[1, 3, 1_000_000, 0])).unwrap();
        assert_eq!(
            d,
            Decision {
                allowed: true,
                limit: 4,
                remaining: 3,
                reset_after: Duration::from_secs(1),
                retry_after: None,
            }
        );
    }

    #[test]
    fn a_refused_reply_carries_retry_after() {
        let d = decision(&LIMIT, ints(&[0, 0, 4_000_000, 250_000])).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Some(Duration::from_millis(250)));
    }

    #[test]
    fn malformed_replies_are_type_errors_not_decisions() {
        for reply in [
            ints(&[1, 2, 3]),
            ints(&[0, 0, -1, 5]),
            Reply::Bulk(b"OK".to_vec()),
        ] {
            let error = decision(&LIMIT, reply.clone()).unwrap_err();
            assert!(
                matches!(error, resp::Error::Type { .. }),
                "{reply:?}: {error:?}"
            );
        }
    }
}
