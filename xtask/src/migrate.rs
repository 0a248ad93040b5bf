//! Applies `migrations/` (sqlx format) over the MySQL protocol. Locally that
//! is MariaDB; for an environment it is TiDB Cloud with TLS (the deploy
//! work adds `cargo xtask migrate --env E` on top of [`apply`]).

use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::migrate::Migrator;
use sqlx::mysql::MySqlPoolOptions;

use crate::project;

/// Applies every pending migration; returns how many were applied. sqlx
/// records each in `_sqlx_migrations` with its checksum, so a second run
/// applies nothing and an edited, already-applied migration is an error.
pub fn apply(url: &str) -> anyhow::Result<usize> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let migrator = Migrator::new(project::root().join("migrations"))
            .await
            .context("reading migrations/")?;
        let pool = MySqlPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .context("connecting to the database")?;
        let applied_before = applied_count(&pool).await;
        migrator.run(&pool).await.context("applying migrations")?;
        let applied_after = applied_count(&pool).await;
        pool.close().await;
        Ok(applied_after.saturating_sub(applied_before))
    })
}

async fn applied_count(pool: &sqlx::MySqlPool) -> usize {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .map(|n| n as usize)
        .unwrap_or(0)
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
