//! Upload rows in TiDB. A row is written when an upload is granted
//! (`pending`), moved to `complete` once the object in B2 has been checked,
//! and to `expired` by the sweep before it deletes the object and then the
//! row. Every state change is a single conditional `UPDATE ... WHERE status
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

/// An upload as stored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Upload {
    pub id: String,
    pub object_key: String,
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
        if self.status != COMPLETE {
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
}

/// What a new upload row holds.
pub struct NewUpload<'a> {
    pub id: &'a str,
    pub object_key: &'a str,
    pub file_name: &'a str,
    pub content_type: &'a str,
    pub size_bytes: u64,
    pub author: &'a str,
}

const COLUMNS: &str = "id, object_key, file_name, content_type, max_bytes, size_bytes, \
                       status, author, created_at, completed_at";

pub async fn insert(db: &Client, upload: &NewUpload<'_>) -> Result<(), tidb_http::Error> {
    db.execute(
        Statement::new(
            "INSERT INTO uploads (id, object_key, file_name, content_type, max_bytes, \
             status, author, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(3))",
        )
        .bind(upload.id)
        .bind(upload.object_key)
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

/// Deletes an expired upload's row, once its object is gone.
pub async fn forget_expired(db: &Client, id: &str) -> Result<(), tidb_http::Error> {
    db.execute(
        Statement::new("DELETE FROM uploads WHERE id = ? AND status = ?")
            .bind(id)
            .bind(EXPIRED),
    )
    .await
    .map(|_| ())
}
