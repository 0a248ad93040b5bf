//! Tokens this isolate has let in before, so that the same token on the
//! next request skips the RSA check and the decoding.
//!
//! A browser (or a service token's client) sends one Access token with
//! every request until it expires, so an admin session would repeat the
//! same work on every request: the signature check, the one step of
//! verifying with public-key arithmetic (and in the Worker a trip through
//! WebCrypto's promise and another wake-up of the request), and the base64
//! and JSON decoding of its parts. An entry keeps what that work found (the
//! `kid`, the key and the claims); what is left (the issuer, audience and
//! time checks) still runs on every request: an expired token is refused
//! even when it was remembered, and one let in through the service binding
//! is refused outside it.
//!
//! An entry holds the whole token (so a token differing in any byte, the
//! signature included, is checked afresh) and the key it was checked
//! under: a hit needs the team's key for that `kid` to be the very same
//! key today, so a key that rotated out, or was replaced under its `kid`,
//! takes its tokens' entries with it. Only tokens that were let in are
//! kept, so a caller cannot fill the cache with forgeries, and it is
//! bounded ([`MAX_ENTRIES`], tokens up to [`MAX_CACHED_TOKEN_BYTES`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rsa::RsaPublicKey;

use crate::jwt::Claims;

/// At most this many tokens are kept: far more than one isolate's admins.
const MAX_ENTRIES: usize = 256;
/// Longer tokens are checked every time (Access tokens are about 1 KiB),
/// which bounds the cache's memory at about 2 MiB: each entry is the token
/// and its decoded claims, which are shorter than the token.
const MAX_CACHED_TOKEN_BYTES: usize = 4 * 1024;

#[derive(Default)]
pub(crate) struct CheckedTokens {
    entries: Mutex<HashMap<Box<str>, Arc<Checked>>>,
}

/// What verifying a token found, kept for its next requests.
pub(crate) struct Checked {
    /// The header's `kid`: the team's key under it must still be `key`.
    pub(crate) kid: Box<str>,
    /// The key its signature was found valid under.
    pub(crate) key: RsaPublicKey,
    /// Its decoded claims, checked again on every request.
    pub(crate) claims: Claims,
    /// Past this (seconds since the epoch, leeway included) the token is
    /// refused anyway: the entry can go when room is needed.
    pub(crate) useless_after: u64,
}

impl CheckedTokens {
    /// What was kept of `token` when it was let in, if it was.
    pub(crate) fn get(&self, token: &str) -> Option<Arc<Checked>> {
        self.lock().get(token).cloned()
    }

    /// Keeps `token`, let in with what `checked` says.
    pub(crate) fn keep(&self, token: &str, checked: Checked, now: u64) {
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
        entries.insert(token.into(), Arc::new(checked));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Arc<Checked>>> {
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

    fn checked(key_seed: u32, email: &str, useless_after: u64) -> Checked {
        Checked {
            kid: format!("kid-{key_seed}").into(),
            key: key(key_seed),
            claims: serde_json::from_value(serde_json::json!({ "email": email, "exp": 1 }))
                .unwrap(),
            useless_after,
        }
    }

    #[test]
    fn a_token_gives_back_what_was_kept_of_it_and_only_it() {
        let tokens = CheckedTokens::default();
        assert!(tokens.get("a.b.c").is_none());
        tokens.keep("a.b.c", checked(1, "ada@example.com", 100), 0);
        let kept = tokens.get("a.b.c").unwrap();
        assert_eq!(&*kept.kid, "kid-1");
        assert_eq!(kept.key, key(1));
        assert_eq!(kept.claims.email, "ada@example.com");
        assert!(tokens.get("a.b.d").is_none(), "another signature");

        tokens.keep("a.b.c", checked(2, "ada@example.com", 100), 0);
        assert_eq!(tokens.get("a.b.c").unwrap().key, key(2), "kept anew");
        assert_eq!(kept.key, key(1), "an entry taken out stays as it was");
    }

    #[test]
    fn long_tokens_are_not_kept() {
        let tokens = CheckedTokens::default();
        let long = "x".repeat(MAX_CACHED_TOKEN_BYTES + 1);
        tokens.keep(&long, checked(1, "ada@example.com", 100), 0);
        assert!(tokens.get(&long).is_none());
    }

    #[test]
    fn when_full_the_useless_entries_go_first_and_then_all() {
        let tokens = CheckedTokens::default();
        for i in 0..MAX_ENTRIES {
            // Half of them are useless from time 50 on.
            let useless_after = if i % 2 == 0 { 10 } else { 100 };
            tokens.keep(
                &format!("t{i}"),
                checked(1, "a@example.com", useless_after),
                0,
            );
        }
        assert_eq!(tokens.len(), MAX_ENTRIES);
        tokens.keep("t1", checked(1, "a@example.com", 100), 50);
        assert_eq!(tokens.len(), MAX_ENTRIES, "kept again in place");
        tokens.keep("new", checked(1, "a@example.com", 100), 50);
        assert_eq!(tokens.len(), MAX_ENTRIES / 2 + 1);
        assert!(tokens.get("new").is_some());
        assert!(tokens.get("t1").is_some());
        assert!(tokens.get("t0").is_none());

        for i in 0..MAX_ENTRIES {
            tokens.keep(&format!("u{i}"), checked(1, "a@example.com", 100), 50);
        }
        assert!(tokens.len() <= MAX_ENTRIES);
        assert!(tokens.get(&format!("u{}", MAX_ENTRIES - 1)).is_some());
    }
}
