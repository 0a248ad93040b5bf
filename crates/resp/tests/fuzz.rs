//! Property tests ("fuzzing") of the reply decoder: whatever a server
//! sends, every call ends in a value or an error and never panics; and
//! well-formed RESP2/RESP3 replies, split into arbitrary reads, decode to
//! the `Reply` values they encode.
//!
//! The scripted server and the properties on arbitrary bytes are
//! `resp::testing`'s, which the coverage-guided targets in `fuzz/` check
//! too (`cargo xtask fuzz`).
//!
//! Default cases are kept small enough for `cargo test`; run long with
//! `PROPTEST_CASES=100000 cargo test -p resp --test fuzz --release`.

use proptest::prelude::*;
use resp::testing::{
    block_on, check_arbitrary_handshake, check_arbitrary_replies, hello, scripted, Opening,
};
use resp::{cmd, Connection, Error, Options, Pipeline, Protocol, Reply};

fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![Just(Protocol::Resp2), Just(Protocol::Resp3)]
}

fn chunks() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![1..4usize, 1..64usize, Just(8192)], 1..8)
}

// ---------------------------------------------------------------------
// Arbitrary bytes.

/// Bytes that reach past the first byte of the decoder: RESP markers and
/// lengths (including absurd ones) mixed with noise.
fn noise() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..12),
        prop::sample::select(vec![
            "*1\r\n",
            "*3\r\n",
            "*-1\r\n",
            "*-5\r\n",
            "%1\r\n",
            "%2\r\n",
            "~2\r\n",
            ">2\r\n",
            "|1\r\n",
            "$3\r\n",
            "$-1\r\n",
            "$0\r\n",
            "$-9\r\n",
            "!4\r\n",
            "=8\r\ntxt:",
            "=2\r\n",
            "=5\r\nxyz:",
            ":1\r\n",
            ":-\r\n",
            ":9223372036854775808\r\n",
            ",1.5\r\n",
            ",inf\r\n",
            ",nan\r\n",
            ",x\r\n",
            "#t\r\n",
            "#x\r\n",
            "_\r\n",
            "(12345678901234567890\r\n",
            "+OK\r\n",
            "-ERR x\r\n",
            // What sends scripts' sources in a second write.
            "-NOSCRIPT No matching script\r\n",
            "\r\n",
            "\r",
            "\n",
            "$18446744073709551615\r\n",
            "*18446744073709551615\r\n",
            "*9999999999\r\n",
            "%9223372036854775807\r\n",
            "$99999999999999999999\r\n",
            "+\u{e9}\r\n",
            "-\u{ff}\r\n",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        // Nesting on both sides of the client's limit.
        (
            1..300usize,
            prop::sample::select(vec!["*1\r\n", "%1\r\n:1\r\n", "~2\r\n_\r\n"])
        )
            .prop_map(|(depth, open)| open.repeat(depth).into_bytes()),
    ];
    prop::collection::vec(token, 0..24).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary bytes after a good handshake: every call ends in a value
    /// or an error, and once the conversation is lost every later call is
    /// refused without touching the stream.
    #[test]
    fn fuzz_arbitrary_bytes_never_panic_the_client(
        protocol in protocol(),
        bytes in noise(),
        chunks in chunks(),
        hang_at_end in any::<bool>(),
        pipeline_len in 1..4usize,
        scripts_first in any::<bool>(),
    ) {
        let checked = check_arbitrary_replies(
            protocol, &bytes, chunks, hang_at_end, pipeline_len, scripts_first,
        );
        prop_assert_eq!(checked, Ok(()));
    }

    /// Arbitrary bytes as the answer to the handshake itself, greeted
    /// each way a connection can open.
    #[test]
    fn fuzz_arbitrary_handshake_replies_never_panic_the_client(
        opening in prop::sample::select(Opening::ALL.to_vec()),
        bytes in noise(),
        chunks in chunks(),
        hang_at_end in any::<bool>(),
        password in any::<bool>(),
        select in any::<bool>(),
        echo in any::<bool>(),
    ) {
        let checked =
            check_arbitrary_handshake(opening, &bytes, chunks, hang_at_end, password, select, echo);
        prop_assert_eq!(checked, Ok(()));
    }
}

// ---------------------------------------------------------------------
// Well-formed replies.

/// Text that fits a simple string or error: no CR or LF.
fn line() -> impl Strategy<Value = String> {
    "[^\r\n]{0,24}"
}

/// Scalars both protocols have.
fn resp2_leaf() -> BoxedStrategy<Reply> {
    prop_oneof![
        line().prop_map(Reply::Status),
        // The code is the first word; an empty error line is still an error.
        line().prop_map(|s| Reply::Error(server_error(&s))),
        any::<i64>().prop_map(Reply::Integer),
        // Arbitrary bytes, CRLF and all: bulk strings are length-prefixed.
        prop::collection::vec(prop_oneof![any::<u8>(), Just(b'\r'), Just(b'\n')], 0..40)
            .prop_map(Reply::Bulk),
        Just(Reply::Nil),
    ]
    .boxed()
}

/// `ServerError` has no public constructor: get one the way the client
/// does, from an error reply: a simple error when the message fits on a
/// line, a blob error (whose text keeps its CR and LF) when it does not.
fn server_error(message: &str) -> resp::ServerError {
    let mut wire = hello(Protocol::Resp3).to_vec();
    let reply = if message.contains(['\r', '\n']) {
        format!("!{}\r\n{message}\r\n", message.len())
    } else {
        format!("-{message}\r\n")
    };
    wire.extend_from_slice(reply.as_bytes());
    let (stream, timer) = scripted(wire, vec![8192], false);
    block_on(async {
        let mut conn = Connection::open(stream, &Options::default(), timer)
            .await
            .unwrap();
        match conn.query::<Reply>(cmd("GET").arg("k")).await {
            Err(Error::Server(e)) => e,
            other => panic!("{other:?}"),
        }
    })
}

/// Keys of maps and members of sets: kinds that decode to distinct,
/// hashable frames (the decoder keeps them in hash maps and sets).
fn resp3_key() -> BoxedStrategy<Reply> {
    prop_oneof![
        "[a-z]{1,6}".prop_map(Reply::Status),
        any::<i64>().prop_map(Reply::Integer),
        prop::collection::vec(any::<u8>(), 0..12).prop_map(Reply::Bulk),
    ]
    .boxed()
}

fn resp3_leaf() -> BoxedStrategy<Reply> {
    prop_oneof![
        4 => resp2_leaf(),
        1 => any::<bool>().prop_map(Reply::Boolean),
        1 => prop_oneof![
            any::<f64>().prop_filter("NaN is not equal to itself", |d| !d.is_nan()),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
        ]
        .prop_map(Reply::Double),
        1 => "-?[0-9]{1,60}".prop_map(Reply::BigNumber),
        1 => (prop_oneof![Just("txt"), Just("mkd")], "(?s).{0,30}").prop_map(|(format, text)| {
            Reply::Verbatim { format: format.to_owned(), text }
        }),
        // A blob error may hold CRLF.
        1 => "(?s).{0,20}".prop_map(|s| Reply::Error(server_error(&s))),
    ]
    .boxed()
}

fn resp2_reply() -> impl Strategy<Value = Reply> {
    resp2_leaf().prop_recursive(4, 32, 6, |inner| {
        prop::collection::vec(inner, 0..6).prop_map(Reply::Array)
    })
}

fn resp3_reply() -> impl Strategy<Value = Reply> {
    resp3_leaf().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Reply::Array),
            prop::collection::btree_map(key_text(), inner, 0..5).prop_map(|pairs| {
                Reply::Map(pairs.into_iter().map(|(k, v)| (k.0, v)).collect())
            }),
            prop::collection::btree_set(key_text(), 0..5)
                .prop_map(|members| Reply::Set(members.into_iter().map(|k| k.0).collect())),
        ]
    })
}

/// A key with its wire bytes as the ordering, so a `BTreeMap` gives unique
/// keys (two keys with the same bytes would be one key to the decoder).
#[derive(Debug, Clone)]
struct Key(Reply, Vec<u8>);

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.1 == other.1
    }
}
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.1.cmp(&other.1)
    }
}

fn key_text() -> impl Strategy<Value = Key> {
    resp3_key().prop_map(|k| {
        let mut wire = Vec::new();
        encode(&k, Protocol::Resp3, &mut wire);
        Key(k, wire)
    })
}

/// The wire form of `reply`, written from the RESP specification
/// (independently of the client and of redis-protocol).
fn encode(reply: &Reply, protocol: Protocol, out: &mut Vec<u8>) {
    encode_attributed(reply, protocol, &mut std::iter::empty(), out);
}

/// The wire form of `reply` with the next of `attributes` (RESP3 metadata
/// frames, or nothing) in front of each frame in it, nested ones included.
fn encode_attributed(
    reply: &Reply,
    protocol: Protocol,
    attributes: &mut dyn Iterator<Item = &[u8]>,
    out: &mut Vec<u8>,
) {
    if let Some(attribute) = attributes.next() {
        out.extend_from_slice(attribute);
    }
    let resp3 = protocol == Protocol::Resp3;
    let mut put = |s: String| out.extend_from_slice(s.as_bytes());
    match reply {
        Reply::Status(s) => put(format!("+{s}\r\n")),
        Reply::Error(e) if e.message().contains(['\r', '\n']) => {
            put(format!("!{}\r\n{}\r\n", e.message().len(), e.message()))
        }
        Reply::Error(e) => put(format!("-{}\r\n", e.message())),
        Reply::Integer(i) => put(format!(":{i}\r\n")),
        Reply::Bulk(b) => {
            put(format!("${}\r\n", b.len()));
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Nil if resp3 => put("_\r\n".into()),
        Reply::Nil => put("$-1\r\n".into()),
        Reply::Array(items) => {
            put(format!("*{}\r\n", items.len()));
            for item in items {
                encode_attributed(item, protocol, attributes, out);
            }
        }
        Reply::Map(pairs) => {
            put(format!("%{}\r\n", pairs.len()));
            for (k, v) in pairs {
                encode_attributed(k, protocol, attributes, out);
                encode_attributed(v, protocol, attributes, out);
            }
        }
        Reply::Set(members) => {
            put(format!("~{}\r\n", members.len()));
            for m in members {
                encode_attributed(m, protocol, attributes, out);
            }
        }
        Reply::Double(d) if d.is_infinite() => {
            put(if *d > 0.0 { ",inf\r\n" } else { ",-inf\r\n" }.into())
        }
        // Shortest round-trip digits, in exponent form when that is
        // shorter; both are valid RESP3 doubles.
        Reply::Double(d) => {
            let plain = format!("{d}");
            let exp = format!("{d:e}");
            put(format!(
                ",{}\r\n",
                if exp.len() < plain.len() { exp } else { plain }
            ))
        }
        Reply::Boolean(b) => put(format!("#{}\r\n", if *b { 't' } else { 'f' })),
        Reply::BigNumber(n) => put(format!("({n}\r\n")),
        Reply::Verbatim { format, text } => {
            put(format!("={}\r\n{format}:{text}\r\n", text.len() + 4))
        }
    }
}

/// Maps and sets in a canonical order: the decoder keeps them in hash
/// tables, and the server promises no order anyway.
fn canonical(reply: Reply) -> Reply {
    let key = |r: &Reply| {
        let mut wire = Vec::new();
        encode(r, Protocol::Resp3, &mut wire);
        wire
    };
    match reply {
        Reply::Array(items) => Reply::Array(items.into_iter().map(canonical).collect()),
        Reply::Map(pairs) => {
            let mut pairs: Vec<_> = pairs
                .into_iter()
                .map(|(k, v)| (canonical(k), canonical(v)))
                .collect();
            pairs.sort_by_key(|(k, _)| key(k));
            Reply::Map(pairs)
        }
        Reply::Set(members) => {
            let mut members: Vec<_> = members.into_iter().map(canonical).collect();
            members.sort_by_key(key);
            Reply::Set(members)
        }
        other => other,
    }
}

/// Out-of-band frames the client must skip between replies: RESP3 pushes,
/// and attributes (metadata in front of a reply, or of a push).
fn out_of_band() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        Just(b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n".to_vec()),
        Just(b"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n".to_vec()),
        Just(b"|1\r\n+a\r\n:1\r\n>2\r\n+invalidate\r\n*1\r\n$1\r\nk\r\n".to_vec()),
    ]
}

/// RESP3 attributes, which the client drops wherever they are: in front of
/// a reply or of any frame inside one (a null included, which
/// redis-protocol alone refuses), or inside another attribute. Mostly
/// none, so most frames have none in front.
fn attribute() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => Just(Vec::new()),
        2 => prop::collection::vec((resp3_key(), resp3_reply()), 0..3).prop_map(|pairs| {
            let mut wire = format!("|{}\r\n", pairs.len()).into_bytes();
            for (k, v) in &pairs {
                encode(k, Protocol::Resp3, &mut wire);
                encode(v, Protocol::Resp3, &mut wire);
            }
            wire
        }),
        1 => Just(b"|2\r\n+a\r\n|1\r\n+b\r\n_\r\n*1\r\n_\r\n|0\r\n_\r\n%0\r\n".to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Well-formed replies to a pipeline, in any chunking, come back as
    /// the values they encode, in order, and the connection stays usable;
    /// RESP3 pushes between them and attributes anywhere are dropped.
    #[test]
    fn fuzz_well_formed_replies_decode_to_their_values(
        case in protocol().prop_flat_map(|protocol| {
            let replies = match protocol {
                Protocol::Resp2 => prop::collection::vec(resp2_reply().boxed(), 1..5),
                Protocol::Resp3 => prop::collection::vec(resp3_reply().boxed(), 1..5),
            };
            (
                Just(protocol),
                replies,
                prop::collection::vec(out_of_band(), 5),
            )
        }),
        attributes in prop::collection::vec(attribute(), 1..6),
        chunks in chunks(),
    ) {
        let (protocol, replies, extras) = case;
        let mut data = hello(protocol).to_vec();
        let mut attributes = attributes.iter().map(Vec::as_slice).cycle();
        for (reply, extra) in replies.iter().zip(&extras) {
            // Pushes and attributes exist only in RESP3.
            if protocol == Protocol::Resp3 {
                data.extend_from_slice(extra);
                encode_attributed(reply, protocol, &mut attributes, &mut data);
            } else {
                encode(reply, protocol, &mut data);
            }
        }
        let (stream, timer) = scripted(data, chunks, true);
        let got = block_on(async {
            let mut conn = Connection::open(stream, &Options::default(), timer).await.unwrap();
            let mut pipeline = Pipeline::new();
            for i in 0..replies.len() {
                pipeline.push(cmd("GET").arg(i));
            }
            let mut got = conn.pipeline(&pipeline).await.unwrap();
            let got: Vec<Reply> = (0..replies.len()).map(|_| got.take().unwrap()).collect();
            assert!(conn.is_usable());
            got
        });
        let expected: Vec<Reply> = replies.into_iter().map(canonical).collect();
        let got: Vec<Reply> = got.into_iter().map(canonical).collect();
        prop_assert_eq!(got, expected);
    }
}

/// How the server answers one script of several invoked together: its
/// `EVALSHA` reply, and when that is `NOSCRIPT`, its `EVAL` reply.
#[derive(Debug, Clone)]
struct ScriptAnswer {
    evalsha: Reply,
    eval: Option<Reply>,
}

fn noscript() -> Reply {
    Reply::Error(server_error(
        "NOSCRIPT No matching script. Please use EVAL.",
    ))
}

/// A script's answer: a value or an error at once, or `NOSCRIPT` and then
/// a value or an error (Redis' answers to a script: whatever it returns,
/// or the error it raised or hit).
fn script_answer() -> impl Strategy<Value = ScriptAnswer> {
    prop_oneof![
        resp2_reply().prop_map(|evalsha| ScriptAnswer {
            evalsha,
            eval: None,
        }),
        resp2_reply().prop_map(|eval| ScriptAnswer {
            evalsha: noscript(),
            eval: Some(eval),
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Scripts invoked together, whatever each one's answer and in any
    /// chunking: one result per script, in order, each its `EVAL` reply
    /// where its `EVALSHA` was `NOSCRIPT` (sent in one second write, in
    /// order), a script's error reply its own result; the connection
    /// stays usable.
    #[test]
    fn fuzz_scripts_invoked_together_each_get_their_own_answer(
        protocol in protocol(),
        answers in prop::collection::vec(script_answer(), 1..5),
        chunks in chunks(),
    ) {
        let mut data = hello(protocol).to_vec();
        for answer in &answers {
            encode(&answer.evalsha, protocol, &mut data);
        }
        for answer in &answers {
            if let Some(eval) = &answer.eval {
                encode(eval, protocol, &mut data);
            }
        }
        let scripts: Vec<resp::Script> =
            (0..answers.len()).map(|i| resp::Script::new(format!("return {i}"))).collect();
        let calls: Vec<_> = scripts.iter().map(|script| script.call().key("k")).collect();
        let (stream, timer) = scripted(data, chunks, true);
        let (got, usable) = block_on(async {
            let mut conn = Connection::open(stream, &Options::default(), timer).await.unwrap();
            let got = conn.invoke_all(&calls).await;
            (got, conn.is_usable())
        });
        let expected: Vec<Result<Reply, Error>> = answers
            .into_iter()
            .map(|answer| answer.eval.unwrap_or(answer.evalsha).into_result())
            .collect();
        prop_assert_eq!(got, Ok(expected));
        prop_assert!(usable);
    }
}

/// An attribute in front of a null is dropped like any other (the
/// well-formed property found redis-protocol refusing one), in front of a
/// reply or inside it, and so are several in a row.
#[test]
fn an_attribute_before_a_null_is_dropped() {
    let mut data = hello(Protocol::Resp3).to_vec();
    data.extend_from_slice(b"|1\r\n+ttl\r\n:3\r\n_\r\n|1\r\n+a\r\n_\r\n:7\r\n");
    data.extend_from_slice(b"*1\r\n|1\r\n+a\r\n+b\r\n_\r\n");
    data.extend_from_slice(
        b"|0\r\n|1\r\n+a\r\n_\r\n%1\r\n|1\r\n+b\r\n_\r\n+k\r\n|1\r\n+c\r\n_\r\n_\r\n",
    );
    let (stream, timer) = scripted(data, vec![3], true);
    block_on(async {
        let mut conn = Connection::open(stream, &Options::default(), timer)
            .await
            .unwrap();
        let got = conn.query::<Reply>(cmd("GET").arg("k")).await;
        assert_eq!(got, Ok(Reply::Nil));
        let got = conn.query::<Reply>(cmd("GET").arg("k")).await;
        assert_eq!(got, Ok(Reply::Integer(7)));
        let got = conn.query::<Reply>(cmd("GET").arg("k")).await;
        assert_eq!(got, Ok(Reply::Array(vec![Reply::Nil])));
        let got = conn.query::<Reply>(cmd("GET").arg("k")).await;
        assert_eq!(
            got,
            Ok(Reply::Map(vec![(Reply::Status("k".into()), Reply::Nil)]))
        );
        assert!(conn.is_usable());
    });
}

/// A reply nested deeper than any real one (a server bug, or bytes that
/// are not from Redis) is refused as a protocol error instead of
/// exhausting the stack while it is decoded (which aborts the process, or
/// traps the Worker), however it is split into reads. Found by the
/// arbitrary-bytes property with deep nesting added.
#[test]
fn deeply_nested_replies_are_refused_not_a_stack_overflow() {
    for (protocol, open) in [
        (Protocol::Resp2, "*1\r\n"),
        (Protocol::Resp3, "*1\r\n"),
        (Protocol::Resp3, "%1\r\n+k\r\n"),
        (Protocol::Resp3, "~1\r\n"),
        (Protocol::Resp3, ">1\r\n"),
        (Protocol::Resp3, "|1\r\n+a\r\n*1\r\n"),
    ] {
        for chunks in [vec![1 << 20], vec![1], vec![5, 1, 4096, 3]] {
            let mut data = hello(protocol).to_vec();
            data.extend_from_slice(open.repeat(200_000).as_bytes());
            data.extend_from_slice(b":1\r\n");
            let (stream, timer) = scripted(data, chunks.clone(), false);
            block_on(async {
                let mut conn = Connection::open(stream, &Options::default(), timer)
                    .await
                    .unwrap();
                let got = conn.query::<Reply>(cmd("GET").arg("k")).await;
                assert!(
                    matches!(&got, Err(Error::Protocol(m)) if m.contains("nested")),
                    "{open:?} in reads of {chunks:?}: {got:?}"
                );
            });
        }
    }
}

/// The limit is 128 levels: a reply that deep still decodes, one level
/// more is refused, in one read or many.
#[test]
fn nesting_up_to_the_limit_decodes() {
    type Wrap = fn(Reply) -> Reply;
    let array: Wrap = |inner| Reply::Array(vec![inner]);
    let map: Wrap = |inner| Reply::Map(vec![(Reply::Status("k".into()), inner)]);
    for (protocol, open, wrap) in [
        (Protocol::Resp2, "*1\r\n", Some(array)),
        (Protocol::Resp3, "*1\r\n", Some(array)),
        (Protocol::Resp3, "%1\r\n+k\r\n", Some(map)),
        // A push is dropped, however deep.
        (Protocol::Resp3, ">1\r\n", None),
        // An attribute is a level while it is read, not for the frame
        // it precedes.
        (Protocol::Resp3, "|1\r\n+a\r\n+b\r\n*1\r\n", Some(array)),
    ] {
        for (depth, chunks) in [(128, vec![1 << 20]), (128, vec![1, 7]), (129, vec![1, 7])] {
            let mut data = hello(protocol).to_vec();
            data.extend_from_slice(open.repeat(depth).as_bytes());
            data.extend_from_slice(b":1\r\n:7\r\n");
            let (stream, timer) = scripted(data, chunks.clone(), false);
            block_on(async {
                let mut conn = Connection::open(stream, &Options::default(), timer)
                    .await
                    .unwrap();
                let got = conn.query::<Reply>(cmd("GET").arg("k")).await;
                let case = format!("{open:?} x{depth} in reads of {chunks:?}");
                if depth > 128 {
                    assert!(
                        matches!(&got, Err(Error::Protocol(m)) if m.contains("nested")),
                        "{case}: {got:?}"
                    );
                    return;
                }
                let Some(wrap) = wrap else {
                    assert_eq!(got, Ok(Reply::Integer(7)), "{case}");
                    return;
                };
                let expected = (0..depth).fold(Reply::Integer(1), |inner, _| wrap(inner));
                assert!(got == Ok(expected), "{case}: {got:?}");
                let next = conn.query::<Reply>(cmd("GET").arg("k")).await;
                assert_eq!(next, Ok(Reply::Integer(7)), "{case}");
                assert!(conn.is_usable(), "{case}");
            });
        }
    }
}
