//! Error reports to Sentry from the Worker: envelopes built here, sent with
//! the caller's [`outbound::Fetch`], with Sentry's rate limits obeyed.
//!
//! Why not the `sentry` SDK: `sentry-core` reads the clock with
//! `SystemTime::now()`, which panics on wasm32-unknown-unknown, and keeps a
//! background transport thread the Workers runtime does not have. The
//! envelope format is small and stable (a JSON header line, then one item
//! header line and its payload per item), so it is written here, with
//! `sentry-types` for the DSN only. Everything takes the current time from
//! the caller.
//!
//! What leaves the Worker is decided here, not by callers: request headers
//! pass through [`scrub_headers`] (cookies, `authorization`, Access and
//! binding tokens removed, the `referer` scrubbed as a URL), URLs through
//! [`scrub_url`] (the values of all query parameters but the API's own
//! replaced), and no body is ever sent.
//!
//! Not for: performance traces, sessions, or retrying: a report that
//! cannot be sent is dropped (the request it describes has long been
//! answered).

mod limits;
mod scrub;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use outbound::{Bytes, Fetch};
use serde::Serialize;
use serde_json::{json, Value};

pub use limits::RateLimits;
pub use scrub::{scrub_headers, scrub_url, FILTERED};

/// What this client calls itself in `X-Sentry-Auth` and events.
pub const CLIENT: &str = concat!("edge-api-sentry/", env!("CARGO_PKG_VERSION"));

/// Most breadcrumbs kept per event: the newest win.
pub const MAX_BREADCRUMBS: usize = 50;

/// Why a reporter could not be made or a report not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The DSN does not parse; the text never includes the DSN itself.
    InvalidDsn(String),
    /// Sentry asked us to wait (429 or a rate limit header); not sent.
    RateLimited,
    /// No answer, or a network failure.
    Transport(String),
    /// Sentry answered with this status.
    Rejected(u16),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidDsn(e) => write!(f, "the Sentry DSN is not valid: {e}"),
            Error::RateLimited => f.write_str("Sentry is rate limiting this client; dropped"),
            Error::Transport(e) => write!(f, "Sentry could not be reached: {e}"),
            Error::Rejected(status) => write!(f, "Sentry answered {status}"),
        }
    }
}

impl std::error::Error for Error {}

/// Where events go and what they are tagged with; shared by all requests
/// of an isolate (it holds the rate limits Sentry announced).
pub struct Reporter {
    envelope_url: String,
    public_key: String,
    /// The DSN as configured, for the envelope header (Sentry accepts it
    /// there as the authentication of an envelope).
    dsn: String,
    release: String,
    environment: String,
    limits: Mutex<RateLimits>,
}

impl fmt::Debug for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reporter")
            .field("envelope_url", &self.envelope_url)
            .field("release", &self.release)
            .field("environment", &self.environment)
            .finish_non_exhaustive()
    }
}

/// The request an event is about, as the API saw it.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    pub method: String,
    /// The full URL; scrubbed before it is sent.
    pub url: String,
    /// The route template (`/v1/pages/{slug}`), the event's transaction.
    pub route: Option<String>,
    /// Every request header; scrubbed before it is sent.
    pub headers: Vec<(String, String)>,
}

/// A dependency call on the way to the failure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breadcrumb {
    /// Seconds since the Unix epoch.
    pub timestamp: f64,
    /// `tidb`, `redis`, `b2`, `access`, ...
    pub category: String,
    pub message: String,
    /// `error` for failed calls, else `info`.
    pub level: &'static str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, Value>,
}

/// One failure to report.
#[derive(Debug, Clone, Default)]
pub struct Event {
    /// 32 lowercase hex digits (a UUID without dashes), from the caller's
    /// random source.
    pub event_id: String,
    /// Seconds since the Unix epoch.
    pub timestamp: f64,
    /// The error's kind (`Internal`, `Panic`, `Timeout`, ...).
    pub kind: String,
    /// What went wrong, for the team (never shown to clients).
    pub message: String,
    pub request: Option<RequestInfo>,
    /// The request id clients see in `x-request-id` and `instance`.
    pub request_id: Option<String>,
    pub status: Option<u16>,
    /// Who made the request (an Access email), if anyone.
    pub user_email: Option<String>,
    pub breadcrumbs: Vec<Breadcrumb>,
}

impl Reporter {
    /// A reporter for `dsn`; `release` is the git commit the Worker was
    /// built from, `environment` one of dev, rc, stg, prd.
    pub fn new(dsn: &str, release: &str, environment: &str) -> Result<Self, Error> {
        let parsed = sentry_types::Dsn::from_str(dsn.trim())
            .map_err(|e| Error::InvalidDsn(e.to_string()))?;
        Ok(Reporter {
            envelope_url: parsed.envelope_api_url().to_string(),
            public_key: parsed.public_key().to_owned(),
            dsn: dsn.trim().to_owned(),
            release: release.to_owned(),
            environment: environment.to_owned(),
            limits: Mutex::new(RateLimits::default()),
        })
    }

    /// Where envelopes are posted.
    pub fn envelope_url(&self) -> &str {
        &self.envelope_url
    }

    /// Whether an error event sent at `now` (seconds since the epoch)
    /// would be dropped because Sentry asked us to wait.
    pub fn is_limited(&self, now: f64) -> bool {
        self.limits
            .lock()
            .map(|l| l.is_limited("error", now))
            .unwrap_or(false)
    }

    /// The envelope for `event`: header line, item header line, payload.
    pub fn envelope(&self, event: &Event, now: f64) -> Vec<u8> {
        let payload = serde_json::to_vec(&self.payload(event)).expect("JSON values serialize");
        let header = json!({
            "event_id": event.event_id,
            "dsn": self.dsn,
            "sent_at": rfc3339(now),
        });
        let item = json!({"type": "event", "length": payload.len()});
        let mut out = Vec::with_capacity(payload.len() + 256);
        out.extend_from_slice(header.to_string().as_bytes());
        out.push(b'\n');
        out.extend_from_slice(item.to_string().as_bytes());
        out.push(b'\n');
        out.extend_from_slice(&payload);
        out.push(b'\n');
        out
    }

    /// The event as Sentry's event payload (protocol v7).
    fn payload(&self, event: &Event) -> Value {
        let mut tags = serde_json::Map::new();
        if let Some(id) = &event.request_id {
            tags.insert("request_id".into(), json!(id));
        }
        if let Some(status) = event.status {
            tags.insert("status".into(), json!(status.to_string()));
        }
        let mut payload = json!({
            "event_id": event.event_id,
            "timestamp": event.timestamp,
            "platform": "native",
            "level": "error",
            "logger": "api",
            "release": self.release,
            "environment": self.environment,
            "tags": tags,
            "exception": {"values": [{"type": event.kind, "value": event.message}]},
            "sdk": {"name": "edge-api-sentry", "version": env!("CARGO_PKG_VERSION")},
        });
        if let Some(request) = &event.request {
            let headers: BTreeMap<String, String> =
                scrub_headers(&request.headers).into_iter().collect();
            payload["request"] = json!({
                "method": request.method,
                "url": scrub_url(&request.url),
                "headers": headers,
            });
            if let Some(route) = &request.route {
                payload["transaction"] = json!(format!("{} {route}", request.method));
            }
        }
        if let Some(email) = &event.user_email {
            payload["user"] = json!({"email": email});
        }
        if !event.breadcrumbs.is_empty() {
            let start = event.breadcrumbs.len().saturating_sub(MAX_BREADCRUMBS);
            payload["breadcrumbs"] = json!({"values": &event.breadcrumbs[start..]});
        }
        payload
    }

    /// Sends `event` unless Sentry asked us to wait, and remembers any new
    /// limits it announces. Never retries.
    pub async fn send(
        &self,
        fetch: &dyn Fetch,
        event: &Event,
        now: f64,
        timeout: Duration,
    ) -> Result<(), Error> {
        if self.is_limited(now) {
            return Err(Error::RateLimited);
        }
        let request = http::Request::builder()
            .method(http::Method::POST)
            .uri(&self.envelope_url)
            .header("content-type", "application/x-sentry-envelope")
            .header(
                "x-sentry-auth",
                format!(
                    "Sentry sentry_version=7, sentry_key={}, sentry_client={CLIENT}",
                    self.public_key
                ),
            )
            .body(Bytes::from(self.envelope(event, now)))
            .map_err(|e| Error::Transport(e.to_string()))?;
        let response = fetch
            .fetch(request, timeout)
            .await
            .map_err(|e| Error::Transport(e.to_string()))?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let status = response.status().as_u16();
        if let Ok(mut limits) = self.limits.lock() {
            limits.update(
                status,
                header("x-sentry-rate-limits").as_deref(),
                header("retry-after").as_deref(),
                now,
            );
        }
        match status {
            200..=299 => Ok(()),
            429 => Err(Error::RateLimited),
            _ => Err(Error::Rejected(status)),
        }
    }
}

/// `seconds` since the epoch as RFC 3339 UTC with milliseconds.
pub fn rfc3339(seconds: f64) -> String {
    let millis = (seconds * 1000.0).max(0.0) as i64;
    let (days, rem) = (millis.div_euclid(86_400_000), millis.rem_euclid(86_400_000));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const DSN: &str = "https://abc123public@o1.ingest.sentry.io/4505";

    fn event() -> Event {
        Event {
            event_id: "0123456789abcdef0123456789abcdef".into(),
            timestamp: 1_764_590_000.5,
            kind: "Internal".into(),
            message: "tidb: syntax error".into(),
            request: Some(RequestInfo {
                method: "PUT".into(),
                url: "https://api.example.com/v1/pages/a?token=s3cret&limit=1&jwt=s3cret".into(),
                route: Some("/v1/pages/{slug}".into()),
                headers: vec![
                    ("cookie".into(), "CF_Authorization=jwt-s3cret".into()),
                    ("cf-access-jwt-assertion".into(), "jwt-s3cret".into()),
                    ("user-agent".into(), "test".into()),
                    (
                        "referer".into(),
                        "https://admin.example.com/edit?sig=s3cret&cursor=c1".into(),
                    ),
                ],
            }),
            request_id: Some("req-1".into()),
            status: Some(500),
            user_email: Some("editor@example.com".into()),
            breadcrumbs: (0..60)
                .map(|i| Breadcrumb {
                    timestamp: 1_764_590_000.0,
                    category: "tidb".into(),
                    message: format!("query {i}"),
                    level: "info",
                    data: BTreeMap::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn dates_are_rfc3339_utc() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400.25), "2000-02-29T00:00:00.250Z");
        assert_eq!(rfc3339(1_764_590_400.0), "2025-12-01T12:00:00.000Z");
    }

    #[test]
    fn an_envelope_is_three_lines_with_an_exact_length() {
        let reporter = Reporter::new(DSN, "abc", "rc").unwrap();
        assert_eq!(
            reporter.envelope_url(),
            "https://o1.ingest.sentry.io/api/4505/envelope/"
        );
        let envelope = reporter.envelope(&event(), 1_764_590_001.0);
        let text = String::from_utf8(envelope).unwrap();
        let lines: Vec<&str> = text.trim_end_matches('\n').split('\n').collect();
        assert_eq!(lines.len(), 3, "{text}");
        let header: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(header["event_id"], "0123456789abcdef0123456789abcdef");
        assert_eq!(header["sent_at"], "2025-12-01T11:53:21.000Z");
        let item: Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(item["type"], "event");
        assert_eq!(item["length"], lines[2].len());
        let payload: Value = serde_json::from_str(lines[2]).unwrap();
        assert_eq!(payload["release"], "abc");
        assert_eq!(payload["environment"], "rc");
        assert_eq!(payload["transaction"], "PUT /v1/pages/{slug}");
        assert_eq!(payload["tags"]["request_id"], "req-1");
        assert_eq!(payload["user"]["email"], "editor@example.com");
        assert_eq!(
            payload["exception"]["values"][0]["value"],
            "tidb: syntax error"
        );
        let crumbs = payload["breadcrumbs"]["values"].as_array().unwrap();
        assert_eq!(crumbs.len(), MAX_BREADCRUMBS);
        assert_eq!(crumbs.last().unwrap()["message"], "query 59", "newest kept");
    }

    #[test]
    fn secrets_never_reach_the_envelope() {
        let reporter = Reporter::new(DSN, "abc", "rc").unwrap();
        let text = String::from_utf8(reporter.envelope(&event(), 0.0)).unwrap();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("user-agent"));
        assert!(text.contains("limit=1&jwt=%5BFiltered%5D"), "{text}");
        assert!(
            text.contains("https://admin.example.com/edit?sig=%5BFiltered%5D&cursor=c1"),
            "{text}"
        );
    }

    #[test]
    fn invalid_dsns_are_refused_without_echoing_them() {
        for dsn in [
            "",
            "not a dsn",
            "https://sentry.io/1",
            "https://key@sentry.io/",
        ] {
            let err = Reporter::new(dsn, "abc", "rc").unwrap_err();
            assert!(matches!(err, Error::InvalidDsn(_)), "{dsn}: {err:?}");
        }
        let err = Reporter::new("ftp://s3cret-key@host/1", "a", "b").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
