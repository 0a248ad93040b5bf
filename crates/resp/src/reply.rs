//! Replies: one enum for every RESP2 and RESP3 type, the conversion from
//! `redis-protocol`'s frames, and [`FromReply`], which turns a reply into
//! the Rust type the caller asked for.
//!
//! RESP3 push frames are not replies: they are out-of-band (pub/sub,
//! client-side caching invalidations, neither of which this client uses)
//! and are dropped before a reply is matched to its command.

use std::collections::HashMap;
use std::hash::Hash;

use redis_protocol::resp2::types::OwnedFrame as Resp2Frame;
use redis_protocol::resp3::types::{
    OwnedFrame as Resp3Frame, Resp3Frame as _, VerbatimStringFormat,
};

use crate::error::{Error, ServerError};

/// One reply from the server, whatever the protocol version.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A simple string (`+OK`).
    Status(String),
    /// An error reply (simple or blob error). Inside arrays (`EXEC`
    /// results) it stays a value; at the top level the client turns it into
    /// [`Error::Server`].
    Error(ServerError),
    Integer(i64),
    /// A bulk (blob) string: binary-safe bytes.
    Bulk(Vec<u8>),
    Array(Vec<Reply>),
    /// RESP2's null bulk string and null array, RESP3's null.
    Nil,
    /// A RESP3 map, as pairs: the server promises no order.
    Map(Vec<(Reply, Reply)>),
    /// A RESP3 set: the server promises no order.
    Set(Vec<Reply>),
    Double(f64),
    Boolean(bool),
    /// A RESP3 verbatim string: text meant for humans (`INFO`), with its
    /// format (`txt` or `mkd`).
    Verbatim {
        format: String,
        text: String,
    },
    /// A RESP3 big number, in decimal, unparsed.
    BigNumber(String),
}

impl Reply {
    /// What kind of reply this is, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Reply::Status(_) => "simple string",
            Reply::Error(_) => "error",
            Reply::Integer(_) => "integer",
            Reply::Bulk(_) => "bulk string",
            Reply::Array(_) => "array",
            Reply::Nil => "nil",
            Reply::Map(_) => "map",
            Reply::Set(_) => "set",
            Reply::Double(_) => "double",
            Reply::Boolean(_) => "boolean",
            Reply::Verbatim { .. } => "verbatim string",
            Reply::BigNumber(_) => "big number",
        }
    }

    /// Masks `secret` in every error reply in this one, nested ones
    /// included (an `EXEC`'s results, a script's array).
    pub(crate) fn redact(&mut self, secret: &str) {
        match self {
            Reply::Error(e) => e.redact(secret),
            Reply::Array(items) | Reply::Set(items) => {
                for item in items {
                    item.redact(secret);
                }
            }
            Reply::Map(pairs) => {
                for (key, value) in pairs {
                    key.redact(secret);
                    value.redact(secret);
                }
            }
            _ => {}
        }
    }

    /// An error reply becomes [`Error::Server`]; anything else is kept.
    pub fn into_result(self) -> Result<Reply, Error> {
        match self {
            Reply::Error(e) => Err(Error::Server(e)),
            reply => Ok(reply),
        }
    }

    /// Converts into `T`, e.g. `reply.convert::<Option<String>>()`.
    pub fn convert<T: FromReply>(self) -> Result<T, Error> {
        T::from_reply(self)
    }
}

/// A decoded frame: a reply, or an out-of-band push to skip.
pub(crate) enum Frame {
    Reply(Reply),
    Push,
}

pub(crate) fn from_resp2(frame: Resp2Frame) -> Reply {
    match frame {
        Resp2Frame::SimpleString(s) => Reply::Status(lossy(s)),
        Resp2Frame::Error(e) => Reply::Error(ServerError::new(e)),
        Resp2Frame::Integer(i) => Reply::Integer(i),
        Resp2Frame::BulkString(b) => Reply::Bulk(b),
        Resp2Frame::Array(items) => Reply::Array(items.into_iter().map(from_resp2).collect()),
        Resp2Frame::Null => Reply::Nil,
    }
}

/// A push is out-of-band, skipped by the caller. Attributes (RESP3's `|`
/// metadata) never get here: the connection drops them before decoding,
/// since nothing Redis sends needs them to be understood.
pub(crate) fn from_resp3(frame: Resp3Frame) -> Result<Frame, Error> {
    Ok(match frame {
        Resp3Frame::Push { .. } => Frame::Push,
        other => Frame::Reply(resp3_reply(other)?),
    })
}

fn resp3_reply(frame: Resp3Frame) -> Result<Reply, Error> {
    let list = |items: Vec<Resp3Frame>| -> Result<Vec<Reply>, Error> {
        items.into_iter().map(resp3_reply).collect()
    };
    Ok(match frame {
        Resp3Frame::BlobString { data, .. } => Reply::Bulk(data),
        Resp3Frame::BlobError { data, .. } => Reply::Error(ServerError::new(lossy(data))),
        Resp3Frame::SimpleString { data, .. } => Reply::Status(lossy(data)),
        Resp3Frame::SimpleError { data, .. } => Reply::Error(ServerError::new(data)),
        Resp3Frame::Boolean { data, .. } => Reply::Boolean(data),
        Resp3Frame::Null => Reply::Nil,
        Resp3Frame::Number { data, .. } => Reply::Integer(data),
        Resp3Frame::Double { data, .. } => Reply::Double(data),
        Resp3Frame::BigNumber { data, .. } => Reply::BigNumber(lossy(data)),
        Resp3Frame::VerbatimString { data, format, .. } => Reply::Verbatim {
            format: match format {
                VerbatimStringFormat::Text => "txt",
                VerbatimStringFormat::Markdown => "mkd",
            }
            .to_owned(),
            text: lossy(data),
        },
        Resp3Frame::Array { data, .. } => Reply::Array(list(data)?),
        Resp3Frame::Map { data, .. } => Reply::Map(
            data.into_iter()
                .map(|(k, v)| Ok((resp3_reply(k)?, resp3_reply(v)?)))
                .collect::<Result<_, Error>>()?,
        ),
        Resp3Frame::Set { data, .. } => Reply::Set(list(data.into_iter().collect())?),
        other => {
            return Err(Error::Protocol(format!(
                "unexpected {:?} frame in a reply",
                other.kind()
            )))
        }
    })
}

fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A Rust type a reply can be read as. An error reply is always
/// [`Error::Server`], a reply of another shape [`Error::Type`].
pub trait FromReply: Sized {
    fn from_reply(reply: Reply) -> Result<Self, Error>;
}

/// The error for a reply that does not fit `expected`; an error reply
/// stays a server error, so `EXEC` results and pipelines keep the
/// server's message.
fn mismatch(expected: &'static str, reply: Reply) -> Error {
    match reply {
        Reply::Error(e) => Error::Server(e),
        other => Error::type_mismatch(expected, other.kind()),
    }
}

impl FromReply for Reply {
    fn from_reply(reply: Reply) -> Result<Self, Error> {
        Ok(reply)
    }
}

/// Any reply but an error: for commands whose answer is only "done".
impl FromReply for () {
    fn from_reply(reply: Reply) -> Result<Self, Error> {
        reply.into_result().map(drop)
    }
}

impl FromReply for String {
    fn from_reply(reply: Reply) -> Result<Self, Error> {
        match reply {
            Reply::Status(s) | Reply::BigNumber(s) | Reply::Verbatim { text: s, .. } => Ok(s),
            Reply::Bulk(b) => String::from_utf8(b)
                .map_err(|_| Error::type_mismatch("String", "bulk string that is not UTF-8")),
            Reply::Integer(i) => Ok(i.to_string()),
            Reply::Double(d) => Ok(d.to_string()),
            other => Err(mismatch("String", other)),
        }
    }
}

/// Bytes: what `GET` of binary data gives. (There is no `FromReply` for
/// `u8`, so this does not clash with `Vec<T>`.)
impl FromReply for Vec<u8> {
    fn from_reply(reply: Reply) -> Result<Self, Error> {
        match reply {
            Reply::Bulk(b) => Ok(b),
            Reply::Status(s) | Reply::BigNumber(s) | Reply::Verbatim { text: s, .. } => {
                Ok(s.into_bytes())
            }
            Reply::Integer(i) => Ok(i.to_string().into_bytes()),
            other => Err(mismatch("bytes", other)),
        }
    }
}

/// Integers, and strings holding one: `GET` of a counter is a bulk string.
impl FromReply for i64 {
    fn from_reply(reply: Reply) -> Result<Self, Error> {
        match reply {
            Reply::Integer(i) => Ok(i),
            Reply::Bulk(ref b) => parse_text(b, "i64"),
            Reply::Status(ref s) => parse_text(s.as_bytes(), "i64"),
            other => Err(mismatch("i64", other)),
        }
    }
}

macro_rules! narrow_integer {
    ($($t:ty),*) => {$(
        impl FromReply for $t {
            fn from_reply(reply: Reply) -> Result<Self, Error> {
                let wide = i64::from_reply(reply)?;
                <$t>::try_from(wide).map_err(|_| {
                    Error::type_mismatch(stringify!($t), format!("integer {wide} out of range"))
                })
            }
        }
    )*};
}

narrow_integer!(i32, u32, u64, usize);

/// Doubles, integers, and strings holding one (`INCRBYFLOAT` answers with
/// a bulk string in RESP2).
impl FromReply for f64 {
    fn from_reply(reply: Reply) -> Result<Self, Error> {
        match reply {
            Reply::Double(d) => Ok(d),
            Reply::Integer(i) => Ok(i as f64),
            Reply::Bulk(ref b) => parse_text(b, "f64"),
            Reply::Status(ref s) => parse_text(s.as_bytes(), "f64"),
            other => Err(mismatch("f64", other)),
        }
    }
}

/// RESP3 booleans, and integers as Redis uses them for yes/no
/// (`EXPIRE`, `SISMEMBER`, `EXISTS`): zero is false.
impl FromReply for bool {
    fn from_reply(reply: Reply) -> Result<Self, Error> {
        match reply {
            Reply::Boolean(b) => Ok(b),
            Reply::Integer(i) => Ok(i != 0),
            other => Err(mismatch("bool", other)),
        }
    }
}

/// `nil` is `None`: a missing key, an aborted `EXEC`.
impl<T: FromReply> FromReply for Option<T> {
    fn from_reply(reply: Reply) -> Result<Self, Error> {
        match reply {
            Reply::Nil => Ok(None),
            reply => T::from_reply(reply).map(Some),
        }
    }
}

/// Arrays and sets, element by element. `nil` is not an empty list: read
/// it as `Option<Vec<T>>`.
impl<T: FromReply> FromReply for Vec<T> {
    fn from_reply(reply: Reply) -> Result<Self, Error> {
        match reply {
            Reply::Array(items) | Reply::Set(items) => {
                items.into_iter().map(T::from_reply).collect()
            }
            other => Err(mismatch("list", other)),
        }
    }
}

/// A two-element array (`BLPOP`'s key and value).
impl<A: FromReply, B: FromReply> FromReply for (A, B) {
    fn from_reply(reply: Reply) -> Result<Self, Error> {
        match reply {
            Reply::Array(items) if items.len() == 2 => {
                let mut items = items.into_iter();
                let (a, b) = (items.next().unwrap(), items.next().unwrap());
                Ok((A::from_reply(a)?, B::from_reply(b)?))
            }
            Reply::Array(items) => Err(Error::type_mismatch(
                "pair",
                format!("array of {}", items.len()),
            )),
            other => Err(mismatch("pair", other)),
        }
    }
}

/// A RESP3 map, or the flat key-value array RESP2 gives (`HGETALL`).
impl<K: FromReply + Eq + Hash, V: FromReply> FromReply for HashMap<K, V> {
    fn from_reply(reply: Reply) -> Result<Self, Error> {
        match reply {
            Reply::Map(pairs) => pairs
                .into_iter()
                .map(|(k, v)| Ok((K::from_reply(k)?, V::from_reply(v)?)))
                .collect(),
            Reply::Array(items) if items.len() % 2 == 0 => {
                let mut items = items.into_iter();
                let mut map = HashMap::with_capacity(items.len() / 2);
                while let (Some(k), Some(v)) = (items.next(), items.next()) {
                    map.insert(K::from_reply(k)?, V::from_reply(v)?);
                }
                Ok(map)
            }
            Reply::Array(_) => Err(Error::type_mismatch("map", "array of odd length")),
            other => Err(mismatch("map", other)),
        }
    }
}

fn parse_text<T: std::str::FromStr>(text: &[u8], expected: &'static str) -> Result<T, Error> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::type_mismatch(expected, "string that is not a number"))
}

/// The replies of a pipeline or transaction, in command order. Each one
/// is its own result: an error reply to one command does not affect the
/// others.
#[derive(Debug, Clone)]
pub struct Replies {
    replies: std::vec::IntoIter<Reply>,
}

impl Replies {
    pub(crate) fn new(replies: Vec<Reply>) -> Self {
        Replies {
            replies: replies.into_iter(),
        }
    }

    /// The next reply converted into `T`: the reply to the first command
    /// not taken yet. Asking for more replies than commands is an
    /// [`Error::Type`].
    pub fn take<T: FromReply>(&mut self) -> Result<T, Error> {
        match self.replies.next() {
            Some(reply) => T::from_reply(reply),
            None => Err(Error::type_mismatch("a reply", "no more replies")),
        }
    }

    /// How many replies are left to take.
    pub fn len(&self) -> usize {
        self.replies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.replies.len() == 0
    }

    /// The remaining replies, each as a result.
    pub fn into_results(self) -> Vec<Result<Reply, Error>> {
        self.replies.map(Reply::into_result).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Reply {
        Reply::Bulk(s.as_bytes().to_vec())
    }

    #[test]
    fn strings_come_from_bulk_status_and_numbers() {
        assert_eq!(String::from_reply(bulk("hé")).unwrap(), "hé");
        assert_eq!(
            String::from_reply(Reply::Status("OK".into())).unwrap(),
            "OK"
        );
        assert_eq!(String::from_reply(Reply::Integer(-3)).unwrap(), "-3");
        assert!(matches!(
            String::from_reply(Reply::Bulk(vec![0xff])),
            Err(Error::Type {
                expected: "String",
                ..
            })
        ));
        assert!(matches!(
            String::from_reply(Reply::Nil),
            Err(Error::Type { found, .. }) if found == "nil"
        ));
    }

    #[test]
    fn option_reads_nil_as_none() {
        assert_eq!(Option::<String>::from_reply(Reply::Nil).unwrap(), None);
        assert_eq!(
            Option::<Vec<u8>>::from_reply(Reply::Bulk(vec![0, 1])).unwrap(),
            Some(vec![0, 1])
        );
    }

    #[test]
    fn integers_come_from_integers_and_numeric_strings() {
        assert_eq!(i64::from_reply(Reply::Integer(42)).unwrap(), 42);
        assert_eq!(i64::from_reply(bulk("-7")).unwrap(), -7);
        assert!(i64::from_reply(bulk("7x")).is_err());
        assert!(matches!(
            u32::from_reply(Reply::Integer(-1)),
            Err(Error::Type {
                expected: "u32",
                ..
            })
        ));
        assert_eq!(f64::from_reply(bulk("1.25")).unwrap(), 1.25);
        assert_eq!(
            f64::from_reply(Reply::Double(f64::INFINITY)).unwrap(),
            f64::INFINITY
        );
    }

    #[test]
    fn booleans_come_from_resp3_booleans_and_integers() {
        assert!(bool::from_reply(Reply::Boolean(true)).unwrap());
        assert!(!bool::from_reply(Reply::Integer(0)).unwrap());
        assert!(bool::from_reply(Reply::Integer(1)).unwrap());
        assert!(bool::from_reply(bulk("1")).is_err());
    }

    #[test]
    fn lists_convert_element_by_element_and_keep_server_errors() {
        let reply = Reply::Array(vec![bulk("a"), Reply::Nil, bulk("c")]);
        assert_eq!(
            Vec::<Option<String>>::from_reply(reply).unwrap(),
            vec![Some("a".into()), None, Some("c".into())]
        );
        let with_error = Reply::Array(vec![
            Reply::Integer(1),
            Reply::Error(ServerError::new("WRONGTYPE nope")),
        ]);
        assert_eq!(
            Vec::<i64>::from_reply(with_error)
                .unwrap_err()
                .server_code(),
            Some("WRONGTYPE")
        );
        assert!(Vec::<i64>::from_reply(Reply::Nil).is_err());
        assert_eq!(
            Option::<Vec<i64>>::from_reply(Reply::Nil).unwrap(),
            None,
            "nil array"
        );
    }

    #[test]
    fn maps_come_from_resp3_maps_and_resp2_flat_arrays() {
        let resp3 = Reply::Map(vec![
            (bulk("a"), Reply::Integer(1)),
            (bulk("b"), Reply::Integer(2)),
        ]);
        let resp2 = Reply::Array(vec![bulk("a"), bulk("1"), bulk("b"), bulk("2")]);
        let expected = HashMap::from([("a".to_string(), 1i64), ("b".to_string(), 2)]);
        assert_eq!(HashMap::<String, i64>::from_reply(resp3).unwrap(), expected);
        assert_eq!(HashMap::<String, i64>::from_reply(resp2).unwrap(), expected);
        assert!(HashMap::<String, i64>::from_reply(Reply::Array(vec![bulk("a")])).is_err());
    }

    #[test]
    fn pairs_need_exactly_two_elements() {
        let ok = Reply::Array(vec![bulk("k"), bulk("v")]);
        assert_eq!(
            <(String, String)>::from_reply(ok).unwrap(),
            ("k".to_string(), "v".to_string())
        );
        assert!(<(String, String)>::from_reply(Reply::Array(vec![bulk("k")])).is_err());
    }

    #[test]
    fn resp2_frames_map_to_replies() {
        let frame = Resp2Frame::Array(vec![
            Resp2Frame::SimpleString(b"OK".to_vec()),
            Resp2Frame::Error("ERR bad".into()),
            Resp2Frame::Integer(3),
            Resp2Frame::BulkString(vec![0, 1]),
            Resp2Frame::Null,
        ]);
        assert_eq!(
            from_resp2(frame),
            Reply::Array(vec![
                Reply::Status("OK".into()),
                Reply::Error(ServerError::new("ERR bad")),
                Reply::Integer(3),
                Reply::Bulk(vec![0, 1]),
                Reply::Nil,
            ])
        );
    }

    #[test]
    fn replies_are_taken_in_order_and_errors_stay_per_reply() {
        let mut replies = Replies::new(vec![
            Reply::Status("OK".into()),
            Reply::Error(ServerError::new("WRONGTYPE x")),
            bulk("5"),
        ]);
        assert_eq!(replies.len(), 3);
        let _: () = replies.take().unwrap();
        assert_eq!(
            replies.take::<i64>().unwrap_err().server_code(),
            Some("WRONGTYPE")
        );
        assert_eq!(replies.take::<i64>().unwrap(), 5);
        assert!(replies.is_empty());
        assert!(matches!(replies.take::<Reply>(), Err(Error::Type { .. })));
    }
}
