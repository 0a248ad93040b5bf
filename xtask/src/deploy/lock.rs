//! The deploy lock: one deploy (or destroy, or rollback) of an environment
//! at a time, wherever it runs (a laptop, CI).
//!
//! It lives in Cloudflare itself, as a TXT record `_deploy-lock.<worker>`
//! in the zone, created when a deploy starts applying and deleted when it
//! ends. Its content is the same for every holder, so Cloudflare refuses a
//! second identical record (code 81058): of two deploys that race, exactly
//! one creates it. The record's comment (never published in DNS) names the
//! holder and when the lock expires. A lock past its expiry is broken by
//! the next deploy; a live one only with `--break-lock`, for a holder that
//! is known to be gone (a killed CI job).
//!
//! Only a deploy with something to apply (a pending migration counts)
//! takes the lock, and applies all of it under the lock: a deploy that
//! finds nothing to change makes no write call at all.
//!
//! A deploy holds its lock between steps ([`Lock::hold`]): once a third of
//! the expiry has passed it pushes the expiry forward, so a long deploy
//! (a slow site upload, a migration) is never taken for a dead one; and if
//! that renewal finds its record gone (someone broke the lock), it stops
//! before the next step instead of racing the deploy that now holds it.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cloudflare::dns::{DnsRecord, DnsRecordInput, ListDnsRecords, TTL_AUTO};
use cloudflare::Client;

/// What every holder writes: identical records are refused, which makes
/// creating the record an atomic test-and-set.
const CONTENT: &str = "\"edge-api deploy lock\"";

/// How long a lock holds without its holder renewing it.
pub const EXPIRY: Duration = Duration::from_secs(30 * 60);

/// How often a running deploy renews its lock: a third of [`EXPIRY`], or
/// `EDGE_API_DEPLOY_LOCK_RENEW_SECS` (the tests renew before every step).
fn renew_every() -> Duration {
    std::env::var("EDGE_API_DEPLOY_LOCK_RENEW_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(EXPIRY / 3, Duration::from_secs)
}

pub fn record_name(script: &str, zone: &str) -> String {
    format!("_deploy-lock.{script}.{zone}")
}

#[derive(Debug)]
pub struct Lock {
    record_id: String,
    zone_id: String,
    name: String,
    holder: String,
    /// When it was taken (Unix seconds): renewals keep it in the comment.
    since: u64,
    renewed: Instant,
}

/// The lock record's comment: who holds it and until when (never
/// published in DNS).
fn comment(holder: &str, since: u64) -> String {
    format!(
        "held by {holder} since {since} until {}",
        now() + EXPIRY.as_secs()
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn expiry_of(record: &DnsRecord) -> Option<u64> {
    record
        .comment
        .as_deref()?
        .rsplit_once("until ")?
        .1
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Takes the lock for `holder` (who and where, for the person who finds it
/// held), breaking an expired one, or a live one when `break_lock`.
pub async fn acquire(
    client: &Client,
    zone_id: &str,
    name: &str,
    holder: &str,
    break_lock: bool,
) -> anyhow::Result<Lock> {
    let api = client.dns(zone_id);
    let existing = api
        .list(&ListDnsRecords {
            name: Some(name.to_owned()),
            record_type: Some("TXT".into()),
            ..Default::default()
        })
        .await?;
    for record in existing {
        let expired = expiry_of(&record).is_none_or(|until| until <= now());
        if !expired && !break_lock {
            anyhow::bail!(
                "another deploy holds the lock ({}); wait for it, or pass --break-lock if it is known to be gone",
                record.comment.as_deref().unwrap_or("no holder recorded")
            );
        }
        api.delete(&record.id).await?;
    }
    let since = now();
    let input = DnsRecordInput::new("TXT", name, CONTENT)
        .ttl(TTL_AUTO)
        .comment(comment(holder, since));
    match api.create(&input).await {
        Ok(record) => Ok(Lock {
            record_id: record.id,
            zone_id: zone_id.to_owned(),
            name: name.to_owned(),
            holder: holder.to_owned(),
            since,
            renewed: Instant::now(),
        }),
        Err(e) if e.is_already_exists() => anyhow::bail!(
            "another deploy took the lock at the same moment; wait for it and run again"
        ),
        Err(e) => Err(e.into()),
    }
}

impl Lock {
    /// Called before each step of a deploy: renews the expiry when due, and
    /// fails if that renewal finds the lock no longer this deploy's.
    pub async fn hold(&mut self, client: &Client) -> anyhow::Result<()> {
        if self.renewed.elapsed() < renew_every() {
            return Ok(());
        }
        self.renew(client).await
    }

    /// Renews the expiry now, before a wait that [`Lock::hold`] cannot
    /// interrupt (health checks) and after it, before acting on its
    /// outcome; fails if the lock is no longer this deploy's.
    pub async fn renew(&mut self, client: &Client) -> anyhow::Result<()> {
        let input = DnsRecordInput::new("TXT", &self.name, CONTENT)
            .ttl(TTL_AUTO)
            .comment(comment(&self.holder, self.since));
        match client.dns(&self.zone_id).patch(&self.record_id, &input).await {
            Ok(_) => {
                self.renewed = Instant::now();
                Ok(())
            }
            Err(e) if e.is_not_found() => anyhow::bail!(
                "the deploy lock was taken from this deploy (broken with --break-lock, or removed by hand); stopped before the next step: run the deploy again once the other one has finished"
            ),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes the lock; one already gone (broken by another deploy) is
    /// not an error here, [`Lock::hold`] has said so.
    pub async fn release(self, client: &Client) -> anyhow::Result<()> {
        match client.dns(&self.zone_id).delete(&self.record_id).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => Ok(other?),
        }
    }
}

/// Who is deploying, for the lock's comment.
pub fn holder() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "someone".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "somewhere".into());
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    format!(
        "{user}@{host} pid {}{}",
        std::process::id(),
        if ci { " (CI)" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lock record with `comment`.
    fn lock_record(comment: Option<String>) -> DnsRecord {
        DnsRecord {
            id: "1".into(),
            record_type: "TXT".into(),
            name: "_deploy-lock.w.example.com".into(),
            content: CONTENT.into(),
            proxied: false,
            ttl: 1,
            comment,
            tags: vec![],
            priority: None,
        }
    }

    #[test]
    fn the_longest_health_check_leaves_time_to_roll_back_under_the_lock() {
        let longest = Duration::from_secs(crate::flags::DEPLOY_HEALTH_TIMEOUT_MAX);
        assert!(longest + Duration::from_secs(10 * 60) <= EXPIRY);
    }

    #[test]
    fn the_expiry_is_read_back_from_the_comment() {
        let record = lock_record(Some("held by a@b pid 1 since 100 until 1900".into()));
        assert_eq!(expiry_of(&record), Some(1900));
        assert_eq!(expiry_of(&lock_record(None)), None);
    }

    #[test]
    fn a_renewed_comment_keeps_its_holder_and_start_and_moves_the_expiry() {
        let renewed = comment("ci@runner pid 7 (CI)", 100);
        assert!(
            renewed.starts_with("held by ci@runner pid 7 (CI) since 100 until "),
            "{renewed}"
        );
        let until = expiry_of(&lock_record(Some(renewed))).unwrap();
        assert!(until >= now() + EXPIRY.as_secs() - 5 && until <= now() + EXPIRY.as_secs());
    }
}
