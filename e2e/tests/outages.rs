//! Dependencies failing under the real Worker: Redis and MariaDB frozen
//! (SIGSTOP: connections open but nothing answers, the hardest case for
//! timeouts) and thawed again; both stopped (SIGTERM: connections refused)
//! and started again as new processes, the Worker never restarted; then the
//! telemetry sinks (Bugsink, Prometheus, the Loki stand-in) frozen together,
//! and stopped together and started again; MariaDB out of connections and
//! Redis out of memory; and a caller that goes away in the middle of a
//! write. In its own test binary on purpose: while a server is frozen or
//! full, every other test would fail or slow down.

use std::time::Duration;

use e2e::access::user_token;
use e2e::caller::AbortingCaller;
use e2e::faults::{
    frozen_sinks, listen_address, stopped_sinks, until_sinks_ready, until_status, Frozen, Stopped,
};
use e2e::{
    api, eventually, eventually_within, http, missed_invalidations, stack, title_and_cache, unique,
};
use serde_json::{json, Value};

/// `PUT` of the page at `url` with `title`, as an editor.
async fn write_page(url: &str, title: &str) -> reqwest::Response {
    http()
        .put(url)
        .header("cf-access-jwt-assertion", user_token("ops@example.com"))
        .json(&json!({"title": title, "body": "b"}))
        .send()
        .await
        .unwrap()
}

async fn create_page() -> String {
    let slug = unique("outage-");
    let created = write_page(&format!("{}/v1/pages/{slug}", api()), "t").await;
    assert_eq!(created.status(), 201);
    slug
}

/// The URL of a new page titled `t` that Redis has cached (its second read
/// is a hit).
async fn cached_page() -> String {
    let url = format!("{}/v1/pages/{}", api(), create_page().await);
    title_and_cache(&url).await;
    assert_eq!(title_and_cache(&url).await, (200, json!("t"), "hit".into()));
    url
}

/// One server frozen at a time, so each scenario sees only its own outage.
#[tokio::test]
async fn dependencies_freeze_and_recover() {
    reads_bypass_a_frozen_redis_without_waiting_for_it_and_the_cache_returns_after_it().await;
    a_write_redis_missed_is_invalidated_once_redis_is_back().await;
    a_frozen_database_is_a_503_problem_and_recovery_needs_no_restart().await;
    readiness_answers_inside_its_own_deadline_while_the_gateway_hangs().await;
    frozen_telemetry_sinks_change_no_answer().await;
    a_stopped_redis_and_database_come_back_after_a_restart().await;
    stopped_telemetry_sinks_change_no_answer_and_are_used_again_once_back().await;
    a_database_out_of_connections_is_a_503_to_retry_and_nothing_is_written().await;
    a_full_redis_still_invalidates_so_no_read_is_stale().await;
    redis_at_its_connection_limit_is_done_without_and_a_write_still_invalidates().await;
    a_write_that_waits_too_long_for_its_row_is_given_up_by_the_database_inside_its_deadline().await;
    a_new_page_whose_insert_waits_too_long_is_given_up_by_the_database_inside_its_deadline().await;
    let caller = AbortingCaller::start().await;
    a_write_abandoned_while_it_waits_for_its_row_still_ends_and_frees_it(&caller).await;
    a_write_abandoned_while_it_commits_still_leaves_no_stale_copy(&caller).await;
    a_write_cut_off_by_its_deadline_while_it_commits_leaves_no_stale_copy().await;
}

/// `PUT` of the page at `path` titled `title` through `caller`, which
/// gives up `after` the call was made: its answer's status, 599 when it
/// gave up.
async fn abandoned_write(caller: &AbortingCaller, path: &str, title: &str, after: Duration) -> u16 {
    write_page(&caller.url(path, after), title)
        .await
        .status()
        .as_u16()
}

/// The page `slug`'s row, locked by a transaction of the test's own until
/// it is committed: a write to the page waits for it at its locking read.
async fn lock_row<'db>(
    db: &'db mut sqlx::MySqlConnection,
    slug: &str,
) -> sqlx::Transaction<'db, sqlx::MySql> {
    use sqlx::Connection as _;
    let mut lock = db.begin().await.unwrap();
    sqlx::query("SELECT id FROM pages WHERE slug = ? FOR UPDATE")
        .bind(slug)
        .fetch_one(&mut *lock)
        .await
        .unwrap();
    lock
}

/// The page `slug`'s revisions, oldest first, as (number, title).
async fn revisions(slug: &str) -> Vec<(i64, String)> {
    sqlx::query_as(
        "SELECT r.number, CAST(r.title AS CHAR) FROM revisions r JOIN pages p ON p.id = r.page_id \
         WHERE p.slug = ? ORDER BY r.number",
    )
    .bind(slug)
    .fetch_all(&mut e2e::database().await)
    .await
    .unwrap()
}

/// A write (a `PUT` or a `DELETE`) that waits for its page's row longer
/// than it may (half the request's deadline: 1 s here) is given up by the
/// database itself, inside the deadline: a 503 to retry, and its
/// transaction is rolled back at once, while the row is still held. Left
/// to the database's own limit (50 s), the wait outlived the request and
/// the statement's timeout: here the gateway's 2 s query timeout answered
/// "unavailable" and the write's transaction went on waiting at MariaDB;
/// on TiDB Cloud, the write's `ROLLBACK` went out while its locking read
/// still waited.
async fn a_write_that_waits_too_long_for_its_row_is_given_up_by_the_database_inside_its_deadline() {
    let slug = create_page().await;
    let url = format!("{}/v1/pages/{slug}", api());
    let mut db = e2e::database().await;
    let mut lock = lock_row(&mut db, &slug).await;
    let holder: u64 = sqlx::query_scalar("SELECT CONNECTION_ID()")
        .fetch_one(&mut *lock)
        .await
        .unwrap();
    for (method, response) in [
        ("PUT", write_page(&url, "waited").await),
        (
            "DELETE",
            http()
                .delete(&url)
                .header("cf-access-jwt-assertion", user_token("ops@example.com"))
                .send()
                .await
                .unwrap(),
        ),
    ] {
        the_database_gave_up(method, response).await;
    }
    until_no_transaction_besides(
        holder,
        "the writes' transactions rolled back, the row still held",
    )
    .await;
    lock.commit().await.unwrap();

    assert_eq!(revisions(&slug).await, [(1, "t".into())], "nothing written");
    assert_eq!(
        http().get(&url).send().await.unwrap().status(),
        200,
        "not deleted"
    );
    assert_eq!(write_page(&url, "next").await.status(), 200);
}

/// A write creating a page has no row to lock, so it can wait at its
/// `INSERT` instead: on TiDB, for another writer's uncommitted insert of
/// the same slug, which READ COMMITTED's locking read does not wait for
/// (`store::LockWait`). Here the test's own transaction holds MariaDB's
/// equivalent, the gap where the slug would go (a REPEATABLE READ locking
/// read of the missing slug), which the write's read passes and its
/// `INSERT` waits for. That wait is bounded like the read's: a 503 from
/// the database inside the deadline, and the write's transaction rolled
/// back while the gap is still held. Left to the database's own limit
/// (50 s), the gateway's query timeout answered first and the insert went
/// on waiting at MariaDB.
async fn a_new_page_whose_insert_waits_too_long_is_given_up_by_the_database_inside_its_deadline() {
    use sqlx::Connection as _;
    let slug = unique("inserting-");
    let url = format!("{}/v1/pages/{slug}", api());
    let mut db = e2e::database().await;
    // MariaDB's default, said here because the gap lock depends on it.
    sqlx::query("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut db)
        .await
        .unwrap();
    let mut gap = db.begin().await.unwrap();
    let missing = sqlx::query("SELECT id FROM pages WHERE slug = ? FOR UPDATE")
        .bind(&slug)
        .fetch_optional(&mut *gap)
        .await
        .unwrap();
    assert!(missing.is_none());
    let holder: u64 = sqlx::query_scalar("SELECT CONNECTION_ID()")
        .fetch_one(&mut *gap)
        .await
        .unwrap();

    the_database_gave_up("PUT", write_page(&url, "waited").await).await;
    until_no_transaction_besides(
        holder,
        "the write's transaction rolled back, the gap still held",
    )
    .await;
    gap.rollback().await.unwrap();

    assert_eq!(revisions(&slug).await, [], "nothing written");
    assert_eq!(write_page(&url, "created").await.status(), 201);
    assert_eq!(revisions(&slug).await, [(1, "created".into())]);
}

/// `response` (to `method`) is the 503 of a lock wait the database ended
/// (1205), not of the gateway's query timeout ("unavailable").
async fn the_database_gave_up(method: &str, response: reqwest::Response) {
    let status = response.status();
    let retry_after = response.headers().get("retry-after").cloned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 503, "{method}: {body}");
    assert_eq!(retry_after.unwrap(), "5", "{method}");
    assert_eq!(body["type"], "/problems/unavailable", "{method}: {body}");
    assert_eq!(
        body["detail"], "The database is busy; try again shortly.",
        "{method}: the database gave up on the lock, not the gateway on the database"
    );
}

/// Returns once no InnoDB transaction is open besides the connection
/// `holder`'s (and the one asking), within 5 s, or fails the test as not
/// `what`. What `innodb_trx` shows is refreshed only when it was not read
/// for 100 ms: poll slower than that ([`eventually_within`] polls every
/// 250 ms).
async fn until_no_transaction_besides(holder: u64, what: &str) {
    eventually_within(what, Duration::from_secs(5), || async {
        let open: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.innodb_trx \
             WHERE trx_mysql_thread_id NOT IN (?, CONNECTION_ID())",
        )
        .bind(holder)
        .fetch_one(&mut e2e::database().await)
        .await
        .unwrap();
        (open == 0).then_some(())
    })
    .await;
}

/// A write whose caller gives up while it waits for its page's row (the
/// runtime cancels such a request) still runs to its end once the row is
/// free: its transaction commits instead of staying open with the row
/// locked until TiDB's idle timeout (10 minutes), where every later write
/// to the page waited out the lock timeout and answered 503.
async fn a_write_abandoned_while_it_waits_for_its_row_still_ends_and_frees_it(
    caller: &AbortingCaller,
) {
    let slug = create_page().await;
    let path = format!("/v1/pages/{slug}");
    let mut db = e2e::database().await;
    let lock = lock_row(&mut db, &slug).await;
    // The caller gives up once the write waits for the row, which is
    // freed before the write's own wait ends (1 s, above), so the write is
    // first in line for it.
    let (abandoned, ()) = tokio::join!(
        abandoned_write(caller, &path, "abandoned", Duration::from_millis(300)),
        until_a_write_waits_for_a_row_lock(),
    );
    lock.commit().await.unwrap();
    let next = write_page(&format!("{}{path}", api()), "next")
        .await
        .status();

    assert_eq!(abandoned, 599, "the caller gave up");
    assert_eq!(next, 200, "the write after the abandoned one");
    assert_eq!(
        revisions(&slug).await,
        [(1, "t".into()), (2, "abandoned".into()), (3, "next".into())]
    );
}

/// Returns once a transaction waits for a row lock (polled slower than
/// `innodb_trx` is refreshed, see [`until_no_transaction_besides`]). Found after
/// the write's own wait (1 s) ended, the abandoned write has given up
/// instead of waiting, and its test fails on the page's revisions.
async fn until_a_write_waits_for_a_row_lock() {
    eventually_within(
        "a write waiting for a row lock",
        Duration::from_secs(5),
        || async {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.innodb_trx WHERE trx_state = 'LOCK WAIT'",
            )
            .fetch_one(&mut e2e::database().await)
            .await
            .unwrap();
            (waiting > 0).then_some(())
        },
    )
    .await;
}

/// A write whose caller gives up while its `COMMIT` is on its way (held
/// here by MariaDB, `BACKUP STAGE BLOCK_COMMIT`; on Cloudflare, a round trip
/// to TiDB Cloud is tens of milliseconds) still ends: it hears the commit
/// and clears the page's cache entry. Cancelled there, the commit happened
/// all the same, and readers got the old copy from the cache for its TTL.
async fn a_write_abandoned_while_it_commits_still_leaves_no_stale_copy(caller: &AbortingCaller) {
    let url = cached_page().await;
    let path = url.strip_prefix(api()).unwrap().to_owned();
    let mut admin = hold_commits().await;
    // The caller gives up once the write's `COMMIT` waits.
    let (abandoned, ()) = tokio::join!(
        abandoned_write(caller, &path, "abandoned", Duration::from_millis(1000)),
        eventually("a COMMIT held by the backup stage", || async {
            let held: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.processlist \
                 WHERE info = 'COMMIT' AND state LIKE '%backup lock%'",
            )
            .fetch_one(&mut e2e::database().await)
            .await
            .unwrap();
            (held > 0).then_some(())
        }),
    );
    sqlx::query("BACKUP STAGE END")
        .execute(&mut admin)
        .await
        .unwrap();

    assert_eq!(abandoned, 599, "the caller gave up");
    the_second_revision_is_read_back(&url, "abandoned").await;
}

/// MariaDB holding every `COMMIT` (`BACKUP STAGE BLOCK_COMMIT`) until the
/// returned connection runs `BACKUP STAGE END`.
async fn hold_commits() -> sqlx::MySqlConnection {
    let mut admin = e2e::database().await;
    for stage in ["START", "BLOCK_COMMIT"] {
        sqlx::query(&format!("BACKUP STAGE {stage}"))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    admin
}

/// The page at `url` (created titled `t`) gets its second revision,
/// titled `title`, and readers get that title, not a cached copy of `t`.
async fn the_second_revision_is_read_back(url: &str, title: &str) {
    let slug = url.rsplit('/').next().unwrap();
    eventually("the write committed", || async {
        (revisions(slug).await.len() == 2).then_some(())
    })
    .await;
    assert_eq!(revisions(slug).await, [(1, "t".into()), (2, title.into())]);
    eventually("the written title read back", || async {
        let read = title_and_cache(url).await;
        (read.1 == json!(title)).then_some(())
    })
    .await;
}

/// A write whose request deadline passes while its `COMMIT` is on its way
/// (held by `BACKUP STAGE BLOCK_COMMIT`; its body sent late, so that the
/// deadline, 3 s here, comes before the gateway's own 2 s statement
/// timeout): the caller gets a 504, the commit lands once the stage ends,
/// and readers get the page as written, not the cached copy. The handler
/// is dropped at its deadline, and its invalidation with it; it now goes
/// out after the response, once the transaction has ended (sent while the
/// `COMMIT` was held, a reader could have cached the old page again).
async fn a_write_cut_off_by_its_deadline_while_it_commits_leaves_no_stale_copy() {
    let url = cached_page().await;
    let slug = url.rsplit('/').next().unwrap().to_owned();
    let deadline = stack().api.as_ref().unwrap().request_deadline_ms;
    let mut admin = hold_commits().await;
    let late = Duration::from_millis(deadline / 2);
    let answer = write_with_a_late_body(&slug, "cut off", late).await;
    sqlx::query("BACKUP STAGE END")
        .execute(&mut admin)
        .await
        .unwrap();
    assert!(answer.starts_with("http/1.1 504"), "{answer}");
    the_second_revision_is_read_back(&url, "cut off").await;
}

/// The head (lowercase) of the answer to an editor's `PUT` of page `slug`
/// titled `title`, whose body is sent `late` after its head.
async fn write_with_a_late_body(slug: &str, title: &str, late: Duration) -> String {
    use tokio::io::AsyncWriteExt;

    let body = json!({"title": title, "body": "b"}).to_string();
    let address = api().strip_prefix("http://").unwrap().to_owned();
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "PUT /v1/pages/{slug} HTTP/1.1\r\nhost: api\r\nconnection: close\r\n\
         cf-access-jwt-assertion: {}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        user_token("ops@example.com"),
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(late).await;
    socket.write_all(body.as_bytes()).await.unwrap();
    e2e::answer_head(&mut socket, Duration::from_secs(30)).await
}

/// MariaDB out of connections (its `Too many connections`, 1040, as TiDB
/// Cloud refuses past a connection or request-unit quota): the reads that
/// need it and the writes are 503 problems with `Retry-After`, since the
/// request was sound and the client may retry, not a 500 that reports a
/// bug of ours; nothing is written; and once it has room again everything
/// works with no restart. (Found by loading a page write on 128
/// connections, where the API answered 500.)
async fn a_database_out_of_connections_is_a_503_to_retry_and_nothing_is_written() {
    use sqlx::Connection as _;

    let slug = create_page().await;
    let url = format!("{}/v1/pages/{slug}", api());
    let new_page = format!("{}/v1/pages/{}", api(), unique("never-"));
    let mut admin = e2e::database().await;
    let limit: i64 = sqlx::query_scalar("SELECT CAST(@@max_connections AS SIGNED)")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    sqlx::query("SET GLOBAL max_connections = 10")
        .execute(&mut admin)
        .await
        .unwrap();
    // The gateway's idle connections go, so that it has to open new ones;
    // then this test takes every connection MariaDB has left.
    let others: Vec<i64> = sqlx::query_scalar(
        "SELECT CAST(id AS SIGNED) FROM information_schema.processlist \
         WHERE user = 'app' AND id <> CONNECTION_ID()",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    for id in others {
        let _ = sqlx::query(&format!("KILL CONNECTION {id}"))
            .execute(&mut admin)
            .await;
    }
    let mut taken = Vec::new();
    let refusal = loop {
        // Connected by hand: the refusal is what this loop waits for.
        match sqlx::MySqlConnection::connect(&stack().mariadb.url).await {
            Ok(connection) => taken.push(connection),
            Err(e) => break e.to_string(),
        }
        assert!(taken.len() < 20, "MariaDB kept accepting connections");
    };
    let mut answers = Vec::new();
    for response in [
        http().get(&url).send().await.unwrap(),
        write_page(&url, "while full").await,
        write_page(&new_page, "while full").await,
    ] {
        let status = response.status();
        let retry_after = response.headers().get("retry-after").cloned();
        let content_type = response.headers().get("content-type").cloned();
        answers.push((
            status,
            retry_after,
            content_type,
            response.text().await.unwrap(),
        ));
    }
    // Room again before anything is asserted, so a failure here leaves the
    // other scenarios a working database.
    for connection in taken {
        let _ = connection.close().await;
    }
    sqlx::query(&format!("SET GLOBAL max_connections = {limit}"))
        .execute(&mut admin)
        .await
        .unwrap();

    assert!(refusal.contains("Too many connections"), "{refusal}");
    for (status, retry_after, content_type, body) in answers {
        assert_eq!(status, 503, "{body}");
        assert_eq!(retry_after.unwrap(), "5");
        assert_eq!(content_type.unwrap(), "application/problem+json");
        let problem: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(problem["type"], "/problems/unavailable", "{body}");
        assert!(!body.contains("Too many connections"), "{body}");
    }
    let revision: i64 = sqlx::query_scalar("SELECT revision FROM pages WHERE slug = ?")
        .bind(&slug)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(revision, 1, "a refused write left a revision");
    until_status(&new_page, 404).await;
    let written = write_page(&url, "after").await;
    assert_eq!(written.status(), 200);
    let page: Value = http().get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        (page["revision"].clone(), page["title"].clone()),
        (json!(2), json!("after"))
    );
}

/// Sets the stack's Redis `settings` (`CONFIG SET`) and returns what they
/// were, to set back the same way.
async fn set_redis_config(
    redis: &mut resp::Connection<tokio::net::TcpStream>,
    settings: &[(&str, String)],
) -> Vec<(String, String)> {
    use resp::cmd;

    let mut before = Vec::new();
    for (name, value) in settings {
        // A map in RESP3, which the stack's connections speak.
        let mut current: std::collections::HashMap<String, String> = redis
            .query(cmd("CONFIG").arg("GET").arg(*name))
            .await
            .unwrap();
        before.push((name.to_string(), current.remove(*name).unwrap()));
        let () = redis
            .query(cmd("CONFIG").arg("SET").arg(*name).arg(value.as_str()))
            .await
            .unwrap();
    }
    before
}

/// Sets back what [`set_redis_config`] returned, last setting first.
async fn restore_redis_config(
    redis: &mut resp::Connection<tokio::net::TcpStream>,
    before: Vec<(String, String)>,
) {
    let settings: Vec<(&str, String)> = before
        .iter()
        .rev()
        .map(|(name, value)| (name.as_str(), value.clone()))
        .collect();
    set_redis_config(redis, &settings).await;
}

/// Redis full: `maxmemory` reached under `noeviction` (a Redis Cloud
/// database whose memory holds keys without a TTL, or one set to refuse
/// rather than evict). It still answers, but refuses every command that
/// needs more memory: no entry can be filled, no version key created or
/// counted up with `INCR`. A page cached before is still served while it
/// is current; a write must still make that copy unreachable, since a
/// write never leaves a stale cache entry behind; reads after it come
/// from TiDB; and once Redis has room the cache fills again. (Found by
/// asking what a full Redis does: the invalidation's `INCR` was refused
/// and the old copy was served until its TTL, five minutes by default.)
async fn a_full_redis_still_invalidates_so_no_read_is_stale() {
    use resp::cmd;

    let url = cached_page().await;
    let new_page = format!("{}/v1/pages/{}", api(), unique("full-"));

    let mut redis = e2e::redis::open().await;
    // The policy first: with the limit first, Redis would evict at once.
    let before = set_redis_config(
        &mut redis,
        &[
            ("maxmemory-policy", "noeviction".into()),
            ("maxmemory", "1".into()),
        ],
    )
    .await;
    let refusal = redis
        .query::<()>(cmd("SET").arg(unique("full-probe-")).arg("x"))
        .await
        .map_err(|e| e.to_string());
    let hit_while_full = title_and_cache(&url).await;
    let counted_while_full = http()
        .get(&url)
        .send()
        .await
        .unwrap()
        .headers()
        .contains_key("ratelimit-limit");
    let written = write_page(&url, "while full").await.status();
    let read_after_write = title_and_cache(&url).await;
    let read_again = title_and_cache(&url).await;
    let created = write_page(&new_page, "new while full").await.status();
    let new_read = title_and_cache(&new_page).await;
    // Room again before anything is asserted, so a failure here leaves the
    // other scenarios a working Redis (the limit first, then the policy).
    restore_redis_config(&mut redis, before).await;
    let room_again = std::time::Instant::now();

    assert!(
        matches!(&refusal, Err(e) if e.contains("OOM")),
        "Redis was not full: {refusal:?}"
    );
    assert_eq!(
        hit_while_full,
        (200, json!("t"), "hit".into()),
        "a current entry is still served"
    );
    assert!(
        !counted_while_full,
        "the limiter cannot count in a full Redis: its policy (fail-open here) lets reads through"
    );
    assert_eq!(written, 200);
    for (read, what) in [(&read_after_write, "first"), (&read_again, "second")] {
        assert_eq!(
            (read.0, &read.1),
            (200, &json!("while full")),
            "{what} read after the write: {read:?}"
        );
        assert_ne!(read.2, "hit", "{what}: {read:?}");
    }
    assert_eq!(created, 201);
    assert_eq!((new_read.0, &new_read.1), (200, &json!("new while full")));
    until_the_cache_hits(&url, room_again, Duration::from_secs(10), |read| {
        assert_eq!((read.0, &read.1), (200, &json!("while full")), "{read:?}")
    })
    .await;
    let counted = http().get(&url).send().await.unwrap();
    assert!(counted.headers().contains_key("ratelimit-limit"));
}

/// Redis at its connection limit (`maxclients`; a Redis Cloud plan caps
/// connections, at 30 on the free one, and the Worker opens one per
/// request): it answers a new connection with an error and closes it.
/// Reads answer from TiDB, a write is answered, no read gets the page
/// cached before it, and once Redis takes connections again the write's
/// invalidation, tried again after the response, lands and the cache
/// hits again.
async fn redis_at_its_connection_limit_is_done_without_and_a_write_still_invalidates() {
    let url = cached_page().await;

    let mut redis = e2e::redis::open().await;
    let before = set_redis_config(&mut redis, &[("maxclients", "1".into())]).await;
    let refusal = {
        let target = &stack().redis;
        let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
            .await
            .unwrap();
        resp::Connection::open(
            tcp,
            &e2e::redis::options(),
            std::sync::Arc::new(outbound::TokioTimer),
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    let written = write_page(&url, "at the limit").await.status();
    let read_at_the_limit = title_and_cache(&url).await;
    restore_redis_config(&mut redis, before).await;
    let room_again = std::time::Instant::now();

    assert!(refusal.is_err(), "Redis took a connection past its limit");
    assert_eq!(written, 200);
    assert_eq!(
        read_at_the_limit,
        (200, json!("at the limit"), "pending".into())
    );
    written_page_is_read_until_the_cache_hits_it(&url, "at the limit", room_again).await;
}

async fn a_stopped_redis_and_database_come_back_after_a_restart() {
    let state = stack().state_dir.to_string_lossy().into_owned();
    let slug = create_page().await;
    let url = format!("{}/v1/pages/{slug}", api());

    let port = format!(":{}", stack().redis.port);
    // By name: Debian's redis-server is a link to redis-check-rdb, which
    // picks its role from the name it is started under.
    let redis_server = "redis-server".to_owned();
    let config = stack().state_dir.join("redis/redis.conf");
    let redis = Stopped::new(
        "redis",
        "redis-server",
        &port,
        Some(vec![redis_server, config.to_string_lossy().into_owned()]),
    );
    for _ in 0..3 {
        let response = http().get(&url).send().await.unwrap();
        assert_eq!(
            response.status(),
            200,
            "reads answer from TiDB without Redis"
        );
        let timing = response.headers()["server-timing"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(timing.contains("cache;desc=\"unavailable\""), "{timing}");
    }
    redis.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let response = http().get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let timing = response.headers()["server-timing"]
            .to_str()
            .unwrap()
            .to_owned();
        if timing.contains("cache;desc=\"hit\"") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the cache never came back: {timing}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let database = Stopped::new("mariadb", "mariadbd", &state, None);
    // A page never read (so not cached) must come from the database.
    let unread = format!("{}/v1/pages/{}", api(), unique("unread-"));
    let response = http().get(&unread).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "/problems/unavailable");
    let write = write_page(&url, "during the outage").await;
    assert_eq!(write.status(), 503);
    database.restart();
    until_status(&unread, 404).await;
    let page: Value = http().get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        page["revision"], 1,
        "the write refused during the outage left nothing"
    );
    assert_eq!(page["title"], "t");
}

/// Bugsink, Prometheus and Loki hung together: every answer is still what
/// it would be, and none waits for a sink (their sends time out after 3 s
/// in the background).
async fn frozen_telemetry_sinks_change_no_answer() {
    let slug = create_page().await;
    let _sinks = frozen_sinks();
    answers_do_not_wait_for_sinks(&slug, "frozen").await;
}

/// Bugsink, Prometheus and Loki stopped together (connections refused):
/// every answer is still what it would be, at once; started again, they
/// receive the Worker's telemetry again without the Worker restarting.
async fn stopped_telemetry_sinks_change_no_answer_and_are_used_again_once_back() {
    let slug = create_page().await;
    let sinks = stopped_sinks();
    answers_do_not_wait_for_sinks(&slug, "stopped").await;

    sinks.into_iter().for_each(Stopped::restart);
    until_sinks_ready().await;
    let marker = unique("sinks-back-");
    let ray = format!("{}-SJC", unique("ray"));
    let failed = http()
        .get(format!("{}/_test/fail?marker={marker}", api()))
        .header("cf-ray", &ray)
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 500);
    eventually("the event in the restarted Bugsink", || {
        e2e::sentry::event_containing(&marker)
    })
    .await;
    let loki = &stack().loki;
    eventually("the log line in the restarted Loki", || async {
        let answer = e2e::json(
            http()
                .get(format!("{}/loki/api/v1/query_range", loki.url))
                .basic_auth(&loki.user, Some(&loki.password))
                .query(&[("query", r#"{job="edge-api",level="error"}"#)]),
        )
        .await;
        answer.to_string().contains(&ray).then_some(())
    })
    .await;
    // Prometheus restarted with its data: the counts only grow, and this
    // isolate's next push (cumulative) includes the 500 above.
    eventually("the 5xx count in the restarted Prometheus", || async {
        let answer = e2e::json(
            http()
                .get(format!("{}/api/v1/query", stack().prometheus.url))
                .query(&[(
                    "query",
                    r#"sum(edge_api_request_duration_seconds_count{route="/_test/fail",status_class="5xx"})"#,
                )]),
        )
        .await;
        let value: f64 = answer["data"]["result"][0]["value"][1].as_str()?.parse().ok()?;
        (value >= 1.0).then_some(())
    })
    .await;
}

/// Health, a read and a forced 500 answer as they always do, and none
/// waits for a sink (sends end by a refused connection or, for a hung
/// sink, by their 3 s timeout, in the background).
async fn answers_do_not_wait_for_sinks(slug: &str, how: &str) {
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let health = http()
            .get(format!("{}/healthz", api()))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        let page = http()
            .get(format!("{}/v1/pages/{slug}", api()))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let failed = http()
            .get(format!("{}/_test/fail?marker={}", api(), unique(how)))
            .send()
            .await
            .unwrap();
        assert_eq!(failed.status(), 500);
        let body: Value = failed.json().await.unwrap();
        assert_eq!(body["type"], "/problems/internal");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "answers waited for a {how} sink: {:?}",
            started.elapsed()
        );
    }
}

/// Redis frozen while a cached page is written: the write is answered
/// though its invalidation fails, and until the invalidation lands the
/// isolate reads that page past the cache (`server-timing`'s
/// `cache;desc="pending"`), so no read gets the copy cached before the
/// write, not even once Redis is back and the copy is there again. The
/// invalidation is tried again after the response and lands within
/// seconds of Redis' return; then the cache fills and hits again. (Found
/// by asking what a Redis blip during a write leaves behind: the old copy,
/// for its whole TTL, five minutes by default.)
///
/// Each write also notes its page in TiDB (`page_cache_pending`), for
/// every other isolate's sake. Its try that lands removes its own note,
/// but not one another write put there since (the test stands in for that
/// write), and that one is removed all the same, before any cron: the
/// isolate found Redis answering again and sent every noted invalidation
/// after its next request.
async fn a_write_redis_missed_is_invalidated_once_redis_is_back() {
    let url = cached_page().await;
    let other_url = cached_page().await;
    let other = other_url.rsplit('/').next().unwrap().to_owned();
    let port = format!(":{}", stack().redis.port);
    let frozen = Frozen::new("redis-server", &port);
    let written = write_page(&url, "while frozen").await.status();
    let other_written = write_page(&other_url, "while frozen").await.status();
    let read_while_frozen = title_and_cache(&url).await;
    let slug = url.rsplit('/').next().unwrap();
    let noted = eventually("the writes' notes", || async {
        let notes = (
            missed_invalidations(slug).await,
            missed_invalidations(&other).await,
        );
        (notes.0.len() == 1 && notes.1.len() == 1).then_some(notes)
    })
    .await;
    sqlx::query("UPDATE page_cache_pending SET note = note - 1 WHERE slug = ?")
        .bind(&other)
        .execute(&mut e2e::database().await)
        .await
        .unwrap();
    // Long enough that the first tries after the response fail too.
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(frozen);
    let thawed = std::time::Instant::now();

    assert_eq!((written.as_u16(), other_written.as_u16()), (200, 200));
    assert_eq!(
        read_while_frozen,
        (200, json!("while frozen"), "pending".into())
    );
    written_page_is_read_until_the_cache_hits_it(&url, "while frozen", thawed).await;
    written_page_is_read_until_the_cache_hits_it(&other_url, "while frozen", thawed).await;
    let replaced = noted.1[0] - 1;
    eventually("both notes removed, without the cron", || async {
        let left = (
            missed_invalidations(slug).await,
            missed_invalidations(&other).await,
        );
        assert!(
            left.1.is_empty() || left.1 == [replaced],
            "only the test changes a note: {left:?}"
        );
        (left.0.is_empty() && left.1.is_empty()).then_some(())
    })
    .await;
}

/// What a write whose invalidation Redis missed must leave once Redis is
/// back (since `back`): reads of `url` all have the written `title`, never
/// the copy cached before the write, and within 10 s the cache hits again.
async fn written_page_is_read_until_the_cache_hits_it(
    url: &str,
    title: &str,
    back: std::time::Instant,
) {
    until_the_cache_hits(url, back, Duration::from_secs(10), |read| {
        assert_eq!(
            (read.0, &read.1),
            (200, &json!(title)),
            "a read after the write: {read:?}"
        )
    })
    .await;
}

/// Reads `url` until the cache hits, checking every read (status, title,
/// cache) with `each`, and asserts that the hit came within `within` of
/// `back`, when Redis was back.
async fn until_the_cache_hits(
    url: &str,
    back: std::time::Instant,
    within: Duration,
    each: impl Fn(&(u16, Value, String)),
) {
    eventually("a cache hit", || async {
        let read = title_and_cache(url).await;
        each(&read);
        (read.2 == "hit").then_some(())
    })
    .await;
    assert!(
        back.elapsed() < within,
        "the cache hit again {:?} after Redis was back",
        back.elapsed()
    );
}

/// Redis frozen (accepts, never answers): reads still answer from TiDB,
/// and only now and then does one wait for Redis. The first waits out its
/// exchange timeout (1 s); after that the Worker skips Redis for 2 s
/// (`api::redis::SKIP_FOR`) and then lets one request ask again, so over
/// 5 s of reads one at a time, a few wait and the rest answer at once.
/// Once Redis is back it is asked again, and the cache hits. (Before the
/// skip every read waited 1 s: 6 a second instead of 228 under `wrk -c8`.)
async fn reads_bypass_a_frozen_redis_without_waiting_for_it_and_the_cache_returns_after_it() {
    let url = cached_page().await;
    let mut answers = Vec::new();
    let first;
    {
        // redis-server retitles itself `redis-server 127.0.0.1:PORT`.
        let port = format!(":{}", stack().redis.port);
        let _frozen = Frozen::new("redis-server", &port);
        first = http().get(&url).send().await.unwrap();
        let loaded = std::time::Instant::now();
        while loaded.elapsed() < Duration::from_secs(5) {
            let started = std::time::Instant::now();
            let answer = title_and_cache(&url).await;
            answers.push((started.elapsed(), answer));
        }
    }
    let thawed = std::time::Instant::now();

    assert_eq!(first.status(), 200, "reads still answer from TiDB");
    let timing = first.headers()["server-timing"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(timing.contains("cache;desc=\"unavailable\""), "{timing}");
    assert!(timing.contains("db;dur="), "{timing}");
    // The limiter is fail-open locally: no RateLimit fields, no refusal.
    assert!(first.headers().get("ratelimit-limit").is_none());
    let page: Value = first.json().await.unwrap();
    assert_eq!(page["title"], "t");
    for (_, answer) in &answers {
        assert_eq!(answer, &(200, json!("t"), "unavailable".into()));
    }
    let waited = answers
        .iter()
        .filter(|(took, _)| *took >= Duration::from_millis(500))
        .count();
    assert!(
        answers.len() >= 20 && waited <= 3,
        "{} reads in 5 s, {waited} of them waited for Redis: {:?}",
        answers.len(),
        answers.iter().map(|(took, _)| took).collect::<Vec<_>>()
    );

    until_the_cache_hits(&url, thawed, Duration::from_secs(5), |read| {
        assert_eq!((read.0, &read.1), (200, &json!("t")), "{read:?}")
    })
    .await;
    let counted = http().get(&url).send().await.unwrap();
    assert!(
        counted.headers().contains_key("ratelimit-limit"),
        "the limiter counts again"
    );
}

/// `/readyz` gives each check 2 s (`READINESS_DEADLINE`) on the isolate's
/// timer. With the gateway frozen, the TiDB check's HTTP call waits for
/// its own 30 s timeout, so that deadline is what answers: a 503 document
/// saying which check failed, inside the request's 3 s. It once came only
/// at the request's deadline, 3 s (a sleep on the isolate's timer did not
/// end inside a request; see `WorkerTimer`).
async fn readiness_answers_inside_its_own_deadline_while_the_gateway_hangs() {
    let url = format!("{}/readyz", api());
    {
        let _frozen = Frozen::new("tidb-gateway", &listen_address(&stack().tidb.endpoint));
        let started = std::time::Instant::now();
        let response = http().get(&url).send().await.unwrap();
        let took = started.elapsed();
        assert_eq!(response.status(), 503);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["checks"]["tidb"]["ok"], false, "{body}");
        // A fixed category; the driver's error goes to the Worker's log.
        assert_eq!(body["checks"]["tidb"]["error"], "timeout", "{body}");
        assert!(body["checks"]["tidb"]["latency_ms"].is_number(), "{body}");
        assert_eq!(body["checks"]["redis"]["ok"], true, "{body}");
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_millis(2900),
            "took {took:?}"
        );
    }
    until_status(&url, 200).await;
}

async fn a_frozen_database_is_a_503_problem_and_recovery_needs_no_restart() {
    let slug = create_page().await;
    let url = format!("{}/v1/pages/{slug}/revisions", api());
    {
        let state = stack().state_dir.to_string_lossy().into_owned();
        let _frozen = Frozen::new("mariadbd", &state);
        // The gateway gives up after 2 s and reports the database
        // unreachable, within the Worker's 3 s deadline.
        let response = http().get(&url).send().await.unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        assert_eq!(response.headers()["retry-after"], "5");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["type"], "/problems/unavailable");
    }
    // The gateway's connections wake up with the server; give it a moment.
    let mut status = 0;
    for _ in 0..20 {
        status = http().get(&url).send().await.unwrap().status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(status, 200, "the same Worker answers again");
}
