//! Fault injection: rules that make chosen API calls fail the way
//! Cloudflare's API and edge fail (rate limits, 5xx, hangs).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What an injected fault answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// 429 with `Retry-After: retry_after_secs` and Cloudflare's rate-limit
    /// envelope (code 971, "Please wait and consider throttling your request speed").
    RateLimit { retry_after_secs: u64 },
    /// A 5xx: an API envelope (code 10013 "An unknown error has occurred"
    /// for 500, the edge's plain HTML page when `html` is set, as Cloudflare's
    /// edge sends for 502/503).
    ServerError {
        status: u16,
        #[serde(default)]
        html: bool,
    },
    /// Accept the request and answer only after `delay_ms` (never, if absent),
    /// so the client's timeout fires.
    Hang {
        #[serde(default)]
        delay_ms: Option<u64>,
    },
}

/// One rule: after letting `skip` matching calls through, the next `times`
/// matching calls fail with `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    pub kind: FaultKind,
    /// Only calls with this HTTP method (any, if absent).
    #[serde(default)]
    pub method: Option<String>,
    /// Only calls whose path (below `/client/v4`) contains this (any, if absent).
    #[serde(default)]
    pub path_contains: Option<String>,
    /// Matching calls to let through first: `skip: 2, times: 1` fails the
    /// third matching call from now, for crash-between-steps tests.
    #[serde(default)]
    pub skip: u32,
    /// How many matching calls fail (default 1).
    #[serde(default = "one")]
    pub times: u32,
    /// Apply the call to the state first, then answer with the fault (a
    /// write that happened although the client saw a failure).
    #[serde(default)]
    pub after_apply: bool,
}

fn one() -> u32 {
    1
}

impl Fault {
    /// A fault for the next call, whatever it is.
    pub fn next(kind: FaultKind) -> Fault {
        Fault {
            kind,
            method: None,
            path_contains: None,
            skip: 0,
            times: 1,
            after_apply: false,
        }
    }

    /// Fails `times` calls instead of one.
    pub fn times(mut self, times: u32) -> Fault {
        self.times = times;
        self
    }

    /// Fails the `n`th matching call from now (1 = the next one).
    pub fn nth(mut self, n: u32) -> Fault {
        self.skip = n.saturating_sub(1);
        self
    }

    /// Only calls with this method.
    pub fn method(mut self, method: &str) -> Fault {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// Only calls whose path contains `fragment`.
    pub fn path_contains(mut self, fragment: &str) -> Fault {
        self.path_contains = Some(fragment.to_owned());
        self
    }

    /// Apply the call, then fail the answer.
    pub fn after_apply(mut self) -> Fault {
        self.after_apply = true;
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .path_contains
                .as_deref()
                .is_none_or(|fragment| path.contains(fragment))
    }
}

/// The rules in force, consulted in order.
#[derive(Debug, Default)]
pub(crate) struct FaultQueue {
    rules: Vec<Fault>,
}

impl FaultQueue {
    pub fn push(&mut self, fault: Fault) {
        self.rules.push(fault);
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    pub fn pending(&self) -> Vec<Fault> {
        self.rules.clone()
    }

    /// The fault this call triggers, if any; counts the call against every
    /// matching rule up to the one that fires.
    pub fn take(&mut self, method: &str, path: &str) -> Option<Fault> {
        let mut fired = None;
        for (index, rule) in self.rules.iter_mut().enumerate() {
            if !rule.matches(method, path) {
                continue;
            }
            if rule.skip > 0 {
                rule.skip -= 1;
                continue;
            }
            rule.times = rule.times.saturating_sub(1);
            fired = Some((index, rule.clone()));
            break;
        }
        let (index, fault) = fired?;
        if self.rules[index].times == 0 {
            self.rules.remove(index);
        }
        Some(fault)
    }
}

impl FaultKind {
    /// How long a hang lasts; `None` means forever.
    pub(crate) fn hang_for(&self) -> Option<Option<Duration>> {
        match self {
            FaultKind::Hang { delay_ms } => Some(delay_ms.map(Duration::from_millis)),
            _ => None,
        }
    }
}
