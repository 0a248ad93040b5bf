//! A scripted HTTP server standing in for the API in tests: each test gives
//! a function from (request, index) to response, and reads back every
//! request received.

#![allow(dead_code)]

pub mod openapi;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use cloudflare::{Client, ClientConfig, RequestBudget, RetryPolicy, VirtualClock};
use serde_json::{json, Value};

pub const TOKEN: &str = "tok-SUPERSECRET-0123456789";

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What the server answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Option<Duration>,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
            delay: None,
        }
    }

    /// A success envelope around `result`.
    pub fn ok(result: Value) -> Self {
        Self::json(
            200,
            json!({"success": true, "errors": [], "messages": [], "result": result}),
        )
    }

    /// A success envelope with `result_info`.
    pub fn page(result: Value, result_info: Value) -> Self {
        Self::json(
            200,
            json!({"success": true, "errors": [], "messages": [], "result": result, "result_info": result_info}),
        )
    }

    /// An error envelope.
    pub fn error(status: u16, code: u64, message: &str) -> Self {
        Self::json(
            status,
            json!({"success": false, "errors": [{"code": code, "message": message}], "messages": [], "result": null}),
        )
    }

    pub fn html(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "text/html".into())],
            body: body.to_string(),
            delay: None,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
}

type Script = dyn Fn(&Recorded, usize) -> Reply + Send + Sync;

#[derive(Clone)]
struct ServerState {
    script: Arc<Script>,
    count: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

pub struct MockServer {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl MockServer {
    pub async fn start(script: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let state = ServerState {
            script: Arc::new(script),
            count: Arc::new(AtomicUsize::new(0)),
            requests: requests.clone(),
        };
        let app = Router::new().fallback(handle).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, requests }
    }

    pub fn url(&self) -> String {
        format!("http://{}/client/v4", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// A client against this server with fast, deterministic retries and a
    /// virtual clock.
    pub fn client(&self) -> (Client, VirtualClock) {
        self.client_with(|c| c)
    }

    pub fn client_with(
        &self,
        adjust: impl FnOnce(ClientConfig) -> ClientConfig,
    ) -> (Client, VirtualClock) {
        let clock = VirtualClock::new();
        let config = ClientConfig::new(TOKEN)
            .base_url(self.url())
            .timeout(Duration::from_secs(5))
            .retry(RetryPolicy {
                max_attempts: 4,
                base_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(2),
                max_total_delay: Duration::from_secs(60),
                max_retry_after: cloudflare::RATE_LIMIT_LOCKOUT,
                jitter: false,
            })
            .budget(RequestBudget::default())
            .clock(Arc::new(clock.clone()));
        (Client::new(adjust(config)).unwrap(), clock)
    }
}

async fn handle(
    State(state): State<ServerState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri
        .path()
        .strip_prefix("/client/v4")
        .unwrap_or(uri.path())
        .to_string();
    let query = uri
        .query()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (decode(k), decode(v))
                })
                .collect()
        })
        .unwrap_or_default();
    let recorded = Recorded {
        method: method.to_string(),
        path,
        query,
        headers,
        body,
    };
    let index = state.count.fetch_add(1, Ordering::SeqCst);
    state.requests.lock().unwrap().push(recorded.clone());
    let reply = (state.script)(&recorded, index);
    if let Some(delay) = reply.delay {
        tokio::time::sleep(delay).await;
    }
    let mut response = Response::builder().status(StatusCode::from_u16(reply.status).unwrap());
    for (name, value) in &reply.headers {
        response = response.header(name, value);
    }
    response.body(Body::from(reply.body)).unwrap()
}

/// Decodes `application/x-www-form-urlencoded` text.
pub fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// One part of a multipart body.
#[derive(Debug, Clone)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// Parses a `multipart/form-data` body back into parts.
pub fn parse_multipart(content_type: &str, body: &[u8]) -> Vec<Part> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))
        .expect("boundary")
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let text = body;
    let mut parts = Vec::new();
    let positions: Vec<usize> = find_all(text, delimiter.as_bytes());
    for window in positions.windows(2) {
        let start = window[0] + delimiter.len() + 2; // skip CRLF
        let end = window[1] - 2; // strip CRLF before the delimiter
        let chunk = &text[start..end];
        let split = find_all(chunk, b"\r\n\r\n")[0];
        let head = std::str::from_utf8(&chunk[..split]).unwrap();
        let body = chunk[split + 4..].to_vec();
        let mut part = Part {
            name: String::new(),
            filename: None,
            content_type: None,
            body,
        };
        for line in head.split("\r\n") {
            let (name, value) = line.split_once(':').unwrap();
            match name.to_ascii_lowercase().as_str() {
                "content-disposition" => {
                    for attr in value.split(';').map(str::trim) {
                        if let Some(v) = attr.strip_prefix("name=") {
                            part.name = v.trim_matches('"').to_string();
                        } else if let Some(v) = attr.strip_prefix("filename=") {
                            part.filename = Some(v.trim_matches('"').to_string());
                        }
                    }
                }
                "content-type" => part.content_type = Some(value.trim().to_string()),
                _ => {}
            }
        }
        parts.push(part);
    }
    parts
}

fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}
