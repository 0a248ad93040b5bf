//! The request budget and call accounting.
//!
//! Cloudflare allows 1,200 requests per five minutes per user, across all
//! of that user's tokens and tools. The client keeps its own sliding-window
//! count of requests sent (retries included) and waits before exceeding a
//! configured limit, so a large deploy slows down instead of being locked
//! out for five minutes. A per-run hard cap turns a runaway loop into an
//! error instead of an account-wide lockout.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Limits on how many requests the client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestBudget {
    /// Requests allowed within any `window` (default 1000, below
    /// Cloudflare's 1,200 to leave room for other tools).
    pub max_requests: u32,
    /// Length of the sliding window (default five minutes).
    pub window: Duration,
    /// Total requests this client may send at all; `None` for no cap.
    /// Reaching it fails calls with `Error::BudgetExhausted`.
    pub hard_cap: Option<u64>,
}

impl Default for RequestBudget {
    fn default() -> Self {
        Self {
            max_requests: 1000,
            window: Duration::from_secs(300),
            hard_cap: None,
        }
    }
}

/// Counters for "N API calls, M writes" and for assertions such as "a no-op
/// deploy made zero writes".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallStats {
    /// HTTP requests sent, retries included.
    pub requests: u64,
    /// Requests sent with a method other than GET or HEAD, retries included.
    pub writes: u64,
    /// Requests that were retries of an earlier attempt.
    pub retries: u64,
    /// Times the budget made the client wait before sending.
    pub throttled: u64,
    /// Total time spent waiting for the budget.
    pub throttled_for: Duration,
}

impl CallStats {
    /// One line for the end of a deploy: "12 API calls, 3 writes, 1 retry".
    pub fn summary(&self) -> String {
        let count =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut line = format!(
            "{}, {}",
            count(self.requests, "API call", "API calls"),
            count(self.writes, "write", "writes")
        );
        if self.retries > 0 {
            line.push_str(&format!(", {}", count(self.retries, "retry", "retries")));
        }
        if self.throttled > 0 {
            line.push_str(&format!(", throttled for {:?}", self.throttled_for));
        }
        line
    }
}

pub(crate) fn is_write(method: &reqwest::Method) -> bool {
    !matches!(*method, reqwest::Method::GET | reqwest::Method::HEAD)
}

/// Mutable budget state shared by all calls of one client.
#[derive(Debug, Default)]
pub(crate) struct BudgetState {
    sent: VecDeque<Instant>,
    total: u64,
}

/// What the budget says about sending a request now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    Send,
    Wait(Duration),
    Exhausted(u64),
}

impl BudgetState {
    /// Reserves a slot for a request at `now`, or says how long to wait.
    pub(crate) fn admit(&mut self, budget: &RequestBudget, now: Instant) -> Admission {
        if let Some(cap) = budget.hard_cap {
            if self.total >= cap {
                return Admission::Exhausted(cap);
            }
        }
        while let Some(&oldest) = self.sent.front() {
            if now.duration_since(oldest) >= budget.window {
                self.sent.pop_front();
            } else {
                break;
            }
        }
        if self.sent.len() >= budget.max_requests.max(1) as usize {
            let oldest = self.sent[0];
            let wait = (oldest + budget.window).saturating_duration_since(now);
            return Admission::Wait(wait.max(Duration::from_millis(1)));
        }
        self.sent.push_back(now);
        self.total += 1;
        Admission::Send
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window_admits_up_to_the_limit_then_asks_to_wait() {
        let budget = RequestBudget {
            max_requests: 2,
            window: Duration::from_secs(10),
            hard_cap: Some(4),
        };
        let mut state = BudgetState::default();
        let t0 = Instant::now();
        assert_eq!(state.admit(&budget, t0), Admission::Send);
        assert_eq!(
            state.admit(&budget, t0 + Duration::from_secs(3)),
            Admission::Send
        );
        assert_eq!(
            state.admit(&budget, t0 + Duration::from_secs(4)),
            Admission::Wait(Duration::from_secs(6))
        );
        assert_eq!(
            state.admit(&budget, t0 + Duration::from_secs(10)),
            Admission::Send
        );
        assert_eq!(
            state.admit(&budget, t0 + Duration::from_secs(13)),
            Admission::Send
        );
        assert_eq!(
            state.admit(&budget, t0 + Duration::from_secs(100)),
            Admission::Exhausted(4)
        );
    }

    #[test]
    fn summary_reads_like_a_sentence() {
        let mut stats = CallStats {
            requests: 12,
            writes: 1,
            ..CallStats::default()
        };
        assert_eq!(stats.summary(), "12 API calls, 1 write");
        stats.retries = 2;
        assert_eq!(stats.summary(), "12 API calls, 1 write, 2 retries");
    }
}
