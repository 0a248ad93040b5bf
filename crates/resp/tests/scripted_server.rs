//! The client against a scripted server on the other end of an in-memory
//! pipe: the exact bytes each request puts on the wire (and in how many
//! writes), how replies of every RESP type come back, and what happens
//! when the server is slow, hangs up or sends garbage.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use outbound::{BoxFuture, Timer};
use resp::{cmd, Connection, Error, LazyConnection, Options, Pipeline, Protocol, Reply, Script};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::task::JoinHandle;

struct TokioTimer;

impl Timer for TokioTimer {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

fn timer() -> Arc<dyn Timer> {
    Arc::new(TokioTimer)
}

/// Every write the client made, in order.
type Writes = Arc<Mutex<Vec<Vec<u8>>>>;

/// The client's end of the pipe, remembering every `poll_write` so a test
/// can tell one write from several.
struct Recorded {
    inner: DuplexStream,
    writes: Writes,
}

impl AsyncRead for Recorded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Recorded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = polled {
            self.writes.lock().unwrap().push(buf[..written].to_vec());
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What the scripted server does, in order.
enum Step {
    /// Reads exactly these bytes (fails the test otherwise).
    Expect(Vec<u8>),
    /// Writes these bytes.
    Send(Vec<u8>),
    /// Answers nothing more; reads until the client hangs up.
    Stall,
    /// Hangs up.
    Close,
}

fn expect(bytes: impl AsRef<[u8]>) -> Step {
    Step::Expect(bytes.as_ref().to_vec())
}

fn send(bytes: impl AsRef<[u8]>) -> Step {
    Step::Send(bytes.as_ref().to_vec())
}

/// A command as RESP, written out independently of the client's encoder.
fn wire(parts: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", parts.len()).into_bytes();
    for part in parts {
        out.extend(format!("${}\r\n{part}\r\n", part.len()).into_bytes());
    }
    out
}

/// The `HELLO 3` reply of a real Redis 7.0.
const HELLO_MAP: &[u8] = b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n\
$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:5\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n\
$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n";

/// Redis 5, which has no HELLO and echoes the arguments back.
const NO_HELLO: &[u8] = b"-ERR unknown command `HELLO`, with args beginning with: `3`, `AUTH`, `default`, `hunter2`, \r\n";

fn scripted(steps: Vec<Step>) -> (Recorded, Writes, JoinHandle<()>) {
    let (client, mut server) = tokio::io::duplex(1 << 20);
    let server = tokio::spawn(async move {
        for step in steps {
            match step {
                Step::Expect(bytes) => {
                    let mut got = vec![0; bytes.len()];
                    server
                        .read_exact(&mut got)
                        .await
                        .expect("the client sent a request");
                    assert_eq!(
                        String::from_utf8_lossy(&got),
                        String::from_utf8_lossy(&bytes),
                        "bytes on the wire"
                    );
                }
                Step::Send(bytes) => server.write_all(&bytes).await.expect("server write"),
                Step::Stall => {
                    let mut rest = Vec::new();
                    let _ = server.read_to_end(&mut rest).await;
                    return;
                }
                Step::Close => return,
            }
        }
        // Script done: any further byte from the client is unexpected.
        let mut extra = Vec::new();
        let _ = server.read_to_end(&mut extra).await;
        assert!(
            extra.is_empty(),
            "unexpected request: {}",
            String::from_utf8_lossy(&extra)
        );
    });
    let writes = Arc::new(Mutex::new(Vec::new()));
    let client = Recorded {
        inner: client,
        writes: writes.clone(),
    };
    (client, writes, server)
}

fn quick() -> Options {
    Options {
        timeout: Duration::from_millis(100),
        ..Options::default()
    }
}

/// A RESP3 connection (plain `HELLO 3` accepted) and then `steps`.
async fn resp3(steps: Vec<Step>) -> (Connection<Recorded>, Writes, JoinHandle<()>) {
    let mut all = vec![expect(wire(&["HELLO", "3"])), send(HELLO_MAP)];
    all.extend(steps);
    let (stream, writes, server) = scripted(all);
    let conn = Connection::open(stream, &quick(), timer())
        .await
        .expect("handshake");
    assert_eq!(conn.protocol(), Protocol::Resp3);
    (conn, writes, server)
}

/// A RESP2 connection (HELLO unknown, no password) and then `steps`.
async fn resp2(steps: Vec<Step>) -> (Connection<Recorded>, Writes, JoinHandle<()>) {
    let mut all = vec![expect(wire(&["HELLO", "3"])), send(NO_HELLO)];
    all.extend(steps);
    let (stream, writes, server) = scripted(all);
    let conn = Connection::open(stream, &quick(), timer())
        .await
        .expect("handshake");
    assert_eq!(conn.protocol(), Protocol::Resp2);
    (conn, writes, server)
}

async fn finish(conn: Connection<Recorded>, server: JoinHandle<()>) {
    drop(conn);
    server.await.expect("the server script held");
}

#[tokio::test]
async fn handshake_is_hello_with_credentials_name_and_select_in_one_write() {
    let options = Options {
        password: Some("hunter2".into()),
        client_name: Some("api".into()),
        database: 2,
        ..quick()
    };
    let (stream, writes, server) = scripted(vec![
        expect(
            b"*7\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n$7\r\nhunter2\r\n\
$7\r\nSETNAME\r\n$3\r\napi\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n",
        ),
        send(HELLO_MAP),
        send(b"+OK\r\n"),
    ]);
    let conn = Connection::open(stream, &options, timer())
        .await
        .expect("handshake");
    assert_eq!(conn.protocol(), Protocol::Resp3);
    assert_eq!(writes.lock().unwrap().len(), 1, "one round trip, one write");
    assert!(conn.is_usable());
    finish(conn, server).await;
}

#[tokio::test]
async fn a_named_acl_user_is_sent_in_hello() {
    let options = Options {
        username: Some("limiter".into()),
        password: Some("pw".into()),
        ..quick()
    };
    let (stream, _, server) = scripted(vec![
        expect(wire(&["HELLO", "3", "AUTH", "limiter", "pw"])),
        send(HELLO_MAP),
    ]);
    let conn = Connection::open(stream, &options, timer())
        .await
        .expect("handshake");
    finish(conn, server).await;
}

#[tokio::test]
async fn a_server_without_hello_gets_auth_setname_and_select_and_resp2() {
    let options = Options {
        password: Some("hunter2".into()),
        client_name: Some("api".into()),
        database: 1,
        ..quick()
    };
    let (stream, writes, server) = scripted(vec![
        expect(
            [
                wire(&["HELLO", "3", "AUTH", "default", "hunter2", "SETNAME", "api"]),
                wire(&["SELECT", "1"]),
            ]
            .concat(),
        ),
        send(NO_HELLO),
        send(b"-NOAUTH Authentication required.\r\n"),
        expect(
            [
                wire(&["AUTH", "hunter2"]),
                wire(&["CLIENT", "SETNAME", "api"]),
                wire(&["SELECT", "1"]),
            ]
            .concat(),
        ),
        send(b"+OK\r\n+OK\r\n+OK\r\n"),
        // RESP2 nulls, which the RESP3 decoder would not accept.
        expect(wire(&["GET", "missing"])),
        send(b"$-1\r\n"),
    ]);
    let mut conn = Connection::open(stream, &options, timer())
        .await
        .expect("handshake");
    assert_eq!(conn.protocol(), Protocol::Resp2);
    assert_eq!(writes.lock().unwrap().len(), 2, "two round trips");
    let missing: Option<String> = conn.query(cmd("GET").arg("missing")).await.unwrap();
    assert_eq!(missing, None);
    finish(conn, server).await;
}

#[tokio::test]
async fn a_wrong_password_is_an_auth_error_that_never_shows_the_password() {
    let options = Options {
        password: Some("hunter2".into()),
        ..quick()
    };
    let (stream, _, server) = scripted(vec![
        expect(wire(&["HELLO", "3", "AUTH", "default", "hunter2"])),
        send(b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"),
        Step::Close,
    ]);
    let error = Connection::open(stream, &options, timer())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::Auth(e) if e.code() == "WRONGPASS"),
        "{error:?}"
    );
    server.await.unwrap();
}

/// An answer after the handshake may quote the password too: one read out
/// of step with the requests (after a server or proxy answered the
/// handshake short) is the refusal of the `AUTH` that carried it. Found by
/// `cargo xtask fuzz resp_handshake` once its bytes reached the client
/// whole: the handshake's own answers were masked, later ones were not.
#[tokio::test]
async fn a_password_quoted_in_a_reply_read_after_the_handshake_is_masked() {
    let options = Options {
        password: Some("hunter2".into()),
        client_name: Some("api".into()),
        ..quick()
    };
    let (stream, _, server) = scripted(vec![
        expect(wire(&[
            "HELLO", "3", "AUTH", "default", "hunter2", "SETNAME", "api",
        ])),
        send(NO_HELLO),
        expect(
            [
                wire(&["AUTH", "hunter2"]),
                wire(&["CLIENT", "SETNAME", "api"]),
            ]
            .concat(),
        ),
        send(b"+OK\r\n+OK\r\n"),
        expect(wire(&["GET", "k"])),
        send(b"-ERR wrong number of arguments, with args beginning with: 'hunter2'\r\n"),
        expect(wire(&["MGET", "a", "b"])),
        send(b"*2\r\n$1\r\nx\r\n-ERR no 'hunter2' here\r\n"),
        Step::Close,
    ]);
    let mut conn = Connection::open(stream, &options, timer()).await.unwrap();
    let error = conn
        .query::<Option<String>>(cmd("GET").arg("k"))
        .await
        .unwrap_err();
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("hunter2"), "password shown in {shown}");
    assert!(shown.contains("wrong number of arguments"), "{shown}");
    // Nested in an array, an error reply is a value: masked there too.
    let reply: Reply = conn.query(cmd("MGET").arg("a").arg("b")).await.unwrap();
    assert!(!format!("{reply:?}").contains("hunter2"), "{reply:?}");
    assert!(
        format!("{reply:?}").contains("no '<redacted>' here"),
        "{reply:?}"
    );
    server.await.unwrap();
}

#[tokio::test]
async fn a_refused_auth_on_a_resp2_server_hides_an_echoed_password() {
    let options = Options {
        password: Some("hunter2".into()),
        ..quick()
    };
    let (stream, _, server) = scripted(vec![
        expect(wire(&["HELLO", "3", "AUTH", "default", "hunter2"])),
        send(NO_HELLO),
        expect(wire(&["AUTH", "hunter2"])),
        // A server (or proxy) that quotes the rejected argument.
        send(b"-ERR invalid password 'hunter2'\r\n"),
        Step::Close,
    ]);
    let error = Connection::open(stream, &options, timer())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Auth(_)), "{error:?}");
    for shown in [
        format!("{error}"),
        format!("{error:?}"),
        format!("{options:?}"),
    ] {
        assert!(!shown.contains("hunter2"), "password shown in {shown}");
    }
    assert!(format!("{error}").contains("invalid password"), "{error}");
    server.await.unwrap();
}

#[tokio::test]
async fn hello_errors_that_are_not_about_credentials_are_server_errors() {
    let options = Options {
        client_name: Some("has space".into()),
        ..quick()
    };
    let (stream, _, server) = scripted(vec![
        expect(wire(&["HELLO", "3", "SETNAME", "has space"])),
        send(b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n"),
        Step::Close,
    ]);
    let error = Connection::open(stream, &options, timer())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Server(_)), "{error:?}");
    server.await.unwrap();
}

#[tokio::test]
async fn a_pipeline_is_one_write_and_its_replies_are_typed_in_order() {
    let request = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\na\0b\r\n\
*2\r\n$3\r\nGET\r\n$1\r\nk\r\n\
*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n\
*2\r\n$3\r\nGET\r\n$4\r\nnone\r\n";
    let (mut conn, writes, server) = resp3(vec![
        expect(request),
        // Replies split mid-frame, as TCP may deliver them.
        send(b"+OK\r\n$3\r\na"),
        send(b"\0b\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n_\r\n"),
    ])
    .await;
    let pipeline = Pipeline::new()
        .with(cmd("SET").arg("k").arg(b"a\0b"))
        .with(cmd("GET").arg("k"))
        .with(cmd("INCR").arg("k"))
        .with(cmd("GET").arg("none"));
    let mut replies = conn.pipeline(&pipeline).await.expect("pipeline");
    assert_eq!(replies.len(), 4);
    let () = replies.take().unwrap();
    assert_eq!(replies.take::<Vec<u8>>().unwrap(), b"a\0b".to_vec());
    let incr = replies.take::<i64>().unwrap_err();
    assert_eq!(incr.server_code(), Some("WRONGTYPE"), "{incr:?}");
    assert_eq!(replies.take::<Option<String>>().unwrap(), None);
    {
        let writes = writes.lock().unwrap();
        assert_eq!(
            writes.len(),
            2,
            "handshake, then the whole pipeline in one write"
        );
        assert_eq!(writes[1], request.to_vec());
    }
    assert!(
        conn.is_usable(),
        "an error reply does not break the connection"
    );
    finish(conn, server).await;
}

#[tokio::test]
async fn resp3_types_decode_into_replies() {
    let (mut conn, _, server) = resp3(vec![
        expect(wire(&["X"])),
        send(b"%2\r\n+a\r\n:1\r\n$1\r\nb\r\n,2.5\r\n"),
        expect(wire(&["X"])),
        send(b"~3\r\n:1\r\n:2\r\n:3\r\n"),
        expect(wire(&["X"])),
        send(b"*5\r\n#t\r\n#f\r\n_\r\n(3492890328409238509324850943850943825024385\r\n,inf\r\n"),
        expect(wire(&["X"])),
        send(b"=15\r\ntxt:Some string\r\n"),
        expect(wire(&["X"])),
        send(b"!21\r\nSYNTAX invalid syntax\r\n"),
        // A push frame before the reply is skipped.
        expect(wire(&["X"])),
        send(b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n:7\r\n"),
    ])
    .await;

    let Reply::Map(mut pairs) = conn.query(cmd("X")).await.unwrap() else {
        panic!("map expected")
    };
    pairs.sort_by_key(|(k, _)| format!("{k:?}"));
    assert_eq!(
        pairs,
        vec![
            (Reply::Bulk(b"b".to_vec()), Reply::Double(2.5)),
            (Reply::Status("a".into()), Reply::Integer(1)),
        ]
    );

    let mut set: Vec<i64> = conn.query(cmd("X")).await.unwrap();
    set.sort();
    assert_eq!(set, vec![1, 2, 3]);

    let mixed: Reply = conn.query(cmd("X")).await.unwrap();
    assert_eq!(
        mixed,
        Reply::Array(vec![
            Reply::Boolean(true),
            Reply::Boolean(false),
            Reply::Nil,
            Reply::BigNumber("3492890328409238509324850943850943825024385".into()),
            Reply::Double(f64::INFINITY),
        ])
    );

    let verbatim: Reply = conn.query(cmd("X")).await.unwrap();
    assert_eq!(
        verbatim,
        Reply::Verbatim {
            format: "txt".into(),
            text: "Some string".into()
        }
    );

    let blob_error = conn.query::<Reply>(cmd("X")).await.unwrap_err();
    assert_eq!(blob_error.server_code(), Some("SYNTAX"));

    let after_push: i64 = conn.query(cmd("X")).await.unwrap();
    assert_eq!(after_push, 7);
    finish(conn, server).await;
}

#[tokio::test]
async fn a_type_mismatch_is_a_type_error_and_the_connection_stays_usable() {
    let (mut conn, _, server) = resp3(vec![
        expect(wire(&["GET", "k"])),
        send(b"_\r\n"),
        expect(wire(&["PING"])),
        send(b"+PONG\r\n"),
    ])
    .await;
    let error = conn.query::<String>(cmd("GET").arg("k")).await.unwrap_err();
    assert!(
        matches!(&error, Error::Type { found, .. } if found == "nil"),
        "{error:?}"
    );
    assert!(conn.is_usable());
    assert_eq!(conn.lost_to(), None);
    let pong: String = conn.query(cmd("PING")).await.unwrap();
    assert_eq!(pong, "PONG");
    finish(conn, server).await;
}

#[tokio::test]
async fn a_slow_server_times_out_and_the_connection_then_refuses_at_once() {
    let (mut conn, writes, server) = resp3(vec![expect(wire(&["GET", "k"])), Step::Stall]).await;
    let started = Instant::now();
    let error = conn
        .query::<Option<String>>(cmd("GET").arg("k"))
        .await
        .unwrap_err();
    assert_eq!(error, Error::Timeout(Duration::from_millis(100)));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(!conn.is_usable());
    assert_eq!(conn.lost_to(), Some(error.clone()), "what lost it");

    let started = Instant::now();
    let later = conn
        .query::<Option<String>>(cmd("GET").arg("k"))
        .await
        .unwrap_err();
    assert_eq!(
        later,
        Error::Unusable(Box::new(Error::Timeout(Duration::from_millis(100))))
    );
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "no second wait"
    );
    assert_eq!(
        writes.lock().unwrap().len(),
        2,
        "nothing sent after the timeout"
    );
    finish(conn, server).await;
}

#[tokio::test]
async fn a_server_hanging_up_is_closed_and_later_calls_fail_at_once() {
    let (mut conn, _, server) = resp3(vec![expect(wire(&["GET", "k"])), Step::Close]).await;
    let error = conn
        .query::<Option<String>>(cmd("GET").arg("k"))
        .await
        .unwrap_err();
    assert_eq!(error, Error::Closed);
    let later = conn
        .query::<Option<String>>(cmd("GET").arg("k"))
        .await
        .unwrap_err();
    assert_eq!(later, Error::Unusable(Box::new(Error::Closed)));
    assert!(later.is_unavailable());
    finish(conn, server).await;
}

#[tokio::test]
async fn garbage_from_the_server_is_a_protocol_error() {
    let (mut conn, _, server) = resp3(vec![
        expect(wire(&["GET", "k"])),
        send(b"HTTP/1.1 400 Bad Request\r\n\r\n"),
        Step::Stall,
    ])
    .await;
    let error = conn
        .query::<Option<String>>(cmd("GET").arg("k"))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Protocol(_)), "{error:?}");
    let later = conn
        .query::<Option<String>>(cmd("GET").arg("k"))
        .await
        .unwrap_err();
    assert!(matches!(later, Error::Unusable(cause) if matches!(*cause, Error::Protocol(_))));
    finish(conn, server).await;
}

/// Only the header of a 100 MB bulk string, and then nothing: refused at
/// once as too large (not a timeout after waiting for the body), and the
/// connection is lost as with any protocol error.
#[tokio::test]
async fn a_reply_announcing_more_than_the_limit_is_refused_at_its_header() {
    for header in [&b"$100000000\r\n"[..], b"*100000000\r\n", b"=100000000\r\n"] {
        let (mut conn, _, server) =
            resp3(vec![expect(wire(&["GET", "k"])), send(header), Step::Stall]).await;
        let error = conn
            .query::<Option<String>>(cmd("GET").arg("k"))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, Error::Protocol(m) if m.contains("larger than")),
            "{error:?}"
        );
        assert!(!conn.is_usable());
        assert_eq!(conn.lost_to(), Some(error));
        finish(conn, server).await;
    }
}

#[tokio::test]
async fn a_call_dropped_midway_leaves_the_connection_unusable() {
    let (mut conn, writes, server) = resp3(vec![expect(wire(&["GET", "k"])), Step::Stall]).await;
    let abandoned = tokio::time::timeout(
        Duration::from_millis(20),
        conn.query::<Option<String>>(cmd("GET").arg("k")),
    )
    .await;
    assert!(abandoned.is_err(), "the outer timeout dropped the call");
    assert!(
        matches!(conn.lost_to(), Some(Error::Protocol(m)) if m.contains("dropped")),
        "{:?}",
        conn.lost_to()
    );
    let later = conn.query::<Option<String>>(cmd("PING")).await.unwrap_err();
    assert!(matches!(later, Error::Unusable(_)), "{later:?}");
    assert_eq!(writes.lock().unwrap().len(), 2, "PING was never sent");
    finish(conn, server).await;
}

#[tokio::test]
async fn a_transaction_gives_exec_results_per_command() {
    let (mut conn, writes, server) = resp3(vec![
        expect(
            [
                wire(&["MULTI"]),
                wire(&["INCR", "n"]),
                wire(&["LPUSH", "n", "x"]),
                wire(&["EXEC"]),
            ]
            .concat(),
        ),
        send(b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:1\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
    ])
    .await;
    let tx = Pipeline::new()
        .with(cmd("INCR").arg("n"))
        .with(cmd("LPUSH").arg("n").arg("x"));
    let mut results = conn.transaction(&tx).await.unwrap().expect("not aborted");
    assert_eq!(results.take::<i64>().unwrap(), 1);
    assert_eq!(
        results.take::<i64>().unwrap_err().server_code(),
        Some("WRONGTYPE")
    );
    assert_eq!(writes.lock().unwrap().len(), 2, "MULTI..EXEC in one write");
    finish(conn, server).await;
}

#[tokio::test]
async fn a_watched_key_change_aborts_the_transaction_with_none() {
    let (mut conn, _, server) = resp2(vec![
        expect([wire(&["MULTI"]), wire(&["SET", "k", "v"]), wire(&["EXEC"])].concat()),
        send(b"+OK\r\n+QUEUED\r\n*-1\r\n"),
    ])
    .await;
    let tx = Pipeline::new().with(cmd("SET").arg("k").arg("v"));
    assert!(conn.transaction(&tx).await.unwrap().is_none());
    assert!(conn.is_usable());
    finish(conn, server).await;
}

#[tokio::test]
async fn a_command_refused_when_queued_is_execabort_with_the_reason() {
    let (mut conn, _, server) = resp3(vec![
        expect([wire(&["MULTI"]), wire(&["NOPE"]), wire(&["EXEC"])].concat()),
        send(b"+OK\r\n-ERR unknown command 'NOPE'\r\n-EXECABORT Transaction discarded because of previous errors.\r\n"),
    ])
    .await;
    let error = conn
        .transaction(&Pipeline::new().with(cmd("NOPE")))
        .await
        .unwrap_err();
    assert_eq!(error.server_code(), Some("EXECABORT"));
    assert!(
        error.to_string().contains("unknown command 'NOPE'"),
        "{error}"
    );
    assert!(conn.is_usable());
    finish(conn, server).await;
}

#[tokio::test]
async fn a_script_unknown_to_the_server_is_sent_once_with_eval() {
    let script = Script::new("return redis.call('INCR', KEYS[1]) + ARGV[1]");
    let sha = script.sha1().to_owned();
    let (mut conn, _, server) = resp3(vec![
        expect(wire(&["EVALSHA", &sha, "1", "k", "10"])),
        send(b"-NOSCRIPT No matching script. Please use EVAL.\r\n"),
        expect(wire(&["EVAL", script.source(), "1", "k", "10"])),
        send(b":11\r\n"),
        expect(wire(&["EVALSHA", &sha, "1", "k", "10"])),
        send(b":12\r\n"),
    ])
    .await;
    let first: i64 = conn.invoke(script.call().key("k").arg(10)).await.unwrap();
    let second: i64 = conn.invoke(script.call().key("k").arg(10)).await.unwrap();
    assert_eq!((first, second), (11, 12));
    finish(conn, server).await;
}

#[tokio::test]
async fn scripts_invoked_together_go_in_one_write_and_only_unknown_ones_are_sent_again() {
    let counter = Script::new("return redis.call('INCR', KEYS[1])");
    let reader = Script::new("return redis.call('GET', KEYS[1])");
    let (counter_sha, reader_sha) = (counter.sha1().to_owned(), reader.sha1().to_owned());
    let (mut conn, writes, server) = resp3(vec![
        expect(
            [
                wire(&["EVALSHA", &counter_sha, "1", "n"]),
                wire(&["EVALSHA", &reader_sha, "1", "v"]),
            ]
            .concat(),
        ),
        // The reader is cached, the counter is not: only its source goes
        // again, and the reader's reply is not asked for twice.
        send(b"-NOSCRIPT No matching script. Please use EVAL.\r\n$3\r\nold\r\n"),
        expect(wire(&["EVAL", counter.source(), "1", "n"])),
        send(b":1\r\n"),
    ])
    .await;
    let calls = [counter.call().key("n"), reader.call().key("v")];
    let results = conn.invoke_all(&calls).await.unwrap();
    assert_eq!(
        results.into_iter().map(|r| r.unwrap()).collect::<Vec<_>>(),
        vec![Reply::Integer(1), Reply::Bulk(b"old".to_vec())]
    );
    let writes = writes.lock().unwrap().clone();
    assert_eq!(
        writes[1..],
        [
            [
                wire(&["EVALSHA", &counter_sha, "1", "n"]),
                wire(&["EVALSHA", &reader_sha, "1", "v"]),
            ]
            .concat(),
            wire(&["EVAL", counter.source(), "1", "n"]),
        ],
        "after the handshake: both EVALSHAs in one write, then the unknown one's source"
    );
    finish(conn, server).await;
}

#[tokio::test]
async fn a_script_refused_among_scripts_invoked_together_is_its_own_result() {
    let writer = Script::new("return redis.call('SET', KEYS[1], 'x')");
    let reader = Script::new("return redis.call('GET', KEYS[1])");
    let (mut conn, _, server) = resp3(vec![
        expect(
            [
                wire(&["EVALSHA", writer.sha1(), "1", "w"]),
                wire(&["EVALSHA", reader.sha1(), "1", "r"]),
            ]
            .concat(),
        ),
        send(b"-OOM command not allowed when used memory > 'maxmemory'.\r\n$1\r\nv\r\n"),
    ])
    .await;
    let mut results = conn
        .invoke_all(&[writer.call().key("w"), reader.call().key("r")])
        .await
        .unwrap()
        .into_iter();
    let refused = results.next().unwrap().unwrap_err();
    assert_eq!(refused.server_code(), Some("OOM"), "{refused:?}");
    assert_eq!(results.next().unwrap().unwrap(), Reply::Bulk(b"v".to_vec()));
    assert!(results.next().is_none());
    assert!(
        conn.is_usable(),
        "a script's refusal leaves the connection in step"
    );
    finish(conn, server).await;
}

#[tokio::test]
async fn a_lazy_connection_connects_only_when_used_and_only_once() {
    let (stream, _, server) = scripted(vec![
        expect(wire(&["HELLO", "3"])),
        send(HELLO_MAP),
        expect([wire(&["PING"]), wire(&["PING"])].concat()),
        send(b"+PONG\r\n+PONG\r\n"),
        expect(wire(&["GET", "k"])),
        send(b"$1\r\nv\r\n"),
    ]);
    let connects = Arc::new(AtomicUsize::new(0));
    let counter = connects.clone();
    let mut lazy = LazyConnection::new(
        move || async move {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(stream)
        },
        quick(),
        timer(),
    );
    assert!(!lazy.was_attempted());
    assert_eq!(
        connects.load(Ordering::SeqCst),
        0,
        "nothing before first use"
    );

    let mut pings = lazy
        .pipeline(&Pipeline::new().with(cmd("PING")).with(cmd("PING")))
        .await
        .unwrap();
    assert_eq!(pings.take::<String>().unwrap(), "PONG");
    let value: String = lazy.query(cmd("GET").arg("k")).await.unwrap();
    assert_eq!(value, "v");
    assert_eq!(connects.load(Ordering::SeqCst), 1);
    assert!(lazy.was_attempted());
    drop(lazy);
    server.await.unwrap();
}

#[tokio::test]
async fn a_lazy_connection_that_failed_to_open_does_not_try_again() {
    let mut lazy = LazyConnection::new(
        || async {
            Err::<DuplexStream, _>(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "connection refused",
            ))
        },
        quick(),
        timer(),
    );
    let first = lazy
        .query::<Option<String>>(cmd("GET").arg("k"))
        .await
        .unwrap_err();
    assert!(
        matches!(&first, Error::Io(m) if m.contains("refused")),
        "{first:?}"
    );
    let second = lazy
        .query::<Option<String>>(cmd("GET").arg("k"))
        .await
        .unwrap_err();
    assert_eq!(second, Error::Unusable(Box::new(first)));
}

#[test]
fn a_lazy_connection_debug_hides_the_credentials() {
    let lazy = LazyConnection::new(
        std::future::pending::<Result<DuplexStream, std::io::Error>>,
        Options {
            username: Some("limiter".into()),
            password: Some("hunter2".into()),
            ..quick()
        },
        timer(),
    );
    let shown = format!("{lazy:?}");
    assert!(shown.contains("not opened"), "{shown}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("limiter"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_lazy_connect_that_hangs_is_cut_off_by_the_deadline() {
    let mut lazy = LazyConnection::new(
        std::future::pending::<Result<DuplexStream, std::io::Error>>,
        quick(),
        timer(),
    );
    let error = lazy
        .query::<Option<String>>(cmd("GET").arg("k"))
        .await
        .unwrap_err();
    assert_eq!(error, Error::Timeout(Duration::from_millis(100)));
}

/// Compile-time check, never run: every call is a `Send` future, so axum
/// handlers (which must be `Send`) can await them.
fn _calls_are_send_futures(conn: &mut Connection<DuplexStream>, script: &Script) {
    fn assert_send<T: Send>(_: T) {}
    let (stream, _) = tokio::io::duplex(64);
    assert_send(Connection::open(stream, &Options::default(), timer()));
    assert_send(conn.query::<String>(cmd("GET")));
    assert_send(conn.pipeline(&Pipeline::new()));
    assert_send(conn.transaction(&Pipeline::new()));
    assert_send(conn.invoke::<i64>(script.call()));
}

#[tokio::test]
async fn a_deferred_handshake_goes_out_with_the_first_request_in_one_write() {
    let options = Options {
        password: Some("hunter2".into()),
        client_name: Some("api".into()),
        ..quick()
    };
    let (stream, writes, server) = scripted(vec![
        expect(
            [
                wire(&["HELLO", "3", "AUTH", "default", "hunter2", "SETNAME", "api"]),
                wire(&["GET", "k"]),
            ]
            .concat(),
        ),
        send([HELLO_MAP, b"$1\r\nv\r\n"].concat()),
        expect(wire(&["GET", "k"])),
        send(b"_\r\n"),
    ]);
    let conn = Connection::deferred(stream, &options, timer());
    the_handshake_goes_with_the_first_get(conn, writes, server, Protocol::Resp3).await;
}

/// A deferred connection whose server answers its handshake and a first
/// `GET k` with `v`, then a second `GET k` with a null: nothing goes out
/// before the first call, the handshake goes in that call's write, the
/// connection speaks `protocol`, and the second call carries no handshake.
async fn the_handshake_goes_with_the_first_get(
    mut conn: Connection<Recorded>,
    writes: Writes,
    server: JoinHandle<()>,
    protocol: Protocol,
) {
    assert!(writes.lock().unwrap().is_empty(), "nothing sent before use");
    let first: Option<String> = conn.query(cmd("GET").arg("k")).await.unwrap();
    assert_eq!(first.as_deref(), Some("v"));
    assert_eq!(conn.protocol(), protocol);
    assert_eq!(
        writes.lock().unwrap().len(),
        1,
        "handshake and request in one write"
    );
    let second: Option<String> = conn.query(cmd("GET").arg("k")).await.unwrap();
    assert_eq!(second, None, "later calls carry no handshake");
    finish(conn, server).await;
}

/// After a deferred handshake the server refused (`WRONGPASS` for
/// `hunter2`): the first call (an `INCR`) fails with the refusal, which
/// does not show the password, and every later call is refused unsent.
async fn the_first_incr_is_refused_and_so_is_the_connection(
    mut conn: Connection<Recorded>,
    server: JoinHandle<()>,
) {
    let error = conn.query::<i64>(cmd("INCR").arg("n")).await.unwrap_err();
    assert!(
        matches!(&error, Error::Auth(e) if e.code() == "WRONGPASS"),
        "{error:?}"
    );
    assert!(!format!("{error:?}").contains("hunter2"));
    assert!(!conn.is_usable());
    let again = conn.query::<i64>(cmd("INCR").arg("n")).await.unwrap_err();
    assert!(matches!(again, Error::Unusable(_)), "{again:?}");
    finish(conn, server).await;
}

#[tokio::test]
async fn a_deferred_handshake_refused_fails_the_first_call_and_the_connection() {
    let options = Options {
        password: Some("hunter2".into()),
        ..quick()
    };
    let (stream, _, server) = scripted(vec![
        expect(
            [
                wire(&["HELLO", "3", "AUTH", "default", "hunter2"]),
                wire(&["INCR", "n"]),
            ]
            .concat(),
        ),
        send(b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"),
        send(b"-NOAUTH Authentication required.\r\n"),
    ]);
    let conn = Connection::deferred(stream, &options, timer());
    the_first_incr_is_refused_and_so_is_the_connection(conn, server).await;
}

#[tokio::test]
async fn a_deferred_handshake_on_a_server_without_hello_authenticates_and_sends_again() {
    let options = Options {
        password: Some("hunter2".into()),
        ..quick()
    };
    let (stream, writes, server) = scripted(vec![
        expect(
            [
                wire(&["HELLO", "3", "AUTH", "default", "hunter2"]),
                wire(&["GET", "k"]),
            ]
            .concat(),
        ),
        send(NO_HELLO),
        send(b"-NOAUTH Authentication required.\r\n"),
        expect(wire(&["AUTH", "hunter2"])),
        send(b"+OK\r\n"),
        expect(wire(&["GET", "k"])),
        // A RESP2 null, read in the protocol agreed.
        send(b"$-1\r\n"),
    ]);
    let mut conn = Connection::deferred(stream, &options, timer());
    let value: Option<String> = conn.query(cmd("GET").arg("k")).await.unwrap();
    assert_eq!(value, None);
    assert_eq!(conn.protocol(), Protocol::Resp2);
    assert_eq!(writes.lock().unwrap().len(), 3);
    finish(conn, server).await;
}

#[tokio::test]
async fn a_deferred_handshake_without_credentials_on_an_old_server_runs_the_request_once() {
    let (stream, writes, server) = scripted(vec![
        expect([wire(&["HELLO", "3"]), wire(&["GET", "k"])].concat()),
        send(b"-ERR unknown command `HELLO`, with args beginning with: `3`, \r\n"),
        // RESP2's null, which the RESP3 decoder would refuse: the reply
        // after HELLO's is read in RESP2.
        send(b"$-1\r\n"),
    ]);
    let mut conn = Connection::deferred(stream, &quick(), timer());
    let value: Option<String> = conn.query(cmd("GET").arg("k")).await.unwrap();
    assert_eq!(value, None);
    assert_eq!(conn.protocol(), Protocol::Resp2);
    assert_eq!(writes.lock().unwrap().len(), 1);
    finish(conn, server).await;
}

#[tokio::test]
async fn a_deferred_handshake_with_a_database_selects_it_before_the_first_request() {
    let options = Options {
        database: 3,
        ..quick()
    };
    let (stream, writes, server) = scripted(vec![
        expect([wire(&["HELLO", "3"]), wire(&["SELECT", "3"])].concat()),
        send(HELLO_MAP),
        send(b"-ERR DB index is out of range\r\n"),
    ]);
    let mut conn = Connection::deferred(stream, &options, timer());
    let error = conn.query::<i64>(cmd("INCR").arg("n")).await.unwrap_err();
    assert!(
        matches!(&error, Error::Server(e) if e.message().contains("out of range")),
        "{error:?}"
    );
    assert_eq!(writes.lock().unwrap().len(), 1, "the INCR never went out");
    assert!(!conn.is_usable());
    finish(conn, server).await;
}

#[tokio::test]
async fn a_resp2_deferred_handshake_is_auth_and_setname_in_the_first_requests_write() {
    let options = Options {
        password: Some("hunter2".into()),
        client_name: Some("api".into()),
        ..quick()
    };
    let (stream, writes, server) = scripted(vec![
        expect(
            [
                wire(&["AUTH", "hunter2"]),
                wire(&["CLIENT", "SETNAME", "api"]),
                wire(&["GET", "k"]),
            ]
            .concat(),
        ),
        send(b"+OK\r\n+OK\r\n$1\r\nv\r\n"),
        expect(wire(&["GET", "k"])),
        // RESP2's null: the connection never asked for RESP3.
        send(b"$-1\r\n"),
    ]);
    let conn = Connection::deferred_resp2(stream, &options, timer());
    the_handshake_goes_with_the_first_get(conn, writes, server, Protocol::Resp2).await;
}

#[tokio::test]
async fn a_resp2_deferred_handshake_refused_fails_the_first_call_and_the_connection() {
    let options = Options {
        username: Some("edge".into()),
        password: Some("hunter2".into()),
        ..quick()
    };
    let (stream, _, server) = scripted(vec![
        expect([wire(&["AUTH", "edge", "hunter2"]), wire(&["INCR", "n"])].concat()),
        send(b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"),
        send(b"-NOAUTH Authentication required.\r\n"),
    ]);
    let conn = Connection::deferred_resp2(stream, &options, timer());
    the_first_incr_is_refused_and_so_is_the_connection(conn, server).await;
}

#[tokio::test]
async fn a_resp2_deferred_handshake_with_nothing_to_say_sends_the_request_alone() {
    let (stream, writes, server) = scripted(vec![expect(wire(&["GET", "k"])), send(b"$-1\r\n")]);
    let mut conn = Connection::deferred_resp2(stream, &quick(), timer());
    let value: Option<String> = conn.query(cmd("GET").arg("k")).await.unwrap();
    assert_eq!(value, None);
    assert_eq!(writes.lock().unwrap().len(), 1);
    finish(conn, server).await;
}

#[tokio::test]
async fn a_resp2_deferred_handshake_with_a_database_selects_it_before_the_first_request() {
    let options = Options {
        database: 3,
        ..quick()
    };
    let (stream, writes, server) = scripted(vec![
        expect(wire(&["SELECT", "3"])),
        send(b"-ERR DB index is out of range\r\n"),
    ]);
    let mut conn = Connection::deferred_resp2(stream, &options, timer());
    let error = conn.query::<i64>(cmd("INCR").arg("n")).await.unwrap_err();
    assert!(
        matches!(&error, Error::Server(e) if e.message().contains("out of range")),
        "{error:?}"
    );
    assert_eq!(writes.lock().unwrap().len(), 1, "the INCR never went out");
    assert!(!conn.is_usable());
    finish(conn, server).await;
}
