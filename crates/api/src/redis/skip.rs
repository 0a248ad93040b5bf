//! Whether this isolate's requests should ask Redis at all right now.
//!
//! Redis is optional for every request (reads bypass the cache, the rate
//! limiter follows its policy), so waiting for it is pure loss while it is
//! gone. A Redis that hangs (accepts, never answers) cost each request its
//! whole exchange timeout: with Redis frozen under `wrk -c8`, a read took
//! 1.03 s and the local Worker answered 6 reads a second instead of 228.
//! So once a connection fails (cannot connect, times out, is dropped), the
//! isolate's requests skip Redis for [`SKIP_FOR`]; then the first request
//! to come asks it again while the others keep skipping, and its answer
//! decides: back to asking, or skipping for another [`SKIP_FOR`].
//!
//! Only failures of the connection count. An error reply (`-OOM`,
//! `-NOSCRIPT`) is Redis answering, and the connection stays usable.
//!
//! Per isolate, like everything an isolate keeps: it never makes one
//! request wait on another's I/O, only on what another has learned.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long requests skip Redis after a connection to it failed: long
/// enough that a hung Redis costs one request's timeout every few seconds
/// instead of every request's, short enough that a blip ends soon after
/// Redis is back.
pub const SKIP_FOR: Duration = Duration::from_secs(2);

/// Until when requests skip Redis, in milliseconds since the Unix epoch
/// (an `f64`'s bits; zero: ask it).
#[derive(Debug, Default)]
pub struct Skip(AtomicU64);

/// Redis is being skipped: it failed lately and this request is not the
/// one to ask it again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Skipped {
    /// Milliseconds until a request asks Redis again.
    pub for_millis: f64,
}

impl Skip {
    /// Whether a request starting at `now` (ms) should ask Redis. After a
    /// skip ends, the first request to ask takes it upon itself to try
    /// (the others skip until it reports, or for [`SKIP_FOR`] if it never
    /// does).
    pub fn admit(&self, now: f64) -> Result<(), Skipped> {
        let bits = self.0.load(Ordering::Relaxed);
        if bits == 0 {
            return Ok(());
        }
        let until = f64::from_bits(bits);
        if now < until {
            return Err(Skipped {
                for_millis: until - now,
            });
        }
        let next = (now + millis(SKIP_FOR)).to_bits();
        match self
            .0
            .compare_exchange(bits, next, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => Ok(()),
            Err(_) => Err(Skipped {
                for_millis: millis(SKIP_FOR),
            }),
        }
    }

    /// A connection failed at `now` (ms): skip Redis from now on. Returns
    /// whether Redis was being asked until then, so that the change is
    /// logged once and not at every failure.
    pub fn failed(&self, now: f64) -> bool {
        let before = self
            .0
            .swap((now + millis(SKIP_FOR)).to_bits(), Ordering::Relaxed);
        before == 0
    }

    /// An exchange with Redis went through: ask it again. Returns whether
    /// it was being skipped.
    pub fn answered(&self) -> bool {
        // A load first: the common case writes nothing.
        self.0.load(Ordering::Relaxed) != 0 && self.0.swap(0, Ordering::Relaxed) != 0
    }
}

impl Skip {
    /// Until when Redis is skipped (ms), for tests.
    #[cfg(test)]
    pub(crate) fn until(&self) -> Option<f64> {
        let bits = self.0.load(Ordering::Relaxed);
        (bits != 0).then(|| f64::from_bits(bits))
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const SKIP: f64 = 2000.0;

    #[test]
    fn redis_is_asked_until_a_connection_fails() {
        let skip = Skip::default();
        assert_eq!(skip.admit(1_000.0), Ok(()));
        assert!(!skip.answered(), "it was not being skipped");
        assert!(skip.failed(1_000.0), "the first failure is the change");
        assert!(!skip.failed(1_500.0), "a second one is not");
        assert_eq!(
            skip.admit(2_000.0),
            Err(Skipped {
                for_millis: 1_500.0
            }),
            "skipped until the last failure's skip ends"
        );
    }

    #[test]
    fn after_the_skip_one_request_asks_and_the_others_wait_for_it() {
        let skip = Skip::default();
        skip.failed(0.0);
        assert!(skip.admit(SKIP - 1.0).is_err());
        assert_eq!(skip.admit(SKIP), Ok(()), "the first request after asks");
        assert_eq!(
            skip.admit(SKIP + 10.0),
            Err(Skipped {
                for_millis: SKIP - 10.0
            }),
            "the next ones skip while it does"
        );
        assert!(skip.answered(), "its answer ends the skip");
        assert_eq!(skip.admit(SKIP + 20.0), Ok(()));
        assert_eq!(skip.admit(SKIP + 20.0), Ok(()), "for every request");
    }

    #[test]
    fn a_failed_try_skips_again_and_a_silent_one_lets_another_try() {
        let skip = Skip::default();
        skip.failed(0.0);
        assert_eq!(skip.admit(SKIP), Ok(()));
        skip.failed(SKIP + 1_000.0);
        assert!(skip.admit(2.0 * SKIP + 999.0).is_err());
        assert_eq!(skip.admit(2.0 * SKIP + 1_000.0), Ok(()));
        // This one never reports (its request was cancelled): once its own
        // skip is over, another request tries.
        assert!(skip.admit(3.0 * SKIP + 999.0).is_err());
        assert_eq!(skip.admit(3.0 * SKIP + 1_000.0), Ok(()));
    }

    #[test]
    fn concurrent_requests_after_the_skip_give_one_try() {
        let skip = std::sync::Arc::new(Skip::default());
        skip.failed(0.0);
        let tries: usize = (0..8)
            .map(|_| {
                let skip = skip.clone();
                std::thread::spawn(move || skip.admit(SKIP).is_ok())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| usize::from(t.join().unwrap()))
            .sum();
        assert_eq!(tries, 1);
    }
}
