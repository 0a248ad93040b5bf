//! Invalidations Redis missed, kept in TiDB (`page_cache_pending`) until
//! one lands, so they outlive the isolate whose write missed them.
//!
//! A write whose invalidation fails notes its page here (after the
//! response), with a random token. An invalidation that lands later, the
//! write's own retry or the cron's [`drain`], removes the note only if it
//! still holds the token read before the invalidation was sent: another
//! write that missed since then replaced the token, and its note stays
//! for an invalidation sent after it. (A token, not a counter: a counter
//! would start again at 1 once its row was removed, and a stale holder of
//! generation 1 could then remove the next failure's note.)
//!
//! Nothing is noted on the way of a write that Redis takes: this costs
//! only writes that missed their invalidation.
//!
//! Who sends the noted invalidations: the write's own tries (for 20 s);
//! every isolate that finds Redis answering again after it failed
//! ([`DrainDue`]: the next request it takes runs the [`drain`] after its
//! response); and the cron, every minute, for an isolate that saw no
//! outage or got no request since. So once Redis is back, an isolate that
//! was serving while it was gone sends them within seconds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use outbound::Background;
use serde::Deserialize;
use tidb_http::{Client, Statement};

use super::cached::invalidate_on;
use crate::redis::RequestRedis;
use crate::App;

/// Notes read per statement by the [`drain`].
const DRAIN_BATCH: u32 = 100;
/// How long one run of the [`drain`] goes on taking batches: well inside
/// the 30 s of wall time a cron run is given.
const DRAIN_BUDGET: Duration = Duration::from_secs(20);

/// A page whose invalidation Redis missed, with the token of the latest
/// write that noted it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Missed {
    pub slug: String,
    pub note: i64,
}

/// Notes that the invalidation of `slug`, whose write has committed,
/// failed, with a token of the caller's ([`token`]): [`forget`] removes
/// the note only with it.
pub async fn note(db: &Client, missed: &Missed) -> Result<(), tidb_http::Error> {
    db.execute(
        Statement::new(
            "INSERT INTO page_cache_pending (slug, note, noted_at) VALUES (?, ?, UTC_TIMESTAMP(3)) \
             ON DUPLICATE KEY UPDATE note = ?, noted_at = UTC_TIMESTAMP(3)",
        )
        .bind(missed.slug.as_str())
        .bind(missed.note)
        .bind(missed.note),
    )
    .await
    .map(|_| ())
}

/// The oldest `limit` pages noted.
pub async fn oldest(db: &Client, limit: u32) -> Result<Vec<Missed>, tidb_http::Error> {
    db.query_as(
        Statement::new("SELECT slug, note FROM page_cache_pending ORDER BY noted_at, slug LIMIT ?")
            .bind(limit),
    )
    .await
}

/// Removes `missed`'s note, once an invalidation sent after `missed` was
/// read has landed, unless a write noted the page again since.
pub async fn forget(db: &Client, missed: &Missed) -> Result<(), tidb_http::Error> {
    db.execute(
        Statement::new("DELETE FROM page_cache_pending WHERE slug = ? AND note = ?")
            .bind(missed.slug.as_str())
            .bind(missed.note),
    )
    .await
    .map(|_| ())
}

/// A random token for [`note`]: 63 bits, so it fits a signed `BIGINT`.
pub fn token(app: &App) -> i64 {
    ((app.platform.random_u64)() >> 1) as i64
}

/// What a run of the [`drain`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Invalidations that landed, their notes removed.
    pub landed: usize,
    /// Whether notes were left for the next run (Redis failed, or the
    /// run's time was up).
    pub left: bool,
}

impl std::fmt::Display for Drained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} missed invalidations landed", self.landed)?;
        if self.left {
            f.write_str(", some left for the next run")?;
        }
        Ok(())
    }
}

/// Sends the invalidation of every page noted, oldest first, and removes
/// the notes of those that landed. Run by the cron every minute and by an
/// isolate that finds Redis back ([`DrainDue`]), so a copy that outlived
/// an outage is gone within seconds to a minute of Redis' return, in
/// every isolate. Stops at the first failure to reach Redis (the rest
/// waits for the next run).
pub async fn drain(app: &Arc<App>) -> Result<Drained, String> {
    let (Some(db), Some(_)) = (app.tidb.as_ref(), app.config.redis.as_ref()) else {
        // Nothing can be noted without TiDB, nor cached without Redis (see
        // `PageCache::invalidate`).
        return Ok(Drained::default());
    };
    let started = (app.platform.now_millis)();
    let redis = RequestRedis::new(app, app.platform.timer.clone());
    let mut drained = Drained::default();
    loop {
        let batch = oldest(db, DRAIN_BATCH)
            .await
            .map_err(|e| format!("listing missed invalidations: {e}"))?;
        let full = batch.len() == DRAIN_BATCH as usize;
        for missed in &batch {
            let sent = (app.platform.now_millis)();
            if let Err(e) = invalidate_on(&redis, &missed.slug).await {
                (app.platform.log_error)(&format!(
                    "missed invalidation of {:?} failed again; left for the next run: {e}",
                    missed.slug
                ));
                drained.left = true;
                return Ok(drained);
            }
            app.pending_invalidations.landed(&missed.slug, sent);
            forget(db, missed)
                .await
                .map_err(|e| format!("forgetting a landed invalidation: {e}"))?;
            drained.landed += 1;
        }
        if !full {
            return Ok(drained);
        }
        if (app.platform.now_millis)() - started > DRAIN_BUDGET.as_secs_f64() * 1000.0 {
            drained.left = true;
            return Ok(drained);
        }
    }
}

/// Whether this isolate found Redis answering again after it had failed,
/// and has not yet run a [`drain`] since: the notes taken while Redis was
/// gone can be sent now.
#[derive(Debug, Default)]
pub struct DrainDue(AtomicBool);

impl DrainDue {
    /// Redis answered again after failing.
    pub(crate) fn redis_is_back(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether a [`drain`] is due: one load, for every request.
    pub(crate) fn is_due(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Runs the [`drain`] on `background` (after the response) if it is due
/// and nobody took it on yet; without a background (a bare test harness),
/// it stays due.
pub(crate) fn drain_after_response(app: &Arc<App>, background: Option<&Background>) {
    let Some(background) = background else {
        return;
    };
    if !app.missed_drain.0.swap(false, Ordering::Relaxed) {
        return;
    }
    let app = app.clone();
    background.spawn(Box::pin(async move {
        match drain(&app).await {
            Ok(Drained { landed: 0, .. }) => {}
            Ok(drained) => (app.platform.log_error)(&format!("Redis is back: {drained}")),
            Err(e) => (app.platform.log_error)(&format!(
                "Redis is back, but sending the missed invalidations failed \
                 (the cron tries again): {e}"
            )),
        }
    }));
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::Platform;

    #[test]
    fn a_drain_is_due_once_redis_is_back_and_taken_by_one_request_with_a_background() {
        let app = App::new(|_| None, Platform::native());
        let spawned = Arc::new(AtomicUsize::new(0));
        let counted = spawned.clone();
        let background = Background::new(move |_| {
            counted.fetch_add(1, Ordering::Relaxed);
        });

        assert!(!app.missed_drain.is_due());
        drain_after_response(&app, Some(&background));
        assert_eq!(spawned.load(Ordering::Relaxed), 0, "not due");

        app.missed_drain.redis_is_back();
        drain_after_response(&app, None);
        assert!(app.missed_drain.is_due(), "still due without a background");
        drain_after_response(&app, Some(&background));
        drain_after_response(&app, Some(&background));
        assert_eq!(spawned.load(Ordering::Relaxed), 1, "taken by one request");
        assert!(!app.missed_drain.is_due());
    }
}
