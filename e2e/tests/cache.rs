//! The `cache` crate against the stack's real redis-server: miss, fill,
//! hit; invalidation; the race between a reader's fill and a writer's
//! invalidation; TTLs within their jitter; groups; and versions that stay
//! new when a version key is lost.

use std::sync::Arc;
use std::time::Duration;

use cache::{fill, invalidate, invalidate_group, lookup, Group, Key, Lookup, Ttl, VERSION_TTL};
use e2e::{stack, unique};
use outbound::TokioTimer;
use resp::{cmd, Connection, LazyConnection};
use tokio::net::TcpStream;

use e2e::redis::{open, options};

/// A page slug no other test (or run) uses.
fn slug() -> String {
    unique("e2e-page-")
}

const TEN_MINUTES: Ttl = Ttl {
    base: Duration::from_secs(600),
    jitter: 0.1,
};

/// A connection and a new page key whose entry holds `b"old"`, with the
/// version it was filled under.
async fn an_old_entry(random: u64) -> (Connection<TcpStream>, Key, u64) {
    let mut conn = open().await;
    let key = Key::new("page", &slug());
    let looked_up = lookup(&mut conn, &key).await.unwrap();
    assert!(fill(
        &mut conn,
        &key,
        looked_up.version,
        b"old",
        TEN_MINUTES,
        random
    )
    .await
    .unwrap());
    (conn, key, looked_up.version)
}

#[tokio::test]
async fn a_miss_is_filled_and_then_hit() {
    let mut conn = open().await;
    let key = Key::new("page", &slug());
    let first = lookup(&mut conn, &key).await.unwrap();
    assert_eq!(first.value, None);

    let page = b"{\"title\":\"caf\xc3\xa9\"}\x00\xff".to_vec();
    assert!(fill(&mut conn, &key, first.version, &page, TEN_MINUTES, 1)
        .await
        .unwrap());
    let second = lookup(&mut conn, &key).await.unwrap();
    assert_eq!(
        second,
        Lookup {
            version: first.version,
            value: Some(page),
        },
        "bytes come back as they went in"
    );
}

#[tokio::test]
async fn an_invalidated_entry_misses_under_a_new_version() {
    let (mut conn, key, before) = an_old_entry(2).await;

    let new_version = invalidate(&mut conn, &key).await.unwrap();
    assert!(new_version > before);
    let after = lookup(&mut conn, &key).await.unwrap();
    assert_eq!(
        after,
        Lookup {
            version: new_version,
            value: None,
        }
    );

    fill(&mut conn, &key, after.version, b"new", TEN_MINUTES, 3)
        .await
        .unwrap();
    let hit = lookup(&mut conn, &key).await.unwrap();
    assert_eq!(hit.value.as_deref(), Some(&b"new"[..]));
}

#[tokio::test]
async fn a_fill_that_raced_a_write_is_never_served() {
    let mut reader = open().await;
    let mut writer = open().await;
    let key = Key::new("page", &slug());

    // The reader misses and goes to the database...
    let seen = lookup(&mut reader, &key).await.unwrap();
    assert_eq!(seen.value, None);
    // ...meanwhile a writer commits and invalidates...
    invalidate(&mut writer, &key).await.unwrap();
    // ...and the reader, with what it read before the commit, fills.
    let stored = fill(&mut reader, &key, seen.version, b"stale", TEN_MINUTES, 4)
        .await
        .unwrap();
    assert!(!stored, "the fill sees the version moved and keeps nothing");
    let exists: i64 = reader
        .query(cmd("EXISTS").arg(key.data_key(seen.version)))
        .await
        .unwrap();
    assert_eq!(exists, 0);

    let next = lookup(&mut reader, &key).await.unwrap();
    assert_eq!(next.value, None, "the stale page is not served");
    assert_ne!(next.version, seen.version);
}

#[tokio::test]
async fn the_ttl_is_within_its_jitter_bounds() {
    let mut conn = open().await;
    let ttl = Ttl {
        base: Duration::from_secs(100),
        jitter: 0.2,
    };
    let mut seen = Vec::new();
    for random in [0, u64::MAX, 40_000, 0x9e37_79b9_7f4a_7c15, 123_456_789] {
        let key = Key::new("page", &slug());
        let found = lookup(&mut conn, &key).await.unwrap();
        fill(&mut conn, &key, found.version, b"x", ttl, random)
            .await
            .unwrap();
        let pttl: i64 = conn
            .query(cmd("PTTL").arg(key.data_key(found.version)))
            .await
            .unwrap();
        let expected = ttl.pick(random).as_millis() as i64;
        // PTTL counts down from the moment of the SET.
        assert!(
            expected - 1_000 < pttl && pttl <= expected,
            "random {random}: PTTL {pttl}, picked {expected}"
        );
        assert!((80_000 - 1_000..=120_000).contains(&pttl), "{pttl}");
        seen.push(pttl);
    }
    assert!(seen[0] <= 80_000, "random 0 is the low end: {seen:?}");
    assert!(seen[2] > 119_000, "40000 is the high end: {seen:?}");
}

#[tokio::test]
async fn version_keys_live_long_and_are_refreshed_by_invalidation() {
    let mut conn = open().await;
    let key = Key::new("page", &slug());
    lookup(&mut conn, &key).await.unwrap();
    let pttl: i64 = conn
        .query(cmd("PTTL").arg(key.version_key()))
        .await
        .unwrap();
    let long = VERSION_TTL.as_millis() as i64;
    assert!(long - 60_000 < pttl && pttl <= long, "{pttl}");

    let () = conn
        .query(cmd("PEXPIRE").arg(key.version_key()).arg(5_000))
        .await
        .unwrap();
    invalidate(&mut conn, &key).await.unwrap();
    let pttl: i64 = conn
        .query(cmd("PTTL").arg(key.version_key()))
        .await
        .unwrap();
    assert!(long - 60_000 < pttl, "{pttl}");
}

#[tokio::test]
async fn a_lost_version_key_restarts_at_a_newer_version() {
    // Redis Cloud evicts keys with a TTL under memory pressure; a version
    // starting again from 0 or 1 could find old data still alive there.
    let (mut conn, key, _) = an_old_entry(5).await;
    for _ in 0..3 {
        invalidate(&mut conn, &key).await.unwrap();
    }
    let bumped = lookup(&mut conn, &key).await.unwrap();
    fill(&mut conn, &key, bumped.version, b"also old", TEN_MINUTES, 6)
        .await
        .unwrap();

    let () = conn.query(cmd("DEL").arg(key.version_key())).await.unwrap();
    let fresh = lookup(&mut conn, &key).await.unwrap();
    assert!(
        fresh.version > bumped.version,
        "{} after {}",
        fresh.version,
        bumped.version
    );
    assert_eq!(fresh.value, None);

    // And an invalidation of a lost version starts from the clock as well.
    let () = conn.query(cmd("DEL").arg(key.version_key())).await.unwrap();
    let moved = invalidate(&mut conn, &key).await.unwrap();
    assert!(moved > fresh.version, "{moved} after {}", fresh.version);
    // Versions are Redis' clock in microseconds, not small counters.
    let (secs, _micros): (u64, u64) = conn.query(cmd("TIME")).await.unwrap();
    assert!(
        moved / 1_000_000 <= secs && moved / 1_000_000 + 5 > secs,
        "{moved}"
    );
}

/// Where Redis will not count a version up, the invalidation drops it, as
/// an eviction would, and the next lookup starts from the clock. Here the
/// key holds no number; a full Redis, which refuses `INCR` itself, is the
/// outages test's (it would fail every other test of this binary).
#[tokio::test]
async fn a_version_redis_cannot_count_up_is_dropped_for_a_newer_one() {
    let (mut conn, key, first) = an_old_entry(7).await;
    let () = conn
        .query(cmd("SET").arg(key.version_key()).arg("not a number"))
        .await
        .unwrap();

    let dropped = invalidate(&mut conn, &key).await.unwrap();
    let left: i64 = conn
        .query(cmd("EXISTS").arg(key.version_key()))
        .await
        .unwrap();
    assert_eq!(left, 0, "the version key was dropped");
    assert!(dropped > first, "{dropped} after {}", first);
    let fresh = lookup(&mut conn, &key).await.unwrap();
    assert!(
        fresh.version >= dropped,
        "{} after {dropped}",
        fresh.version
    );
    assert_eq!(fresh.value, None);
}

#[tokio::test]
async fn a_group_is_invalidated_at_once_and_alone() {
    let mut conn = open().await;
    let list = Group::new("pages-list", &unique("all-"));
    let first_page = list.key("cursor=&limit=20");
    let second_page = list.key("cursor=abc&limit=20");
    let item = Key::new("page", &slug());
    for (key, body) in [(&first_page, "p1"), (&second_page, "p2"), (&item, "item")] {
        let found = lookup(&mut conn, key).await.unwrap();
        assert!(fill(
            &mut conn,
            key,
            found.version,
            body.as_bytes(),
            TEN_MINUTES,
            7
        )
        .await
        .unwrap());
    }
    assert_eq!(
        lookup(&mut conn, &second_page)
            .await
            .unwrap()
            .value
            .as_deref(),
        Some(&b"p2"[..])
    );

    invalidate_group(&mut conn, &list).await.unwrap();
    assert_eq!(lookup(&mut conn, &first_page).await.unwrap().value, None);
    assert_eq!(lookup(&mut conn, &second_page).await.unwrap().value, None);
    assert_eq!(
        lookup(&mut conn, &item).await.unwrap().value.as_deref(),
        Some(&b"item"[..]),
        "entries outside the group keep their data"
    );
}

#[tokio::test]
async fn the_cache_works_through_a_lazy_connection_with_a_send_future() {
    let mut lazy = LazyConnection::new(
        || TcpStream::connect((stack().redis.host.clone(), stack().redis.port)),
        options(),
        Arc::new(TokioTimer),
    );
    fn assert_send<T: Send>(t: T) -> T {
        t
    }
    let key = Key::new("page", &format!("{} with spaces/and/slashes?", slug()));
    let found = assert_send(lookup(&mut lazy, &key)).await.unwrap();
    assert!(fill(&mut lazy, &key, found.version, b"odd", TEN_MINUTES, 8)
        .await
        .unwrap());
    let hit = lookup(&mut lazy, &key).await.unwrap();
    assert_eq!(hit.value.as_deref(), Some(&b"odd"[..]));
    invalidate(&mut lazy, &key).await.unwrap();
}
