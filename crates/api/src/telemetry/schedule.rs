//! When a sink sends, per isolate: at most one send in flight, at most one
//! every [`MIN_INTERVAL_MS`] (what arrives meanwhile goes with the next,
//! which waits out the interval in the background), and after a failure a
//! pause that doubles up to [`MAX_PAUSE_MS`]. So a busy isolate sends about
//! once a second instead of once per request, and a sink that is down costs
//! a request nothing but the bookkeeping, instead of a failing connection
//! attempt (and an error line) per request.

use std::sync::Mutex;

/// Sends of one sink are at least this far apart.
pub const MIN_INTERVAL_MS: f64 = 1_000.0;
/// The longest pause after failures: a sink that comes back is used again
/// within this long.
pub const MAX_PAUSE_MS: f64 = 10_000.0;

#[derive(Debug, Default)]
struct State {
    in_flight: bool,
    last_start_ms: Option<f64>,
    failures: u32,
    paused_until_ms: f64,
}

#[derive(Debug, Default)]
pub struct SendSchedule {
    state: Mutex<State>,
}

/// What the caller should tell the console after a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// Nothing new.
    Quiet,
    /// The first failure after a success: worth one error line.
    StartedFailing,
    /// A success after this many failures.
    Recovered(u32),
}

impl SendSchedule {
    /// Claims the next send at `now_ms`: how long to wait before sending,
    /// or `None` when a send is already in flight or the sink is paused
    /// longer than one interval (a later request claims it then).
    pub fn claim(&self, now_ms: f64) -> Option<f64> {
        let mut state = self.state.lock().ok()?;
        if state.in_flight {
            return None;
        }
        let interval_over = state
            .last_start_ms
            .map_or(now_ms, |last| last + MIN_INTERVAL_MS);
        let start = interval_over.max(state.paused_until_ms).max(now_ms);
        let wait = start - now_ms;
        if wait > MIN_INTERVAL_MS {
            return None;
        }
        state.in_flight = true;
        Some(wait)
    }

    /// Marks the claimed send as started (after its wait).
    pub fn started(&self, now_ms: f64) {
        if let Ok(mut state) = self.state.lock() {
            state.last_start_ms = Some(now_ms);
        }
    }

    /// Releases the claim with the send's outcome.
    pub fn finished(&self, now_ms: f64, ok: bool) -> Notice {
        let Ok(mut state) = self.state.lock() else {
            return Notice::Quiet;
        };
        state.in_flight = false;
        if ok {
            let failures = std::mem::take(&mut state.failures);
            state.paused_until_ms = 0.0;
            return if failures > 0 {
                Notice::Recovered(failures)
            } else {
                Notice::Quiet
            };
        }
        state.failures += 1;
        let pause =
            (MIN_INTERVAL_MS * 2f64.powi(state.failures.min(16) as i32 - 1)).min(MAX_PAUSE_MS);
        state.paused_until_ms = now_ms + pause;
        if state.failures == 1 {
            Notice::StartedFailing
        } else {
            Notice::Quiet
        }
    }

    /// Gives up a claim without sending (nothing to send).
    pub fn release(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.in_flight = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_send_in_flight_and_at_most_one_per_interval() {
        let schedule = SendSchedule::default();
        assert_eq!(
            schedule.claim(10_000.0),
            Some(0.0),
            "the first goes at once"
        );
        assert_eq!(schedule.claim(10_001.0), None, "one in flight");
        schedule.started(10_000.0);
        assert_eq!(schedule.finished(10_050.0, true), Notice::Quiet);
        // The next waits out the interval, in the background.
        assert_eq!(schedule.claim(10_300.0), Some(700.0));
        schedule.started(11_000.0);
        schedule.finished(11_010.0, true);
        assert_eq!(schedule.claim(12_500.0), Some(0.0), "interval long over");
    }

    #[test]
    fn failures_pause_the_sink_with_doubling_pauses_and_recovery_is_noticed() {
        let schedule = SendSchedule::default();
        let mut now = 0.0;
        let mut notices = Vec::new();
        let mut pauses = Vec::new();
        for _ in 0..8 {
            // Requests keep coming; only some may send.
            let mut waited = 0.0;
            let wait = loop {
                if let Some(wait) = schedule.claim(now + waited) {
                    break wait;
                }
                waited += 100.0;
            };
            let start = now + waited + wait;
            pauses.push(start - now);
            schedule.started(start);
            notices.push(schedule.finished(start, false));
            now = start;
        }
        assert_eq!(notices[0], Notice::StartedFailing);
        assert!(
            notices[1..].iter().all(|n| *n == Notice::Quiet),
            "one line per outage"
        );
        assert!(pauses[2] >= 2_000.0 && pauses[3] >= 4_000.0, "{pauses:?}");
        assert!(
            pauses.iter().all(|p| *p <= MAX_PAUSE_MS + 1_100.0),
            "{pauses:?}"
        );
        let wait = loop {
            if let Some(wait) = schedule.claim(now) {
                break wait;
            }
            now += 1_000.0;
        };
        schedule.started(now + wait);
        assert_eq!(schedule.finished(now + wait, true), Notice::Recovered(8));
    }

    #[test]
    fn a_released_claim_frees_the_slot() {
        let schedule = SendSchedule::default();
        assert!(schedule.claim(0.0).is_some());
        schedule.release();
        assert!(schedule.claim(0.0).is_some());
    }
}
