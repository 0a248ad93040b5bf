//! Responses timed one by one: each connection sends a request, waits for
//! the whole answer, and records how long that took, with no correction.
//!
//! wrk corrects its percentiles for coordinated omission before it prints
//! them (`PERCENTILES_ARE` in the bench), so its p99 is about the length of
//! a run's few longest stalls, and it has no way to print the responses'
//! own times. This closed-loop client does: a thread per connection with a
//! blocking socket times each exchange from the request's first byte
//! written to the answer's last byte read. Its rate is not compared with
//! anything (wrk's is); its percentiles are what a client of the Worker saw.
//!
//! Written by hand rather than with an HTTP client crate: it has to send
//! the exact bytes of a case's request on a kept-alive connection and do
//! nothing else per exchange, and it reads only what workerd sends (a
//! `Content-Length` or chunked body); `httparse` parses the heads.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How long a connection waits for an answer before it counts a socket
/// error and connects again (wrk's `--timeout` in the bench).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A response at least this slow counts in [`Timed::over_10ms`].
const SLOW: Duration = Duration::from_millis(10);

/// One request on the wire: `METHOD path HTTP/1.1`, `Host`, the headers,
/// a `Content-Length` when there is a body, and the body.
pub(super) fn request(
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, String)],
    body: Option<&str>,
) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        out.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if let Some(body) = body {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// What one or more timed loads of a case on a target recorded.
#[derive(Debug, Default)]
pub(super) struct Samples {
    /// Each response's time, in microseconds, in no particular order.
    micros: Vec<u32>,
    unexpected: u64,
    rate_limited: u64,
    socket_errors: u64,
    seconds: f64,
}

impl Samples {
    /// Adds another load's samples (several `--isolates` starts).
    pub(super) fn merge(&mut self, other: Samples) {
        self.micros.extend(other.micros);
        self.unexpected += other.unexpected;
        self.rate_limited += other.rate_limited;
        self.socket_errors += other.socket_errors;
        self.seconds += other.seconds;
    }

    pub(super) fn summary(&self) -> Timed {
        let mut sorted = self.micros.clone();
        sorted.sort_unstable();
        let ms = |micros: u32| f64::from(micros) / 1000.0;
        // The nearest rank: the smallest time at least `p` of the
        // responses took no longer than.
        let percentile = |p: f64| {
            let rank = (p * sorted.len() as f64).ceil() as usize;
            sorted
                .get(rank.clamp(1, sorted.len().max(1)) - 1)
                .map_or(f64::NAN, |&m| ms(m))
        };
        Timed {
            responses: sorted.len() as u64,
            responses_per_sec: sorted.len() as f64 / self.seconds.max(f64::MIN_POSITIVE),
            p50_ms: percentile(0.50),
            p99_ms: percentile(0.99),
            p999_ms: percentile(0.999),
            max_ms: sorted.last().map_or(f64::NAN, |&m| ms(m)),
            over_10ms: sorted
                .iter()
                .filter(|&&m| u128::from(m) >= SLOW.as_micros())
                .count() as u64,
            unexpected: self.unexpected,
            rate_limited: self.rate_limited,
            socket_errors: self.socket_errors,
        }
    }
}

/// The responses of a case on a target, timed one by one.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Timed {
    pub(super) responses: u64,
    /// The closed-loop client's own rate: between 14 % under and 9 % over
    /// wrk's, case by case, in BENCHMARKS.md's twenty-first pass; not
    /// compared with anything (wrk's is).
    pub(super) responses_per_sec: f64,
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
    pub(super) p999_ms: f64,
    pub(super) max_ms: f64,
    /// Responses that took 10 ms or more.
    pub(super) over_10ms: u64,
    /// Answers with a status other than the case's expected ones.
    pub(super) unexpected: u64,
    /// Answers refused by the rate limit (429), expected or not.
    pub(super) rate_limited: u64,
    /// Connections that failed, broke or waited past [`ANSWER_TIMEOUT`].
    pub(super) socket_errors: u64,
}

impl Timed {
    /// `N wrong statuses, M socket errors`, if there was either.
    pub(super) fn errors(&self) -> Option<String> {
        (self.unexpected + self.socket_errors > 0).then(|| {
            format!(
                "{} wrong statuses, {} socket errors",
                self.unexpected, self.socket_errors
            )
        })
    }
}

/// Loads `addr` for `duration` over `connections` connections, each
/// sending the next of `requests` in turn (one counter for all, as wrk's
/// script does) and timing every answer; a status outside `expected`
/// counts as unexpected.
pub(super) fn load(
    addr: SocketAddr,
    requests: &[Vec<u8>],
    expected: &[u16],
    connections: u32,
    duration: Duration,
) -> Samples {
    assert!(!requests.is_empty(), "a load needs a request to send");
    let requests: Arc<[Vec<u8>]> = requests.into();
    let expected: Arc<[u16]> = expected.into();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let until = started + duration;
    let threads: Vec<_> = (0..connections)
        .map(|_| {
            let (requests, expected, next) = (requests.clone(), expected.clone(), next.clone());
            std::thread::spawn(move || connection(addr, &requests, &expected, &next, until))
        })
        .collect();
    let mut samples = Samples::default();
    for thread in threads {
        // A connection's thread panics only on a bug here: pass it on
        // rather than count it as the server's error.
        match thread.join() {
            Ok(one) => samples.merge(one),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
    samples.seconds = started.elapsed().as_secs_f64();
    samples
}

/// One connection's exchanges until `until`; connects again after a
/// socket error, as wrk does.
fn connection(
    addr: SocketAddr,
    requests: &[Vec<u8>],
    expected: &[u16],
    next: &AtomicUsize,
    until: Instant,
) -> Samples {
    let mut samples = Samples::default();
    let mut stream: Option<TcpStream> = None;
    let mut buffer = Vec::with_capacity(16 * 1024);
    while Instant::now() < until {
        let socket = match &mut stream {
            Some(socket) => socket,
            None => match connect(addr) {
                Ok(socket) => stream.insert(socket),
                Err(_) => {
                    samples.socket_errors += 1;
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        let request = &requests[next.fetch_add(1, Ordering::Relaxed) % requests.len()];
        let sent = Instant::now();
        let answer = socket
            .write_all(request)
            .and_then(|()| read_answer(socket, &mut buffer));
        match answer {
            Ok(status) => {
                let took = sent.elapsed().as_micros();
                samples.micros.push(u32::try_from(took).unwrap_or(u32::MAX));
                if !expected.contains(&status) {
                    samples.unexpected += 1;
                }
                if status == 429 {
                    samples.rate_limited += 1;
                }
            }
            Err(_) => {
                samples.socket_errors += 1;
                stream = None;
                buffer.clear();
            }
        }
    }
    samples
}

fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpStream::connect_timeout(&addr, ANSWER_TIMEOUT)?;
    socket.set_nodelay(true)?;
    socket.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    Ok(socket)
}

/// Reads one whole answer from `socket` (bytes already read beyond the
/// previous answer are in `buffer`; bytes beyond this one stay there) and
/// returns its status.
fn read_answer(socket: &mut TcpStream, buffer: &mut Vec<u8>) -> std::io::Result<u16> {
    let invalid = |what: &str| std::io::Error::new(ErrorKind::InvalidData, what.to_owned());
    // The head.
    let (status, head_len, body) = loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(buffer) {
            Ok(httparse::Status::Complete(head_len)) => {
                let status = response.code.ok_or_else(|| invalid("no status"))?;
                let mut body = Body::Empty;
                for header in response.headers.iter() {
                    if header.name.eq_ignore_ascii_case("content-length") {
                        let length = std::str::from_utf8(header.value)
                            .ok()
                            .and_then(|v| v.trim().parse().ok())
                            .ok_or_else(|| invalid("bad content-length"))?;
                        body = Body::Length(length);
                    } else if header.name.eq_ignore_ascii_case("transfer-encoding")
                        && header.value.eq_ignore_ascii_case(b"chunked")
                    {
                        body = Body::Chunked;
                    }
                }
                if matches!(body, Body::Empty) && !(status == 204 || status == 304) {
                    return Err(invalid("an answer without a length"));
                }
                break (status, head_len, body);
            }
            Ok(httparse::Status::Partial) => fill(socket, buffer)?,
            Err(_) => return Err(invalid("not an HTTP answer")),
        }
    };
    // The body.
    let end = match body {
        Body::Empty => head_len,
        Body::Length(length) => {
            while buffer.len() < head_len + length {
                fill(socket, buffer)?;
            }
            head_len + length
        }
        Body::Chunked => {
            let mut at = head_len;
            loop {
                match httparse::parse_chunk_size(&buffer[at..]) {
                    Ok(httparse::Status::Complete((size_len, 0))) => {
                        // The last chunk, then an empty trailer.
                        while buffer.len() < at + size_len + 2 {
                            fill(socket, buffer)?;
                        }
                        break at + size_len + 2;
                    }
                    Ok(httparse::Status::Complete((size_len, size))) => {
                        let size = usize::try_from(size).map_err(|_| invalid("huge chunk"))?;
                        let chunk_end = at + size_len + size + 2;
                        while buffer.len() < chunk_end {
                            fill(socket, buffer)?;
                        }
                        at = chunk_end;
                    }
                    Ok(httparse::Status::Partial) => fill(socket, buffer)?,
                    Err(_) => return Err(invalid("bad chunk size")),
                }
            }
        }
    };
    buffer.drain(..end);
    Ok(status)
}

enum Body {
    Empty,
    Length(usize),
    Chunked,
}

/// Reads what the socket has into `buffer`; a closed connection is an
/// error, since every answer read here has a known end.
fn fill(socket: &mut TcpStream, buffer: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; 16 * 1024];
    let read = socket.read(&mut chunk)?;
    if read == 0 {
        return Err(ErrorKind::UnexpectedEof.into());
    }
    buffer.extend_from_slice(&chunk[..read]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server answering each request on a connection with the next of
    /// `answers` (cycling), after `delay` for every `slow_every`-th one.
    fn server(answers: Vec<Vec<u8>>, delay: Duration, slow_every: usize) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for socket in listener.incoming() {
                let Ok(mut socket) = socket else { return };
                let answers = answers.clone();
                // Without it, the answer's second write would wait for the
                // client's delayed ACK of the first (Nagle).
                socket.set_nodelay(true).unwrap();
                std::thread::spawn(move || {
                    let mut buffer = Vec::new();
                    let mut served = 0;
                    loop {
                        // A request ends at its empty line (the test sends
                        // no bodies to this server).
                        while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
                            let mut chunk = [0u8; 4096];
                            match socket.read(&mut chunk) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let end = buffer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                        buffer.drain(..end);
                        served += 1;
                        if served % slow_every == 0 {
                            std::thread::sleep(delay);
                        }
                        let answer = &answers[(served - 1) % answers.len()];
                        // In two writes, so the client sees a split answer.
                        let (first, rest) = answer.split_at(answer.len() / 2);
                        if socket.write_all(first).is_err() {
                            return;
                        }
                        std::thread::sleep(Duration::from_micros(200));
                        if socket.write_all(rest).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    #[test]
    fn requests_carry_their_headers_and_body_length() {
        let bytes = request(
            "PUT",
            "/v1/pages/a",
            "127.0.0.1:1",
            &[("content-type", "application/json".to_owned())],
            Some("{}"),
        );
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "PUT /v1/pages/a HTTP/1.1\r\nhost: 127.0.0.1:1\r\n\
             content-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
        );
    }

    #[test]
    fn every_answer_is_read_whole_and_timed_and_slow_ones_are_counted() {
        let answers = vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n{\"ok\":true}".to_vec(),
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{\"ok\r\n7\r\n\":true}\r\n0\r\n\r\n"
                .to_vec(),
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}".to_vec(),
            b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
        ];
        // Every 50th answer on a connection waits 30 ms.
        let addr = server(answers, Duration::from_millis(30), 50);
        let get = request("GET", "/", "x", &[], None);
        let samples = load(addr, &[get], &[200, 204], 2, Duration::from_millis(800));
        let timed = samples.summary();
        assert_eq!(timed.socket_errors, 0, "{timed:?}");
        assert!(timed.responses >= 100, "{timed:?}");
        // One answer in four is the 404.
        let quarter = timed.responses / 4;
        assert!(
            (quarter.saturating_sub(2)..=quarter + 2).contains(&timed.unexpected),
            "{timed:?}"
        );
        // The 30 ms answers count as slow and set the maximum; the median
        // is far below them.
        assert!(timed.over_10ms >= 1, "{timed:?}");
        assert!(timed.over_10ms <= timed.responses / 25, "{timed:?}");
        assert!(timed.max_ms >= 30.0, "{timed:?}");
        assert!(timed.p50_ms < 10.0, "{timed:?}");
    }

    #[test]
    fn a_closed_connection_is_a_socket_error_and_the_client_connects_again() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            // The first connection is closed without an answer; the rest
            // are answered.
            let mut first = true;
            for socket in listener.incoming() {
                let Ok(mut socket) = socket else { return };
                if first {
                    first = false;
                    drop(socket);
                    continue;
                }
                std::thread::spawn(move || {
                    let mut chunk = [0u8; 4096];
                    while matches!(socket.read(&mut chunk), Ok(n) if n > 0) {
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if socket.write_all(answer).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let get = request("GET", "/", "x", &[], None);
        let timed = load(addr, &[get], &[200], 1, Duration::from_millis(300)).summary();
        assert_eq!(timed.socket_errors, 1, "{timed:?}");
        assert!(timed.responses > 10, "{timed:?}");
        assert_eq!(timed.unexpected, 0, "{timed:?}");
        assert_eq!(
            timed.errors().as_deref(),
            Some("0 wrong statuses, 1 socket errors")
        );
    }

    #[test]
    fn requests_go_out_in_turn_across_connections() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for socket in listener.incoming() {
                let Ok(mut socket) = socket else { return };
                let record = record.clone();
                std::thread::spawn(move || {
                    let mut chunk = [0u8; 4096];
                    while let Ok(n) = socket.read(&mut chunk) {
                        if n == 0 {
                            return;
                        }
                        let path = String::from_utf8_lossy(&chunk[..n])
                            .split(' ')
                            .nth(1)
                            .unwrap_or_default()
                            .to_owned();
                        record.lock().unwrap().push(path);
                        if socket
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        let requests: Vec<Vec<u8>> = ["/1", "/2", "/3"]
            .iter()
            .map(|p| request("GET", p, "x", &[], None))
            .collect();
        let timed = load(addr, &requests, &[200], 3, Duration::from_millis(300)).summary();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len() as u64, timed.responses);
        for path in ["/1", "/2", "/3"] {
            let count = seen.iter().filter(|p| *p == path).count() as u64;
            assert!(
                count + 1 >= timed.responses / 3 && count <= timed.responses / 3 + 1,
                "{path}: {count} of {}",
                timed.responses
            );
        }
    }

    #[test]
    fn percentiles_are_nearest_ranks() {
        let samples = Samples {
            micros: (1..=1000).rev().map(|m| m * 100).collect(),
            unexpected: 0,
            rate_limited: 0,
            socket_errors: 0,
            seconds: 2.0,
        };
        let timed = samples.summary();
        assert_eq!(timed.responses, 1000);
        assert_eq!(timed.responses_per_sec, 500.0);
        assert_eq!(timed.p50_ms, 50.0);
        assert_eq!(timed.p99_ms, 99.0);
        assert_eq!(timed.p999_ms, 99.9);
        assert_eq!(timed.max_ms, 100.0);
        // 10 ms and more: 100 us x 100..=1000.
        assert_eq!(timed.over_10ms, 901);
        assert_eq!(timed.errors(), None, "no error, nothing to report");
    }
}
