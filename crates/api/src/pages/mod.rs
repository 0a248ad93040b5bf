//! The pages API: a wiki's pages with revisions. Reads are public; writes
//! need an Access identity ([`Admin`]), which becomes the revision's
//! author. Reads carry an `ETag` and answer `If-None-Match` with 304;
//! writes take `If-Match` (412 on a lost update) or `If-None-Match: *`
//! (create only). Storage is [`store`]; this module is the HTTP side.

pub(crate) mod cached;
pub mod missed;
mod precondition;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use outbound::Background;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::admin::Admin;
use crate::db::{database, db_problem, timed, Transactional};
use crate::extract::{Json, Path, Query};
use crate::layers::Timings;
use crate::openapi::{documented_routes, DocumentedRoutes};
use crate::problem::{Problem, ProblemType};
use crate::redis::RequestRedis;
use crate::App;
use precondition::{not_modified, Precondition};
use store::{Deleted, Draft, LockWait, Page, PageSummary, RevisionSummary, Written};

/// Longest page body (Markdown), in characters: at most 512 KiB of UTF-8.
pub const MAX_BODY_CHARS: usize = 128 * 1024;
/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Default and largest `limit` of the listings.
const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;

pub fn routes() -> DocumentedRoutes {
    documented_routes![list_pages, get_page, put_page, delete_page, list_revisions]
}

/// A page slug from the path: lowercase letters, digits and inner
/// hyphens, 1 to 128 characters. Anything else is a 400 problem.
pub struct Slug(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Slug {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let Path(params): Path<Vec<(String, String)>> =
            Path::from_request_parts(parts, state).await?;
        let slug = params
            .into_iter()
            .find(|(name, _)| name == "slug")
            .map(|(_, value)| value)
            .unwrap_or_default();
        if valid_slug(&slug) {
            Ok(Slug(slug))
        } else {
            Err(Problem::new(
                ProblemType::BadRequest,
                "A slug is 1 to 128 lowercase letters, digits and inner hyphens (e.g. `getting-started`).",
            ))
        }
    }
}

fn valid_slug(slug: &str) -> bool {
    (1..=128).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-')
}

/// The slug path parameter, for the document.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // describes the path; `Slug` extracts it
struct SlugParam {
    /// The page's slug: 1 to 128 lowercase letters, digits and inner hyphens.
    #[param(pattern = "^[a-z0-9]([a-z0-9-]{0,126}[a-z0-9])?$")]
    slug: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Opaque cursor from the previous answer's `next_cursor`.
    #[param(pattern = "^[A-Za-z0-9_-]{1,400}$")]
    cursor: Option<String>,
    /// How many items, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

impl ListParams {
    fn limit(&self) -> Result<u32, Problem> {
        match self.limit.unwrap_or(DEFAULT_LIMIT) {
            n @ 1..=MAX_LIMIT => Ok(n),
            _ => Err(Problem::new(
                ProblemType::BadRequest,
                format!("limit must be from 1 to {MAX_LIMIT}."),
            )),
        }
    }

    /// The cursor's position: what the previous answer ended with.
    fn position(&self, kind: &str) -> Result<Option<String>, Problem> {
        let Some(cursor) = &self.cursor else {
            return Ok(None);
        };
        URL_SAFE_NO_PAD
            .decode(cursor)
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|text| text.strip_prefix(kind).map(str::to_owned))
            .map(Some)
            .ok_or_else(|| {
                Problem::new(
                    ProblemType::BadRequest,
                    "cursor is not one this listing gave out.",
                )
            })
    }
}

fn cursor(kind: &str, position: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}{position}"))
}

/// One page of a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct Listing<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next items; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A write: the new revision's title and Markdown body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PageDraft {
    /// 1 to 200 characters, not only spaces, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub title: String,
    /// Markdown, at most 131072 characters (512 KiB of UTF-8 at most).
    #[schema(max_length = 131072)]
    pub body: String,
}

impl PageDraft {
    fn validate(&self) -> Result<(), Problem> {
        let body_chars = self.body.chars().count();
        // Too long a field in a request of acceptable size is a validation
        // failure (422); 413 is for the request itself (over 1 MiB).
        if body_chars > MAX_BODY_CHARS {
            return Err(Problem::new(
                ProblemType::ValidationFailed,
                format!("body is {body_chars} characters; at most {MAX_BODY_CHARS} are accepted."),
            ));
        }
        // The limits apply to the title as sent (as the schema states them);
        // it is stored trimmed.
        if self.title.trim().is_empty()
            || self.title.chars().count() > MAX_TITLE_CHARS
            || self.title.chars().any(char::is_control)
        {
            return Err(Problem::new(
                ProblemType::ValidationFailed,
                format!(
                    "title must be 1 to {MAX_TITLE_CHARS} characters without control characters."
                ),
            ));
        }
        Ok(())
    }
}

/// Live pages in slug order, with keyset pagination.
#[utoipa::path(get, path = "/v1/pages", tag = "pages", params(ListParams),
    responses(
        (status = 200, description = "Pages in slug order", body = Listing<PageSummary>),
        (status = 400, description = "Bad cursor or limit", body = crate::openapi::Problem,
         content_type = "application/problem+json"),
        crate::openapi::V1Problems,
    ))]
async fn list_pages(
    State(app): State<Arc<App>>,
    Extension(timings): Extension<Timings>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<Listing<PageSummary>>, Problem> {
    let limit = params.limit()?;
    let after = params.position("s:")?;
    let db = database(&app)?;
    let mut items = timed(
        &app,
        &timings,
        "db",
        store::list(db, after.as_deref(), limit),
    )
    .await
    .map_err(db_problem)?;
    let next_cursor = more(&mut items, limit).map(|last| cursor("s:", &last.slug));
    Ok(axum::Json(Listing { items, next_cursor }))
}

/// The current revision of a page.
#[utoipa::path(get, path = "/v1/pages/{slug}", tag = "pages",
    params(SlugParam),
    responses(
        (status = 200, description = "The page; `ETag` names its revision", body = Page,
         headers(("etag" = String, description = "Entity tag of this revision"))),
        (status = 304, description = "Not modified since the `If-None-Match` tag"),
        (status = 400, description = "Malformed slug", body = crate::openapi::Problem,
         content_type = "application/problem+json"),
        (status = 404, description = "No such page", body = crate::openapi::Problem,
         content_type = "application/problem+json"),
        crate::openapi::V1Problems,
    ))]
async fn get_page(
    State(app): State<Arc<App>>,
    Extension(timings): Extension<Timings>,
    Extension(redis): Extension<RequestRedis>,
    Slug(slug): Slug,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let cache = cached::PageCache::new(&app, &redis, &timings);
    let looked_up = cache.lookup(&slug).await;
    let hit = looked_up
        .as_ref()
        .and_then(|lookup| lookup.value.as_deref())
        .and_then(cached::decode);
    let page = match hit {
        Some(page) => page,
        None => {
            let db = database(&app)?;
            let page = timed(&app, &timings, "db", store::get(db, &slug))
                .await
                .map_err(db_problem)?
                .ok_or_else(|| not_found(&slug))?;
            if let Some(lookup) = looked_up {
                cache.fill(&slug, lookup.version, &page).await;
            }
            page
        }
    };
    let etag = page.etag();
    let cache_headers = [
        (header::ETAG, etag.header_value()),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    if not_modified(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, cache_headers).into_response());
    }
    Ok((cache_headers, axum::Json(page)).into_response())
}

/// Creates the page or adds a revision.
#[utoipa::path(put, path = "/v1/pages/{slug}", tag = "pages",
    security(("cloudflare_access" = [])),
    params(
        SlugParam,
        ("if-match" = Option<String>, Header, description = "Write only if the current revision has this ETag",
         pattern = r#"^(|\*|(W/)?"[^"]*"(\s*,\s*(W/)?"[^"]*")*)$"#),
        ("if-none-match" = Option<String>, Header, description = "`*`: create only",
         pattern = r#"^(|\*|(W/)?"[^"]*"(\s*,\s*(W/)?"[^"]*")*)$"#),
    ),
    request_body = PageDraft,
    responses(
        (status = 200, description = "A new revision", body = Page),
        (status = 201, description = "The page was created", body = Page),
        (status = 400, description = "Malformed slug, JSON or precondition", body = crate::openapi::Problem,
         content_type = "application/problem+json"),
        crate::openapi::AdminProblems,
        (status = 412, description = "The page changed since the `If-Match` tag", body = crate::openapi::Problem,
         content_type = "application/problem+json"),
        crate::openapi::JsonBodyProblems,
        (status = 422, description = "Invalid title, body too long, or unknown fields", body = crate::openapi::Problem,
         content_type = "application/problem+json"),
        crate::openapi::V1Problems,
    ))]
// Each argument is an extractor axum runs in this order: grouping them
// would only hide which checks come first.
#[allow(clippy::too_many_arguments)]
async fn put_page(
    State(app): State<Arc<App>>,
    Extension(timings): Extension<Timings>,
    Extension(redis): Extension<RequestRedis>,
    background: Option<Extension<Background>>,
    Admin(identity): Admin,
    Slug(slug): Slug,
    Transactional(db): Transactional,
    precondition: Precondition,
    Json(draft): Json<PageDraft>,
) -> Result<Response, Problem> {
    draft.validate()?;
    let author = identity.author();
    let mut owed = cached::Owed::new(&app, &slug, background.as_deref());
    let saved = timed(
        &app,
        &timings,
        "db",
        store::save(
            &db,
            &slug,
            &Draft {
                title: draft.title.trim(),
                body: &draft.body,
                author: &author,
            },
            &precondition,
            lock_wait(&app, &db),
            &mut |ended| owed.after(ended),
        ),
    )
    .await;
    let written = match saved {
        Ok(written) => written,
        Err(e) => return Err(failed_write(owed, e)),
    };
    let (status, page) = match written {
        Written::Created(page) => (StatusCode::CREATED, page),
        Written::Updated(page) => (StatusCode::OK, page),
        Written::PreconditionFailed => {
            owed.release();
            return Err(precondition_failed(&slug));
        }
    };
    owed.send(&cached::PageCache::new(&app, &redis, &timings))
        .await;
    let location =
        HeaderValue::from_str(&format!("/v1/pages/{slug}")).expect("slugs are header-safe");
    Ok((
        status,
        [
            (header::ETAG, page.etag().header_value()),
            (header::LOCATION, location),
        ],
        axum::Json(page),
    )
        .into_response())
}

/// How long a write waits for its row lock (a page's, an upload's): inside
/// the request's deadline and the database client's statement timeout.
pub(crate) fn lock_wait(app: &App, db: &tidb_http::Client) -> LockWait {
    LockWait::within(
        Duration::from_millis(app.config.request_deadline_ms),
        db.config().timeout(),
    )
}

/// Soft-deletes the page (its revisions are kept).
#[utoipa::path(delete, path = "/v1/pages/{slug}", tag = "pages",
    security(("cloudflare_access" = [])),
    params(
        SlugParam,
        ("if-match" = Option<String>, Header, description = "Delete only if the current revision has this ETag",
         pattern = r#"^(|\*|(W/)?"[^"]*"(\s*,\s*(W/)?"[^"]*")*)$"#),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Malformed slug or precondition", body = crate::openapi::Problem,
         content_type = "application/problem+json"),
        crate::openapi::AdminProblems,
        (status = 404, description = "No such page", body = crate::openapi::Problem,
         content_type = "application/problem+json"),
        (status = 412, description = "The page changed since the `If-Match` tag", body = crate::openapi::Problem,
         content_type = "application/problem+json"),
        crate::openapi::V1Problems,
    ))]
// Extractors in the order axum runs them, as for `put_page`.
#[allow(clippy::too_many_arguments)]
async fn delete_page(
    State(app): State<Arc<App>>,
    Extension(timings): Extension<Timings>,
    Extension(redis): Extension<RequestRedis>,
    background: Option<Extension<Background>>,
    _admin: Admin,
    Slug(slug): Slug,
    Transactional(db): Transactional,
    precondition: Precondition,
) -> Result<StatusCode, Problem> {
    let mut owed = cached::Owed::new(&app, &slug, background.as_deref());
    let deleted = timed(
        &app,
        &timings,
        "db",
        store::delete(
            &db,
            &slug,
            &precondition,
            lock_wait(&app, &db),
            &mut |ended| owed.after(ended),
        ),
    )
    .await;
    let deleted = match deleted {
        Ok(deleted) => deleted,
        Err(e) => return Err(failed_write(owed, e)),
    };
    match deleted {
        Deleted::Deleted => {
            owed.send(&cached::PageCache::new(&app, &redis, &timings))
                .await;
            Ok(StatusCode::NO_CONTENT)
        }
        Deleted::NotFound => {
            owed.release();
            Err(not_found(&slug))
        }
        Deleted::PreconditionFailed => {
            owed.release();
            Err(precondition_failed(&slug))
        }
    }
}

/// The problem for a write that failed, with what it owes the cache: a
/// `COMMIT` that failed for want of an answer may have landed, and its
/// invalidation goes out after the response (`owed` dropped still owed);
/// otherwise nothing was written.
fn failed_write(owed: cached::Owed, error: tidb_http::Error) -> Problem {
    if !error.may_have_committed() {
        owed.release();
    }
    db_problem(error)
}

/// A page's revisions, newest first, with keyset pagination.
#[utoipa::path(get, path = "/v1/pages/{slug}/revisions", tag = "pages",
    params(SlugParam, ListParams),
    responses(
        (status = 200, description = "Revisions, newest first", body = Listing<RevisionSummary>),
        (status = 400, description = "Malformed slug, cursor or limit", body = crate::openapi::Problem,
         content_type = "application/problem+json"),
        (status = 404, description = "No such page", body = crate::openapi::Problem,
         content_type = "application/problem+json"),
        crate::openapi::V1Problems,
    ))]
async fn list_revisions(
    State(app): State<Arc<App>>,
    Extension(timings): Extension<Timings>,
    Slug(slug): Slug,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<Listing<RevisionSummary>>, Problem> {
    let limit = params.limit()?;
    let before = match params.position("r:")? {
        None => None,
        Some(n) => Some(n.parse::<i64>().map_err(|_| {
            Problem::new(
                ProblemType::BadRequest,
                "cursor is not one this listing gave out.",
            )
        })?),
    };
    let db = database(&app)?;
    let mut items = timed(
        &app,
        &timings,
        "db",
        store::revisions(db, &slug, before, limit),
    )
    .await
    .map_err(db_problem)?
    .ok_or_else(|| not_found(&slug))?;
    let next_cursor = more(&mut items, limit).map(|last| cursor("r:", &last.number.to_string()));
    Ok(axum::Json(Listing { items, next_cursor }))
}

/// Trims a result fetched with `limit + 1` rows to `limit`, returning the
/// last item kept when more follow.
fn more<T: Clone>(items: &mut Vec<T>, limit: u32) -> Option<T> {
    if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().cloned()
    } else {
        None
    }
}

fn not_found(slug: &str) -> Problem {
    Problem::new(ProblemType::NotFound, format!("There is no page {slug:?}."))
}

fn precondition_failed(slug: &str) -> Problem {
    Problem::new(
        ProblemType::PreconditionFailed,
        format!(
            "Page {slug:?} is not at the revision your If-Match/If-None-Match names; \
             fetch it again and reapply your change."
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_lowercase_words_with_inner_hyphens() {
        for ok in ["a", "getting-started", "v2-notes", &"x".repeat(128)] {
            assert!(valid_slug(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a b",
            "a/b",
            "ä",
            "a_b",
            &"x".repeat(129),
        ] {
            assert!(!valid_slug(bad), "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let params = ListParams {
            cursor: Some(cursor("s:", "intro")),
            limit: None,
        };
        assert_eq!(params.position("s:").unwrap().as_deref(), Some("intro"));
        assert!(params.position("r:").is_err());
        let garbage = ListParams {
            cursor: Some("%%%".into()),
            limit: Some(0),
        };
        assert!(garbage.position("s:").is_err());
        assert!(garbage.limit().is_err());
    }

    #[test]
    fn drafts_are_validated() {
        let draft = |title: &str, body: usize| PageDraft {
            title: title.into(),
            body: "x".repeat(body),
        };
        assert!(draft("Intro", 10).validate().is_ok());
        let kind = |d: PageDraft| d.validate().unwrap_err().kind;
        assert_eq!(kind(draft("  ", 1)), ProblemType::ValidationFailed);
        assert_eq!(kind(draft("a\u{7}b", 1)), ProblemType::ValidationFailed);
        assert_eq!(
            kind(draft(&"t".repeat(201), 1)),
            ProblemType::ValidationFailed
        );
        assert_eq!(
            kind(draft("Intro", MAX_BODY_CHARS + 1)),
            ProblemType::ValidationFailed
        );
        assert_eq!(
            kind(draft(&format!(" {} ", "t".repeat(199)), 1)),
            ProblemType::ValidationFailed,
            "201 characters as sent"
        );
    }
}
