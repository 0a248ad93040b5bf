//! Upload rows in TiDB. A row is written when an upload is granted
//! (`pending`), moved to `complete` once the object in B2 has been checked
//! and copied to the file's own key, to `settled` by the sweep once the
//! upload URL has expired and the uploaded object is deleted (only the file
//! is left), and to `expired` by the sweep when it was never completed,
//! before it deletes the objects and then the row. Every state change is a single conditional `UPDATE ... WHERE status
//! = ...`, so a late `complete` racing the sweep can never revive an upload
//! whose object is being deleted, and running the sweep twice is harmless.
//!
//! Not for: talking to B2 or HTTP concerns; see `uploads/mod.rs`.

use serde::{Deserialize, Serialize};
use tidb_http::{Client, Statement};
use utoipa::ToSchema;

use crate::db::rfc3339;

pub const PENDING: &str = "pending";
pub const COMPLETE: &str = "complete";
pub const EXPIRED: &str = "expired";
/// Complete, and the object its upload URL wrote is gone: only the file is
/// left in B2.
pub const SETTLED: &str = "settled";

/// An upload as stored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Upload {
    pub id: String,
    /// Where the upload URL writes.
    pub object_key: String,
    /// Where the file is served from once complete: a copy of the checked
    /// object that no upload URL can write. `None` for uploads granted
    /// before files were copied, which are served from `object_key`.
    pub file_key: Option<String>,
    pub file_name: String,
    pub content_type: String,
    /// The size the client declared, which the presigned URL pins.
    pub max_bytes: i64,
    /// The stored object's size, once complete.
    pub size_bytes: Option<i64>,
    pub status: String,
    pub author: String,
    pub created_at: String,
    pub completed_at: Option<String>,
}

/// A completed upload as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct File {
    pub id: String,
    pub file_name: String,
    pub content_type: String,
    pub size_bytes: i64,
    /// Who uploaded it (an Access identity).
    pub author: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC.
    pub completed_at: String,
    /// Where to download it (answers with a redirect to B2).
    pub download_url: String,
}

impl Upload {
    /// The client's view, if the upload is complete.
    pub fn file(&self) -> Option<File> {
        if self.status != COMPLETE && self.status != SETTLED {
            return None;
        }
        Some(File {
            id: self.id.clone(),
            file_name: self.file_name.clone(),
            content_type: self.content_type.clone(),
            size_bytes: self.size_bytes?,
            author: self.author.clone(),
            created_at: rfc3339(&self.created_at),
            completed_at: rfc3339(self.completed_at.as_deref()?),
            download_url: format!("/v1/files/{}", self.id),
        })
    }

    /// The key the file is (or will be) stored under.
    pub fn file_key(&self) -> &str {
        self.file_key.as_deref().unwrap_or(&self.object_key)
    }

    /// Whether the upload URL writes somewhere other than the file, so that
    /// its object is a leftover once the file is copied.
    pub fn is_copied(&self) -> bool {
        self.file_key() != self.object_key
    }
}

/// What a new upload row holds.
pub struct NewUpload<'a> {
    pub id: &'a str,
    pub object_key: &'a str,
    pub file_key: &'a str,
    pub file_name: &'a str,
    pub content_type: &'a str,
    pub size_bytes: u64,
    pub author: &'a str,
}

const COLUMNS: &str = "id, object_key, file_key, file_name, content_type, max_bytes, size_bytes, \
                       status, author, created_at, completed_at";

pub async fn insert(db: &Client, upload: &NewUpload<'_>) -> Result<(), tidb_http::Error> {
    db.execute(
        Statement::new(
            "INSERT INTO uploads (id, object_key, file_key, file_name, content_type, \
             max_bytes, status, author, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(3))",
        )
        .bind(upload.id)
        .bind(upload.object_key)
        .bind(upload.file_key)
        .bind(upload.file_name)
        .bind(upload.content_type)
        .bind(upload.size_bytes)
        .bind(PENDING)
        .bind(upload.author),
    )
    .await
    .map(|_| ())
}

pub async fn get(db: &Client, id: &str) -> Result<Option<Upload>, tidb_http::Error> {
    db.query_optional_as(
        Statement::new(format!("SELECT {COLUMNS} FROM uploads WHERE id = ?")).bind(id),
    )
    .await
}

/// Marks a pending upload complete with the object's size. `false` when it
/// was no longer pending (completed meanwhile, or expired by the sweep).
pub async fn complete(db: &Client, id: &str, size: u64) -> Result<bool, tidb_http::Error> {
    let result = db
        .execute(
            Statement::new(
                "UPDATE uploads SET status = ?, size_bytes = ?, completed_at = UTC_TIMESTAMP(3) \
                 WHERE id = ? AND status = ?",
            )
            .bind(COMPLETE)
            .bind(size)
            .bind(id)
            .bind(PENDING),
        )
        .await?;
    Ok(result.rows_affected() == Some(1))
}

/// Moves uploads pending for more than `older_than_secs` to `expired`, and
/// returns every expired upload (these and any an earlier sweep did not
/// finish), at most `limit`.
pub async fn expire_abandoned(
    db: &Client,
    older_than_secs: u64,
    limit: u32,
) -> Result<Vec<Upload>, tidb_http::Error> {
    db.execute(
        Statement::new(
            "UPDATE uploads SET status = ? WHERE status = ? \
             AND created_at < UTC_TIMESTAMP(3) - INTERVAL ? SECOND",
        )
        .bind(EXPIRED)
        .bind(PENDING)
        .bind(older_than_secs),
    )
    .await?;
    db.query_as(
        Statement::new(format!(
            "SELECT {COLUMNS} FROM uploads WHERE status = ? ORDER BY created_at LIMIT ?"
        ))
        .bind(EXPIRED)
        .bind(limit),
    )
    .await
}

/// Completed uploads granted more than `older_than_secs` ago, whose upload
/// URL has expired by then but whose uploaded object may still be there,
/// oldest first, at most `limit`.
pub async fn unsettled(
    db: &Client,
    older_than_secs: u64,
    limit: u32,
) -> Result<Vec<Upload>, tidb_http::Error> {
    db.query_as(
        Statement::new(format!(
            "SELECT {COLUMNS} FROM uploads WHERE status = ? \
             AND created_at < UTC_TIMESTAMP(3) - INTERVAL ? SECOND ORDER BY created_at LIMIT ?"
        ))
        .bind(COMPLETE)
        .bind(older_than_secs)
        .bind(limit),
    )
    .await
}

/// Marks a complete upload settled, once its uploaded object is gone.
pub async fn settle(db: &Client, id: &str) -> Result<(), tidb_http::Error> {
    db.execute(
        Statement::new("UPDATE uploads SET status = ? WHERE id = ? AND status = ?")
            .bind(SETTLED)
            .bind(id)
            .bind(COMPLETE),
    )
    .await
    .map(|_| ())
}

/// Deletes an expired upload's row, once its objects are gone.
pub async fn forget_expired(db: &Client, id: &str) -> Result<(), tidb_http::Error> {
    db.execute(
        Statement::new("DELETE FROM uploads WHERE id = ? AND status = ?")
            .bind(id)
            .bind(EXPIRED),
    )
    .await
    .map(|_| ())
}
