//! A stateful stand-in for Grafana Loki's HTTP API, used by `cargo xtask dev`
//! and the end-to-end tests because no Loki server can be installed here.
//!
//! Covered, following Loki's API reference (`/loki/api/v1/push`,
//! `/loki/api/v1/query_range`, `/ready`) and its default limits:
//! - `POST /loki/api/v1/push` with `Content-Type: application/json`,
//!   optionally `Content-Encoding: gzip`; the body is
//!   `{"streams":[{"stream":{label:value},"values":[[ts, line], [ts, line, {metadata}]]}]}`
//!   with `ts` a string of int64 nanoseconds since the epoch. Answered as
//!   Loki answers: 204 on success; 400 with a plain-text reason, nothing
//!   stored, for a malformed body, an invalid label name, a non-string or
//!   non-int64 timestamp; 401 without the configured Basic credentials; 415
//!   for a body that is not JSON. As in Loki's distributor, a stream left
//!   without labels (empty values are dropped) and an entry older than
//!   7 days (`reject_old_samples_max_age`) or over 10 minutes ahead
//!   (`creation_grace_period`) are refused alone: the rest is stored and the
//!   answer is a 400 with the last reason. An entry with the timestamp and
//!   line of one already in its stream is dropped, as Loki's ingester does.
//! - `GET /loki/api/v1/query_range?query={a="b",c!="d"}&limit=N&direction=D`:
//!   the newest (`backward`, the default) or oldest (`forward`) `limit`
//!   entries (100 unless given, at most 5000: `max_entries_limit_per_query`)
//!   of all the streams whose labels match every equality/inequality
//!   matcher, in Loki's `{"status":"success","data":{"resultType":"streams",
//!   "result":[...]}}` shape. `/loki/api/v1/query` (instant) refuses log
//!   selectors with a 400, as Loki does.
//!
//! Not covered: protobuf (snappy) pushes, LogQL pipelines and metric queries,
//! regex matchers, `start`/`end` filtering, retention, tenants
//! (`X-Scope-OrgID`), and rate or size limits.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::io::Read;
use std::num::IntErrorKind;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

/// Loki's default `reject_old_samples_max_age`: older entries are refused.
pub const MAX_AGE_NS: i64 = 7 * 24 * 3_600 * 1_000_000_000;
/// Loki's default `creation_grace_period`: entries further ahead are refused.
pub const CREATION_GRACE_NS: i64 = 10 * 60 * 1_000_000_000;
/// Loki's `limit` when a query gives none.
const DEFAULT_LIMIT: i64 = 100;
/// Loki's default `max_entries_limit_per_query`.
pub const MAX_ENTRIES_LIMIT_PER_QUERY: i64 = 5_000;

/// How the stand-in is set up.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `user:password` that every request must present with Basic auth.
    pub basic_auth: Option<String>,
}

/// One log line as stored: nanosecond timestamp, line, structured metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub timestamp_ns: i64,
    pub line: String,
    pub metadata: BTreeMap<String, String>,
}

/// A stream's label set, sorted by name, as Loki identifies streams.
pub type Labels = BTreeMap<String, String>;

/// A stream as pushed, before Loki's validation.
#[derive(Debug, Clone, PartialEq)]
pub struct PushedStream {
    pub labels: Labels,
    pub entries: Vec<Entry>,
}

/// Streams keyed by their label set.
type Streams = BTreeMap<Labels, Vec<Entry>>;

#[derive(Default)]
struct Store {
    config: Config,
    streams: Mutex<Streams>,
}

/// The HTTP API of the stand-in.
pub fn router(config: Config) -> Router {
    let store = Arc::new(Store {
        config,
        streams: Mutex::default(),
    });
    Router::new()
        .route("/ready", get(|| async { "ready\n" }))
        .route("/loki/api/v1/push", post(push))
        .route("/loki/api/v1/query_range", get(query_range))
        .route("/loki/api/v1/query", get(instant_query))
        .with_state(store)
}

fn bad_request(message: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, message.into()).into_response()
}

fn unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, "authentication required\n").into_response()
}

fn authorized(config: &Config, headers: &HeaderMap) -> bool {
    let Some(expected) = &config.basic_auth else {
        return true;
    };
    let Some(presented) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .ok()
        })
    else {
        return false;
    };
    presented == expected.as_bytes()
}

/// Nanoseconds since the epoch, the clock Loki checks entries against.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

async fn push(State(store): State<Arc<Store>>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&store.config, &headers) {
        return unauthorized();
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json") {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "this stand-in accepts only application/json pushes\n",
        )
            .into_response();
    }
    let body = match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        None | Some("") | Some("identity") => body.to_vec(),
        Some("gzip") => {
            let mut out = Vec::new();
            if let Err(e) = flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out) {
                return bad_request(format!("invalid gzip body: {e}"));
            }
            out
        }
        Some(other) => {
            return (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported Content-Encoding: {other}\n"),
            )
                .into_response()
        }
    };
    let pushed = match parse_push(&body) {
        Ok(pushed) => pushed,
        Err(message) => return bad_request(message),
    };
    let (accepted, refused) = validate(pushed, now_ns());
    let mut streams = store.streams.lock().expect("store lock");
    for (labels, entries) in accepted {
        let stored = streams.entry(labels).or_default();
        for entry in entries {
            insert_unless_duplicate(stored, entry);
        }
    }
    match refused {
        Some(reason) => bad_request(reason),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// Parses a JSON push body the way Loki's push handler does: any error
/// here refuses the whole push.
pub fn parse_push(body: &[u8]) -> Result<Vec<PushedStream>, String> {
    #[derive(Deserialize)]
    struct Push {
        streams: Vec<Stream>,
    }
    #[derive(Deserialize)]
    struct Stream {
        stream: Labels,
        values: Vec<Vec<Value>>,
    }
    let push: Push = serde_json::from_slice(body).map_err(|e| format!("invalid push body: {e}"))?;
    let mut out = Vec::with_capacity(push.streams.len());
    for stream in push.streams {
        for name in stream.stream.keys() {
            if !valid_label_name(name) {
                return Err(format!("invalid label name: {name:?}"));
            }
        }
        let entries = stream
            .values
            .into_iter()
            .map(parse_entry)
            .collect::<Result<_, _>>()?;
        out.push(PushedStream {
            labels: stream.stream,
            entries,
        });
    }
    Ok(out)
}

/// Loki's distributor checks at `now_ns`: the streams and entries it keeps,
/// and the last reason it refused one (a push with one is answered 400).
pub fn validate(
    pushed: Vec<PushedStream>,
    now_ns: i64,
) -> (Vec<(Labels, Vec<Entry>)>, Option<String>) {
    let oldest = now_ns.saturating_sub(MAX_AGE_NS);
    let newest = now_ns.saturating_add(CREATION_GRACE_NS);
    let mut accepted = Vec::new();
    let mut refused = None;
    for stream in pushed {
        // Loki skips an empty stream before it looks at its labels.
        if stream.entries.is_empty() {
            continue;
        }
        // An empty value is an absent label to Loki, as to Prometheus.
        let labels: Labels = stream
            .labels
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .collect();
        if labels.is_empty() {
            refused = Some("error at least one label pair is required per stream".to_owned());
            continue;
        }
        let mut kept = Vec::with_capacity(stream.entries.len());
        for entry in stream.entries {
            if entry.timestamp_ns < oldest {
                refused = Some(format!(
                    "entry for stream '{}' has timestamp too old: {}, oldest acceptable timestamp is: {}",
                    label_string(&labels),
                    rfc3339(entry.timestamp_ns),
                    rfc3339(oldest)
                ));
            } else if entry.timestamp_ns > newest {
                refused = Some(format!(
                    "entry for stream '{}' has timestamp too new: {}",
                    label_string(&labels),
                    rfc3339(entry.timestamp_ns)
                ));
            } else {
                kept.push(entry);
            }
        }
        if !kept.is_empty() {
            accepted.push((labels, kept));
        }
    }
    (accepted, refused)
}

/// Adds `entry` in timestamp order, unless the stream has one with the same
/// timestamp and line: Loki's ingester drops such a duplicate.
fn insert_unless_duplicate(stored: &mut Vec<Entry>, entry: Entry) {
    let end = stored.partition_point(|e| e.timestamp_ns <= entry.timestamp_ns);
    let duplicate = stored[..end]
        .iter()
        .rev()
        .take_while(|e| e.timestamp_ns == entry.timestamp_ns)
        .any(|e| e.line == entry.line);
    if !duplicate {
        stored.insert(end, entry);
    }
}

fn parse_entry(value: Vec<Value>) -> Result<Entry, String> {
    let mut parts = value.into_iter();
    let (Some(ts), Some(line)) = (parts.next(), parts.next()) else {
        return Err("each value must be [timestamp, line] or [timestamp, line, metadata]".into());
    };
    let Value::String(ts) = ts else {
        return Err(format!(
            "timestamp must be a string of nanoseconds, got {ts}"
        ));
    };
    // Loki reads it with strconv.ParseInt(ts, 10, 64).
    let timestamp_ns: i64 = ts.parse().map_err(|e: std::num::ParseIntError| {
        let why = match e.kind() {
            IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => "value out of range",
            _ => "invalid syntax",
        };
        format!("invalid timestamp: strconv.ParseInt: parsing {ts:?}: {why}")
    })?;
    let Value::String(line) = line else {
        return Err(format!("log line must be a string, got {line}"));
    };
    let metadata = match parts.next() {
        None => BTreeMap::new(),
        Some(Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                other => Err(format!(
                    "structured metadata {k:?} must be a string, got {other}"
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(format!(
                "structured metadata must be an object, got {other}"
            ))
        }
    };
    if parts.next().is_some() {
        return Err("a value has more than three elements".into());
    }
    Ok(Entry {
        timestamp_ns,
        line,
        metadata,
    })
}

/// Prometheus/Loki label names: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A label set as Loki writes it in messages: `{a="x", b="y"}`.
fn label_string(labels: &Labels) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", pairs.join(", "))
}

/// `ns` since the epoch as Go's `time.RFC3339` in UTC, as in Loki's messages
/// (whole seconds, the fraction dropped).
fn rfc3339(ns: i64) -> String {
    // Every i64 of nanoseconds (1677-2262) is within jiff's range.
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| format!("{ns}ns"))
}

#[derive(Debug, PartialEq)]
enum Matcher {
    Eq(String, String),
    NotEq(String, String),
}

/// Parses a stream selector such as `{job="api", env!="prd"}`.
fn parse_selector(query: &str) -> Result<Vec<Matcher>, String> {
    let inner = query
        .trim()
        .strip_prefix('{')
        .and_then(|q| q.strip_suffix('}'))
        .ok_or_else(|| format!("parse error: expected a stream selector {{...}}, got {query:?}"))?;
    let mut matchers = Vec::new();
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let name_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .ok_or_else(|| format!("parse error at {rest:?}"))?;
        let name = rest[..name_end].to_owned();
        if !valid_label_name(&name) {
            return Err(format!("parse error: invalid label name {name:?}"));
        }
        rest = rest[name_end..].trim_start();
        let negated = if let Some(r) = rest.strip_prefix("!=") {
            rest = r;
            true
        } else if let Some(r) = rest.strip_prefix('=') {
            rest = r;
            false
        } else {
            return Err(format!(
                "parse error: only = and != matchers are supported, at {rest:?}"
            ));
        };
        rest = rest.trim_start();
        let (value, after) = parse_quoted(rest)?;
        matchers.push(if negated {
            Matcher::NotEq(name, value)
        } else {
            Matcher::Eq(name, value)
        });
        rest = after.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    if !matchers
        .iter()
        .any(|m| matches!(m, Matcher::Eq(_, v) if !v.is_empty()))
    {
        return Err(
            "queries require at least one equality matcher that does not match the empty string"
                .into(),
        );
    }
    Ok(matchers)
}

/// A double-quoted string with `\"` and `\\` escapes; returns it and the rest.
fn parse_quoted(input: &str) -> Result<(String, &str), String> {
    let body = input
        .strip_prefix('"')
        .ok_or_else(|| format!("parse error: expected a quoted value at {input:?}"))?;
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &body[i + 1..])),
            '\\' => match chars.next() {
                Some((_, escaped)) => value.push(escaped),
                None => break,
            },
            c => value.push(c),
        }
    }
    Err("parse error: unterminated string".into())
}

#[derive(Deserialize)]
struct QueryParams {
    query: String,
    limit: Option<String>,
    direction: Option<String>,
}

/// Loki's `limit`: a positive integer, at most `max_entries_limit_per_query`.
fn parse_limit(raw: Option<&str>) -> Result<usize, String> {
    let limit = match raw {
        None | Some("") => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<i64>()
            .map_err(|_| format!("strconv.ParseInt: parsing {raw:?}: invalid syntax"))?,
    };
    if limit <= 0 {
        return Err("limit must be a positive value".into());
    }
    if limit > MAX_ENTRIES_LIMIT_PER_QUERY {
        return Err(format!(
            "max entries limit per query exceeded, limit > max_entries_limit_per_query ({limit} > {MAX_ENTRIES_LIMIT_PER_QUERY})"
        ));
    }
    Ok(limit as usize)
}

async fn query_range(
    State(store): State<Arc<Store>>,
    headers: HeaderMap,
    Query(params): Query<QueryParams>,
) -> Response {
    if !authorized(&store.config, &headers) {
        return unauthorized();
    }
    let matchers = match parse_selector(&params.query) {
        Ok(m) => m,
        Err(e) => return bad_request(e),
    };
    let limit = match parse_limit(params.limit.as_deref()) {
        Ok(limit) => limit,
        Err(e) => return bad_request(e),
    };
    let backward = match params.direction.as_deref() {
        None | Some("") => true,
        Some(d) if d.eq_ignore_ascii_case("backward") => true,
        Some(d) if d.eq_ignore_ascii_case("forward") => false,
        Some(d) => return bad_request(format!("invalid direction '{d}'")),
    };
    let streams = store.streams.lock().expect("store lock");
    let mut picked: Vec<(&Labels, &Entry)> = streams
        .iter()
        .filter(|(labels, _)| {
            matchers.iter().all(|m| match m {
                Matcher::Eq(k, v) => labels.get(k).map(String::as_str).unwrap_or("") == v,
                Matcher::NotEq(k, v) => labels.get(k).map(String::as_str).unwrap_or("") != v,
            })
        })
        .flat_map(|(labels, entries)| entries.iter().map(move |e| (labels, e)))
        .collect();
    // Loki's limit is on the whole answer, not on each stream.
    if backward {
        picked.reverse();
        picked.sort_by_key(|(_, e)| Reverse(e.timestamp_ns));
    } else {
        picked.sort_by_key(|(_, e)| e.timestamp_ns);
    }
    picked.truncate(limit);
    let mut grouped: BTreeMap<&Labels, Vec<Value>> = BTreeMap::new();
    for (labels, e) in picked {
        grouped
            .entry(labels)
            .or_default()
            .push(json!([e.timestamp_ns.to_string(), e.line]));
    }
    let result: Vec<Value> = grouped
        .into_iter()
        .map(|(labels, values)| json!({ "stream": labels, "values": values }))
        .collect();
    Json(json!({
        "status": "success",
        "data": { "resultType": "streams", "result": result },
    }))
    .into_response()
}

/// Loki's instant queries are metric queries, which this stand-in does not
/// evaluate; a log selector is refused there as Loki refuses it.
async fn instant_query(
    State(store): State<Arc<Store>>,
    headers: HeaderMap,
    Query(params): Query<QueryParams>,
) -> Response {
    if !authorized(&store.config, &headers) {
        return unauthorized();
    }
    if let Err(e) = parse_selector(&params.query) {
        return bad_request(e);
    }
    bad_request(
        "log queries are not supported as an instant query type, please change your query to a range query type",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn push_request(body: &str) -> Request<Body> {
        Request::post("/loki/api/v1/push")
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap()
    }

    async fn send(app: &Router, request: Request<Body>) -> (StatusCode, String) {
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    /// `GET /loki/api/v1/query_range` with these (unencoded) parameters.
    fn query_request(params: &[(&str, &str)]) -> Request<Body> {
        let query = url_encoded(params);
        Request::get(format!("/loki/api/v1/query_range?{query}"))
            .body(Body::empty())
            .unwrap()
    }

    fn url_encoded(params: &[(&str, &str)]) -> String {
        let encode = |s: &str| {
            s.bytes()
                .map(|b| match b {
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        };
        params
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// The `result` of a successful query.
    async fn query(app: &Router, params: &[(&str, &str)]) -> Value {
        let (status, body) = send(app, query_request(params)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["data"]["resultType"], "streams");
        body["data"]["result"].clone()
    }

    #[tokio::test]
    async fn pushed_lines_are_read_back_in_order() {
        let app = router(Config::default());
        let now = now_ns();
        let (first, second) = (now - 2_000, now - 1_000);
        let (status, _) = send(
            &app,
            push_request(&format!(
                r#"{{"streams":[{{"stream":{{"job":"api","env":"dev"}},
                   "values":[["{second}","second"],["{first}","first",{{"trace_id":"t1"}}]]}}]}}"#
            )),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let result = query(&app, &[("query", r#"{job="api"}"#)]).await;
        assert_eq!(result[0]["stream"]["env"], "dev");
        assert_eq!(
            result[0]["values"],
            json!([[second.to_string(), "second"], [first.to_string(), "first"]])
        );
    }

    #[tokio::test]
    async fn gzip_bodies_are_accepted() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let body = format!(
            r#"{{"streams":[{{"stream":{{"job":"gz"}},"values":[["{}","x"]]}}]}}"#,
            now_ns()
        );
        gz.write_all(body.as_bytes()).unwrap();
        let app = router(Config::default());
        let request = Request::post("/loki/api/v1/push")
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(Body::from(gz.finish().unwrap()))
            .unwrap();
        assert_eq!(send(&app, request).await.0, StatusCode::NO_CONTENT);
    }

    #[tokio::test]
    async fn malformed_pushes_are_refused_like_loki() {
        let app = router(Config::default());
        let now = now_ns();
        for (body, reason) in [
            (
                format!(r#"{{"streams":[{{"stream":{{}},"values":[["{now}","x"]]}}]}}"#),
                "at least one label pair is required per stream",
            ),
            (
                format!(r#"{{"streams":[{{"stream":{{"1bad":"x"}},"values":[["{now}","x"]]}}]}}"#),
                "invalid label name",
            ),
            (
                format!(r#"{{"streams":[{{"stream":{{"job":"a"}},"values":[[{now},"x"]]}}]}}"#),
                "must be a string",
            ),
            (
                r#"{"streams":[{"stream":{"job":"a"},"values":[["1.5","x"]]}]}"#.to_owned(),
                r#"parsing "1.5": invalid syntax"#,
            ),
            (
                r#"{"streams":[{"stream":{"job":"a"},"values":[["9223372036854775808","x"]]}]}"#
                    .to_owned(),
                "value out of range",
            ),
            (
                r#"{"streams":[{"stream":{"job":"a"},"values":[["-9223372036854775809","x"]]}]}"#
                    .to_owned(),
                "value out of range",
            ),
            (
                format!(r#"{{"streams":[{{"stream":{{"job":"a"}},"values":[["{now}"]]}}]}}"#),
                "[timestamp, line]",
            ),
            (r#"{"nope":1}"#.to_owned(), "invalid push body"),
        ] {
            let (status, text) = send(&app, push_request(&body)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert!(text.contains(reason), "{body}: {text}");
        }
        assert_eq!(
            query(&app, &[("query", r#"{job="a"}"#)]).await,
            json!([]),
            "nothing of a malformed push is stored"
        );
        let wrong_type = Request::post("/loki/api/v1/push")
            .header("content-type", "application/x-protobuf")
            .body(Body::from("x"))
            .unwrap();
        assert_eq!(
            send(&app, wrong_type).await.0,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }

    #[tokio::test]
    async fn entries_outside_lokis_time_window_are_refused_and_the_rest_kept() {
        let app = router(Config::default());
        let now = now_ns();
        let minute = 60 * 1_000_000_000;
        let too_old = now - MAX_AGE_NS - minute;
        let old_enough = now - MAX_AGE_NS + minute;
        let soon = now + CREATION_GRACE_NS - minute;
        let too_new = now + CREATION_GRACE_NS + minute;
        let (status, text) = send(
            &app,
            push_request(&format!(
                r#"{{"streams":[{{"stream":{{"job":"w"}},"values":[
                    ["{too_old}","too old"],["{old_enough}","week"],["{now}","now"],["{soon}","soon"]]}}]}}"#
            )),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            text.starts_with(r#"entry for stream '{job="w"}' has timestamp too old: "#)
                && text.contains(", oldest acceptable timestamp is: "),
            "{text}"
        );
        let (status, text) = send(
            &app,
            push_request(&format!(
                r#"{{"streams":[{{"stream":{{"job":"w"}},"values":[["{too_new}","too new"]]}}]}}"#
            )),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            text.starts_with(r#"entry for stream '{job="w"}' has timestamp too new: "#),
            "{text}"
        );
        // Like the old tests' "1000": within int64, but in 1970.
        let (status, text) = send(
            &app,
            push_request(r#"{"streams":[{"stream":{"job":"w"},"values":[["1000","x"]]}]}"#),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(text.contains("too old: 1970-01-01T00:00:00Z"), "{text}");
        let result = query(&app, &[("query", r#"{job="w"}"#)]).await;
        let lines: Vec<&str> = result[0]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v[1].as_str().unwrap())
            .collect();
        assert_eq!(lines, ["soon", "now", "week"], "only the refused are lost");
    }

    #[test]
    fn the_time_window_is_lokis_at_its_bounds() {
        let now = 1_764_590_000_000_000_000;
        let entry = |timestamp_ns| Entry {
            timestamp_ns,
            line: "x".into(),
            metadata: BTreeMap::new(),
        };
        let stream = |ts| {
            vec![PushedStream {
                labels: Labels::from([("job".into(), "a".into())]),
                entries: vec![entry(ts)],
            }]
        };
        for ts in [now - MAX_AGE_NS, now, now + CREATION_GRACE_NS] {
            let (accepted, refused) = validate(stream(ts), now);
            assert_eq!((accepted.len(), refused), (1, None), "{ts}");
        }
        for ts in [
            i64::MIN,
            now - MAX_AGE_NS - 1,
            now + CREATION_GRACE_NS + 1,
            i64::MAX,
        ] {
            let (accepted, refused) = validate(stream(ts), now);
            assert!(accepted.is_empty() && refused.is_some(), "{ts}");
        }
        let (_, refused) = validate(stream(now - MAX_AGE_NS - 1), now);
        assert_eq!(
            refused.unwrap(),
            "entry for stream '{job=\"a\"}' has timestamp too old: 2025-11-24T11:53:19Z, \
             oldest acceptable timestamp is: 2025-11-24T11:53:20Z"
        );
    }

    #[test]
    fn timestamps_are_written_as_go_writes_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339(1_764_590_000_999_999_999), "2025-12-01T11:53:20Z");
        assert_eq!(rfc3339(951_782_400_000_000_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(i64::MAX), "2262-04-11T23:47:16Z");
        assert_eq!(rfc3339(i64::MIN), "1677-09-21T00:12:43Z");
    }

    #[tokio::test]
    async fn empty_label_values_are_dropped_before_the_stream_is_checked() {
        let app = router(Config::default());
        let now = now_ns();
        let (status, _) = send(
            &app,
            push_request(&format!(
                r#"{{"streams":[{{"stream":{{"a":"x","b":""}},"values":[["{now}","kept"]]}}]}}"#
            )),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let result = query(&app, &[("query", r#"{a="x"}"#)]).await;
        assert_eq!(
            result[0]["stream"],
            json!({"a": "x"}),
            "stored as {{a=\"x\"}}"
        );
        // A stream whose only label is empty has none; the other stream of
        // the push is stored all the same.
        let (status, text) = send(
            &app,
            push_request(&format!(
                r#"{{"streams":[{{"stream":{{"b":""}},"values":[["{now}","lost"]]}},
                               {{"stream":{{"a":"y"}},"values":[["{now}","other"]]}}]}}"#
            )),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(text, "error at least one label pair is required per stream");
        let result = query(&app, &[("query", r#"{a="y"}"#)]).await;
        assert_eq!(result[0]["values"][0][1], "other");
    }

    #[tokio::test]
    async fn duplicate_entries_are_dropped() {
        let app = router(Config::default());
        let now = now_ns();
        let later = now + 1;
        for _ in 0..2 {
            let (status, _) = send(
                &app,
                push_request(&format!(
                    r#"{{"streams":[{{"stream":{{"job":"d"}},"values":[
                        ["{now}","a"],["{now}","a"],["{now}","b"],["{later}","a"]]}}]}}"#
                )),
            )
            .await;
            assert_eq!(status, StatusCode::NO_CONTENT);
        }
        let result = query(&app, &[("query", r#"{job="d"}"#)]).await;
        assert_eq!(
            result[0]["values"],
            json!([
                [later.to_string(), "a"],
                [now.to_string(), "b"],
                [now.to_string(), "a"],
            ]),
            "one of each (timestamp, line)"
        );
    }

    #[tokio::test]
    async fn the_limit_is_on_the_whole_answer() {
        let app = router(Config::default());
        let t = now_ns();
        let (status, _) = send(
            &app,
            push_request(&format!(
                r#"{{"streams":[
                    {{"stream":{{"job":"l","s":"1"}},"values":[["{}","1"],["{}","3"]]}},
                    {{"stream":{{"job":"l","s":"2"}},"values":[["{}","2"],["{}","4"]]}}]}}"#,
                t + 1,
                t + 3,
                t + 2,
                t + 4
            )),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let lines = |result: Value| -> Vec<Vec<String>> {
            result
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    s["values"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v[1].as_str().unwrap().to_owned())
                        .collect()
                })
                .collect()
        };
        let newest = query(&app, &[("query", r#"{job="l"}"#), ("limit", "3")]).await;
        assert_eq!(lines(newest), [vec!["3"], vec!["4", "2"]]);
        let oldest = query(
            &app,
            &[
                ("query", r#"{job="l"}"#),
                ("limit", "3"),
                ("direction", "forward"),
            ],
        )
        .await;
        assert_eq!(lines(oldest), [vec!["1", "3"], vec!["2"]]);
        let all = query(&app, &[("query", r#"{job="l"}"#), ("limit", "5000")]).await;
        assert_eq!(lines(all), [vec!["3", "1"], vec!["4", "2"]]);
    }

    #[tokio::test]
    async fn limits_loki_refuses_are_refused() {
        let app = router(Config::default());
        for (limit, reason) in [
            (
                "5001",
                "max entries limit per query exceeded, limit > max_entries_limit_per_query (5001 > 5000)",
            ),
            ("0", "limit must be a positive value"),
            ("-1", "limit must be a positive value"),
            ("ten", "invalid syntax"),
        ] {
            let (status, text) = send(
                &app,
                query_request(&[("query", r#"{job="a"}"#), ("limit", limit)]),
            )
            .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{limit}");
            assert!(text.contains(reason), "{limit}: {text}");
        }
        let (status, text) = send(
            &app,
            query_request(&[("query", r#"{job="a"}"#), ("direction", "sideways")]),
        )
        .await;
        assert_eq!(
            (status, text.as_str()),
            (StatusCode::BAD_REQUEST, "invalid direction 'sideways'")
        );
    }

    #[tokio::test]
    async fn instant_queries_of_log_selectors_are_refused_like_loki() {
        let app = router(Config::default());
        let now = now_ns();
        let body =
            format!(r#"{{"streams":[{{"stream":{{"job":"i"}},"values":[["{now}","x"]]}}]}}"#);
        assert_eq!(
            send(&app, push_request(&body)).await.0,
            StatusCode::NO_CONTENT
        );
        let (status, text) = send(
            &app,
            Request::get(format!(
                "/loki/api/v1/query?{}",
                url_encoded(&[("query", r#"{job="i"}"#)])
            ))
            .body(Body::empty())
            .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            text,
            "log queries are not supported as an instant query type, please change your query to a range query type"
        );
    }

    #[tokio::test]
    async fn basic_auth_is_enforced_when_configured() {
        let app = router(Config {
            basic_auth: Some("123:token".into()),
        });
        let body = format!(
            r#"{{"streams":[{{"stream":{{"job":"a"}},"values":[["{}","x"]]}}]}}"#,
            now_ns()
        );
        assert_eq!(
            send(&app, push_request(&body)).await.0,
            StatusCode::UNAUTHORIZED
        );
        let mut request = push_request(&body);
        let encoded = base64::engine::general_purpose::STANDARD.encode("123:token");
        request.headers_mut().insert(
            header::AUTHORIZATION,
            format!("Basic {encoded}").parse().unwrap(),
        );
        assert_eq!(send(&app, request).await.0, StatusCode::NO_CONTENT);
    }

    #[test]
    fn selectors_parse() {
        assert_eq!(
            parse_selector(r#"{job="api", env!="prd", q="a\"b"}"#).unwrap(),
            vec![
                Matcher::Eq("job".into(), "api".into()),
                Matcher::NotEq("env".into(), "prd".into()),
                Matcher::Eq("q".into(), "a\"b".into()),
            ]
        );
        assert!(
            parse_selector(r#"{env!="prd"}"#).is_err(),
            "needs a non-empty equality"
        );
        assert!(parse_selector(r#"job="api""#).is_err());
        assert!(parse_selector(r#"{job=~"a.*"}"#).is_err());
    }
}
