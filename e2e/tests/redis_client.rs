//! The `resp` crate against the stack's real redis-server over TCP: the
//! handshake with the stack's password, commands on binary data,
//! pipelines, transactions, scripts, and what a deadline or a killed
//! connection does to a client.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::{stack, unique};
use outbound::TokioTimer;
use resp::{cmd, Connection, Error, LazyConnection, Options, Pipeline, Protocol, Script};
use tokio::net::TcpStream;

fn options() -> Options {
    Options {
        password: Some(stack().redis.password.clone()),
        timeout: Duration::from_secs(5),
        ..Options::default()
    }
}

async fn tcp() -> TcpStream {
    let redis = &stack().redis;
    TcpStream::connect((redis.host.as_str(), redis.port))
        .await
        .expect("redis listens")
}

async fn open_with(options: &Options) -> Result<Connection<TcpStream>, Error> {
    Connection::open(tcp().await, options, Arc::new(TokioTimer)).await
}

async fn open() -> Connection<TcpStream> {
    open_with(&options())
        .await
        .expect("handshake with the stack's password")
}

#[tokio::test]
async fn the_handshake_authenticates_names_selects_and_speaks_resp3() {
    let name = unique("e2e-resp-");
    let mut db1 = open_with(&Options {
        database: 1,
        client_name: Some(name.clone()),
        ..options()
    })
    .await
    .unwrap();
    assert_eq!(db1.protocol(), Protocol::Resp3);
    let pong: String = db1.query(cmd("PING")).await.unwrap();
    assert_eq!(pong, "PONG");
    let shown: Option<String> = db1.query(cmd("CLIENT").arg("GETNAME")).await.unwrap();
    assert_eq!(shown.as_deref(), Some(name.as_str()));

    let key = unique("e2e:resp:db:");
    let () = db1
        .query(cmd("SET").arg(&key).arg("in-1").arg("EX").arg(60))
        .await
        .unwrap();
    let mut db0 = open().await;
    let elsewhere: Option<String> = db0.query(cmd("GET").arg(&key)).await.unwrap();
    assert_eq!(elsewhere, None, "SELECT 1 put the key in database 1");
    let here: Option<String> = db1.query(cmd("GET").arg(&key)).await.unwrap();
    assert_eq!(here.as_deref(), Some("in-1"));
}

#[tokio::test]
async fn a_wrong_password_is_refused_with_an_auth_error_that_hides_it() {
    let wrong = Options {
        password: Some("not-the-stack-password-3141".into()),
        ..options()
    };
    let error = open_with(&wrong).await.unwrap_err();
    assert!(
        matches!(&error, Error::Auth(e) if e.code() == "WRONGPASS"),
        "{error:?}"
    );
    assert!(error.is_unavailable());
    for shown in [
        format!("{error}"),
        format!("{error:?}"),
        format!("{wrong:?}"),
    ] {
        assert!(!shown.contains("3141"), "password shown in {shown}");
    }

    let none = Options {
        password: None,
        ..options()
    };
    // No credentials for a server that wants them: HELLO itself is refused.
    let refused = open_with(&none).await.unwrap_err();
    assert!(
        matches!(&refused, Error::Auth(e) if e.code() == "NOAUTH"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn binary_values_counters_and_expiry_round_trip() {
    let mut conn = open().await;
    let key = unique("e2e:resp:bin:");
    let every_byte: Vec<u8> = (0..=255u8).chain([b'\r', b'\n', 0]).collect();
    let () = conn
        .query(cmd("SET").arg(&key).arg(&every_byte))
        .await
        .unwrap();
    let back: Option<Vec<u8>> = conn.query(cmd("GET").arg(&key)).await.unwrap();
    assert_eq!(back, Some(every_byte));
    assert!(conn
        .query::<bool>(cmd("EXPIRE").arg(&key).arg(60))
        .await
        .unwrap());
    let ttl: i64 = conn.query(cmd("TTL").arg(&key)).await.unwrap();
    assert!((1..=60).contains(&ttl), "{ttl}");

    let counter = unique("e2e:resp:n:");
    assert_eq!(
        conn.query::<i64>(cmd("INCR").arg(&counter)).await.unwrap(),
        1
    );
    assert_eq!(
        conn.query::<i64>(cmd("INCRBY").arg(&counter).arg(41))
            .await
            .unwrap(),
        42
    );
    let as_text: String = conn.query(cmd("GET").arg(&counter)).await.unwrap();
    assert_eq!(as_text, "42");
    assert!(!conn
        .query::<bool>(cmd("EXPIRE").arg(unique("e2e:resp:none:")).arg(60))
        .await
        .unwrap());

    // A server error answers one command; the connection carries on.
    let wrong = conn.query::<i64>(cmd("INCR").arg(&key)).await.unwrap_err();
    assert_eq!(wrong.server_code(), Some("ERR"), "{wrong:?}");
    let missing: Option<Vec<u8>> = conn
        .query(cmd("GET").arg(unique("e2e:resp:none:")))
        .await
        .unwrap();
    assert_eq!(missing, None);

    let hash = unique("e2e:resp:h:");
    let fields: i64 = conn
        .query(cmd("HSET").arg(&hash).args(["a", "1", "b", "2"]))
        .await
        .unwrap();
    assert_eq!(fields, 2);
    let all: HashMap<String, i64> = conn.query(cmd("HGETALL").arg(&hash)).await.unwrap();
    assert_eq!(all, HashMap::from([("a".into(), 1), ("b".into(), 2)]));
    let _: i64 = conn
        .query(cmd("DEL").arg(&key).arg(&counter).arg(&hash))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_pipeline_of_a_hundred_commands_answers_each_in_order() {
    let mut conn = open().await;
    let prefix = unique("e2e:resp:p:");
    let text = format!("{prefix}text");
    let () = conn
        .query(cmd("SET").arg(&text).arg("not a number").arg("EX").arg(60))
        .await
        .unwrap();

    let mut pipeline = Pipeline::new();
    for i in 0..98 {
        pipeline.push(
            cmd("SET")
                .arg(format!("{prefix}{i}"))
                .arg(i * 3)
                .arg("EX")
                .arg(60),
        );
    }
    pipeline.push(cmd("INCR").arg(&text));
    pipeline.push(cmd("MGET").args((0..98).map(|i| format!("{prefix}{i}"))));
    assert_eq!(pipeline.len(), 100);

    let mut replies = conn.pipeline(&pipeline).await.unwrap();
    for _ in 0..98 {
        let () = replies.take().unwrap();
    }
    let error = replies.take::<i64>().unwrap_err();
    assert_eq!(error.server_code(), Some("ERR"), "{error:?}");
    let values: Vec<Option<i64>> = replies.take().unwrap();
    assert_eq!(values, (0..98).map(|i| Some(i * 3)).collect::<Vec<_>>());
    assert!(replies.is_empty());
    assert!(conn.is_usable());
}

#[tokio::test]
async fn multi_exec_runs_all_commands_and_reports_each() {
    let mut conn = open().await;
    let key = unique("e2e:resp:tx:");
    let tx = Pipeline::new()
        .with(cmd("INCR").arg(&key))
        .with(cmd("EXPIRE").arg(&key).arg(60))
        .with(cmd("LPUSH").arg(&key).arg("x"))
        .with(cmd("GET").arg(&key));
    let mut results = conn
        .transaction(&tx)
        .await
        .unwrap()
        .expect("nothing watched");
    assert_eq!(results.take::<i64>().unwrap(), 1);
    assert!(results.take::<bool>().unwrap());
    assert_eq!(
        results.take::<i64>().unwrap_err().server_code(),
        Some("WRONGTYPE")
    );
    assert_eq!(results.take::<String>().unwrap(), "1");

    let refused = conn
        .transaction(
            &Pipeline::new()
                .with(cmd("INCR").arg(&key))
                .with(cmd("NO-SUCH-COMMAND")),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.server_code(), Some("EXECABORT"), "{refused:?}");
    assert!(refused.to_string().contains("unknown command"), "{refused}");
    let unchanged: i64 = conn.query(cmd("GET").arg(&key)).await.unwrap();
    assert_eq!(unchanged, 1, "an aborted transaction ran nothing");
}

#[tokio::test]
async fn a_watched_key_changed_by_another_client_aborts_exec() {
    let mut conn = open().await;
    let mut other = open().await;
    let key = unique("e2e:resp:watch:");
    let tx = Pipeline::new().with(cmd("SET").arg(&key).arg("mine").arg("EX").arg(60));

    let () = conn.query(cmd("WATCH").arg(&key)).await.unwrap();
    let () = other
        .query(cmd("SET").arg(&key).arg("theirs").arg("EX").arg(60))
        .await
        .unwrap();
    assert!(
        conn.transaction(&tx).await.unwrap().is_none(),
        "EXEC aborted"
    );
    let value: String = conn.query(cmd("GET").arg(&key)).await.unwrap();
    assert_eq!(value, "theirs");

    // EXEC ends the WATCH: the same transaction now goes through.
    let () = conn.query(cmd("WATCH").arg(&key)).await.unwrap();
    let mut ran = conn
        .transaction(&tx)
        .await
        .unwrap()
        .expect("no conflict this time");
    let () = ran.take().unwrap();
    let value: String = other.query(cmd("GET").arg(&key)).await.unwrap();
    assert_eq!(value, "mine");
}

#[tokio::test]
async fn a_script_new_to_the_server_is_loaded_by_eval_then_run_by_sha() {
    let mut conn = open().await;
    // A source no other run has sent, so the server cannot have it cached.
    let marker = unique("");
    let script = Script::new(format!(
        "-- {marker}\nlocal n = redis.call('INCRBY', KEYS[1], ARGV[1])\n\
         redis.call('EXPIRE', KEYS[1], 60)\nreturn n"
    ));
    assert_eq!(cached(&mut conn, &script).await, vec![false]);

    let key = unique("e2e:resp:lua:");
    let first: i64 = conn.invoke(script.call().key(&key).arg(5)).await.unwrap();
    assert_eq!(first, 5);
    assert_eq!(
        cached(&mut conn, &script).await,
        vec![true],
        "EVAL cached it"
    );
    let second: i64 = conn.invoke(script.call().key(&key).arg(5)).await.unwrap();
    assert_eq!(second, 10);

    let failing = Script::new(format!("-- {marker}\nreturn redis.call('NO-SUCH-COMMAND')"));
    let error = conn.invoke::<i64>(failing.call()).await.unwrap_err();
    assert!(matches!(error, Error::Server(_)), "{error:?}");
    assert!(conn.is_usable());
}

#[tokio::test]
async fn scripts_invoked_together_each_run_once_and_answer_in_order() {
    let mut conn = open().await;
    let marker = unique("");
    let counter = Script::new(format!(
        "-- {marker}\nlocal n = redis.call('INCR', KEYS[1])\n\
         redis.call('EXPIRE', KEYS[1], 60)\nreturn n"
    ));
    let reader = Script::new(format!("-- {marker}\nreturn redis.call('GET', KEYS[1])"));
    let failing = Script::new(format!("-- {marker}\nreturn redis.call('NO-SUCH-COMMAND')"));
    let (count, value) = (unique("e2e:resp:all:n:"), unique("e2e:resp:all:v:"));
    let () = conn
        .query(cmd("SET").arg(&value).arg("held").arg("EX").arg(60))
        .await
        .unwrap();
    // Loaded, so one script is known and the other two are not.
    let _: Vec<u8> = conn.invoke(reader.call().key(&value)).await.unwrap();
    assert_eq!(cached(&mut conn, &counter).await, vec![false]);

    for expected in [1, 2] {
        let results = conn
            .invoke_all(&[
                counter.call().key(&count),
                failing.call(),
                reader.call().key(&value),
            ])
            .await
            .unwrap();
        let [counted, failed, read] = <[_; 3]>::try_from(results).unwrap();
        assert_eq!(
            counted.unwrap().convert::<i64>().unwrap(),
            expected,
            "ran once each time"
        );
        assert!(matches!(failed, Err(Error::Server(_))), "{failed:?}");
        assert_eq!(read.unwrap().convert::<String>().unwrap(), "held");
    }
    assert_eq!(
        cached(&mut conn, &counter).await,
        vec![true],
        "EVAL cached it"
    );
    assert!(conn.is_usable());
}

async fn cached(conn: &mut Connection<TcpStream>, script: &Script) -> Vec<bool> {
    let query = cmd("SCRIPT").arg("EXISTS").arg(script.sha1());
    conn.query(query).await.unwrap()
}

#[tokio::test]
async fn a_blocked_command_hits_the_deadline_and_the_connection_is_given_up() {
    let mut conn = open_with(&Options {
        timeout: Duration::from_millis(300),
        ..options()
    })
    .await
    .unwrap();
    let empty = unique("e2e:resp:empty:");
    let started = Instant::now();
    let error = conn
        .query::<Option<Vec<String>>>(cmd("BLPOP").arg(&empty).arg(10))
        .await
        .unwrap_err();
    assert_eq!(error, Error::Timeout(Duration::from_millis(300)));
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(3), "{waited:?}");

    let started = Instant::now();
    let later = conn.query::<String>(cmd("PING")).await.unwrap_err();
    assert!(matches!(later, Error::Unusable(ref cause) if matches!(**cause, Error::Timeout(_))));
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "failed at once"
    );
}

#[tokio::test]
async fn a_connection_killed_by_the_server_reports_closed_then_unusable() {
    let mut victim = open().await;
    let id: i64 = victim.query(cmd("CLIENT").arg("ID")).await.unwrap();
    let mut admin = open().await;
    let killed: i64 = admin
        .query(cmd("CLIENT").arg("KILL").arg("ID").arg(id))
        .await
        .unwrap();
    assert_eq!(killed, 1);

    let error = victim.query::<String>(cmd("PING")).await.unwrap_err();
    assert_eq!(error, Error::Closed);
    assert!(!victim.is_usable());
    let later = victim.query::<String>(cmd("PING")).await.unwrap_err();
    assert_eq!(later, Error::Unusable(Box::new(Error::Closed)));
}

async fn client_list(conn: &mut Connection<TcpStream>) -> String {
    conn.query(cmd("CLIENT").arg("LIST")).await.unwrap()
}

#[tokio::test]
async fn a_lazy_connection_reaches_redis_only_when_first_used() {
    let name = unique("e2e-lazy-");
    let mut lazy = LazyConnection::new(
        || TcpStream::connect((stack().redis.host.clone(), stack().redis.port)),
        Options {
            client_name: Some(name.clone()),
            ..options()
        },
        Arc::new(TokioTimer),
    );
    let mut observer = open().await;
    assert!(
        !client_list(&mut observer).await.contains(&name),
        "not connected yet"
    );
    assert!(!lazy.was_attempted());

    let pong: String = lazy.query(cmd("PING")).await.unwrap();
    assert_eq!(pong, "PONG");
    let again: String = lazy.query(cmd("ECHO").arg("hi")).await.unwrap();
    assert_eq!(again, "hi");
    let list = client_list(&mut observer).await;
    assert_eq!(list.matches(&name).count(), 1, "one connection: {list}");
}

#[tokio::test]
async fn a_resp2_deferred_handshake_authenticates_and_names_with_the_first_command() {
    let name = unique("e2e-resp2-");
    let key = unique("e2e:resp2:");
    let options = Options {
        client_name: Some(name.clone()),
        ..options()
    };
    let mut conn = Connection::deferred_resp2(tcp().await, &options, Arc::new(TokioTimer));
    let counted: i64 = conn.query(cmd("INCR").arg(&key)).await.unwrap();
    assert_eq!(counted, 1);
    assert_eq!(conn.protocol(), Protocol::Resp2);
    let shown: Option<String> = conn.query(cmd("CLIENT").arg("GETNAME")).await.unwrap();
    assert_eq!(shown.as_deref(), Some(name.as_str()));

    let wrong = Options {
        password: Some("not-the-stack-password-2718".into()),
        ..options.clone()
    };
    let mut refused = Connection::deferred_resp2(tcp().await, &wrong, Arc::new(TokioTimer));
    let error = refused
        .query::<i64>(cmd("INCR").arg(&key))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::Auth(e) if e.code() == "WRONGPASS"),
        "{error:?}"
    );
    assert!(!format!("{error:?}").contains("2718"));
    let after: i64 = conn.query(cmd("GET").arg(&key)).await.unwrap();
    assert_eq!(after, 1, "the refused connection's INCR never ran");
}
