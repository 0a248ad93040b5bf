//! One structured JSON line per request, pushed to Loki
//! (`/loki/api/v1/push`, JSON body). Stream labels are few and bounded
//! (`job`, `environment`, `level`); everything else is in the line:
//! request id, method, route template, path (never the query), status,
//! duration, colo and dependency timings. No headers, no bodies.

use std::collections::BTreeMap;

use outbound::Bytes;
use serde::Serialize;
use serde_json::json;

use super::Finished;
use crate::config::SinkTarget;
use crate::Platform;

pub struct LogSink {
    target: SinkTarget,
    environment: String,
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSink")
            .field("url", &self.target.url)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Line<'a> {
    request_id: &'a str,
    method: &'a str,
    route: &'a str,
    path: String,
    status: u16,
    duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    colo: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    dependencies_ms: BTreeMap<&'static str, f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<&'static str>,
}

/// The log line of a finished request.
pub fn line(finished: &Finished, route: &str) -> String {
    let round = |ms: f64| (ms * 10.0).round() / 10.0;
    let line = Line {
        request_id: &finished.request_id,
        method: &finished.method,
        route,
        path: finished.path.clone(),
        status: finished.status,
        duration_ms: round(finished.duration_ms),
        colo: finished.colo.as_deref(),
        dependencies_ms: finished
            .dependencies
            .iter()
            .map(|d| (d.name, round(d.millis)))
            .collect(),
        problem: finished.problem,
    };
    serde_json::to_string(&line).unwrap_or_default()
}

impl LogSink {
    pub fn new(target: SinkTarget, environment: &str) -> Self {
        LogSink {
            target,
            environment: environment.to_owned(),
        }
    }

    /// The push body for one line at `timestamp_ms`.
    fn body(&self, timestamp_ms: f64, level: &str, line: String) -> Vec<u8> {
        // Loki wants integer nanoseconds as a string.
        let nanos = format!("{}000000", timestamp_ms.max(0.0) as u64);
        json!({"streams": [{
            "stream": {"job": "edge-api", "environment": self.environment, "level": level},
            "values": [[nanos, line]],
        }]})
        .to_string()
        .into_bytes()
    }

    pub async fn push(&self, platform: &Platform, timestamp_ms: f64, level: &str, line: String) {
        let mut request = http::Request::builder()
            .method(http::Method::POST)
            .uri(&self.target.url)
            .header("content-type", "application/json");
        if let Some(auth) = self.target.authorization() {
            request = request.header("authorization", auth);
        }
        let outcome = super::post(
            platform,
            request.body(Bytes::from(self.body(timestamp_ms, level, line))),
        )
        .await;
        if let Err(e) = outcome {
            (platform.log_error)(&format!("telemetry: log push: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::DependencyTime;

    #[test]
    fn a_line_has_the_route_and_path_but_no_query() {
        let finished = Finished {
            request_id: "req-1".into(),
            method: "GET".into(),
            url: "https://api.example.com/v1/files/ab?X-Amz-Signature=s3cret".into(),
            path: "/v1/files/ab".into(),
            headers: None,
            status: 302,
            started_ms: 1_000.0,
            duration_ms: 12.345,
            dependencies: vec![DependencyTime {
                name: "db",
                outcome: None,
                millis: 4.04,
            }],
            problem: None,
            cause: Some("s3cret cause".into()),
            colo: Some("SJC".into()),
        };
        let text = line(&finished, "/v1/files/{id}");
        assert!(!text.contains("s3cret"), "{text}");
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["route"], "/v1/files/{id}");
        assert_eq!(value["path"], "/v1/files/ab");
        assert_eq!(value["duration_ms"], 12.3);
        assert_eq!(value["dependencies_ms"]["db"], 4.0);
        assert_eq!(value["colo"], "SJC");
    }

    #[test]
    fn pushes_carry_nanosecond_string_timestamps_and_bounded_labels() {
        let sink = LogSink::new(
            SinkTarget {
                url: "http://127.0.0.1:1/loki/api/v1/push".into(),
                user: None,
                password: None,
            },
            "rc",
        );
        let body: serde_json::Value =
            serde_json::from_slice(&sink.body(1_764_590_000_123.0, "info", "{}".into())).unwrap();
        let stream = &body["streams"][0];
        assert_eq!(stream["values"][0][0], "1764590000123000000");
        assert_eq!(stream["values"][0][1], "{}");
        let labels = stream["stream"].as_object().unwrap();
        let names: Vec<_> = labels.keys().map(String::as_str).collect();
        assert_eq!(names, ["environment", "job", "level"]);
    }
}
