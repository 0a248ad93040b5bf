//! Pages and revisions in TiDB, through the HTTP driver. Every change is
//! one transaction: the page row is locked (`FOR UPDATE`), the
//! precondition checked against it, a revision appended and the page row
//! updated, so a lost update is impossible and a failure leaves nothing
//! half-written. Times come from the database (`UTC_TIMESTAMP(3)`), so all
//! isolates agree on them; a write reads its time once, with the lock, so
//! the page, its new revision and the answer carry the same instant.
//!
//! Not for: HTTP concerns (status codes, headers) or caching; see
//! `pages/mod.rs`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tidb_http::{Client, Statement};
use utoipa::ToSchema;

use super::precondition::{EntityTag, Precondition};
use crate::db::rfc3339;

/// Writes lock the page row they change and nothing else. Under
/// REPEATABLE READ, MySQL-family engines also lock the *gap* where a
/// missing slug would go, so two editors creating different pages could
/// deadlock each other; READ COMMITTED (which TiDB also offers for
/// pessimistic transactions) locks only rows. The `FOR UPDATE` read and
/// the unique slug keep writes correct without gap locks.
const WRITE_ISOLATION: tidb_http::IsolationLevel = tidb_http::IsolationLevel::ReadCommitted;

/// How long a write waits for its page's row lock before the database
/// itself gives up on it (`FOR UPDATE WAIT n`, MySQL error 1205: a 503 the
/// client may retry).
///
/// The database's own limit (`innodb_lock_wait_timeout`, 50 s on TiDB) lies
/// past the request's deadline and past the statement's timeout (30 s): the
/// driver would stop waiting first, and the transaction's `ROLLBACK` go out
/// while its locking read still waited at the database. Ended by the
/// database inside the deadline, the wait is answered, and the `ROLLBACK`
/// follows the answer.
///
/// A new page has no row to lock yet, and under READ COMMITTED neither
/// engine locks the missing key. MariaDB's locking read does wait for
/// another writer's uncommitted row with the slug, but two writers can
/// both pass it before either inserts. TiDB's point read locks "only the
/// existing keys in RC isolation" (`getAndLock` in pingcap/tidb's
/// `pkg/executor/point_get.go`): it passes another writer's uncommitted
/// insert for as long as that transaction is open. Either way the
/// `INSERT` waits on the other writer instead, bounded the same way: the
/// session's `innodb_lock_wait_timeout` (both engines; the driver uses a
/// transaction's session for nothing after it), set only when the read
/// found no row, so only creations pay its round trip. Once the other
/// commits, the insert fails on the unique slug and [`save`] runs the
/// write again, now with a row to lock.
///
/// Whole seconds, as TiDB's parser takes them (MariaDB takes fractions;
/// MySQL 8 has no `WAIT n` at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockWait {
    secs: u64,
}

impl LockWait {
    /// Half the request's deadline, leaving the other half to the rest of
    /// the write (its body, `BEGIN`, the statements after the lock, the
    /// commit and the cache invalidation); at least a second; and at least
    /// [`LockWait::MARGIN`] short of the statement's timeout, so the
    /// database's answer comes back before the driver stops waiting for it.
    pub fn within(request_deadline: Duration, statement_timeout: Duration) -> LockWait {
        let half_deadline = request_deadline.as_millis() / 2 / 1000;
        let below_timeout = statement_timeout.saturating_sub(Self::MARGIN).as_secs();
        LockWait {
            secs: (half_deadline as u64).min(below_timeout).max(1),
        }
    }

    /// The clause ending a locking read that waits this long.
    pub fn for_update(self) -> String {
        format!("FOR UPDATE WAIT {}", self.secs)
    }

    /// Time left between the database giving up and the driver giving up.
    const MARGIN: Duration = Duration::from_secs(5);

    /// The same wait for every later lock the transaction's statements
    /// take (an `INSERT` waiting on another's uncommitted row among them).
    fn for_later_statements(self) -> Statement {
        Statement::new(format!(
            "SET SESSION innodb_lock_wait_timeout = {}",
            self.secs
        ))
    }
}

/// A page as readers get it: its current revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Page {
    pub slug: String,
    pub title: String,
    /// Markdown source of the current revision.
    pub body: String,
    /// Number of the current revision (1 for a new page).
    pub revision: i64,
    /// Who wrote the current revision (an Access identity).
    pub author: String,
    /// When the current revision was written (RFC 3339, UTC).
    pub updated_at: String,
    /// Internal id; part of the entity tag so a page deleted and created
    /// again never repeats a tag.
    #[serde(skip_serializing)]
    #[serde(default)]
    pub(crate) id: i64,
}

impl Page {
    pub fn etag(&self) -> EntityTag {
        EntityTag::strong(format!("{}.{}", self.id, self.revision))
    }
}

/// A page in a listing, without its body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PageSummary {
    pub slug: String,
    pub title: String,
    pub revision: i64,
    /// RFC 3339, UTC.
    pub updated_at: String,
}

/// One revision of a page, without its body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RevisionSummary {
    pub number: i64,
    pub title: String,
    pub author: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Size of the body in bytes.
    pub body_bytes: i64,
}

/// What a write should leave behind.
pub struct Draft<'a> {
    pub title: &'a str,
    pub body: &'a str,
    pub author: &'a str,
}

/// How a write ended, when it did not fail.
#[derive(Debug)]
pub enum Written {
    Created(Page),
    Updated(Page),
    /// The precondition did not hold; nothing was written.
    PreconditionFailed,
}

#[derive(Debug)]
pub enum Deleted {
    Deleted,
    NotFound,
    PreconditionFailed,
}

/// The current revision of the live page `slug`.
pub async fn get(db: &Client, slug: &str) -> Result<Option<Page>, tidb_http::Error> {
    let mut page: Option<Page> = db
        .query_optional_as(
            Statement::new(
                "SELECT p.id, p.slug, p.title, p.revision, r.body, r.author, p.updated_at \
                 FROM pages p JOIN revisions r ON r.page_id = p.id AND r.number = p.revision \
                 WHERE p.slug = ? AND p.deleted_at IS NULL",
            )
            .bind(slug),
        )
        .await?;
    if let Some(page) = page.as_mut() {
        page.updated_at = rfc3339(&page.updated_at);
    }
    Ok(page)
}

/// Live pages in slug order, after `after` (keyset pagination: stable
/// under concurrent writes, no OFFSET scans). Asks for one more than
/// `limit` so the caller knows whether another page of results follows.
pub async fn list(
    db: &Client,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<PageSummary>, tidb_http::Error> {
    let mut items: Vec<PageSummary> = db
        .query_as(
            Statement::new(
                "SELECT slug, title, revision, updated_at FROM pages \
                 WHERE deleted_at IS NULL AND slug > ? ORDER BY slug LIMIT ?",
            )
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit) + 1),
        )
        .await?;
    for item in &mut items {
        item.updated_at = rfc3339(&item.updated_at);
    }
    Ok(items)
}

/// Revisions of the live page `slug`, newest first, older than `before`;
/// `None` when there is no such page.
pub async fn revisions(
    db: &Client,
    slug: &str,
    before: Option<i64>,
    limit: u32,
) -> Result<Option<Vec<RevisionSummary>>, tidb_http::Error> {
    #[derive(Deserialize)]
    struct Id {
        id: i64,
    }
    let Some(Id { id }) = db
        .query_optional_as(
            Statement::new("SELECT id FROM pages WHERE slug = ? AND deleted_at IS NULL").bind(slug),
        )
        .await?
    else {
        return Ok(None);
    };
    let mut items: Vec<RevisionSummary> = db
        .query_as(
            Statement::new(
                "SELECT number, title, author, created_at, LENGTH(body) AS body_bytes \
                 FROM revisions WHERE page_id = ? AND number < ? \
                 ORDER BY number DESC LIMIT ?",
            )
            .bind(id)
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit) + 1),
        )
        .await?;
    for item in &mut items {
        item.created_at = rfc3339(&item.created_at);
    }
    Ok(Some(items))
}

/// The locked state of a page inside a write transaction.
#[derive(Deserialize)]
struct Locked {
    id: i64,
    revision: i64,
    deleted: i64,
    /// The database's time as it granted the lock: what a write stores as
    /// the page's `updated_at` and the revision's `created_at`, and
    /// answers with. Read here, a write needs no statement after its last
    /// change to learn the time it stored; the row stays locked one round
    /// trip less, and writers queued on a busy page wait that much less
    /// (BENCHMARKS.md, seventeenth pass).
    now: String,
}

/// The database's time, for a write whose page has no row yet to lock.
#[derive(Deserialize)]
struct Now {
    now: String,
}

impl Locked {
    /// Locks the page row (if any) until the transaction ends, waiting
    /// for it no longer than `wait`.
    async fn lock(
        tx: &mut tidb_http::Tx,
        slug: &str,
        wait: LockWait,
    ) -> Result<Option<Locked>, tidb_http::Error> {
        tx.query_optional_as(
            Statement::new(format!(
                "SELECT id, revision, deleted_at IS NOT NULL AS deleted, UTC_TIMESTAMP(3) AS now \
                 FROM pages WHERE slug = ? {}",
                wait.for_update()
            ))
            .bind(slug),
        )
        .await
    }

    /// The tag readers saw, if the page is live.
    fn live_tag(&self) -> Option<EntityTag> {
        (self.deleted == 0).then(|| EntityTag::strong(format!("{}.{}", self.id, self.revision)))
    }
}

/// Told the end ([`tidb_http::Tx::ended`]) of each transaction a write
/// opens, as soon as it is open: for what must follow the write's outcome
/// at the database even when the write itself is cut off (its page's
/// cache invalidation).
pub type WatchTx<'a> = &'a mut (dyn FnMut(tidb_http::Ended) + Send);

/// Creates the page or appends a revision, if `precondition` holds.
pub async fn save(
    db: &Client,
    slug: &str,
    draft: &Draft<'_>,
    precondition: &Precondition,
    wait: LockWait,
    watch: WatchTx<'_>,
) -> Result<Written, tidb_http::Error> {
    // Two writers creating the same new page both see no row; the second
    // insert then waits for the first and fails on the unique slug. Once
    // more, it sees the row.
    // The same once more for a transaction the database rolled back for a
    // conflict (a deadlock, TiDB's write conflicts): it says running it
    // again is safe, and the client should not have to.
    match try_save(db, slug, draft, precondition, wait, watch).await {
        Err(e) if e.is_duplicate_entry() || e.is_retryable_transaction() => {
            try_save(db, slug, draft, precondition, wait, watch).await
        }
        other => other,
    }
}

async fn try_save(
    db: &Client,
    slug: &str,
    draft: &Draft<'_>,
    precondition: &Precondition,
    wait: LockWait,
    watch: WatchTx<'_>,
) -> Result<Written, tidb_http::Error> {
    let mut tx = db.begin(Some(WRITE_ISOLATION)).await?;
    watch(tx.ended());
    let outcome = async {
        let locked = Locked::lock(&mut tx, slug, wait).await?;
        let current = locked.as_ref().and_then(Locked::live_tag);
        if !precondition.holds(current.as_ref()) {
            return Ok(None);
        }
        let (id, number, created, now) = match locked {
            Some(row) => {
                tx.execute(
                    Statement::new(
                        "UPDATE pages SET title = ?, revision = ?, \
                         updated_at = ?, deleted_at = NULL WHERE id = ?",
                    )
                    .bind(draft.title)
                    .bind(row.revision + 1)
                    .bind(row.now.as_str())
                    .bind(row.id),
                )
                .await?;
                // A deleted page written again is created anew to its
                // readers, who last got a 404: 201 (RFC 9110, 9.3.4).
                let created = row.deleted != 0;
                (row.id, row.revision + 1, created, row.now)
            }
            None => {
                // Another writer may be inserting this slug (see
                // `LockWait`): the insert waits no longer than the read.
                tx.execute(wait.for_later_statements()).await?;
                let Now { now } = tx
                    .query_one_as(Statement::new("SELECT UTC_TIMESTAMP(3) AS now"))
                    .await?;
                let inserted = tx
                    .execute(
                        Statement::new(
                            "INSERT INTO pages (slug, title, revision, created_at, updated_at) \
                             VALUES (?, ?, 1, ?, ?)",
                        )
                        .bind(slug)
                        .bind(draft.title)
                        .bind(now.as_str())
                        .bind(now.as_str()),
                    )
                    .await?;
                let id = inserted.inserted_id()? as i64;
                (id, 1, true, now)
            }
        };
        tx.execute(
            Statement::new(
                "INSERT INTO revisions (page_id, number, title, body, author, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(number)
            .bind(draft.title)
            .bind(draft.body)
            .bind(draft.author)
            .bind(now.as_str()),
        )
        .await?;
        let page = Page {
            slug: slug.to_owned(),
            title: draft.title.to_owned(),
            body: draft.body.to_owned(),
            revision: number,
            author: draft.author.to_owned(),
            updated_at: rfc3339(&now),
            id,
        };
        Ok::<_, tidb_http::Error>(Some((created, page)))
    }
    .await;
    match outcome {
        Ok(Some((created, page))) => {
            tx.commit().await?;
            Ok(if created {
                Written::Created(page)
            } else {
                Written::Updated(page)
            })
        }
        Ok(None) => {
            tx.rollback().await?;
            Ok(Written::PreconditionFailed)
        }
        Err(e) => {
            // Rolled back in the background (`Tx`'s drop): the answer does
            // not wait for a database that may be the reason for `e`.
            drop(tx);
            Err(e)
        }
    }
}

/// Soft-deletes the live page `slug`, if `precondition` holds (run once
/// more if the database rolled it back for a conflict, as [`save`]).
pub async fn delete(
    db: &Client,
    slug: &str,
    precondition: &Precondition,
    wait: LockWait,
    watch: WatchTx<'_>,
) -> Result<Deleted, tidb_http::Error> {
    match try_delete(db, slug, precondition, wait, watch).await {
        Err(e) if e.is_retryable_transaction() => {
            try_delete(db, slug, precondition, wait, watch).await
        }
        other => other,
    }
}

async fn try_delete(
    db: &Client,
    slug: &str,
    precondition: &Precondition,
    wait: LockWait,
    watch: WatchTx<'_>,
) -> Result<Deleted, tidb_http::Error> {
    let mut tx = db.begin(Some(WRITE_ISOLATION)).await?;
    watch(tx.ended());
    let outcome = async {
        let locked = Locked::lock(&mut tx, slug, wait).await?;
        let Some(current) = locked.as_ref().and_then(Locked::live_tag) else {
            return Ok(Deleted::NotFound);
        };
        if !precondition.holds(Some(&current)) {
            return Ok(Deleted::PreconditionFailed);
        }
        tx.execute(
            Statement::new("UPDATE pages SET deleted_at = UTC_TIMESTAMP(3) WHERE slug = ?")
                .bind(slug),
        )
        .await?;
        Ok::<_, tidb_http::Error>(Deleted::Deleted)
    }
    .await;
    match outcome {
        Ok(Deleted::Deleted) => {
            tx.commit().await?;
            Ok(Deleted::Deleted)
        }
        Ok(other) => {
            tx.rollback().await?;
            Ok(other)
        }
        Err(e) => {
            // Rolled back in the background (`Tx`'s drop): the answer does
            // not wait for a database that may be the reason for `e`.
            drop(tx);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::db::scripted::{ScriptedSql, DONE};

    /// The SQL API for one page (id 7, revision 3), whose statements that
    /// start with `fail_on` get the error `code` `failures` times.
    fn page_api(fail_on: &'static str, code: i64, failures: usize) -> Arc<ScriptedSql> {
        fn answer(query: &str) -> &'static str {
            if query.starts_with("SELECT id, revision") {
                r#"{"types":[{"name":"id","type":"BIGINT","nullable":false},
                    {"name":"revision","type":"BIGINT","nullable":false},
                    {"name":"deleted","type":"BIGINT","nullable":false},
                    {"name":"now","type":"VARCHAR","nullable":false}],
                    "rows":[["7","3","0","2026-12-04 10:00:00.000"]]}"#
            } else {
                DONE
            }
        }
        let failure = (400, code, "conflict, rolled back");
        ScriptedSql::new(answer, fail_on, failure, failures)
    }

    const DRAFT: Draft<'static> = Draft {
        title: "T",
        body: "b",
        author: "a@example.com",
    };

    const ANY: Precondition = Precondition {
        if_match: None,
        if_none_match: None,
    };

    /// What a Worker with the default 10 s deadline waits for a row.
    const WAIT: LockWait = LockWait { secs: 5 };

    #[test]
    fn a_write_waits_for_its_row_half_its_deadline_in_whole_seconds_inside_the_statement_timeout() {
        let secs = |deadline_ms: u64, timeout_secs: u64| {
            LockWait::within(
                Duration::from_millis(deadline_ms),
                Duration::from_secs(timeout_secs),
            )
            .secs
        };
        // The default deadline, and the local stack's 3 s.
        assert_eq!(secs(10_000, 30), 5);
        assert_eq!(
            LockWait::within(Duration::from_secs(10), tidb_http::DEFAULT_TIMEOUT),
            WAIT
        );
        assert_eq!(secs(3_000, 30), 1);
        // Down to whole seconds, never none.
        assert_eq!(secs(11_999, 30), 5);
        assert_eq!(secs(1_999, 30), 1);
        assert_eq!(secs(0, 30), 1);
        // A long deadline: the database still answers before the driver
        // stops waiting for the statement.
        assert_eq!(secs(60_000, 30), 25);
        assert_eq!(secs(600_000, 30), 25);
        assert_eq!(secs(60_000, 3), 1);
    }

    #[tokio::test]
    async fn writes_and_deletes_wait_for_the_row_no_longer_than_told() {
        let api = page_api("none", 0, 0);
        save(&api.client(), "p", &DRAFT, &ANY, WAIT, &mut |_| {})
            .await
            .unwrap();
        delete(&api.client(), "p", &ANY, LockWait { secs: 2 }, &mut |_| {})
            .await
            .unwrap();
        let locking_reads = api.sent("SELECT id, revision");
        assert_eq!(locking_reads.len(), 2, "{locking_reads:?}");
        assert!(
            locking_reads[0].ends_with("FOR UPDATE WAIT 5"),
            "{locking_reads:?}"
        );
        assert!(
            locking_reads[1].ends_with("FOR UPDATE WAIT 2"),
            "{locking_reads:?}"
        );
    }

    /// The SQL API without page `p`: its insert gets id 8.
    fn no_page(query: &str) -> &'static str {
        if query.starts_with("INSERT INTO pages") {
            r#"{"types":[],"rows":[],"rowsAffected":1,"sLastInsertID":"8"}"#
        } else {
            no_page_nor_insert_id(query)
        }
    }

    /// The same, but the insert's answer says no id.
    fn no_page_nor_insert_id(query: &str) -> &'static str {
        if query.starts_with("SELECT id, revision") {
            r#"{"types":[{"name":"id","type":"BIGINT","nullable":false}],"rows":[]}"#
        } else if query.starts_with("SELECT UTC_TIMESTAMP") {
            r#"{"types":[{"name":"now","type":"VARCHAR","nullable":false}],
                "rows":[["2026-12-04 10:00:00.000"]]}"#
        } else {
            DONE
        }
    }

    #[tokio::test]
    async fn a_new_page_gets_the_id_its_insert_generated_and_none_made_up() {
        let api = ScriptedSql::new(no_page, "none", (400, 0, ""), 0);
        let written = save(&api.client(), "p", &DRAFT, &ANY, WAIT, &mut |_| {})
            .await
            .unwrap();
        let Written::Created(page) = written else {
            panic!("{written:?}")
        };
        assert_eq!(page.id, 8);
        let revision = &api.sent("INSERT INTO revisions")[0];
        assert!(revision.contains("VALUES (8, 1, "), "{revision}");

        // Without an id, nothing is committed under a made-up one (0).
        let api = ScriptedSql::new(no_page_nor_insert_id, "none", (400, 0, ""), 0);
        let error = save(&api.client(), "p", &DRAFT, &ANY, WAIT, &mut |_| {})
            .await
            .unwrap_err();
        assert!(error.to_string().contains("lastInsertID"), "{error}");
        assert_eq!(api.count("INSERT INTO revisions"), 0);
        assert_eq!(api.count("COMMIT"), 0);
    }

    #[tokio::test]
    async fn a_new_page_waits_for_another_writer_inserting_it_no_longer_than_for_a_row() {
        let api = ScriptedSql::new(no_page, "none", (400, 0, ""), 0);
        let written = save(&api.client(), "p", &DRAFT, &ANY, WAIT, &mut |_| {})
            .await
            .unwrap();
        assert!(matches!(written, Written::Created(_)), "{written:?}");
        let sent = api.sent("");
        let position = |prefix: &str| sent.iter().position(|q| q.starts_with(prefix));
        let set = position("SET SESSION innodb_lock_wait_timeout = 5");
        assert!(set.is_some(), "{sent:?}");
        assert!(set > position("SELECT id, revision"), "{sent:?}");
        assert!(set < position("INSERT INTO pages"), "{sent:?}");

        // A page that is there was locked by the read: nothing to set.
        let api = page_api("none", 0, 0);
        save(&api.client(), "p", &DRAFT, &ANY, WAIT, &mut |_| {})
            .await
            .unwrap();
        assert_eq!(api.count("SET"), 0);
    }

    #[tokio::test]
    async fn a_write_rolled_back_for_a_conflict_is_run_once_more() {
        // TiDB's write conflict at the commit, then a commit that holds.
        let api = page_api("COMMIT", 9007, 1);
        let Written::Updated(page) = save(&api.client(), "p", &DRAFT, &ANY, WAIT, &mut |_| {})
            .await
            .unwrap()
        else {
            panic!("not an update");
        };
        assert_eq!((page.id, page.revision), (7, 4));
        assert_eq!((api.count("BEGIN"), api.count("COMMIT")), (2, 2));

        // A deadlock's victim at the locking read.
        let api = page_api("SELECT id, revision", 1213, 1);
        let written = save(&api.client(), "p", &DRAFT, &ANY, WAIT, &mut |_| {})
            .await
            .unwrap();
        assert!(matches!(written, Written::Updated(_)), "{written:?}");
        assert_eq!(api.count("BEGIN"), 2);

        let api = page_api("UPDATE pages SET deleted_at", 8022, 1);
        let deleted = delete(&api.client(), "p", &ANY, WAIT, &mut |_| {})
            .await
            .unwrap();
        assert!(matches!(deleted, Deleted::Deleted), "{deleted:?}");
        assert_eq!((api.count("BEGIN"), api.count("COMMIT")), (2, 1));
    }

    #[tokio::test]
    async fn a_second_conflict_or_a_refusal_for_now_is_the_callers() {
        // Once more only: the second conflict goes to the client (a 503).
        let api = page_api("COMMIT", 9007, 2);
        let error = save(&api.client(), "p", &DRAFT, &ANY, WAIT, &mut |_| {})
            .await
            .unwrap_err();
        assert!(error.is_retryable_transaction(), "{error}");
        assert_eq!(api.count("BEGIN"), 2);

        // Out of connections: not run again here, the database is busy.
        let api = page_api("BEGIN", 1040, 1);
        let error = save(&api.client(), "p", &DRAFT, &ANY, WAIT, &mut |_| {})
            .await
            .unwrap_err();
        assert!(
            error.is_temporary() && !error.is_retryable_transaction(),
            "{error}"
        );
        assert_eq!(api.count("BEGIN"), 1);

        let api = page_api("UPDATE pages SET deleted_at", 1205, 1);
        let error = delete(&api.client(), "p", &ANY, WAIT, &mut |_| {})
            .await
            .unwrap_err();
        assert_eq!(error.mysql_errno(), Some(1205));
        assert_eq!(api.count("BEGIN"), 1);
    }
}
