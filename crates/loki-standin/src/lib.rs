//! A stateful stand-in for Grafana Loki's HTTP API, used by `cargo xtask dev`
//! and the end-to-end tests because no Loki server can be installed here.
//!
//! Covered, following Loki's API reference (`/loki/api/v1/push`,
//! `/loki/api/v1/query_range`, `/ready`):
//! - `POST /loki/api/v1/push` with `Content-Type: application/json`,
//!   optionally `Content-Encoding: gzip`; the body is
//!   `{"streams":[{"stream":{label:value},"values":[[ts, line], [ts, line, {metadata}]]}]}`
//!   with `ts` a string of integer nanoseconds since the epoch. Loki's checks
//!   are applied and answered as Loki answers them: 204 on success, 400 with a
//!   plain-text reason for a malformed body, a stream without labels, an
//!   invalid label name, a non-string or non-integer timestamp; 401 without the
//!   configured Basic credentials; 415 for a body that is not JSON.
//! - `GET /loki/api/v1/query_range?query={a="b",c!="d"}&limit=N` (also
//!   `/query`): streams whose labels match every equality/inequality matcher,
//!   with entries in timestamp order, in Loki's `{"status":"success","data":
//!   {"resultType":"streams","result":[...]}}` shape.
//!
//! Not covered: protobuf (snappy) pushes, LogQL pipelines and metric queries,
//! regex matchers, time-range filtering, retention, tenants (`X-Scope-OrgID`),
//! and rate or size limits. The telemetry work deepens validation as needed.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

/// How the stand-in is set up.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `user:password` that every request must present with Basic auth.
    pub basic_auth: Option<String>,
}

/// One log line as stored: nanosecond timestamp, line, structured metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub timestamp_ns: i128,
    pub line: String,
    pub metadata: BTreeMap<String, String>,
}

/// A stream's label set, sorted by name, as Loki identifies streams.
pub type Labels = BTreeMap<String, String>;

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
        .route("/loki/api/v1/query_range", get(query))
        .route("/loki/api/v1/query", get(query))
        .with_state(store)
}

fn bad_request(message: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, message.into()).into_response()
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

async fn push(State(store): State<Arc<Store>>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&store.config, &headers) {
        return (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
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
    let parsed = match parse_push(&body) {
        Ok(parsed) => parsed,
        Err(message) => return bad_request(message),
    };
    let mut streams = store.streams.lock().expect("store lock");
    for (labels, entries) in parsed {
        let stored = streams.entry(labels).or_default();
        stored.extend(entries);
        stored.sort_by_key(|e| e.timestamp_ns);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Validates and parses a JSON push body the way Loki's push handler does.
pub fn parse_push(body: &[u8]) -> Result<Vec<(Labels, Vec<Entry>)>, String> {
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
        if stream.stream.is_empty() {
            return Err("error at least one label pair is required per stream".into());
        }
        for name in stream.stream.keys() {
            if !valid_label_name(name) {
                return Err(format!("invalid label name: {name:?}"));
            }
        }
        let mut entries = Vec::with_capacity(stream.values.len());
        for value in stream.values {
            entries.push(parse_entry(value)?);
        }
        out.push((stream.stream, entries));
    }
    Ok(out)
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
    let timestamp_ns: i128 = ts
        .parse()
        .map_err(|_| format!("timestamp {ts:?} is not an integer number of nanoseconds"))?;
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
    limit: Option<usize>,
}

async fn query(
    State(store): State<Arc<Store>>,
    headers: HeaderMap,
    Query(params): Query<QueryParams>,
) -> Response {
    if !authorized(&store.config, &headers) {
        return (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
    }
    let matchers = match parse_selector(&params.query) {
        Ok(m) => m,
        Err(e) => return bad_request(e),
    };
    let limit = params.limit.unwrap_or(100);
    let streams = store.streams.lock().expect("store lock");
    let result: Vec<Value> = streams
        .iter()
        .filter(|(labels, _)| {
            matchers.iter().all(|m| match m {
                Matcher::Eq(k, v) => labels.get(k).map(String::as_str).unwrap_or("") == v,
                Matcher::NotEq(k, v) => labels.get(k).map(String::as_str).unwrap_or("") != v,
            })
        })
        .map(|(labels, entries)| {
            // Loki returns the newest `limit` entries (direction=backward).
            let values: Vec<Value> = entries
                .iter()
                .rev()
                .take(limit)
                .map(|e| json!([e.timestamp_ns.to_string(), e.line]))
                .collect();
            json!({ "stream": labels, "values": values })
        })
        .collect();
    Json(json!({
        "status": "success",
        "data": { "resultType": "streams", "result": result },
    }))
    .into_response()
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

    #[tokio::test]
    async fn pushed_lines_are_read_back_in_order() {
        let app = router(Config::default());
        let (status, _) = send(
            &app,
            push_request(
                r#"{"streams":[{"stream":{"job":"api","env":"dev"},
                   "values":[["2000","second"],["1000","first",{"trace_id":"t1"}]]}]}"#,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, body) = send(
            &app,
            Request::get("/loki/api/v1/query_range?query=%7Bjob%3D%22api%22%7D")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["data"]["resultType"], "streams");
        let result = &body["data"]["result"][0];
        assert_eq!(result["stream"]["env"], "dev");
        assert_eq!(
            result["values"],
            json!([["2000", "second"], ["1000", "first"]])
        );
    }

    #[tokio::test]
    async fn gzip_bodies_are_accepted() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(br#"{"streams":[{"stream":{"job":"gz"},"values":[["1","x"]]}]}"#)
            .unwrap();
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
        for (body, reason) in [
            (
                r#"{"streams":[{"stream":{},"values":[["1","x"]]}]}"#,
                "at least one label",
            ),
            (
                r#"{"streams":[{"stream":{"1bad":"x"},"values":[["1","x"]]}]}"#,
                "invalid label name",
            ),
            (
                r#"{"streams":[{"stream":{"job":"a"},"values":[[1,"x"]]}]}"#,
                "must be a string",
            ),
            (
                r#"{"streams":[{"stream":{"job":"a"},"values":[["1.5","x"]]}]}"#,
                "not an integer",
            ),
            (
                r#"{"streams":[{"stream":{"job":"a"},"values":[["1"]]}]}"#,
                "[timestamp, line]",
            ),
            (r#"{"nope":1}"#, "invalid push body"),
        ] {
            let (status, text) = send(&app, push_request(body)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert!(text.contains(reason), "{body}: {text}");
        }
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
    async fn basic_auth_is_enforced_when_configured() {
        let app = router(Config {
            basic_auth: Some("123:token".into()),
        });
        let body = r#"{"streams":[{"stream":{"job":"a"},"values":[["1","x"]]}]}"#;
        assert_eq!(
            send(&app, push_request(body)).await.0,
            StatusCode::UNAUTHORIZED
        );
        let mut request = push_request(body);
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
