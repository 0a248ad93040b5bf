//! The `ratelimit` crate against the stack's real redis-server: bursts,
//! refusals and their Retry-After, keys per client and class, expiry of
//! idle state, many connections racing for one allowance, and the Lua
//! script held to the Rust reference (`ratelimit::step`) on the same
//! inputs.

use std::sync::Arc;
use std::time::Duration;

use e2e::{stack, unique};
use outbound::TokioTimer;
use ratelimit::{check, check_at, decide_on_error, key, step, Limit, Policy};
use resp::{cmd, Connection, LazyConnection};
use tokio::net::TcpStream;

use e2e::redis::{open, options};

/// A route class no other test (or run) uses.
fn class() -> String {
    unique("e2e-")
}

/// Redis' clock in microseconds.
async fn redis_now_us(conn: &mut Connection<TcpStream>) -> u64 {
    let (secs, micros): (u64, u64) = conn.query(cmd("TIME")).await.unwrap();
    secs * 1_000_000 + micros
}

#[tokio::test]
async fn a_burst_is_allowed_then_refused_with_retry_after_then_allowed_again() {
    // One request per 200 ms on average, three at once.
    let limit = Limit {
        rate: 5,
        period: Duration::from_secs(1),
        burst: 3,
    };
    let key = key(&class(), "192.0.2.10");
    let mut conn = open().await;

    let mut remaining = Vec::new();
    for _ in 0..3 {
        let d = check(&mut conn, &key, &limit).await.unwrap();
        assert!(d.allowed, "{d:?}");
        remaining.push(d.remaining);
    }
    assert_eq!(remaining, [2, 1, 0]);

    let refused = check(&mut conn, &key, &limit).await.unwrap();
    assert!(!refused.allowed, "{refused:?}");
    let retry_after = refused.retry_after.expect("a refusal says when to retry");
    assert!(
        retry_after > Duration::ZERO && retry_after <= Duration::from_millis(200),
        "{retry_after:?}"
    );
    let headers = refused.headers();
    assert!(
        headers.contains(&("Retry-After", "1".to_owned())),
        "{headers:?}"
    );
    assert!(
        headers.contains(&("RateLimit-Remaining", "0".to_owned())),
        "{headers:?}"
    );
    assert!(
        headers.contains(&("RateLimit-Limit", "3".to_owned())),
        "{headers:?}"
    );

    tokio::time::sleep(retry_after + Duration::from_millis(20)).await;
    let again = check(&mut conn, &key, &limit).await.unwrap();
    assert!(again.allowed, "{again:?}");
    assert_eq!(again.remaining, 0);
}

#[tokio::test]
async fn keys_are_per_client_and_per_class() {
    let one_an_hour = Limit {
        rate: 1,
        period: Duration::from_secs(3600),
        burst: 1,
    };
    let (reads, writes) = (class(), class());
    let mut conn = open().await;
    async fn allowed(conn: &mut Connection<TcpStream>, key: String, limit: &Limit) -> bool {
        check(conn, &key, limit).await.unwrap().allowed
    }
    let c = &mut conn;
    let limit = &one_an_hour;

    assert!(allowed(c, key(&reads, "192.0.2.1"), limit).await);
    assert!(
        !allowed(c, key(&reads, "192.0.2.1"), limit).await,
        "used up"
    );
    assert!(
        allowed(c, key(&reads, "192.0.2.2"), limit).await,
        "another client"
    );
    assert!(
        allowed(c, key(&writes, "192.0.2.1"), limit).await,
        "another class"
    );
    assert!(allowed(c, key(&reads, "2001:db8:7:7::1"), limit).await);
    assert!(
        !allowed(c, key(&reads, "2001:db8:7:7::2"), limit).await,
        "one /64 shares its allowance"
    );
    assert!(
        !allowed(c, key(&reads, "192.0.2.1"), limit).await,
        "still used up"
    );
}

#[tokio::test]
async fn the_state_expires_when_it_stops_mattering() {
    let limit = Limit {
        rate: 10,
        period: Duration::from_secs(60),
        burst: 4,
    };
    let key = key(&class(), "192.0.2.20");
    let mut conn = open().await;
    let d = check(&mut conn, &key, &limit).await.unwrap();
    let pttl: i64 = conn.query(cmd("PTTL").arg(&key)).await.unwrap();
    // One interval (6 s) ahead of now: the TTL is the reset time.
    assert!(pttl > 5_000 && pttl <= 6_000, "PTTL {pttl}");
    assert!(d.reset_after <= Duration::from_secs(6), "{d:?}");
    assert_eq!(d.headers()[2], ("RateLimit-Reset", "6".to_owned()));

    // After a refusal the TTL is unchanged (nothing is written).
    for _ in 0..4 {
        check(&mut conn, &key, &limit).await.unwrap();
    }
    let before: i64 = conn.query(cmd("PTTL").arg(&key)).await.unwrap();
    let refused = check(&mut conn, &key, &limit).await.unwrap();
    assert!(!refused.allowed);
    let after: i64 = conn.query(cmd("PTTL").arg(&key)).await.unwrap();
    assert!(after <= before && before <= 24_000, "{before} then {after}");
}

#[tokio::test]
async fn the_stored_time_comes_from_redis_clock_to_the_microsecond() {
    let limit = Limit {
        rate: 1,
        period: Duration::from_secs(10),
        burst: 2,
    };
    let key = key(&class(), "192.0.2.30");
    let mut conn = open().await;
    let before = redis_now_us(&mut conn).await;
    check(&mut conn, &key, &limit).await.unwrap();
    let after = redis_now_us(&mut conn).await;
    let tat: String = conn.query(cmd("GET").arg(&key)).await.unwrap();
    let tat: u64 = tat.parse().expect("the TAT is an integer, not 1.7e+15");
    assert!(
        before + 10_000_000 <= tat && tat <= after + 10_000_000,
        "{before} <= {tat} - 10 s <= {after}"
    );
}

#[tokio::test]
async fn the_script_agrees_with_the_rust_reference() {
    let limits = [
        Limit {
            rate: 3,
            period: Duration::from_secs(1),
            burst: 4,
        },
        Limit {
            rate: 7,
            period: Duration::from_millis(900),
            burst: 1,
        },
        Limit {
            rate: 1000,
            period: Duration::from_secs(60),
            burst: 25,
        },
    ];
    let mut conn = open().await;
    for limit in limits {
        let key = key(&class(), "192.0.2.40");
        // A realistic epoch in microseconds (16 digits), so a number that
        // lost precision on its way through Lua would show.
        let mut now_us: u64 = 1_765_432_109_876_543;
        let mut model: Option<u64> = None;
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut allowed = 0;
        for i in 0..300 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Mostly bursts, sometimes a pause of up to two intervals.
            // At least a millisecond a step, more than a round trip takes:
            // Redis expires the key by its real clock, so the test's
            // timeline must not run slower than real time.
            now_us += 1000
                + match seed % 4 {
                    0 => seed % (2 * limit.interval_us() + 1),
                    _ => seed % 1000,
                };
            let (expected, store) = step(&limit, model, now_us);
            if store.is_some() {
                model = store;
            }
            let got = check_at(&mut conn, &key, &limit, Duration::from_micros(now_us))
                .await
                .unwrap();
            assert_eq!(got, expected, "{limit:?}, request {i} at {now_us}");
            let stored: Option<String> = conn.query(cmd("GET").arg(&key)).await.unwrap();
            let stored = stored.map(|s| s.parse::<u64>().unwrap());
            // Redis expires the key by its own clock, the model never; both
            // only matter while the TAT is ahead of `now`, where they agree.
            assert_eq!(stored.or(model), model, "{limit:?}, request {i}");
            allowed += u32::from(got.allowed);
        }
        assert!(allowed > 0 && allowed < 300, "{limit:?}: {allowed} allowed");
    }
}

#[tokio::test]
async fn concurrent_checks_from_many_connections_never_exceed_the_limit() {
    // Nothing leaks back during the test: only the burst can be had.
    let limit = Limit {
        rate: 1,
        period: Duration::from_secs(3600),
        burst: 5,
    };
    let key = key(&class(), "192.0.2.50");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = open().await;
            let mut allowed = 0u32;
            for _ in 0..10 {
                allowed += u32::from(check(&mut conn, &key, &limit).await.unwrap().allowed);
            }
            allowed
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    assert_eq!(total, 5, "80 attempts, a burst of 5");
}

#[tokio::test]
async fn a_lazy_connection_is_checked_through_and_its_future_is_send() {
    let limit = Limit {
        rate: 1,
        period: Duration::from_secs(60),
        burst: 2,
    };
    let key = key(&class(), "192.0.2.60");
    let mut lazy = LazyConnection::new(
        || TcpStream::connect((stack().redis.host.clone(), stack().redis.port)),
        options(),
        Arc::new(TokioTimer),
    );
    fn assert_send<T: Send>(t: T) -> T {
        t
    }
    let d = assert_send(check(&mut lazy, &key, &limit)).await.unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 1));
    assert!(lazy.was_attempted());
}

#[tokio::test]
async fn when_redis_cannot_be_reached_the_policy_decides() {
    // A port nothing listens on: connecting is refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut lazy = LazyConnection::new(
        move || TcpStream::connect(("127.0.0.1", port)),
        options(),
        Arc::new(TokioTimer),
    );
    let limit = Limit {
        rate: 1,
        period: Duration::from_secs(1),
        burst: 1,
    };
    let error = check(&mut lazy, &key("read", "192.0.2.70"), &limit)
        .await
        .unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
    assert_eq!(decide_on_error(Policy::FailOpen), Ok(()));
    let refusal = decide_on_error(Policy::FailClosed).unwrap_err();
    assert_eq!(refusal.headers(), [("Retry-After", "5".to_owned())]);
}
