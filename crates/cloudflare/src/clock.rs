//! Time as the client sees it, injectable so retry and budget tests run in
//! microseconds and can assert exactly how long the client chose to wait.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// A boxed future returned by [`Clock::sleep`].
pub type SleepFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The source of "now" and of waiting, for backoff and the request budget.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Monotonic now, for the sliding request window.
    fn now(&self) -> Instant;
    /// Wall-clock now, for `Retry-After` given as an HTTP date.
    fn system_now(&self) -> SystemTime;
    /// Wait for `duration`.
    fn sleep(&self, duration: Duration) -> SleepFuture;
}

/// The real clock: tokio's timer and the system time.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn system_now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep(&self, duration: Duration) -> SleepFuture {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that never really waits: `sleep` advances virtual time at once
/// and records the requested duration. For tests (here and in the deploy
/// tool) that want to assert on backoff and throttling.
#[derive(Clone)]
pub struct VirtualClock {
    inner: Arc<Mutex<VirtualState>>,
}

struct VirtualState {
    start: Instant,
    system_start: SystemTime,
    elapsed: Duration,
    sleeps: Vec<Duration>,
}

impl Default for VirtualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl VirtualClock {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Mutex::new(VirtualState {
                start: Instant::now(),
                system_start: SystemTime::now(),
                elapsed: Duration::ZERO,
                sleeps: Vec::new(),
            })),
        }
    }

    /// Every duration passed to `sleep`, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.lock().sleeps.clone()
    }

    /// The sum of all sleeps.
    pub fn elapsed(&self) -> Duration {
        self.lock().elapsed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VirtualState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for VirtualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VirtualClock")
            .field("elapsed", &self.elapsed())
            .finish()
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Instant {
        let state = self.lock();
        state.start + state.elapsed
    }

    fn system_now(&self) -> SystemTime {
        let state = self.lock();
        state.system_start + state.elapsed
    }

    fn sleep(&self, duration: Duration) -> SleepFuture {
        {
            let mut state = self.lock();
            state.elapsed += duration;
            state.sleeps.push(duration);
        }
        Box::pin(std::future::ready(()))
    }
}
