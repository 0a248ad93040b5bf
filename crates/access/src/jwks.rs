//! The team's signing keys, fetched from its JWKS and cached per isolate.
//!
//! Access rotates its keys (it publishes the next key before it signs with
//! it, and keeps the previous one for a while). The cache therefore
//! refetches when it is older than `max_age`, and also when a token names a
//! key it does not hold, but at most once per `cooldown`, so a stream of
//! tokens with made-up `kid`s cannot turn into a stream of fetches. The
//! cooldown runs from the last attempt, successful or not: once a cold
//! isolate's first fetch has failed (the certs endpoint down, or the team
//! domain wrong), it would otherwise fetch, and wait up to the timeout, for
//! every token it is shown. When a refetch fails, the keys already held
//! keep working; without any, the answer is "unavailable" (503).
//!
//! No request ever waits for another request's fetch: in Workers, a
//! request blocked on a promise that belongs to another request is
//! cancelled as hung, and its I/O cannot be shared. So the state sits
//! behind a plain mutex that is never held across an `await`, and there
//! is no coalescing: until a cold isolate's first fetch has ended, each
//! request fetches the set itself (the admin site's first calls after a
//! deploy come together, and must not be refused); later ones use what
//! the first to finish stored, or, after a failure, wait out the
//! cooldown.

use std::collections::HashMap;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::{BigUint, RsaPublicKey};
use serde::Deserialize;
use std::sync::Mutex;

use crate::Rejection;

/// Keys shorter than this are ignored: Access signs with 2048-bit RSA.
const MIN_MODULUS_BITS: usize = 2048;

#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    /// Refetch the whole set when it is older than this (seconds).
    pub max_age_secs: u64,
    /// Least time between refetches caused by unknown keys (seconds).
    pub cooldown_secs: u64,
    /// Timeout of one fetch.
    pub fetch_timeout: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            max_age_secs: 3600,
            cooldown_secs: 30,
            fetch_timeout: Duration::from_secs(5),
        }
    }
}

pub struct KeyCache {
    url: String,
    settings: CacheSettings,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, RsaPublicKey>,
    fetched_at: Option<u64>,
    /// When the last fetch started, successful or not: the cooldown runs
    /// from here.
    attempted_at: Option<u64>,
    /// Why the last fetch failed; `None` once one succeeds.
    failure: Option<String>,
    fetches: u64,
}

impl KeyCache {
    pub fn new(url: String, settings: CacheSettings) -> Self {
        KeyCache {
            url,
            settings,
            state: Mutex::new(State::default()),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many times the set was fetched (successfully or not).
    pub fn fetches(&self) -> u64 {
        self.lock().fetches
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock aborts the whole instance (the
        // Worker builds with panic=abort), so poisoning cannot be observed;
        // natively, the data is still consistent: take it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The key `kid`, fetching the set if it is stale or lacks that key
    /// (subject to the cooldown).
    pub async fn key(
        &self,
        kid: &str,
        fetch: &dyn outbound::Fetch,
        now: u64,
    ) -> Result<RsaPublicKey, Rejection> {
        let should_fetch = {
            let mut state = self.lock();
            let stale = state
                .fetched_at
                .is_none_or(|at| now >= at.saturating_add(self.settings.max_age_secs));
            let cooled_down = state
                .attempted_at
                .is_none_or(|at| now >= at.saturating_add(self.settings.cooldown_secs));
            let missing = !state.keys.contains_key(kid);
            // Until the first attempt has ended, every request may fetch;
            // after it, a failed attempt holds the next one off like a
            // successful one does.
            let first_under_way = state.fetched_at.is_none() && state.failure.is_none();
            let fetch = (stale || missing) && (cooled_down || first_under_way);
            if fetch {
                state.attempted_at = Some(now);
                state.fetches += 1;
            }
            fetch
        };
        if should_fetch {
            let fetched = self.fetch_set(fetch).await;
            let mut state = self.lock();
            match fetched {
                Ok(keys) => {
                    state.keys = keys;
                    state.fetched_at = Some(now);
                    state.failure = None;
                }
                // Keep what we have: a blip at the certs endpoint must not
                // lock every admin out.
                Err(why) => state.failure = Some(why),
            }
        }
        let state = self.lock();
        if state.keys.is_empty() {
            // Never fetched: we cannot tell a made-up kid from a real one.
            let why = state
                .failure
                .clone()
                .unwrap_or_else(|| "the key set had no usable key".to_owned());
            return Err(Rejection::KeysUnavailable(why));
        }
        state.keys.get(kid).cloned().ok_or(Rejection::UnknownKey)
    }

    async fn fetch_set(
        &self,
        fetch: &dyn outbound::Fetch,
    ) -> Result<HashMap<String, RsaPublicKey>, String> {
        let request = http::Request::get(&self.url)
            .header(http::header::ACCEPT, "application/json")
            .body(outbound::Bytes::new())
            .map_err(|_| "the team domain does not give a valid URL".to_owned())?;
        let response = fetch
            .fetch(request, self.settings.fetch_timeout)
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("the certs endpoint answered {}", response.status()));
        }
        parse_set(response.body())
    }
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

/// One JSON Web Key; fields other than RSA's are ignored.
#[derive(Deserialize)]
struct Jwk {
    #[serde(default)]
    kid: String,
    #[serde(default)]
    kty: String,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    usage: Option<String>,
    #[serde(default)]
    n: String,
    #[serde(default)]
    e: String,
}

/// The usable keys of a JWKS document: RSA signing keys for RS256 of at
/// least 2048 bits with a `kid`. Other entries are skipped, not fatal, so
/// one odd key cannot hide the others.
pub(crate) fn parse_set(body: &[u8]) -> Result<HashMap<String, RsaPublicKey>, String> {
    let set: JwkSet = serde_json::from_slice(body)
        .map_err(|_| "the certs endpoint did not send a JWKS".to_owned())?;
    let keys: HashMap<_, _> = set
        .keys
        .into_iter()
        .filter(|jwk| jwk.kty == "RSA" && !jwk.kid.is_empty())
        .filter(|jwk| jwk.alg.as_deref().is_none_or(|alg| alg == "RS256"))
        .filter(|jwk| jwk.usage.as_deref().is_none_or(|usage| usage == "sig"))
        .filter_map(|jwk| {
            let n = URL_SAFE_NO_PAD.decode(&jwk.n).ok()?;
            let e = URL_SAFE_NO_PAD.decode(&jwk.e).ok()?;
            let key =
                RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e)).ok()?;
            (rsa::traits::PublicKeyParts::size(&key) * 8 >= MIN_MODULUS_BITS)
                .then_some((jwk.kid, key))
        })
        .collect();
    if keys.is_empty() {
        return Err("the JWKS has no usable RS256 key".to_owned());
    }
    Ok(keys)
}
