//! Cache-aside for page reads, in Redis (see the `cache` crate for why a
//! write never leaves a stale entry: readers fill under the version they
//! saw before reading TiDB, writers move the version on after committing).
//!
//! The cache is an optimisation only: when Redis is down or slow, lookups
//! miss, fills and invalidations are skipped (and logged), and reads are
//! answered from TiDB. A full Redis still answers: current entries are
//! hit, nothing new is filled, and invalidations still land (the `cache`
//! crate drops the version where Redis will not count it up). If Redis is
//! unreachable exactly when a write
//! commits, an entry filled before the write can outlive it by at most its
//! TTL (`CACHE_TTL_SECS`); that is the one window left open.

use crate::layers::Timings;
use crate::redis::RequestRedis;
use crate::App;

use super::store::Page;

const NAMESPACE: &str = "page";
/// Entries live `CACHE_TTL_SECS` ± 10 %, so entries filled together do not
/// expire together.
const JITTER: f64 = 0.1;

pub struct PageCache<'a> {
    app: &'a App,
    redis: &'a RequestRedis,
    timings: &'a Timings,
}

impl<'a> PageCache<'a> {
    pub fn new(app: &'a App, redis: &'a RequestRedis, timings: &'a Timings) -> Self {
        PageCache {
            app,
            redis,
            timings,
        }
    }

    /// The entry's version and, on a hit, its bytes; `None` when Redis
    /// cannot be asked or the cache is off (then nothing is filled either).
    pub async fn lookup(&self, slug: &str) -> Option<cache::Lookup> {
        if self.app.config.cache_ttl_secs == 0 {
            self.timings.record_described("cache", Some("off"), 0.0);
            return None;
        }
        let started = (self.app.platform.now_millis)();
        let looked_up = match self.redis.connection().await {
            Ok(mut connection) => cache::lookup(&mut *connection, &key(slug)).await,
            Err(e) => Err(e),
        };
        let outcome = match &looked_up {
            Ok(cache::Lookup { value: Some(_), .. }) => "hit",
            Ok(_) => "miss",
            Err(_) => "unavailable",
        };
        self.timings.record_described(
            "cache",
            Some(outcome),
            (self.app.platform.now_millis)() - started,
        );
        looked_up
            .map_err(|e| (self.app.platform.log_error)(&format!("page cache lookup: {e}")))
            .ok()
    }

    /// Stores `page` under `version` (from [`PageCache::lookup`]).
    pub async fn fill(&self, slug: &str, version: u64, page: &Page) {
        let Ok(bytes) = serde_json::to_vec(&(page.id, page)) else {
            return;
        };
        let ttl = cache::Ttl {
            base: std::time::Duration::from_secs(self.app.config.cache_ttl_secs),
            jitter: JITTER,
        };
        let random = (self.app.platform.random_u64)();
        let filled = match self.redis.connection().await {
            Ok(mut connection) => {
                cache::fill(&mut *connection, &key(slug), version, &bytes, ttl, random).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = filled {
            (self.app.platform.log_error)(&format!("page cache fill: {e}"));
        }
    }

    /// Makes every cached copy of the page unreachable; call after commit.
    pub async fn invalidate(&self, slug: &str) {
        let started = (self.app.platform.now_millis)();
        let invalidated = match self.redis.connection().await {
            Ok(mut connection) => cache::invalidate(&mut *connection, &key(slug)).await,
            Err(e) => Err(e),
        };
        self.timings
            .record("cache", (self.app.platform.now_millis)() - started);
        if let Err(e) = invalidated {
            (self.app.platform.log_error)(&format!(
                "page cache invalidation of {slug:?} failed; a cached copy may live until its TTL: {e}"
            ));
        }
    }
}

fn key(slug: &str) -> cache::Key {
    cache::Key::new(NAMESPACE, slug)
}

/// A cached page; `None` (treated as a miss) if it does not decode.
pub fn decode(bytes: &[u8]) -> Option<Page> {
    let (id, mut page): (i64, Page) = serde_json::from_slice(bytes).ok()?;
    page.id = id;
    Some(page)
}
