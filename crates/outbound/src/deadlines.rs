//! The bookkeeping for sharing one runtime timer among the deadlines of a
//! request (the request's own limit, Redis' connect and every exchange).
//!
//! In the Worker each `setTimeout` and `clearTimeout` is a call out of wasm
//! into the runtime, with a closure to create and free; a cached page read
//! armed four of them, about 5 % of its CPU profile. With [`Deadlines`]
//! the runtime timer is armed only for the earliest deadline and is not
//! cleared when a sleep ends early: when it fires, the sleeps whose
//! deadline has passed are woken and it is armed again for the earliest
//! one still waiting. A later deadline (the next exchange's) costs nothing.
//!
//! Pure data: times are milliseconds on whatever clock the caller reads,
//! and the caller arms the runtime timer as told by [`Arm`]. The Worker's
//! glue is `api-worker/src/platform.rs`.

use std::task::{Poll, Waker};

/// The longest a runtime timer can be armed for (`setTimeout`'s limit).
const LONGEST_MS: u32 = i32::MAX as u32;

/// What to do with the runtime timer after a change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arm {
    /// Leave it as it is (armed for an earlier time, or not needed).
    Keep,
    /// Arm a timer to fire after this many milliseconds (at least 1); the
    /// one armed before, if any, is no longer wanted (the Worker lets it
    /// fire into nothing rather than clear it, see `api-worker`'s
    /// `Timers`).
    After(u32),
}

/// Sleeps waiting on one runtime timer.
#[derive(Default)]
pub struct Deadlines {
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// When the runtime timer fires, if it is armed.
    armed_for: Option<f64>,
}

enum Slot {
    Free,
    Waiting { at: f64, waker: Waker },
    Due,
}

impl Deadlines {
    pub fn new() -> Self {
        Deadlines::default()
    }

    /// Whether the runtime timer is armed.
    pub fn is_armed(&self) -> bool {
        self.armed_for.is_some()
    }

    /// A sleep until `at` (read `now`); returns its key and what to do with
    /// the runtime timer. A deadline that has already passed is due at once.
    pub fn insert(&mut self, at: f64, now: f64, waker: &Waker) -> (usize, Arm) {
        let due = at <= now;
        let slot = if due {
            Slot::Due
        } else {
            Slot::Waiting {
                at,
                waker: waker.clone(),
            }
        };
        let key = match self.free.pop() {
            Some(key) => {
                self.slots[key] = slot;
                key
            }
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        let arm = match self.armed_for {
            _ if due => Arm::Keep,
            Some(armed_for) if armed_for <= at => Arm::Keep,
            _ => self.arm(at, now),
        };
        (key, arm)
    }

    /// Whether the sleep `key` is over; if not, `waker` is the one to wake.
    pub fn poll(&mut self, key: usize, waker: &Waker) -> Poll<()> {
        match self.slots.get_mut(key) {
            Some(Slot::Waiting { waker: kept, .. }) => {
                if !kept.will_wake(waker) {
                    *kept = waker.clone();
                }
                Poll::Pending
            }
            // Due, or a key this never gave out: nothing to wait for.
            _ => Poll::Ready(()),
        }
    }

    /// The sleep `key` is gone (done or dropped). The runtime timer stays
    /// armed: clearing it would cost as much as letting it fire.
    pub fn remove(&mut self, key: usize) {
        if let Some(slot) = self.slots.get_mut(key) {
            if !matches!(slot, Slot::Free) {
                *slot = Slot::Free;
                self.free.push(key);
            }
        }
    }

    /// The runtime timer fired at `now`: the wakers of every sleep whose
    /// deadline has passed, and what to arm for the earliest still waiting.
    pub fn fire(&mut self, now: f64) -> (Vec<Waker>, Arm) {
        self.armed_for = None;
        let mut woken = Vec::new();
        let mut earliest: Option<f64> = None;
        for slot in &mut self.slots {
            match slot {
                Slot::Waiting { at, .. } if *at <= now => {
                    if let Slot::Waiting { waker, .. } = std::mem::replace(slot, Slot::Due) {
                        woken.push(waker);
                    }
                }
                Slot::Waiting { at, .. } => {
                    earliest = Some(earliest.map_or(*at, |e: f64| e.min(*at)));
                }
                Slot::Free | Slot::Due => {}
            }
        }
        let arm = match earliest {
            Some(at) => self.arm(at, now),
            None => Arm::Keep,
        };
        (woken, arm)
    }

    /// Arms for `at`, or for the longest a runtime timer takes if that is
    /// sooner (`setTimeout` fires at once past 2^31 - 1 ms); firing early
    /// only arms it again.
    fn arm(&mut self, at: f64, now: f64) -> Arm {
        let after = (at - now).ceil().clamp(1.0, LONGEST_MS as f64);
        self.armed_for = Some(now + after);
        Arm::After(after as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        (count.clone(), Waker::from(count))
    }
    fn wake_all(wakers: Vec<Waker>) -> usize {
        let n = wakers.len();
        wakers.into_iter().for_each(Waker::wake);
        n
    }

    #[test]
    fn the_timer_is_armed_for_the_earliest_deadline_only() {
        let mut d = Deadlines::new();
        let (_, w) = waker();
        // The request's limit, then Redis' connect (earlier), then an
        // exchange (later than the armed time).
        assert_eq!(d.insert(10_000.0, 0.0, &w).1, Arm::After(10_000));
        assert_eq!(d.insert(1_000.0, 0.0, &w).1, Arm::After(1_000));
        assert_eq!(d.insert(1_005.0, 5.0, &w).1, Arm::Keep);
        assert!(d.is_armed());
    }

    #[test]
    fn firing_wakes_what_is_due_and_rearms_for_the_rest() {
        let mut d = Deadlines::new();
        let (early, w1) = waker();
        let (late, w2) = waker();
        let (k1, _) = d.insert(100.0, 0.0, &w1);
        let (k2, _) = d.insert(250.0, 0.0, &w2);
        let (woken, arm) = d.fire(100.0);
        assert_eq!(wake_all(woken), 1);
        assert_eq!(early.0.load(Ordering::SeqCst), 1);
        assert_eq!(late.0.load(Ordering::SeqCst), 0);
        assert_eq!(arm, Arm::After(150));
        assert_eq!(d.poll(k1, &w1), Poll::Ready(()));
        assert_eq!(d.poll(k2, &w2), Poll::Pending);
        let (woken, arm) = d.fire(250.0);
        assert_eq!(wake_all(woken), 1);
        assert_eq!(late.0.load(Ordering::SeqCst), 1);
        assert_eq!(arm, Arm::Keep);
        assert!(!d.is_armed());
    }

    #[test]
    fn a_sleep_removed_before_its_deadline_is_never_woken() {
        let mut d = Deadlines::new();
        let (count, w) = waker();
        let (key, _) = d.insert(100.0, 0.0, &w);
        d.remove(key);
        let (woken, arm) = d.fire(100.0);
        assert_eq!(wake_all(woken), 0);
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        // Nothing left to wait for: the timer is not armed again.
        assert_eq!(arm, Arm::Keep);
        assert!(!d.is_armed());
    }

    #[test]
    fn a_timer_that_fires_early_is_armed_again_for_the_remainder() {
        let mut d = Deadlines::new();
        let (count, w) = waker();
        let (key, _) = d.insert(100.4, 0.0, &w);
        let (woken, arm) = d.fire(100.0);
        assert_eq!(wake_all(woken), 0);
        assert_eq!(arm, Arm::After(1));
        assert_eq!(d.poll(key, &w), Poll::Pending);
        assert_eq!(wake_all(d.fire(101.0).0), 1);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_latest_waker_is_the_one_woken() {
        let mut d = Deadlines::new();
        let (first, w1) = waker();
        let (second, w2) = waker();
        let (key, _) = d.insert(50.0, 0.0, &w1);
        assert_eq!(d.poll(key, &w2), Poll::Pending);
        wake_all(d.fire(50.0).0);
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_deadline_beyond_what_a_timer_takes_is_reached_in_steps() {
        let mut d = Deadlines::new();
        let (count, w) = waker();
        let far = 3.0 * LONGEST_MS as f64;
        assert_eq!(d.insert(far, 0.0, &w).1, Arm::After(LONGEST_MS));
        let (woken, arm) = d.fire(LONGEST_MS as f64);
        assert_eq!(wake_all(woken), 0);
        assert_eq!(arm, Arm::After(LONGEST_MS));
        // A nearer deadline still re-arms for itself.
        assert_eq!(
            d.insert(LONGEST_MS as f64 + 10.0, LONGEST_MS as f64, &w).1,
            Arm::After(10)
        );
        assert_eq!(wake_all(d.fire(far).0), 2);
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_passed_deadline_is_due_at_once_and_keys_are_reused() {
        let mut d = Deadlines::new();
        let (_, w) = waker();
        let (key, arm) = d.insert(10.0, 20.0, &w);
        assert_eq!(arm, Arm::Keep);
        assert!(!d.is_armed());
        assert_eq!(d.poll(key, &w), Poll::Ready(()));
        d.remove(key);
        d.remove(key);
        let (again, _) = d.insert(30.0, 20.0, &w);
        assert_eq!(again, key);
        let (other, _) = d.insert(40.0, 20.0, &w);
        assert_ne!(other, key);
    }
}
