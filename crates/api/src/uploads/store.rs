//! Upload rows in TiDB. A row is written when an upload is granted
//! (`pending`), moved to `complete` once the object in B2 has been checked
//! and copied to the file's own key (recorded in `upload_files` in the same
//! transaction), and to `expired` by the sweep when it was never completed,
//! before it deletes the objects and then the row. Once a completed
//! upload's URL has expired, the sweep deletes the object the URL wrote and
//! marks its `upload_files` row settled: only the file is left.
//!
//! Every state change of `uploads` is a single conditional `UPDATE ...
//! WHERE status = ...`, and a completion holds the row's lock from its check
//! to its commit, so a late `complete` racing the sweep can never revive an
//! upload whose objects are being deleted, two completions never both copy,
//! and running the sweep twice is harmless.
//!
//! Not for: talking to B2 or HTTP concerns; see `uploads/mod.rs`.

use serde::{Deserialize, Serialize};
use tidb_http::{Client, Statement, Tx};
use utoipa::ToSchema;

use crate::db::rfc3339;
use crate::pages::store::LockWait;

pub const PENDING: &str = "pending";
pub const COMPLETE: &str = "complete";
pub const EXPIRED: &str = "expired";

/// An upload as stored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Upload {
    pub id: String,
    /// Where the upload URL writes.
    pub object_key: String,
    /// Where the file is served from, once it has been copied there (a key
    /// no upload URL can write). `None` for a file completed without a copy
    /// (by a Worker from before copies), served from `object_key`.
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

    /// The key the complete file is served from.
    pub fn served_key(&self) -> &str {
        self.file_key.as_deref().unwrap_or(&self.object_key)
    }
}

/// A copied file whose uploaded object may still be in B2.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Unsettled {
    pub id: String,
    pub object_key: String,
    pub file_key: String,
    pub size_bytes: i64,
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

/// An upload's columns, and its file's key when it was copied: from
/// `uploads u LEFT JOIN upload_files f`.
const COLUMNS: &str = "u.id, u.object_key, f.file_key, u.file_name, u.content_type, \
                       u.max_bytes, u.size_bytes, u.status, u.author, u.created_at, u.completed_at";
const FROM: &str = "uploads u LEFT JOIN upload_files f ON f.upload_id = u.id";

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
        Statement::new(format!("SELECT {COLUMNS} FROM {FROM} WHERE u.id = ?")).bind(id),
    )
    .await
}

/// The upload `id`, locked until `tx` ends: completions of one upload run
/// one after the other, and the sweep cannot expire it meanwhile.
pub async fn lock(
    tx: &mut Tx,
    id: &str,
    wait: LockWait,
) -> Result<Option<Upload>, tidb_http::Error> {
    tx.query_optional_as(
        Statement::new(format!(
            "SELECT {COLUMNS} FROM {FROM} WHERE u.id = ? {}",
            wait.for_update()
        ))
        .bind(id),
    )
    .await
}

/// Marks the pending upload `id` complete with the object's size, and
/// records its file's key when it was copied, in `tx`. `false` when it was
/// no longer pending (completed meanwhile, or expired by the sweep).
pub async fn complete(
    tx: &mut Tx,
    id: &str,
    size: u64,
    file_key: Option<&str>,
) -> Result<bool, tidb_http::Error> {
    let result = tx
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
    if result.rows_affected() != Some(1) {
        return Ok(false);
    }
    if let Some(file_key) = file_key {
        tx.execute(
            Statement::new(
                "INSERT INTO upload_files (upload_id, file_key, copied_at) \
                 VALUES (?, ?, UTC_TIMESTAMP(3))",
            )
            .bind(id)
            .bind(file_key),
        )
        .await?;
    }
    Ok(true)
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
            "SELECT {COLUMNS} FROM {FROM} WHERE u.status = ? ORDER BY u.created_at LIMIT ?"
        ))
        .bind(EXPIRED)
        .bind(limit),
    )
    .await
}

/// Copied files whose upload was completed more than `older_than_secs`
/// ago and whose uploaded object may still be in B2, oldest first, at most
/// `limit`.
pub async fn unsettled(
    db: &Client,
    older_than_secs: u64,
    limit: u32,
) -> Result<Vec<Unsettled>, tidb_http::Error> {
    db.query_as(
        Statement::new(
            "SELECT u.id, u.object_key, f.file_key, u.size_bytes \
             FROM upload_files f JOIN uploads u ON u.id = f.upload_id \
             WHERE f.settled_at IS NULL AND f.copied_at < UTC_TIMESTAMP(3) - INTERVAL ? SECOND \
             ORDER BY f.copied_at LIMIT ?",
        )
        .bind(older_than_secs)
        .bind(limit),
    )
    .await
}

/// Marks a copied file settled, once its uploaded object is gone.
pub async fn settle(db: &Client, id: &str) -> Result<(), tidb_http::Error> {
    db.execute(
        Statement::new(
            "UPDATE upload_files SET settled_at = UTC_TIMESTAMP(3) \
             WHERE upload_id = ? AND settled_at IS NULL",
        )
        .bind(id),
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
