//! Files on Backblaze B2, uploaded and downloaded by browsers directly
//! with presigned URLs; the Worker only signs, checks and records.
//!
//! 1. `POST /v1/uploads` (admin) checks the file's name, type (allowlist)
//!    and declared size (limit), records a `pending` row and answers with a
//!    short-lived presigned `PUT` that pins the type and the length.
//! 2. The browser `PUT`s the file to B2.
//! 3. `POST /v1/uploads/{id}/complete` (admin) `HEAD`s the object: the
//!    declared size and type make it `complete`; anything else deletes the
//!    object and answers 422. The checked object is copied (server-side,
//!    on its ETag) to the file's own key, which no upload URL can write:
//!    the URL is still valid after completion, and would otherwise let
//!    whoever holds it replace the file's bytes.
//! 4. `GET /v1/files/{id}` redirects to a presigned `GET` of the file that
//!    makes B2 answer with its name in `Content-Disposition`.
//!
//! [`sweep`] (the Worker's cron) removes uploads never completed, and the
//! uploaded object of completed ones once their URL has expired.

pub mod store;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::admin::Admin;
use crate::db::{database, db_problem, timed, Transactional, RETRY_AFTER_SECS};
use crate::extract::{Json, Path};
use crate::layers::Timings;
use crate::openapi::{documented_routes, DocumentedRoutes};
use crate::problem::{excerpt, Problem, ProblemType};
use crate::App;
use store::{File, NewUpload};

/// Longest file name, in characters.
pub const MAX_FILE_NAME_CHARS: usize = 255;
/// How long a download redirect's URL stays valid.
const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(300);
/// How long each B2 call may take.
const B2_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a server-side copy may take: a large file's copy takes longer
/// than a `HEAD`. The request's deadline (`REQUEST_DEADLINE_MS`, 10 s by
/// default) ends it sooner; a retry then keeps a copy B2 finished meanwhile.
const B2_COPY_TIMEOUT: Duration = Duration::from_secs(30);
/// Completions lock their upload's row and nothing else (no gap locks).
const LOCK_ISOLATION: tidb_http::IsolationLevel = tidb_http::IsolationLevel::ReadCommitted;
/// Expired uploads cleaned up per sweep: bounded so a cron run always
/// fits its time; the next run takes the rest.
const SWEEP_BATCH: u32 = 100;
/// How long after its completion a copied file's uploaded object is
/// deleted: long past the upload URL's life (at most 30 minutes), and past
/// any rollback or gradual deploy that puts a Worker from before copies
/// back in front of the files, which serves them from that object.
const SETTLE_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);
/// Types shown inline by browsers; everything else is downloaded.
const INLINE_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

pub fn routes() -> DocumentedRoutes {
    documented_routes![create_upload, complete_upload, download_file]
}

/// A file the client wants to upload.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    /// The name it is downloaded under: 1 to 255 characters, no control
    /// characters, no `/` or `\`.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^/\\\u0000-\u001f\u007f]+$"
    )]
    pub file_name: String,
    /// A media type from the configured allowlist (`UPLOAD_CONTENT_TYPES`),
    /// without parameters, e.g. `image/png` (case does not matter).
    #[schema(
        max_length = 255,
        pattern = r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+$"
    )]
    pub content_type: String,
    /// The file's exact size in bytes, at most `UPLOAD_MAX_BYTES`.
    #[schema(minimum = 1)]
    pub size_bytes: u64,
}

/// A granted upload: where to send the file, and how to finish.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadGrant {
    /// The upload's id (32 hex digits).
    pub id: String,
    /// Always `pending` until the upload is completed.
    pub status: &'static str,
    /// The request that sends the file to storage.
    pub upload: PresignedRequest,
    /// `POST` here once the file is sent.
    pub complete_url: String,
}

/// A request to storage, signed: it must be sent exactly as described.
#[derive(Debug, Serialize, ToSchema)]
pub struct PresignedRequest {
    /// `PUT`.
    pub method: &'static str,
    pub url: String,
    /// Headers to send with exactly these values (the body's length is
    /// signed too: browsers set `Content-Length` themselves).
    pub headers: BTreeMap<String, String>,
    /// Seconds the URL stays valid.
    pub expires_in_secs: u64,
}

/// Grants an upload: checks what the client declares, records it, and
/// answers with a presigned `PUT` that pins the type and size.
#[utoipa::path(post, path = "/v1/uploads", tag = "uploads",
    security(("cloudflare_access" = [])),
    request_body = UploadRequest,
    responses(
        (status = 201, description = "Upload granted", body = UploadGrant,
         headers(("location" = String, description = "The upload's completion URL"))),
        (status = 400, description = "Malformed JSON", body = crate::openapi::Problem,
         content_type = "application/problem+json"),
        crate::openapi::AdminProblems,
        crate::openapi::JsonBodyProblems,
        (status = 422, description = "Name, type or size not accepted", body = crate::openapi::Problem,
         content_type = "application/problem+json"),
        crate::openapi::V1Problems,
        (status = 504, description = "A dependency did not answer in time", body = crate::openapi::Problem,
         content_type = "application/problem+json"),
    ))]
async fn create_upload(
    State(app): State<Arc<App>>,
    Extension(timings): Extension<Timings>,
    Admin(identity): Admin,
    Json(request): Json<UploadRequest>,
) -> Result<Response, Problem> {
    let content_type = validate(&app, &request)?;
    let b2 = storage(&app)?;
    let db = database(&app)?;
    let id = new_id();
    let object_key = object_key(&id);
    let ttl = Duration::from_secs(app.config.uploads.url_ttl_secs);
    let presigned = b2
        .presign_put(
            &object_key,
            &content_type,
            Some(request.size_bytes),
            ttl,
            app.platform.now(),
        )
        .map_err(Problem::internal)?;
    // Recorded before the URL is handed out: there is never an object in
    // B2 without a row that the sweep can find.
    let author = identity.author();
    timed(
        &app,
        &timings,
        "db",
        store::insert(
            db,
            &NewUpload {
                id: &id,
                object_key: &object_key,
                file_name: request.file_name.trim(),
                content_type: &content_type,
                size_bytes: request.size_bytes,
                author: &author,
            },
        ),
    )
    .await
    .map_err(db_problem)?;
    let complete_url = format!("/v1/uploads/{id}/complete");
    let grant = UploadGrant {
        id,
        status: store::PENDING,
        upload: PresignedRequest {
            method: "PUT",
            url: presigned.url,
            headers: presigned.headers.into_iter().collect(),
            expires_in_secs: ttl.as_secs(),
        },
        complete_url: complete_url.clone(),
    };
    let location = HeaderValue::from_str(&complete_url).map_err(Problem::internal)?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(grant),
    )
        .into_response())
}

/// Finishes an upload: the object must be in storage with the declared
/// size and type. A mismatch deletes the object (422); completing twice
/// answers the same file. The object checked is copied to the file's key.
#[utoipa::path(post, path = "/v1/uploads/{id}/complete", tag = "uploads",
    security(("cloudflare_access" = [])),
    params(("id" = String, Path, description = "The upload's id", pattern = "^[0-9a-f]{32}$")),
    responses(
        (status = 200, description = "The stored file", body = File),
        crate::openapi::AdminProblems,
        (status = 404, description = "No such upload (or it expired)", body = crate::openapi::Problem,
         content_type = "application/problem+json"),
        (status = 409, description = "The file has not been sent yet, or was replaced while it was being completed",
         body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The stored file is not what was declared; it was deleted",
         body = crate::openapi::Problem, content_type = "application/problem+json"),
        crate::openapi::V1Problems,
        (status = 504, description = "A dependency did not answer in time", body = crate::openapi::Problem,
         content_type = "application/problem+json"),
    ))]
async fn complete_upload(
    State(app): State<Arc<App>>,
    Extension(timings): Extension<Timings>,
    Admin(_identity): Admin,
    Transactional(db): Transactional,
    Path(id): Path<String>,
) -> Result<axum::Json<File>, Problem> {
    let db = &db;
    let b2 = storage(&app)?;
    // Answered without a lock when already complete or unknown.
    let upload = find(&app, &timings, db, &id).await?;
    let upload = upload.ok_or_else(|| no_upload(&id))?;
    if let Some(file) = upload.file() {
        return Ok(axum::Json(file));
    }
    if upload.status != store::PENDING {
        return Err(no_upload(&id));
    }
    // The row stays locked from the check to the commit: a second
    // completion waits and then finds the file, so no copy is made after
    // the upload is complete; and the sweep cannot expire it meanwhile.
    let mut tx = timed(&app, &timings, "db", db.begin(Some(LOCK_ISOLATION)))
        .await
        .map_err(db_problem)?;
    let wait = crate::pages::lock_wait(&app, db);
    let locked = timed(&app, &timings, "db", store::lock(&mut tx, &id, wait))
        .await
        .map_err(db_problem)?;
    let upload = match locked {
        Some(upload) if upload.status == store::PENDING => upload,
        other => {
            // Completed or expired while this call waited for the lock.
            timed(&app, &timings, "db", tx.rollback())
                .await
                .map_err(db_problem)?;
            return file_of(other, &id);
        }
    };
    let file_key = file_key(&id);
    let checked = async {
        let checked = check_stored(&app, &timings, b2, &upload).await?;
        copy_checked(&app, &timings, b2, &upload.object_key, &file_key, &checked).await?;
        Ok::<_, Problem>(checked)
    }
    .await;
    let size = match checked {
        Ok(checked) => checked,
        Err(problem) => {
            // Storage's answer (or silence), not the database's: the row is
            // released before the client is told, so its retry finds it free.
            // Should the rollback fail, `tx`'s drop rolls back on the
            // request's background (`Transactional`); nothing was written.
            let _ = timed(&app, &timings, "db", tx.rollback()).await;
            return Err(problem);
        }
    };
    let completed = timed(
        &app,
        &timings,
        "db",
        store::complete(&mut tx, &id, size.bytes, Some(&file_key)),
    )
    .await
    .map_err(db_problem)?;
    if !completed {
        return Err(no_upload(&id));
    }
    timed(&app, &timings, "db", tx.commit())
        .await
        .map_err(db_problem)?;
    let upload = timed(&app, &timings, "db", store::get(db, &id))
        .await
        .map_err(db_problem)?;
    file_of(upload, &id)
}

/// The completed file `upload` is, or 404.
fn file_of(upload: Option<store::Upload>, id: &str) -> Result<axum::Json<File>, Problem> {
    upload
        .and_then(|u| u.file())
        .map(axum::Json)
        .ok_or_else(|| no_upload(id))
}

/// What `HEAD` found for an upload's object that matches its declaration.
struct Checked {
    bytes: u64,
    etag: String,
}

/// The upload's object, if it is what was declared; otherwise it is
/// deleted (422) or not there yet (409).
async fn check_stored(
    app: &App,
    timings: &Timings,
    b2: &b2::Client,
    upload: &store::Upload,
) -> Result<Checked, Problem> {
    let stored = timed(
        app,
        timings,
        "b2",
        b2.head_object(&upload.object_key, app.platform.now(), B2_TIMEOUT),
    )
    .await
    .map_err(b2_problem)?
    .ok_or_else(|| {
        Problem::new(
            ProblemType::Conflict,
            "The file has not been sent yet: PUT it to the upload URL, then complete.",
        )
    })?;
    let stored_type = stored
        .content_type
        .as_deref()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let declared_size = u64::try_from(upload.max_bytes).unwrap_or_default();
    if stored.size != declared_size || stored_type != upload.content_type {
        timed(
            app,
            timings,
            "b2",
            b2.delete_object(&upload.object_key, app.platform.now(), B2_TIMEOUT),
        )
        .await
        .map_err(b2_problem)?;
        // The row stays pending: the upload URL may still be used while
        // it is valid, and an object put there is then either the declared
        // file, completed by the next call, or removed with the row by the
        // sweep (never an object in B2 without a row).
        return Err(Problem::new(
            ProblemType::ValidationFailed,
            format!(
                "The stored file is {} bytes of type {stored_type:?}, but {declared_size} bytes \
                 of type {:?} were declared. It has been deleted; send the declared file to the \
                 upload URL while it is valid, or request a new upload.",
                stored.size, upload.content_type
            ),
        ));
    }
    let etag = stored.etag.ok_or_else(|| {
        b2_problem(b2::Error::Unexpected {
            status: 200,
            code: Some("MissingETag".into()),
        })
    })?;
    Ok(Checked {
        bytes: stored.size,
        etag,
    })
}

/// Makes `destination` hold the object at `source` that was checked. A
/// copy already there from an earlier try (one cut off by its deadline, as
/// a large copy can outlast the request) is kept, so retries converge.
async fn copy_checked(
    app: &App,
    timings: &Timings,
    b2: &b2::Client,
    source: &str,
    destination: &str,
    checked: &Checked,
) -> Result<(), Problem> {
    let existing = timed(
        app,
        timings,
        "b2",
        b2.head_object(destination, app.platform.now(), B2_TIMEOUT),
    )
    .await
    .map_err(b2_problem)?;
    if existing
        .and_then(|o| o.etag)
        .is_some_and(|e| b2::same_etag(&e, &checked.etag))
    {
        return Ok(());
    }
    let copy = timed(
        app,
        timings,
        "b2",
        b2.copy_object(
            source,
            destination,
            &checked.etag,
            app.platform.now(),
            B2_COPY_TIMEOUT,
        ),
    )
    .await
    .map_err(b2_problem)?;
    match copy {
        b2::Copy::Copied => Ok(()),
        b2::Copy::SourceChanged => Err(Problem::new(
            ProblemType::Conflict,
            "The file was replaced in storage while it was being completed; complete again.",
        )),
        b2::Copy::SourceMissing => Err(Problem::new(
            ProblemType::Conflict,
            "The file is no longer in storage: PUT it to the upload URL again, then complete.",
        )),
    }
}

/// Downloads a file: a redirect to a short-lived presigned URL on storage,
/// which answers with the file's name in `Content-Disposition`.
#[utoipa::path(get, path = "/v1/files/{id}", tag = "uploads",
    params(("id" = String, Path, description = "The file's id", pattern = "^[0-9a-f]{32}$")),
    responses(
        (status = 302, description = "Where to download the file",
         headers(("location" = String, description = "A presigned URL, valid for 5 minutes"))),
        (status = 404, description = "No such file (or its upload is not complete)",
         body = crate::openapi::Problem, content_type = "application/problem+json"),
        crate::openapi::V1Problems,
        (status = 504, description = "A dependency did not answer in time", body = crate::openapi::Problem,
         content_type = "application/problem+json"),
    ))]
async fn download_file(
    State(app): State<Arc<App>>,
    Extension(timings): Extension<Timings>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let db = database(&app)?;
    let b2 = storage(&app)?;
    let upload = find(&app, &timings, db, &id).await?;
    let file = upload
        .as_ref()
        .and_then(|u| u.file().map(|f| (u, f)))
        .ok_or_else(|| {
            Problem::new(
                ProblemType::NotFound,
                format!("There is no file {}.", named(&id)),
            )
        })?;
    let (upload, file) = file;
    let url = b2
        .presign_get(
            upload.served_key(),
            DOWNLOAD_URL_TTL,
            Some(&content_disposition(&file.file_name, &file.content_type)),
            app.platform.now(),
        )
        .map_err(Problem::internal)?;
    let location = HeaderValue::from_str(&url).map_err(Problem::internal)?;
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            // Shorter than the URL's life, so a cached redirect never
            // points at an expired signature.
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=60"),
            ),
        ],
    )
        .into_response())
}

/// What one sweep did.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Abandoned uploads whose objects and row are gone now.
    pub removed: u32,
    /// Completed uploads whose uploaded object is gone now, their URL
    /// having expired: only the file is left.
    pub settled: u32,
    /// Uploads left for the next run because storage or the database
    /// failed for them (each logged).
    pub failed: u32,
}

/// Removes uploads left `pending` for longer than `UPLOAD_ABANDON_AFTER_SECS`:
/// the row is marked `expired` first (so a late `complete` cannot win), then
/// the objects are deleted, then the row. Then settles copied files whose
/// upload was completed [`SETTLE_AFTER`] ago: their uploaded object is
/// deleted once the copy is seen in storage. Safe to run twice or
/// concurrently. Storage timing out or unreachable ends the run: the rest
/// waits for the next one, instead of each upload waiting out its timeout.
pub async fn sweep(app: &App) -> Result<SweepReport, String> {
    let db = app.tidb.as_ref().ok_or("TiDB is not configured")?;
    let b2 = app.b2.as_ref().ok_or("B2 is not configured")?;
    let mut report = SweepReport::default();
    let expired = store::expire_abandoned(db, app.config.uploads.abandon_after_secs, SWEEP_BATCH)
        .await
        .map_err(|e| format!("listing abandoned uploads: {e}"))?;
    for upload in expired {
        // The file's key too: a completion cut off after its copy leaves
        // the copy behind with the row still pending.
        let copy = file_key(&upload.id);
        let removed = match delete_objects(app, b2, &[&upload.object_key, &copy]).await {
            Ok(()) => store::forget_expired(db, &upload.id)
                .await
                .map_err(|e| Left::Database(e.to_string())),
            Err(e) => Err(e),
        };
        if tally(app, &mut report, &upload.id, removed, |r| &mut r.removed) {
            return Ok(report);
        }
    }
    let unsettled = store::unsettled(db, SETTLE_AFTER.as_secs(), SWEEP_BATCH)
        .await
        .map_err(|e| format!("listing completed uploads to settle: {e}"))?;
    for upload in unsettled {
        let settled = match settle(app, b2, &upload).await {
            Ok(()) => store::settle(db, &upload.id)
                .await
                .map_err(|e| Left::Database(e.to_string())),
            Err(e) => Err(e),
        };
        if tally(app, &mut report, &upload.id, settled, |r| &mut r.settled) {
            return Ok(report);
        }
    }
    Ok(report)
}

/// Why the sweep left an upload for the next run.
enum Left {
    /// Storage timed out or could not be reached: the run stops.
    Unreachable(b2::Error),
    Storage(b2::Error),
    Database(String),
    /// The file's copy is not in storage as recorded: its uploaded object,
    /// maybe the only copy left, is kept, and the row stays for someone to
    /// look at (logged every run).
    CopyMissing(String),
}

impl From<b2::Error> for Left {
    fn from(error: b2::Error) -> Self {
        match error {
            b2::Error::Timeout(_) | b2::Error::Network(_) => Left::Unreachable(error),
            other => Left::Storage(other),
        }
    }
}

impl std::fmt::Display for Left {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Left::Unreachable(e) | Left::Storage(e) => write!(f, "{e}"),
            Left::Database(e) => write!(f, "{e}"),
            Left::CopyMissing(e) => write!(f, "the file's copy {e}; its uploaded object is kept"),
        }
    }
}

async fn delete_objects(app: &App, b2: &b2::Client, keys: &[&str]) -> Result<(), Left> {
    for key in keys {
        b2.delete_object(key, app.platform.now(), B2_TIMEOUT)
            .await?;
    }
    Ok(())
}

/// Deletes a copied file's uploaded object, once the copy is seen in
/// storage with the file's size.
async fn settle(app: &App, b2: &b2::Client, upload: &store::Unsettled) -> Result<(), Left> {
    let copy = b2
        .head_object(&upload.file_key, app.platform.now(), B2_TIMEOUT)
        .await?;
    match copy {
        Some(copy) if i64::try_from(copy.size).ok() == Some(upload.size_bytes) => {
            delete_objects(app, b2, &[&upload.object_key]).await
        }
        Some(copy) => Err(Left::CopyMissing(format!(
            "{} is {} bytes, not {}",
            upload.file_key, copy.size, upload.size_bytes
        ))),
        None => Err(Left::CopyMissing(format!(
            "{} is not there",
            upload.file_key
        ))),
    }
}

/// Counts one upload's outcome in `report`; a failure is logged and left
/// for the next run. Whether the run should stop (storage unreachable).
fn tally(
    app: &App,
    report: &mut SweepReport,
    id: &str,
    outcome: Result<(), Left>,
    done: fn(&mut SweepReport) -> &mut u32,
) -> bool {
    match outcome {
        Ok(()) => {
            *done(report) += 1;
            false
        }
        Err(e) => {
            report.failed += 1;
            let stop = matches!(e, Left::Unreachable(_));
            let rest = if stop {
                "; storage is unreachable, the rest waits for the next run too"
            } else {
                ""
            };
            (app.platform.log_error)(&format!(
                "upload sweep: {id} left for the next run: {e}{rest}"
            ));
            stop
        }
    }
}

/// Checks a request against the configured limits; the content type as
/// stored (lowercase).
fn validate(app: &App, request: &UploadRequest) -> Result<String, Problem> {
    let limits = &app.config.uploads;
    let name = request.file_name.trim();
    if name.is_empty()
        || request.file_name.chars().count() > MAX_FILE_NAME_CHARS
        || name == "."
        || name == ".."
        || request
            .file_name
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\')
    {
        return Err(Problem::new(
            ProblemType::ValidationFailed,
            format!(
                "file_name must be 1 to {MAX_FILE_NAME_CHARS} characters, without control \
                 characters, `/` or `\\`."
            ),
        ));
    }
    // Media types are case-insensitive (RFC 9110); stored in lowercase.
    // Nothing else is forgiven: the schema's pattern and this check agree.
    let content_type = request.content_type.to_ascii_lowercase();
    if !limits.content_types.contains(&content_type) {
        return Err(Problem::new(
            ProblemType::ValidationFailed,
            format!(
                "content_type {:?} is not accepted; accepted types: {}.",
                excerpt(&request.content_type),
                limits.content_types.join(", ")
            ),
        ));
    }
    if request.size_bytes == 0 || request.size_bytes > limits.max_bytes {
        return Err(Problem::new(
            ProblemType::ValidationFailed,
            format!(
                "size_bytes must be from 1 to {} (the upload limit).",
                limits.max_bytes
            ),
        ));
    }
    Ok(content_type)
}

fn storage(app: &App) -> Result<&b2::Client, Problem> {
    app.b2.as_ref().ok_or_else(|| {
        Problem::new(
            ProblemType::Unavailable,
            "File storage is not configured (see /readyz).",
        )
    })
}

/// A storage failure as the client sees it: 504 when B2 was too slow, 503
/// with `Retry-After` otherwise (cause kept for the logs only).
fn b2_problem(error: b2::Error) -> Problem {
    let mut problem = match error {
        b2::Error::Timeout(_) => {
            Problem::new(ProblemType::Timeout, "File storage did not answer in time.")
        }
        _ => Problem::new(
            ProblemType::Unavailable,
            "File storage is unavailable; try again shortly.",
        )
        .with_header(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECS),
        ),
    };
    problem.internal = Some(error.to_string());
    problem
}

fn no_upload(id: &str) -> Problem {
    Problem::new(
        ProblemType::NotFound,
        format!("There is no pending or completed upload {}.", named(id)),
    )
}

/// 128 random bits as 32 lowercase hex digits: ids are public (download
/// links), so they must not be guessable.
fn new_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).expect("the platform has a random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The upload `id` names, if the id is well formed and known.
async fn find(
    app: &App,
    timings: &Timings,
    db: &tidb_http::Client,
    id: &str,
) -> Result<Option<store::Upload>, Problem> {
    if !valid_id(id) {
        return Ok(None);
    }
    timed(app, timings, "db", store::get(db, id))
        .await
        .map_err(db_problem)
}

/// An upload as a refusal names it: by its id when it is one; anything
/// else is the caller's text, of any length (found by the request fuzzing:
/// a 2 KiB problem repeating a long path), and is not repeated.
fn named(id: &str) -> String {
    if valid_id(id) {
        format!("{id:?}")
    } else {
        "with that id (an id is 32 lowercase hex digits)".to_owned()
    }
}

fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Objects are named by id only: the file name (user input) never becomes
/// part of a key. The upload URL writes here.
fn object_key(id: &str) -> String {
    format!("uploads/{id}")
}

/// Where a completed file is kept: no upload URL is ever signed for it.
fn file_key(id: &str) -> String {
    format!("files/{id}")
}

/// `inline` for images, `attachment` otherwise, with the name as an ASCII
/// fallback (`filename`) and exactly (`filename*`, RFC 8187).
fn content_disposition(file_name: &str, content_type: &str) -> String {
    let kind = if INLINE_TYPES.contains(&content_type) {
        "inline"
    } else {
        "attachment"
    };
    let fallback: String = file_name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' && c != '%' => c,
            _ => '_',
        })
        .collect();
    let mut encoded = String::new();
    for byte in file_name.bytes() {
        match byte {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'!'
            | b'#'
            | b'$'
            | b'&'
            | b'+'
            | b'-'
            | b'.'
            | b'^'
            | b'_'
            | b'`'
            | b'|'
            | b'~' => encoded.push(byte as char),
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_hex_and_checked() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert!(valid_id(&a), "{a}");
        for bad in [
            "",
            "ABCDEF0123456789abcdef0123456789",
            &"0".repeat(31),
            "../x",
        ] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn refusals_name_an_id_only_when_it_is_one() {
        let id = new_id();
        assert_eq!(named(&id), format!("{id:?}"));
        let long = "a".repeat(4000);
        assert!(!named(&long).contains("aaa"), "{}", named(&long));
    }

    #[test]
    fn dispositions_quote_nothing_they_should_not() {
        assert_eq!(
            content_disposition("report.pdf", "application/pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        assert_eq!(
            content_disposition("Grüße \"x\".png", "image/png"),
            "inline; filename=\"Gr__e _x_.png\"; filename*=UTF-8''Gr%C3%BC%C3%9Fe%20%22x%22.png"
        );
        let header = content_disposition("a\r\nSet-Cookie: x;%", "text/plain");
        assert!(HeaderValue::from_str(&header).is_ok(), "{header}");
        assert!(!header.contains('\r') && !header.contains('\n'));
    }

    #[test]
    fn keys_never_hold_the_file_name() {
        assert_eq!(object_key("00ff"), "uploads/00ff");
        assert_eq!(file_key("00ff"), "files/00ff");
    }
}
