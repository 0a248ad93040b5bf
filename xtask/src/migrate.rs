//! `cargo xtask migrate`: applies `migrations/` (sqlx format) over the
//! MySQL protocol: to the local stack's MariaDB, to an environment's TiDB
//! Cloud database (TLS, certificates checked), or to any URL.
//!
//! MySQL-family DDL cannot be rolled back, so a migration that fails half
//! way has run its first statements. Every statement is therefore written
//! to be idempotent (`CREATE TABLE IF NOT EXISTS`, see migrations/README.md)
//! and a failed migration's record is removed: sqlx would otherwise mark it
//! "dirty" and refuse every later run, while running it again, once fixed,
//! is safe.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions, MySqlSslMode};

use crate::flags;
use crate::project;
use crate::ui::Ui;

#[derive(Debug, Serialize)]
pub struct Report {
    /// Where, without credentials.
    target: String,
    applied: usize,
    /// The newest version recorded in `_sqlx_migrations`.
    version: Option<i64>,
}

impl Report {
    /// The report for a person.
    pub fn summary(&self) -> String {
        format!(
            "applied {} migration(s); {} is at version {}",
            self.applied,
            self.target,
            self.version
                .map_or_else(|| "none".to_owned(), |v| v.to_string())
        )
    }
}

pub fn run(ui: &Ui, flags: &flags::Migrate) -> anyhow::Result<()> {
    let report = apply_to_target(ui, flags)?;
    if ui.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        eprintln!("  {}", report.summary());
    }
    Ok(())
}

/// Applies what `flags`' target lacks, as one step, and reports it without
/// printing: `deploy` puts the report in its own, so that its `--json`
/// output stays one document.
pub fn apply_to_target(ui: &Ui, flags: &flags::Migrate) -> anyhow::Result<Report> {
    let (url, tls, target) = target(flags)?;
    let source = source(flags);
    let (applied, version) = ui.step(&format!("apply {} to {target}", source.display()), || {
        apply_from(&url, &source, tls)
    })?;
    Ok(Report {
        target,
        applied,
        version,
    })
}

/// How many migrations `flags`' target lacks (or holds otherwise than the
/// source: applying stops on those), read without writing anything, and
/// where the target is: `deploy` takes its lock, and migrates under it,
/// only when there is something to do.
pub fn pending(ui: &Ui, flags: &flags::Migrate) -> anyhow::Result<(usize, Report)> {
    let (url, tls, target) = target(flags)?;
    let source = source(flags);
    let (pending, version) = ui.step(
        &format!("compare {} with {target}", source.display()),
        || pending_from(&url, &source, tls),
    )?;
    Ok((
        pending,
        Report {
            target,
            applied: 0,
            version,
        },
    ))
}

fn source(flags: &flags::Migrate) -> PathBuf {
    flags
        .source
        .clone()
        .unwrap_or_else(|| project::root().join("migrations"))
}

/// The database URL, whether to require TLS, and a printable name.
fn target(flags: &flags::Migrate) -> anyhow::Result<(String, bool, String)> {
    if let Some(env) = flags.env {
        let variable = format!("EDGE_API_{}_TIDB_DATABASE_URL", env.name().to_uppercase());
        let url = std::env::var(&variable)
            .with_context(|| format!("{variable} is not set (TiDB Cloud's mysql:// URL)"))?;
        let host = printable(&url);
        return Ok((url, true, format!("{} ({host})", env.name())));
    }
    if let Some(url) = &flags.url {
        return Ok((url.clone(), false, printable(url)));
    }
    let manifest_path = crate::dev::state_dir().join(stack_manifest::FILE_NAME);
    let manifest = stack_manifest::StackManifest::read(&manifest_path)
        .map_err(|e| anyhow::anyhow!("{e}; start the local stack with `cargo xtask dev` first"))?;
    Ok((
        manifest.mariadb.url.clone(),
        false,
        format!("the local stack ({})", printable(&manifest.mariadb.url)),
    ))
}

/// `host:port/database` of a URL, never its credentials.
fn printable(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('?').next().unwrap_or_default().to_owned()
}

/// Applies every pending migration of `migrations/`; returns how many were
/// applied. sqlx records each in `_sqlx_migrations` with its checksum, so a
/// second run applies nothing and an edited, already-applied migration is
/// an error.
pub fn apply(url: &str) -> anyhow::Result<usize> {
    apply_from(url, &project::root().join("migrations"), false).map(|(n, _)| n)
}

/// [`apply`] from `source`, with TLS required when `tls`; also returns the
/// newest applied version.
fn apply_from(url: &str, source: &Path, tls: bool) -> anyhow::Result<(usize, Option<i64>)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let source: PathBuf = source.to_path_buf();
    runtime.block_on(async {
        let migrator = Migrator::new(source.as_path())
            .await
            .with_context(|| format!("reading {}", source.display()))?;
        let pool = connect(url, tls).await?;
        let interrupted = clear_failed(&pool).await;
        if !interrupted.is_empty() {
            eprintln!(
                "  note: migration(s) {interrupted:?} did not finish in an earlier run; \
                 running them again (their statements are idempotent)"
            );
        }
        let applied_before = applied_count(&pool).await;
        let outcome = migrator.run(&pool).await;
        if let Err(error) = outcome {
            let cleared = clear_failed(&pool).await;
            pool.close().await;
            return Err(explain(error, &cleared));
        }
        let applied_after = applied_count(&pool).await;
        let version =
            sqlx::query_scalar::<_, i64>("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&pool)
                .await
                .ok();
        pool.close().await;
        Ok((applied_after.saturating_sub(applied_before), version))
    })
}

/// [`pending`] from `source`: how many, and the newest applied version.
fn pending_from(url: &str, source: &Path, tls: bool) -> anyhow::Result<(usize, Option<i64>)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let migrator = Migrator::new(source)
            .await
            .with_context(|| format!("reading {}", source.display()))?;
        let pool = connect(url, tls).await?;
        // No table yet: nothing is applied.
        let applied: BTreeMap<i64, Vec<u8>> = sqlx::query_as::<_, (i64, Vec<u8>)>(
            "SELECT version, checksum FROM _sqlx_migrations WHERE success",
        )
        .fetch_all(&pool)
        .await
        .map(|rows| rows.into_iter().collect())
        .unwrap_or_default();
        pool.close().await;
        let wanted = migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .map(|m| (m.version, m.checksum.as_ref()));
        Ok((lacking(wanted, &applied), applied.keys().max().copied()))
    })
}

/// Of `source`'s migrations (version, checksum), those not in `applied` or
/// applied with another checksum, plus the applied ones `source` does not
/// have: what a run would apply, or stop on.
fn lacking<'a>(
    source: impl IntoIterator<Item = (i64, &'a [u8])>,
    applied: &BTreeMap<i64, Vec<u8>>,
) -> usize {
    let mut known = BTreeSet::new();
    let mut count = 0;
    for (version, checksum) in source {
        known.insert(version);
        if applied.get(&version).map(Vec::as_slice) != Some(checksum) {
            count += 1;
        }
    }
    count + applied.keys().filter(|v| !known.contains(*v)).count()
}

async fn connect(url: &str, tls: bool) -> anyhow::Result<sqlx::MySqlPool> {
    let mut options = MySqlConnectOptions::from_str(url)
        .map_err(|_| anyhow::anyhow!("the database URL is not a mysql:// URL"))?;
    if tls {
        options = options.ssl_mode(MySqlSslMode::VerifyIdentity);
    }
    MySqlPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .context("connecting to the database")
}

async fn applied_count(pool: &sqlx::MySqlPool) -> usize {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .map(|n| n as usize)
        .unwrap_or(0)
}

/// Removes the records of migrations that failed (sqlx's "dirty" rows);
/// returns their versions.
async fn clear_failed(pool: &sqlx::MySqlPool) -> Vec<i64> {
    let failed: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE NOT success")
            .fetch_all(pool)
            .await
            .unwrap_or_default();
    if !failed.is_empty() {
        let _ = sqlx::query("DELETE FROM _sqlx_migrations WHERE NOT success")
            .execute(pool)
            .await;
    }
    failed
}

fn explain(error: MigrateError, cleared: &[i64]) -> anyhow::Error {
    match error {
        MigrateError::ExecuteMigration(cause, version) => anyhow::anyhow!(
            "migration {version} failed: {cause}. Nothing is recorded for it \
             ({cleared:?} cleared), so the next run starts it again; statements \
             before the failing one have run and must be idempotent."
        ),
        MigrateError::VersionMismatch(version) => anyhow::anyhow!(
            "migration {version} was changed after it was applied; add a new \
             migration instead of editing a shipped one"
        ),
        other => anyhow::anyhow!("applying migrations: {other}"),
    }
}

/// [`apply`], retrying while the server is still coming up (its port can
/// accept connections before the init file has created the user).
pub fn apply_with_retry(url: &str, within: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        match apply(url) {
            Ok(_) => return Ok(()),
            Err(e) if started.elapsed() < within && is_connection_error(&e) => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(e),
        }
    }
}

fn is_connection_error(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|c| c.to_string().starts_with("connecting to the database"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_counts_what_a_run_would_apply_or_stop_on() {
        let applied = |rows: &[(i64, &[u8])]| -> BTreeMap<i64, Vec<u8>> {
            rows.iter().map(|(v, c)| (*v, c.to_vec())).collect()
        };
        let source: [(i64, &[u8]); 2] = [(1, b"one"), (2, b"two")];
        assert_eq!(lacking(source, &applied(&source)), 0);
        assert_eq!(lacking(source, &applied(&[])), 2);
        assert_eq!(lacking(source, &applied(&[(1, b"one")])), 1);
        // Edited after it was applied, and applied but no longer shipped.
        assert_eq!(lacking(source, &applied(&[(1, b"0ne"), (2, b"two")])), 1);
        assert_eq!(
            lacking(source, &applied(&[(1, b"one"), (2, b"two"), (3, b"x")])),
            1
        );
    }

    #[test]
    fn printed_targets_carry_no_credentials() {
        assert_eq!(
            printable("mysql://u.root:s3cret@gateway01.tidbcloud.com:4000/app?ssl-mode=x"),
            "gateway01.tidbcloud.com:4000/app"
        );
        assert_eq!(
            printable("mysql://127.0.0.1:3306/app"),
            "127.0.0.1:3306/app"
        );
    }
}
