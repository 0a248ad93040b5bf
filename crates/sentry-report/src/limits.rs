//! Sentry's rate limits as it announces them: `X-Sentry-Rate-Limits`
//! (`seconds:categories:scope[:reason], ...`, empty categories meaning
//! all) on any answer, or a bare `Retry-After` with a 429. Until a limit
//! passes, events of its categories are dropped without being sent.

use std::collections::BTreeMap;

/// When sending is allowed again, per category (`""` for all of them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RateLimits {
    until: BTreeMap<String, f64>,
}

/// Used when a 429 says nothing about how long to wait.
const DEFAULT_RETRY_AFTER_SECS: f64 = 60.0;

impl RateLimits {
    /// Whether `category` (e.g. `error`) is limited at `now` (seconds
    /// since the epoch).
    pub fn is_limited(&self, category: &str, now: f64) -> bool {
        [category, ""]
            .iter()
            .any(|c| self.until.get(*c).is_some_and(|&until| until > now))
    }

    /// Takes in what an answer announced.
    pub fn update(
        &mut self,
        status: u16,
        rate_limits: Option<&str>,
        retry_after: Option<&str>,
        now: f64,
    ) {
        if let Some(header) = rate_limits {
            for limit in header.split(',') {
                let mut parts = limit.trim().split(':');
                let Some(seconds) = parts.next().and_then(|s| s.trim().parse::<f64>().ok()) else {
                    continue;
                };
                let categories = parts.next().unwrap_or("");
                if categories.is_empty() {
                    self.extend("", now + seconds);
                } else {
                    for category in categories.split(';').filter(|c| !c.is_empty()) {
                        self.extend(category, now + seconds);
                    }
                }
            }
        } else if status == 429 {
            let seconds = retry_after
                .and_then(|s| s.trim().parse::<f64>().ok())
                .unwrap_or(DEFAULT_RETRY_AFTER_SECS);
            self.extend("", now + seconds);
        }
    }

    fn extend(&mut self, category: &str, until: f64) {
        let entry = self.until.entry(category.to_owned()).or_insert(until);
        *entry = entry.max(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_429_limits_everything_for_retry_after() {
        let mut limits = RateLimits::default();
        limits.update(429, None, Some("30"), 100.0);
        assert!(limits.is_limited("error", 129.0));
        assert!(!limits.is_limited("error", 131.0));
        let mut limits = RateLimits::default();
        limits.update(429, None, None, 100.0);
        assert!(limits.is_limited("error", 159.0));
    }

    #[test]
    fn the_header_limits_only_its_categories() {
        let mut limits = RateLimits::default();
        limits.update(
            200,
            Some("60:transaction;session:organization:quota, 10:error:project"),
            None,
            0.0,
        );
        assert!(limits.is_limited("transaction", 59.0));
        assert!(limits.is_limited("error", 9.0));
        assert!(!limits.is_limited("error", 11.0));
        assert!(!limits.is_limited("attachment", 1.0));
        limits.update(200, Some("5::organization"), None, 100.0);
        assert!(limits.is_limited("attachment", 104.0));
    }

    #[test]
    fn success_without_headers_changes_nothing_and_junk_is_ignored() {
        let mut limits = RateLimits::default();
        limits.update(200, None, None, 0.0);
        limits.update(200, Some("soon:error, :"), None, 0.0);
        assert_eq!(limits, RateLimits::default());
    }

    #[test]
    fn a_shorter_limit_never_shortens_a_longer_one() {
        let mut limits = RateLimits::default();
        limits.update(429, Some("100:error"), None, 0.0);
        limits.update(429, Some("1:error"), None, 0.0);
        assert!(limits.is_limited("error", 50.0));
    }
}
