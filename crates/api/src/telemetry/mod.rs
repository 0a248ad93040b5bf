//! What happened in each request, sent after the response: an error report
//! to Sentry for every 5xx, the isolate's request and dependency metrics to
//! Prometheus (remote write), and one JSON log line to Loki.
//!
//! None of it can slow or break a response: the work runs in the
//! background ([`Background`], the Worker's `waitUntil`), every send has a
//! short timeout, nothing is retried, and a sink that is unset, slow or
//! failing only loses its own data (logged once per failure to the
//! runtime's console). Labels are bounded: route templates, never raw
//! paths.

mod logs;
mod metrics;
mod routes;
mod schedule;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use outbound::Background;

use crate::config::TelemetryConfig;
use crate::{App, Platform};

pub use logs::LogSink;
pub use metrics::MetricsSink;
pub use routes::RouteTemplates;

/// How long one telemetry send may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(3);

/// Sent with every push: remote write requires a `User-Agent`, and it lets
/// the sinks' operators tell this Worker's pushes apart.
const USER_AGENT: &str = concat!("edge-api/", env!("CARGO_PKG_VERSION"));

/// The sinks, built once per isolate from the configuration.
#[derive(Debug, Default)]
pub struct Telemetry {
    pub sentry: Option<sentry_report::Reporter>,
    pub metrics: Option<MetricsSink>,
    pub logs: Option<LogSink>,
}

impl Telemetry {
    pub fn new(config: &TelemetryConfig, environment: &str, release: &str) -> Self {
        Telemetry {
            sentry: config
                .sentry_dsn
                .as_deref()
                .and_then(|dsn| sentry_report::Reporter::new(dsn, release, environment).ok()),
            metrics: config
                .metrics
                .clone()
                .map(|target| MetricsSink::new(target, environment)),
            logs: config
                .logs
                .clone()
                .map(|target| LogSink::new(target, environment)),
        }
    }

    fn is_empty(&self) -> bool {
        self.sentry.is_none() && self.metrics.is_none() && self.logs.is_none()
    }
}

/// What handlers learn while a request runs and telemetry needs at its
/// end: the caller's identity. Made with [`Seen`], and in the request's
/// extensions only when a report will be made.
#[derive(Debug, Clone, Default)]
pub struct Notes(Arc<Mutex<Option<String>>>);

impl Notes {
    pub fn set_user(&self, user: &str) {
        if let Ok(mut noted) = self.0.lock() {
            *noted = Some(user.to_owned());
        }
    }

    fn take_user(&self) -> Option<String> {
        self.0.lock().ok().and_then(|mut noted| noted.take())
    }
}

/// One dependency call's total time in a request.
#[derive(Debug, Clone, PartialEq)]
pub struct DependencyTime {
    pub name: &'static str,
    pub outcome: Option<&'static str>,
    pub millis: f64,
}

/// What telemetry takes from a request before it is handled; captured
/// only when the runtime gave a [`Background`] and some sink is set.
pub struct Seen {
    background: Background,
    /// The routes, to label the request by when it is reported.
    routes: Arc<RouteTemplates>,
    notes: Notes,
    method: String,
    url: String,
    path: String,
    /// Kept only when Sentry is configured; turned into text only for a 5xx.
    headers: Option<http::HeaderMap>,
    colo: Option<String>,
}

impl Seen {
    pub fn capture(
        app: &App,
        routes: &Arc<RouteTemplates>,
        request: &http::Request<axum::body::Body>,
    ) -> Option<Seen> {
        // Sinks first: without one, a request costs no lookup and no clone.
        if app.telemetry.is_empty() {
            return None;
        }
        let background = request.extensions().get::<Background>()?.clone();
        Some(Seen {
            background,
            routes: routes.clone(),
            notes: Notes::default(),
            method: request.method().to_string(),
            url: request.uri().to_string(),
            path: request.uri().path().to_owned(),
            headers: app
                .telemetry
                .sentry
                .as_ref()
                .map(|_| request.headers().clone()),
            colo: request
                .headers()
                .get(crate::layers::CF_RAY)
                .and_then(|v| v.to_str().ok())
                .and_then(colo_from_ray),
        })
    }

    /// The notes handlers write into for this request's report.
    pub fn notes(&self) -> Notes {
        self.notes.clone()
    }
}

/// How a request ended.
pub struct Outcome {
    pub request_id: String,
    pub status: u16,
    pub started_ms: f64,
    pub duration_ms: f64,
    pub dependencies: Vec<DependencyTime>,
    pub problem: Option<&'static str>,
    pub cause: Option<String>,
}

/// A finished request, as the sinks see it.
#[derive(Debug, Clone)]
pub struct Finished {
    pub request_id: String,
    pub method: String,
    /// The full URL (scrubbed before it reaches Sentry).
    pub url: String,
    /// The URL's path, for logs (never the query).
    pub path: String,
    /// Request headers, kept only when Sentry is configured.
    pub headers: Option<http::HeaderMap>,
    pub status: u16,
    /// When the request started, in milliseconds since the epoch.
    pub started_ms: f64,
    pub duration_ms: f64,
    pub dependencies: Vec<DependencyTime>,
    /// The problem type URI of an error answer.
    pub problem: Option<&'static str>,
    /// The internal cause of a 5xx (never sent to clients).
    pub cause: Option<String>,
    /// Cloudflare's data center, from the `cf-ray` suffix.
    pub colo: Option<String>,
}

/// Sends one telemetry request, with [`USER_AGENT`]; any answer but a 2xx
/// is a failure.
async fn post(
    platform: &Platform,
    request: Result<http::Request<outbound::Bytes>, http::Error>,
) -> Result<(), String> {
    let mut request = request.map_err(|e| e.to_string())?;
    request.headers_mut().insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static(USER_AGENT),
    );
    let response = platform
        .fetch
        .fetch(request, SEND_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    match response.status().as_u16() {
        200..=299 => Ok(()),
        status => Err(format!("answered {status}")),
    }
}

/// Sleeps `ms` (a push waiting out its sink's interval), if any.
async fn wait(platform: &Platform, ms: f64) {
    if ms >= 1.0 {
        platform.timer.sleep(Duration::from_millis(ms as u64)).await;
    }
}

/// One console line per outage of a sink (its first failure) and one when
/// it recovers; nothing per request.
fn tell_console(platform: &Platform, what: &str, notice: schedule::Notice, error: Option<String>) {
    match notice {
        schedule::Notice::StartedFailing => (platform.log_error)(&format!(
            "telemetry: {what} failed ({}); pausing it, with longer pauses while it keeps failing",
            error.unwrap_or_default()
        )),
        schedule::Notice::Recovered(failures) => (platform.log_error)(&format!(
            "telemetry: {what} works again after {failures} failed attempts"
        )),
        schedule::Notice::Quiet => {}
    }
}

/// Hands the request to every configured sink, in the background.
pub fn report(app: &Arc<App>, seen: Seen, outcome: Outcome) {
    let background = seen.background;
    let finished = Finished {
        request_id: outcome.request_id,
        method: seen.method,
        url: seen.url,
        path: seen.path,
        headers: seen.headers,
        status: outcome.status,
        started_ms: outcome.started_ms,
        duration_ms: outcome.duration_ms,
        dependencies: outcome.dependencies,
        problem: outcome.problem,
        cause: outcome.cause,
        colo: seen.colo,
    };
    let route = seen.routes.label(&finished.path);
    let user = seen.notes.take_user();
    let now_ms = (app.platform.now_millis)();
    if let Some(metrics) = &app.telemetry.metrics {
        metrics.observe(route, &finished);
        if let Some(wait_ms) = metrics.claim(now_ms) {
            let app = app.clone();
            background.spawn(Box::pin(async move {
                wait(&app.platform, wait_ms).await;
                if let Some(metrics) = &app.telemetry.metrics {
                    metrics.push(&app.platform).await;
                }
            }));
        }
    }
    if let Some(logs) = &app.telemetry.logs {
        let level = if finished.status >= 500 {
            "error"
        } else {
            "info"
        };
        let line = logs::line(&finished, route);
        if let Some(wait_ms) = logs.record(now_ms, finished.started_ms, level, line) {
            let app = app.clone();
            background.spawn(Box::pin(async move {
                wait(&app.platform, wait_ms).await;
                if let Some(logs) = &app.telemetry.logs {
                    logs.push_buffered(&app.platform).await;
                }
            }));
        }
    }
    if finished.status >= 500 && app.telemetry.sentry.is_some() {
        let event = sentry_event(&app.platform, &finished, route, user);
        let app = app.clone();
        background.spawn(Box::pin(async move {
            let Some(sentry) = &app.telemetry.sentry else {
                return;
            };
            let now = (app.platform.now_millis)() / 1000.0;
            if let Err(e) = sentry
                .send(app.platform.fetch.as_ref(), &event, now, SEND_TIMEOUT)
                .await
            {
                (app.platform.log_error)(&format!("telemetry: sentry: {e}"));
            }
        }));
    }
}

fn sentry_event(
    platform: &Platform,
    finished: &Finished,
    route: &str,
    user: Option<String>,
) -> sentry_report::Event {
    let breadcrumbs = finished
        .dependencies
        .iter()
        .map(|d| sentry_report::Breadcrumb {
            timestamp: finished.started_ms / 1000.0,
            category: d.name.to_owned(),
            message: match d.outcome {
                Some(outcome) => format!("{} ({outcome}) {:.1} ms", d.name, d.millis),
                None => format!("{} {:.1} ms", d.name, d.millis),
            },
            level: "info",
            data: Default::default(),
        })
        .collect();
    let kind = finished
        .problem
        .and_then(|uri| uri.rsplit('/').next())
        .unwrap_or("internal")
        .to_owned();
    sentry_report::Event {
        event_id: format!(
            "{:016x}{:016x}",
            (platform.random_u64)(),
            (platform.random_u64)()
        ),
        timestamp: (finished.started_ms + finished.duration_ms) / 1000.0,
        kind,
        message: finished
            .cause
            .clone()
            .unwrap_or_else(|| format!("{} {}", finished.status, finished.method)),
        request: Some(sentry_report::RequestInfo {
            method: finished.method.clone(),
            url: finished.url.clone(),
            route: Some(route.to_owned()),
            headers: finished
                .headers
                .iter()
                .flatten()
                .map(|(n, v)| {
                    (
                        n.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
        }),
        request_id: Some(finished.request_id.clone()),
        status: Some(finished.status),
        user_email: user,
        breadcrumbs,
    }
}

/// The data center code at the end of a `cf-ray` value (`8c1f...-SJC`).
pub fn colo_from_ray(ray: &str) -> Option<String> {
    let (_, colo) = ray.rsplit_once('-')?;
    (!colo.is_empty() && colo.len() <= 4 && colo.bytes().all(|b| b.is_ascii_uppercase()))
        .then(|| colo.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colos_come_from_ray_ids() {
        assert_eq!(
            colo_from_ray("8c1f2e3d4c5b6a79-SJC").as_deref(),
            Some("SJC")
        );
        assert_eq!(colo_from_ray("8c1f2e3d4c5b6a79"), None);
        assert_eq!(colo_from_ray("x-sjc"), None);
        assert_eq!(colo_from_ray("x-TOOLONG"), None);
    }

    /// Answers 204 to every request and keeps its URL and `user-agent`.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<(String, Option<String>)>>);

    impl outbound::Fetch for Recorder {
        fn fetch(
            &self,
            request: outbound::Request,
            _timeout: Duration,
        ) -> outbound::BoxFuture<'_, Result<outbound::Response, outbound::FetchError>> {
            let user_agent = request
                .headers()
                .get(http::header::USER_AGENT)
                .map(|v| v.to_str().unwrap().to_owned());
            self.0
                .lock()
                .unwrap()
                .push((request.uri().to_string(), user_agent));
            Box::pin(async {
                Ok(http::Response::builder()
                    .status(204)
                    .body(outbound::Bytes::new())
                    .unwrap())
            })
        }
    }

    #[tokio::test]
    async fn both_sinks_send_a_user_agent() {
        let recorder = Arc::new(Recorder::default());
        let mut platform = Platform::native();
        platform.fetch = recorder.clone();
        let target = |url: &str| crate::config::SinkTarget {
            url: url.into(),
            user: None,
            password: None,
        };
        let finished = Finished {
            request_id: "r".into(),
            method: "GET".into(),
            url: "https://api.example.com/healthz".into(),
            path: "/healthz".into(),
            headers: None,
            status: 200,
            started_ms: (platform.now_millis)(),
            duration_ms: 1.0,
            dependencies: Vec::new(),
            problem: None,
            cause: None,
            colo: None,
        };
        let now = (platform.now_millis)();
        let metrics = MetricsSink::new(target("http://127.0.0.1:1/api/v1/write"), "dev");
        metrics.observe("/healthz", &finished);
        assert!(metrics.claim(now).is_some());
        metrics.push(&platform).await;
        let logs = LogSink::new(target("http://127.0.0.1:1/loki/api/v1/push"), "dev");
        assert!(logs
            .record(now, now, "info", logs::line(&finished, "/healthz"))
            .is_some());
        logs.push_buffered(&platform).await;
        let expected = Some(format!("edge-api/{}", env!("CARGO_PKG_VERSION")));
        assert_eq!(
            *recorder.0.lock().unwrap(),
            [
                (
                    "http://127.0.0.1:1/api/v1/write".to_owned(),
                    expected.clone()
                ),
                ("http://127.0.0.1:1/loki/api/v1/push".to_owned(), expected),
            ]
        );
    }

    #[test]
    fn the_user_is_taken_once() {
        let notes = Notes::default();
        notes.set_user("a@example.com");
        assert_eq!(notes.take_user().as_deref(), Some("a@example.com"));
        assert_eq!(notes.take_user(), None);
    }
}
