//! Tokens whose signature this isolate has already checked, so that the
//! same token on the next request skips the RSA check.
//!
//! A browser (or a service token's client) sends one Access token with
//! every request until it expires, so an admin session would repeat the
//! same check on every request. The check is the one step of verifying
//! with public-key arithmetic (and in the Worker a trip through
//! WebCrypto's promise and another wake-up of the request); what is left
//! (parsing, the issuer, audience and time checks) still runs on every
//! request: an expired token is refused even when it was remembered.
//!
//! An entry holds the whole token (so a token differing in any byte, the
//! signature included, is checked afresh) and the key it was checked
//! under: a hit needs the team's key for that `kid` to be the very same
//! key today, so a key that rotated out, or was replaced under its `kid`,
//! takes its tokens' entries with it. Only tokens that were let in are
//! kept, so a caller cannot fill the cache with forgeries, and it is
//! bounded ([`MAX_ENTRIES`], tokens up to [`MAX_CACHED_TOKEN_BYTES`]).

use std::collections::HashMap;
use std::sync::Mutex;

use rsa::RsaPublicKey;

/// At most this many tokens are kept: far more than one isolate's admins.
const MAX_ENTRIES: usize = 256;
/// Longer tokens are checked every time (Access tokens are about 1 KiB),
/// which bounds the cache's memory at about 1 MiB.
const MAX_CACHED_TOKEN_BYTES: usize = 4 * 1024;

#[derive(Default)]
pub(crate) struct CheckedSignatures {
    entries: Mutex<HashMap<Box<str>, Checked>>,
}

struct Checked {
    key: RsaPublicKey,
    /// Past this (seconds since the epoch, leeway included) the token is
    /// refused anyway: the entry can go when room is needed.
    useless_after: u64,
}

impl CheckedSignatures {
    /// Whether `token`'s signature was found valid under `key` before.
    pub(crate) fn holds(&self, token: &str, key: &RsaPublicKey) -> bool {
        self.lock()
            .get(token)
            .is_some_and(|checked| checked.key == *key)
    }

    /// Keeps `token`, let in with its signature checked under `key`.
    pub(crate) fn keep(&self, token: &str, key: RsaPublicKey, useless_after: u64, now: u64) {
        if token.len() > MAX_CACHED_TOKEN_BYTES {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(token) {
            entries.retain(|_, checked| checked.useless_after >= now);
            if entries.len() >= MAX_ENTRIES {
                // All still valid: a burst of distinct tokens. Starting
                // over costs one check each for the tokens still in use.
                entries.clear();
            }
        }
        entries.insert(token.into(), Checked { key, useless_after });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Checked>> {
        // As `KeyCache::lock`: never held across an await, and consistent
        // whatever panicked while holding it.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use rsa::BigUint;

    use super::*;

    fn key(seed: u32) -> RsaPublicKey {
        // Any odd modulus of 2048 bits will do: nothing is signed here.
        let n = (BigUint::from(1u32) << 2047) + BigUint::from(seed * 2 + 1);
        RsaPublicKey::new_unchecked(n, BigUint::from(65537u32))
    }

    #[test]
    fn a_token_holds_only_under_the_key_it_was_checked_with() {
        let checked = CheckedSignatures::default();
        assert!(!checked.holds("a.b.c", &key(1)));
        checked.keep("a.b.c", key(1), 100, 0);
        assert!(checked.holds("a.b.c", &key(1)));
        assert!(!checked.holds("a.b.c", &key(2)), "the kid's key changed");
        assert!(!checked.holds("a.b.d", &key(1)), "another signature");
    }

    #[test]
    fn long_tokens_are_not_kept() {
        let checked = CheckedSignatures::default();
        let long = "x".repeat(MAX_CACHED_TOKEN_BYTES + 1);
        checked.keep(&long, key(1), 100, 0);
        assert!(!checked.holds(&long, &key(1)));
    }

    #[test]
    fn when_full_the_useless_entries_go_first_and_then_all() {
        let checked = CheckedSignatures::default();
        for i in 0..MAX_ENTRIES {
            // Half of them are useless from time 50 on.
            let useless_after = if i % 2 == 0 { 10 } else { 100 };
            checked.keep(&format!("t{i}"), key(1), useless_after, 0);
        }
        assert_eq!(checked.len(), MAX_ENTRIES);
        checked.keep("t1", key(1), 100, 50);
        assert_eq!(checked.len(), MAX_ENTRIES, "kept again in place");
        checked.keep("new", key(1), 100, 50);
        assert_eq!(checked.len(), MAX_ENTRIES / 2 + 1);
        assert!(checked.holds("new", &key(1)));
        assert!(checked.holds("t1", &key(1)));
        assert!(!checked.holds("t0", &key(1)));

        for i in 0..MAX_ENTRIES {
            checked.keep(&format!("u{i}"), key(1), 100, 50);
        }
        assert!(checked.len() <= MAX_ENTRIES);
        assert!(checked.holds(&format!("u{}", MAX_ENTRIES - 1), &key(1)));
    }
}
