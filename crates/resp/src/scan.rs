//! Framing ahead of the decoder: where the first reply in the read buffer
//! ends, read from its headers and lengths alone.
//!
//! redis-protocol decodes from the start of the buffer each time it is
//! called, and recursively. Scanning first means it is called once per
//! reply, on a reply known to be whole (not after every partial read), and
//! never on one nested deeper than [`MAX_NESTING`], which would exhaust the
//! stack. The scan itself keeps its place between reads, so a reply that
//! arrives in many small reads is still read in linear time.
//!
//! It holds a reply to [`MAX_REPLY_BYTES`] too, from its headers:
//! a length or an element count that cannot fit is refused as soon as
//! its header is read, not after the body has been buffered up to the limit.
//!
//! The scan also finds RESP3 attributes (`|`, metadata in front of a
//! frame) wherever they are, so they can be dropped before decoding:
//! redis-protocol refuses some (in front of a null: "Null cannot have
//! attributes"), and the client has no use for any.

use std::ops::Range;

use crate::connection::Protocol;

/// How deep aggregates (arrays, maps, sets, pushes, attributes) may nest
/// in one reply. Redis' own replies nest a few levels; a script's reply
/// as deep as its Lua tables, which nothing here comes near.
pub(crate) const MAX_NESTING: usize = 128;

/// The most a single reply may take in memory before the connection gives
/// up on it: a Worker isolate has 128 MB in all, and nothing this project
/// stores comes near this.
pub(crate) const MAX_REPLY_BYTES: usize = 64 * 1024 * 1024;

/// The fewest bytes an element can take: a type byte and a CRLF (`_\r\n`,
/// `+\r\n`). An aggregate announcing `n` elements needs at least `n`
/// times this.
const MIN_ELEMENT_BYTES: u64 = 3;

/// Where the first reply in the buffer stands.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    /// More bytes are needed.
    Incomplete,
    /// It opens more aggregates inside one another than the limit allows.
    TooDeep,
    /// Its headers announce more bytes (a blob's length, an aggregate's
    /// count) than the size limit allows, body read or not.
    TooLarge,
    /// A header no reply can have (an unknown type, a length that is not
    /// one) or that this client does not take (a streamed string or
    /// aggregate, which redis-protocol's complete decoder refuses too and
    /// Redis does not send).
    Invalid(&'static str),
    /// The reply is the first `len` bytes; `attributes` are the byte
    /// ranges of the outermost attributes in it, in order.
    Complete {
        len: usize,
        attributes: Vec<Range<usize>>,
    },
}

/// The scan of the reply at the start of the buffer, kept between reads.
#[derive(Debug)]
pub(crate) struct Scanner {
    max_depth: usize,
    max_bytes: usize,
    /// Start of the next header to read.
    at: usize,
    /// Where the search for the CRLF that ends the header at `at` resumes
    /// (0: from the header's start).
    line_from: usize,
    /// Aggregates still open, innermost last.
    open: Vec<Open>,
    /// How many of `open` are attributes.
    open_attributes: usize,
    /// Elements `open` still expect besides those being read (one per
    /// aggregate), each [`MIN_ELEMENT_BYTES`] at least after the current
    /// frame.
    unstarted: u64,
    /// Outermost attributes closed so far.
    attributes: Vec<Range<usize>>,
}

#[derive(Debug)]
struct Open {
    /// Elements still expected (keys and values for maps and attributes).
    left: u64,
    /// For an attribute, where it starts.
    attribute: Option<usize>,
}

/// What a header says about its frame.
enum Header {
    /// Whole once its line is: simple strings and errors, numbers, nulls.
    Line,
    /// That many bytes and a CRLF follow the header.
    Blob(usize),
    /// That many elements follow.
    Aggregate(u64),
    /// That many elements follow, then the frame they describe.
    Attribute(u64),
}

impl Scanner {
    /// A scan that refuses replies nested deeper than `max_depth` or
    /// longer than `max_bytes`.
    pub(crate) fn new(max_depth: usize, max_bytes: usize) -> Self {
        Scanner {
            max_depth,
            max_bytes,
            at: 0,
            line_from: 0,
            open: Vec::new(),
            open_attributes: 0,
            unstarted: 0,
            attributes: Vec::new(),
        }
    }

    /// Scans on from where the last call stopped. `buf` must be the bytes
    /// the last call saw with more appended; once this returns anything but
    /// [`Scan::Incomplete`] the next call starts a new reply at `buf[0]`.
    pub(crate) fn scan(&mut self, buf: &[u8], protocol: Protocol) -> Scan {
        let outcome = self.scan_on(buf, protocol);
        if outcome != Scan::Incomplete {
            self.at = 0;
            self.line_from = 0;
            self.open.clear();
            self.open_attributes = 0;
            self.unstarted = 0;
        }
        outcome
    }

    fn scan_on(&mut self, buf: &[u8], protocol: Protocol) -> Scan {
        loop {
            let start = self.at;
            let Some(&kind) = buf.get(start) else {
                return Scan::Incomplete;
            };
            let Some(line_end) = find_crlf(buf, self.line_from.max(start + 1)) else {
                // A CR at the very end may be half of the CRLF.
                self.line_from = buf.len().saturating_sub(1).max(start + 1);
                return Scan::Incomplete;
            };
            let header = match header(kind, &buf[start + 1..line_end], protocol) {
                Ok(header) => header,
                Err(why) => return Scan::Invalid(why),
            };
            let mut end = line_end + 2;
            // The reply starts at `buf[0]`: it takes at least this frame's
            // header and blob, then the least each element still expected
            // (this aggregate's and the open ones') can take.
            let (own_end, elements) = match header {
                Header::Line => (Some(end), 0),
                Header::Blob(len) => (end.checked_add(len).and_then(|e| e.checked_add(2)), 0),
                Header::Aggregate(n) | Header::Attribute(n) => (Some(end), n),
            };
            let reaches = elements
                .checked_add(self.unstarted)
                .and_then(|n| n.checked_mul(MIN_ELEMENT_BYTES))
                .and_then(|bytes| usize::try_from(bytes).ok())
                .zip(own_end)
                .and_then(|(bytes, own_end)| own_end.checked_add(bytes));
            match reaches {
                Some(reaches) if reaches <= self.max_bytes => {}
                _ => return Scan::TooLarge,
            }
            if let Header::Blob(len) = header {
                let blob_end = end + len + 2;
                if blob_end > buf.len() {
                    self.line_from = line_end;
                    return Scan::Incomplete;
                }
                end = blob_end;
                if &buf[end - 2..end] != b"\r\n" {
                    return Scan::Invalid("a blob not followed by CRLF");
                }
            }
            self.at = end;
            self.line_from = 0;
            match header {
                Header::Aggregate(n) if n > 0 => {
                    if !self.enter(n, None) {
                        return Scan::TooDeep;
                    }
                    continue;
                }
                Header::Attribute(0) => {
                    self.open_attributes += 1;
                    self.attribute_closed(start);
                    continue;
                }
                Header::Attribute(n) => {
                    if !self.enter(n, Some(start)) {
                        return Scan::TooDeep;
                    }
                    continue;
                }
                // An empty aggregate, like a string, is one whole element.
                _ => {}
            }
            if self.element_done() {
                return Scan::Complete {
                    len: self.at,
                    attributes: std::mem::take(&mut self.attributes),
                };
            }
        }
    }

    /// Opens an aggregate; false if that is one level too many.
    fn enter(&mut self, left: u64, attribute: Option<usize>) -> bool {
        self.open_attributes += usize::from(attribute.is_some());
        // One of them is read next; the size check bounds the sum.
        self.unstarted += left - 1;
        self.open.push(Open { left, attribute });
        self.open.len() <= self.max_depth
    }

    /// One element ended at `self.at`: closes the aggregates it completes.
    /// True if it completes the reply.
    fn element_done(&mut self) -> bool {
        while let Some(innermost) = self.open.last_mut() {
            innermost.left -= 1;
            if innermost.left > 0 {
                // The next of them is read next.
                self.unstarted -= 1;
                return false;
            }
            let closed = self.open.pop().expect("just seen");
            if let Some(start) = closed.attribute {
                self.attribute_closed(start);
                // The frame it describes follows, and is the element.
                return false;
            }
        }
        true
    }

    /// The attribute starting at `start` ended at `self.at`.
    fn attribute_closed(&mut self, start: usize) {
        self.open_attributes -= 1;
        // One inside another attribute goes with the outer one.
        if self.open_attributes == 0 {
            self.attributes.push(start..self.at);
        }
    }
}

/// Reads a header the way redis-protocol's decoders do (the same types,
/// the same number parsing), so that a reply framed here is framed the
/// same there.
fn header(kind: u8, line: &[u8], protocol: Protocol) -> Result<Header, &'static str> {
    const BAD_LENGTH: &str = "a length that is not a number";
    const NEGATIVE: &str = "a negative length (a streamed reply in RESP3)";
    let unsigned = || -> Result<u64, &'static str> {
        let n: usize = parse(line).ok_or(BAD_LENGTH)?;
        Ok(n as u64)
    };
    // RESP2's null bulk string and null array; anything negative in RESP3
    // (`-1` and `?` both mean streamed to redis-protocol).
    let signed = || -> Result<Option<u64>, &'static str> {
        if line == b"?" {
            return Err("a streamed reply");
        }
        let n: isize = parse(line).ok_or(BAD_LENGTH)?;
        match n {
            -1 if protocol == Protocol::Resp2 => Ok(None),
            n => u64::try_from(n).map(Some).map_err(|_| NEGATIVE),
        }
    };
    let blob = |len: Option<u64>| match len {
        Some(len) => usize::try_from(len)
            .map(Header::Blob)
            .map_err(|_| BAD_LENGTH),
        None => Ok(Header::Line),
    };
    let aggregate = |n: Option<u64>| Ok(n.map_or(Header::Line, Header::Aggregate));
    match (protocol, kind) {
        (_, b'+' | b'-' | b':') => Ok(Header::Line),
        (_, b'$') => blob(signed()?),
        (_, b'*') => aggregate(signed()?),
        (Protocol::Resp2, _) => Err("an unknown reply type"),
        (Protocol::Resp3, b',' | b'#' | b'(' | b'_') => Ok(Header::Line),
        (Protocol::Resp3, b'!') => blob(Some(unsigned()?)),
        (Protocol::Resp3, b'=') => match unsigned()? {
            // `txt:` or `mkd:` comes first.
            len if len >= 4 => blob(Some(len)),
            _ => Err("a verbatim string too short for its format"),
        },
        (Protocol::Resp3, b'~') => aggregate(signed()?),
        (Protocol::Resp3, b'%') => aggregate(signed()?.map(|n| n.saturating_mul(2))),
        (Protocol::Resp3, b'>') => aggregate(Some(unsigned()?)),
        (Protocol::Resp3, b'|') => Ok(Header::Attribute(unsigned()?.saturating_mul(2))),
        (Protocol::Resp3, b';' | b'.') => Err("a streamed reply"),
        (Protocol::Resp3, _) => Err("an unknown reply type"),
    }
}

/// A number as redis-protocol reads one (Rust's `parse`: a leading `+`
/// is allowed).
fn parse<T: std::str::FromStr>(line: &[u8]) -> Option<T> {
    std::str::from_utf8(line).ok()?.parse().ok()
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let rest = buf.get(from..)?;
    rest.windows(2).position(|w| w == b"\r\n").map(|i| from + i)
}

/// `reply` without the attributes at `attributes` (as [`Scan::Complete`]
/// gives them). Those in front of the reply are skipped without copying;
/// only a reply with attributes inside it (which Redis does not send) is
/// copied.
pub(crate) fn without_attributes<'a>(
    reply: &'a [u8],
    attributes: &[Range<usize>],
) -> std::borrow::Cow<'a, [u8]> {
    let mut start = 0;
    let mut inner = attributes;
    while let [first, rest @ ..] = inner {
        if first.start != start {
            break;
        }
        start = first.end;
        inner = rest;
    }
    if inner.is_empty() {
        return reply[start..].into();
    }
    let mut kept = Vec::with_capacity(reply.len() - start);
    for attribute in inner {
        kept.extend_from_slice(&reply[start..attribute.start]);
        start = attribute.end;
    }
    kept.extend_from_slice(&reply[start..]);
    kept.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(buf: &[u8], protocol: Protocol, limit: usize) -> Scan {
        Scanner::new(limit, MAX_REPLY_BYTES).scan(buf, protocol)
    }

    fn complete(len: usize) -> Scan {
        Scan::Complete {
            len,
            attributes: vec![],
        }
    }

    #[test]
    fn nesting_is_measured_from_the_headers() {
        let deep = |n: usize| format!("{}:1\r\n", "*1\r\n".repeat(n)).into_bytes();
        for protocol in [Protocol::Resp2, Protocol::Resp3] {
            assert_eq!(scan(&deep(3), protocol, 3), complete(deep(3).len()));
            assert_eq!(scan(&deep(4), protocol, 3), Scan::TooDeep);
        }
        // Siblings do not add up; blobs (even holding `*`) are skipped.
        for (protocol, wide) in [
            (
                Protocol::Resp2,
                &b"*3\r\n*1\r\n:1\r\n$4\r\n*1\r\n\r\n*1\r\n*1\r\n*-1\r\n"[..],
            ),
            (
                Protocol::Resp3,
                b"*3\r\n*1\r\n:1\r\n$4\r\n*1\r\n\r\n*1\r\n*1\r\n_\r\n",
            ),
        ] {
            assert_eq!(scan(wide, protocol, 3), complete(wide.len()));
            assert_eq!(scan(wide, protocol, 2), Scan::TooDeep);
        }
        // Maps count keys and values; an attribute is not a level of its own
        // for the frame it precedes.
        let map = b"%1\r\n+k\r\n*1\r\n:1\r\n";
        assert_eq!(scan(map, Protocol::Resp3, 2), complete(map.len()));
        assert_eq!(scan(map, Protocol::Resp3, 1), Scan::TooDeep);
        let attributed = b"|1\r\n+a\r\n:1\r\n*1\r\n:1\r\n";
        assert_eq!(
            scan(attributed, Protocol::Resp3, 1),
            Scan::Complete {
                len: attributed.len(),
                attributes: vec![Range { start: 0, end: 12 }]
            }
        );
        // Only the first reply counts; what follows is the next one.
        assert_eq!(
            scan(b"*1\r\n:1\r\n*1\r\n*1\r\n", Protocol::Resp3, 1),
            complete(8)
        );
        // Incomplete: wait for more.
        for incomplete in [&b"*1\r\n*1"[..], b"", b"*1\r", b"$3\r\nab", b"$3\r\nabc\r"] {
            assert_eq!(scan(incomplete, Protocol::Resp3, 1), Scan::Incomplete);
        }
        // A length past the size limit is refused without waiting.
        assert_eq!(
            scan(b"$9223372036854775807\r\n", Protocol::Resp3, 1),
            Scan::TooLarge
        );
        // Unparsable: refused at once, whatever follows.
        for invalid in [
            &b"*x\r\n*1\r\n*1\r\n"[..],
            b"$99999999999999999999\r\n",
            b"\r\n*1\r\n*1\r\n",
            b"$0\r\n!4\r\n",
            b"*-2\r\n",
            b"*?\r\n",
            b"$?\r\n",
            b";3\r\nabc\r\n",
            b".\r\n",
            b">-1\r\n",
            b"=3\r\nabc\r\n",
        ] {
            assert!(
                matches!(scan(invalid, Protocol::Resp3, 1), Scan::Invalid(_)),
                "{:?}",
                String::from_utf8_lossy(invalid)
            );
        }
        // RESP2 has nulls as -1 lengths, and none of RESP3's types.
        assert_eq!(scan(b"*-1\r\n", Protocol::Resp2, 1), complete(5));
        assert_eq!(scan(b"$-1\r\n", Protocol::Resp2, 1), complete(5));
        assert!(matches!(
            scan(b"*-1\r\n", Protocol::Resp3, 1),
            Scan::Invalid(_)
        ));
        for resp3_only in [&b"_\r\n"[..], b"%0\r\n", b"|0\r\n:1\r\n", b">0\r\n"] {
            assert!(matches!(
                scan(resp3_only, Protocol::Resp2, 1),
                Scan::Invalid(_)
            ));
        }
    }

    #[test]
    fn attributes_are_found_wherever_they_are() {
        // In front of the reply, several, empty, inside one another (one
        // range for the outermost), and inside aggregates.
        let reply = b"|0\r\n|1\r\n+a\r\n|1\r\n+b\r\n:1\r\n:2\r\n*2\r\n|1\r\n+c\r\n_\r\n_\r\n%1\r\n|1\r\n+d\r\n:1\r\n+k\r\n_\r\n";
        let Scan::Complete { len, attributes } = scan(reply, Protocol::Resp3, 3) else {
            panic!()
        };
        assert_eq!(len, reply.len());
        let texts: Vec<_> = attributes.iter().map(|r| &reply[r.clone()]).collect();
        assert_eq!(
            texts,
            [
                &b"|0\r\n"[..],
                b"|1\r\n+a\r\n|1\r\n+b\r\n:1\r\n:2\r\n",
                b"|1\r\n+c\r\n_\r\n",
                b"|1\r\n+d\r\n:1\r\n",
            ]
        );
        assert_eq!(
            &*without_attributes(reply, &attributes),
            b"*2\r\n_\r\n%1\r\n+k\r\n_\r\n"
        );
        // Attributes only in front: a slice, not a copy.
        let front = b"|1\r\n+a\r\n:1\r\n_\r\n";
        let Scan::Complete { attributes, .. } = scan(front, Protocol::Resp3, 3) else {
            panic!()
        };
        assert!(matches!(
            without_attributes(front, &attributes),
            std::borrow::Cow::Borrowed(b"_\r\n")
        ));
        // An attribute is a level while it is open.
        assert_eq!(
            scan(b"*1\r\n|1\r\n+a\r\n:1\r\n:1\r\n", Protocol::Resp3, 1),
            Scan::TooDeep
        );
    }

    /// Only headers, no body: a length or count that cannot fit in the
    /// size limit is refused at once; one that can is waited for.
    #[test]
    fn sizes_past_the_limit_are_refused_at_their_header() {
        for protocol in [Protocol::Resp2, Protocol::Resp3] {
            for header in [
                &b"$100000000\r\n"[..],
                b"*100000000\r\n",
                b"*1\r\n$100000000\r\n",
            ] {
                assert_eq!(
                    scan(header, protocol, 3),
                    Scan::TooLarge,
                    "{:?}",
                    String::from_utf8_lossy(header)
                );
            }
        }
        for header in [
            &b"=100000000\r\n"[..],
            b"!100000000\r\n",
            b"%50000000\r\n",
            b"~100000000\r\n",
            b">100000000\r\n",
            b"|50000000\r\n",
            b"%9223372036854775807\r\n",
            b"*9223372036854775807\r\n",
        ] {
            assert_eq!(
                scan(header, Protocol::Resp3, 3),
                Scan::TooLarge,
                "{:?}",
                String::from_utf8_lossy(header)
            );
        }

        // At the limit: the reply, header and CRLF included, takes exactly
        // MAX_REPLY_BYTES.
        let header_len = |n: usize| format!("${n}\r\n").len();
        let fits = MAX_REPLY_BYTES - header_len(MAX_REPLY_BYTES) - 2;
        for (len, expected) in [(fits, Scan::Incomplete), (fits + 1, Scan::TooLarge)] {
            let header = format!("${len}\r\n");
            assert_eq!(
                scan(header.as_bytes(), Protocol::Resp3, 3),
                expected,
                "{header:?}"
            );
        }
        let count = (MAX_REPLY_BYTES - "*22369617\r\n".len()) / 3;
        assert_eq!(count, 22369617);
        assert_eq!(scan(b"*22369617\r\n", Protocol::Resp2, 3), Scan::Incomplete);
        assert_eq!(scan(b"*22369618\r\n", Protocol::Resp2, 3), Scan::TooLarge);

        // The same with the body sent, on a small limit: a reply of exactly
        // the limit is whole; a blob a byte longer is refused at its header,
        // counting the least the element after it can take (`_\r\n`).
        let at_limit = b"*2\r\n$4\r\nabcd\r\n_\r\n";
        let limit = at_limit.len();
        assert_eq!(
            Scanner::new(3, limit).scan(at_limit, Protocol::Resp3),
            complete(limit)
        );
        assert_eq!(
            Scanner::new(3, limit).scan(b"*2\r\n$5\r\n", Protocol::Resp3),
            Scan::TooLarge
        );
        // Each element takes 3 bytes at least, nested ones included.
        let nulls = b"*3\r\n_\r\n_\r\n_\r\n";
        assert_eq!(
            Scanner::new(3, nulls.len()).scan(nulls, Protocol::Resp3),
            complete(nulls.len())
        );
        assert_eq!(
            Scanner::new(3, nulls.len()).scan(b"*4\r\n", Protocol::Resp3),
            Scan::TooLarge
        );
        assert_eq!(
            Scanner::new(3, nulls.len()).scan(b"*2\r\n*2\r\n", Protocol::Resp3),
            Scan::TooLarge
        );
        let nested = b"*2\r\n*1\r\n_\r\n_\r\n";
        assert_eq!(
            Scanner::new(3, nested.len()).scan(nested, Protocol::Resp3),
            complete(nested.len())
        );

        // Fed a byte at a time, refused once the header line is whole.
        let mut scanner = Scanner::new(3, MAX_REPLY_BYTES);
        let header = b"$100000000\r\n";
        for end in 0..header.len() {
            assert_eq!(
                scanner.scan(&header[..end], Protocol::Resp3),
                Scan::Incomplete
            );
        }
        assert_eq!(scanner.scan(header, Protocol::Resp3), Scan::TooLarge);
    }

    /// Fed a byte at a time, the scan finds what it finds in one go, and
    /// resumes where it stopped (the position it keeps never goes back).
    #[test]
    fn scanning_resumes_across_reads() {
        let replies: [&[u8]; 4] = [
            b"*2\r\n$5\r\nab\r\nc\r\n%1\r\n|1\r\n+a\r\n_\r\n+k\r\n*0\r\n",
            b"|1\r\n+ttl\r\n:3\r\n_\r\n",
            b"=8\r\ntxt:a\r\nb\r\n",
            b"*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
        ];
        for reply in replies {
            let whole = scan(reply, Protocol::Resp3, 3);
            let mut scanner = Scanner::new(3, MAX_REPLY_BYTES);
            let mut last_at = 0;
            for end in 0..reply.len() {
                let got = scanner.scan(&reply[..end], Protocol::Resp3);
                if got != Scan::Incomplete {
                    assert_eq!(whole, Scan::TooDeep);
                    assert_eq!(got, Scan::TooDeep);
                    break;
                }
                assert!(scanner.at >= last_at);
                last_at = scanner.at;
            }
            if whole != Scan::TooDeep {
                assert_eq!(scanner.scan(reply, Protocol::Resp3), whole);
                assert!(matches!(whole, Scan::Complete { len, .. } if len == reply.len()));
            }
        }
    }
}
