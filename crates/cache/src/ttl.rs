//! How long a filled entry lives: a base TTL spread by random jitter, so
//! entries filled together (after a deploy, after a list is invalidated)
//! do not all expire in the same second and send their misses to TiDB at
//! once.
//!
//! Not for: randomness; the caller passes the random bits (the Worker has
//! `crypto.getRandomValues`, tests pass fixed values).

use std::time::Duration;

/// The largest jitter fraction honoured: beyond it an entry could live for
/// almost nothing.
pub const MAX_JITTER: f64 = 0.9;

/// A base TTL and the fraction of it by which each fill may differ, both
/// ways: `Ttl { base: 10 min, jitter: 0.1 }` gives 9 to 11 minutes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ttl {
    pub base: Duration,
    /// Clamped to `0.0..=MAX_JITTER`; NaN counts as 0.
    pub jitter: f64,
}

impl Ttl {
    /// The TTL for one fill, in whole milliseconds (as `PX` takes it):
    /// uniform over `base ± base × jitter` as far as `random` is, and never
    /// below one millisecond.
    pub fn pick(&self, random: u64) -> Duration {
        let base = u64::try_from(self.base.as_millis()).unwrap_or(u64::MAX / 4);
        let base = base.min(u64::MAX / 4);
        let fraction = if self.jitter.is_nan() {
            0.0
        } else {
            self.jitter.clamp(0.0, MAX_JITTER)
        };
        let span = (base as f64 * fraction) as u64;
        let offset = random % (2 * span + 1);
        Duration::from_millis((base - span + offset).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN_MINUTES: Duration = Duration::from_secs(600);

    #[test]
    fn every_pick_is_within_the_jitter_bounds() {
        let ttl = Ttl {
            base: TEN_MINUTES,
            jitter: 0.1,
        };
        let (low, high) = (Duration::from_secs(540), Duration::from_secs(660));
        let mut seen_low = false;
        let mut seen_high = false;
        // The extremes, and a spread of values between.
        let randoms = (0..10_000u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        for random in [0, u64::MAX, 120_000, 120_001].into_iter().chain(randoms) {
            let picked = ttl.pick(random);
            assert!(low <= picked && picked <= high, "{random}: {picked:?}");
            seen_low |= picked == low;
            seen_high |= picked == high;
        }
        assert!(seen_low && seen_high, "both ends are reachable");
    }

    #[test]
    fn picks_spread_over_the_range() {
        let ttl = Ttl {
            base: TEN_MINUTES,
            jitter: 0.5,
        };
        let picks: std::collections::HashSet<_> = (0..100u64)
            .map(|i| ttl.pick(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            .collect();
        assert!(picks.len() > 90, "only {} distinct TTLs", picks.len());
    }

    #[test]
    fn no_jitter_is_the_base_and_bad_fractions_are_clamped() {
        for jitter in [0.0, -1.0, f64::NAN] {
            let ttl = Ttl {
                base: TEN_MINUTES,
                jitter,
            };
            assert_eq!(ttl.pick(12345), TEN_MINUTES, "{jitter}");
        }
        let wild = Ttl {
            base: TEN_MINUTES,
            jitter: 5.0,
        };
        for random in [0, 1, u64::MAX] {
            let picked = wild.pick(random);
            assert!(picked >= Duration::from_secs(60) && picked <= Duration::from_secs(1140));
        }
    }

    #[test]
    fn the_ttl_is_never_zero() {
        let tiny = Ttl {
            base: Duration::from_micros(10),
            jitter: 0.5,
        };
        assert_eq!(tiny.pick(0), Duration::from_millis(1));
        let none = Ttl {
            base: Duration::ZERO,
            jitter: 0.0,
        };
        assert_eq!(none.pick(7), Duration::from_millis(1));
    }
}
