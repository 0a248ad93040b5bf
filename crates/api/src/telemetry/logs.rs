//! One structured JSON line per request, pushed to Loki
//! (`/loki/api/v1/push`, JSON body). Stream labels are few and bounded
//! (`job`, `environment`, `level`); everything else is in the line:
//! request id, method, route template, path (never the query; cut at
//! 1 KiB), status, duration, colo and dependency timings. No headers, no
//! bodies.
//!
//! Lines are batched per isolate: a request adds its line to a bounded
//! buffer, and pushes follow the sink's [`SendSchedule`] (one in flight, at
//! most one a second, pauses after failures), each carrying the lines
//! buffered so far (up to 500 lines and 1 MiB). Under load that is one push
//! per second instead of one per request, and a slow, hung or stopped Loki
//! costs a request nothing but adding its line to the buffer.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use outbound::Bytes;
use serde::Serialize;
use serde_json::json;

use super::schedule::SendSchedule;
use super::Finished;
use crate::config::SinkTarget;
use crate::Platform;

/// Lines kept while a push is in flight; more are dropped (and counted)
/// rather than growing the isolate's memory while Loki is down.
const MAX_BUFFERED_LINES: usize = 2_000;
/// Lines per push.
const MAX_LINES_PER_PUSH: usize = 500;
/// Bytes of lines per push, too: Loki refuses a whole push over its
/// ingestion burst (6 MB by default), whatever the lines hold.
const MAX_BYTES_PER_PUSH: usize = 1 << 20;
/// Bytes of a logged path at most: the client chooses the path, and a few
/// long ones must not make lines, or pushes, large.
const MAX_PATH_BYTES: usize = 1_024;
/// Ends a path that was cut.
const CUT_MARK: &str = "…";
/// Pushes one background task makes before it leaves the rest to the next
/// request's task: bounds how long one request's `wait_until` runs.
const MAX_PUSHES_PER_TASK: usize = 4;

#[derive(Debug)]
struct Entry {
    timestamp_ms: f64,
    level: &'static str,
    line: String,
}

pub struct LogSink {
    target: SinkTarget,
    environment: String,
    buffered: Mutex<Vec<Entry>>,
    schedule: SendSchedule,
    dropped: AtomicU64,
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
        path: capped_path(&finished.path),
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

/// `path`, or its first bytes up to a char boundary and [`CUT_MARK`], at
/// most [`MAX_PATH_BYTES`] in all.
fn capped_path(path: &str) -> String {
    if path.len() <= MAX_PATH_BYTES {
        return path.to_owned();
    }
    let end = path.floor_char_boundary(MAX_PATH_BYTES - CUT_MARK.len());
    format!("{}{CUT_MARK}", &path[..end])
}

impl LogSink {
    pub fn new(target: SinkTarget, environment: &str) -> Self {
        LogSink {
            target,
            environment: environment.to_owned(),
            buffered: Mutex::new(Vec::new()),
            schedule: SendSchedule::default(),
            dropped: AtomicU64::new(0),
        }
    }

    /// Buffers a line, and claims the next push: how long the caller's
    /// background task should wait before [`LogSink::push_buffered`], or
    /// `None` when this request need not push.
    pub fn record(
        &self,
        now_ms: f64,
        timestamp_ms: f64,
        level: &'static str,
        line: String,
    ) -> Option<f64> {
        if let Ok(mut buffered) = self.buffered.lock() {
            if buffered.len() < MAX_BUFFERED_LINES {
                buffered.push(Entry {
                    timestamp_ms,
                    level,
                    line,
                });
            } else {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.schedule.claim(now_ms)
    }

    /// Pushes what is buffered, batch by batch (at most
    /// [`MAX_PUSHES_PER_TASK`]), after a claim; stops at the first failure
    /// (the failed batch is lost, the rest stays buffered).
    pub async fn push_buffered(&self, platform: &Platform) {
        self.schedule.started((platform.now_millis)());
        let mut outcome = Ok(());
        for _ in 0..MAX_PUSHES_PER_TASK {
            let batch = self.take_batch(platform);
            if batch.is_empty() {
                break;
            }
            outcome = self.send(platform, &batch).await;
            if outcome.is_err() {
                break;
            }
        }
        let notice = self
            .schedule
            .finished((platform.now_millis)(), outcome.is_ok());
        super::tell_console(platform, "log push", notice, outcome.err());
    }

    /// Up to [`MAX_LINES_PER_PUSH`] buffered lines and [`MAX_BYTES_PER_PUSH`]
    /// of them, oldest first, plus a warning line when lines were dropped
    /// since the last batch.
    fn take_batch(&self, platform: &Platform) -> Vec<Entry> {
        let mut batch = match self.buffered.lock() {
            Ok(mut buffered) => {
                let mut bytes = 0;
                let fit = buffered
                    .iter()
                    .take(MAX_LINES_PER_PUSH)
                    .take_while(|entry| {
                        bytes += entry.line.len();
                        bytes <= MAX_BYTES_PER_PUSH
                    })
                    .count();
                // One line at least, so that no line can stop the buffer.
                let n = fit.max(1).min(buffered.len());
                buffered.drain(..n).collect::<Vec<_>>()
            }
            Err(_) => Vec::new(),
        };
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            batch.push(Entry {
                timestamp_ms: (platform.now_millis)(),
                level: "warn",
                line: json!({"telemetry": "log lines dropped while Loki was slow", "dropped": dropped})
                    .to_string(),
            });
        }
        batch
    }

    /// The push body: one stream per level, each stream's lines in
    /// timestamp order (Loki wants integer nanoseconds as strings).
    fn body(&self, batch: &[Entry]) -> Vec<u8> {
        let mut streams: BTreeMap<&str, Vec<(u64, &str)>> = BTreeMap::new();
        for entry in batch {
            streams
                .entry(entry.level)
                .or_default()
                .push((entry.timestamp_ms.max(0.0) as u64, &entry.line));
        }
        let streams: Vec<_> = streams
            .into_iter()
            .map(|(level, mut values)| {
                values.sort_by_key(|(ms, _)| *ms);
                let values: Vec<_> = values
                    .into_iter()
                    .map(|(ms, line)| json!([format!("{ms}000000"), line]))
                    .collect();
                json!({
                    "stream": {"job": "edge-api", "environment": self.environment, "level": level},
                    "values": values,
                })
            })
            .collect();
        json!({ "streams": streams }).to_string().into_bytes()
    }

    async fn send(&self, platform: &Platform, batch: &[Entry]) -> Result<(), String> {
        let mut request = http::Request::builder()
            .method(http::Method::POST)
            .uri(&self.target.url)
            .header("content-type", "application/json");
        if let Some(auth) = self.target.authorization() {
            request = request.header("authorization", auth);
        }
        super::post(platform, request.body(Bytes::from(self.body(batch)))).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

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

    /// A sink for environment `rc` whose Loki is never reached.
    fn unreachable_sink() -> LogSink {
        LogSink::new(
            SinkTarget {
                url: "http://127.0.0.1:1/loki/api/v1/push".into(),
                user: None,
                password: None,
            },
            "rc",
        )
    }

    fn finished_at(path: &str) -> Finished {
        Finished {
            request_id: "req-1".into(),
            method: "GET".into(),
            url: format!("https://api.example.com{path}"),
            path: path.into(),
            headers: None,
            status: 404,
            started_ms: 1_000.0,
            duration_ms: 1.0,
            dependencies: Vec::new(),
            problem: None,
            cause: None,
            colo: None,
        }
    }

    #[test]
    fn long_paths_are_cut_on_a_char_boundary_and_marked() {
        let logged = |path: &str| {
            let text = line(&finished_at(path), "unmatched");
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            value["path"].as_str().unwrap().to_owned()
        };
        let whole = format!("/{}", "a".repeat(MAX_PATH_BYTES - 1));
        assert_eq!(logged(&whole), whole, "a path of the cap is kept whole");
        let one_over = logged(&format!("{whole}a"));
        assert_eq!(one_over.len(), MAX_PATH_BYTES);
        assert!(one_over.ends_with(CUT_MARK), "{one_over}");
        // Three-byte chars, so that the cap minus the mark falls inside one.
        let long = format!("/v1/pages/x{}", "€".repeat(2_000));
        assert!(!long.is_char_boundary(MAX_PATH_BYTES - CUT_MARK.len()));
        let cut = logged(&long);
        assert!(cut.len() <= MAX_PATH_BYTES, "{}", cut.len());
        assert!(cut.len() > MAX_PATH_BYTES - "€".len(), "{}", cut.len());
        let kept = cut.strip_suffix(CUT_MARK).expect("the cut is marked");
        assert!(long.starts_with(kept));
    }

    #[test]
    fn a_push_carries_at_most_a_mebibyte_of_lines() {
        let sink = unreachable_sink();
        let platform = Platform::native();
        let filler = "x".repeat(100 * 1024);
        for i in 0..25 {
            sink.record(0.0, f64::from(i), "info", format!("{i} {filler}"));
        }
        let batches: Vec<Vec<Entry>> = std::iter::from_fn(|| {
            Some(sink.take_batch(&platform)).filter(|batch| !batch.is_empty())
        })
        .collect();
        let counts: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!(counts, [10, 10, 5], "ten lines of 100 KiB fit in 1 MiB");
        for batch in &batches {
            let bytes: usize = batch.iter().map(|e| e.line.len()).sum();
            assert!(bytes <= MAX_BYTES_PER_PUSH, "{bytes}");
        }
        let order: Vec<f64> = batches.iter().flatten().map(|e| e.timestamp_ms).collect();
        assert_eq!(order, (0..25).map(f64::from).collect::<Vec<_>>());
        // A line over the cap on its own still goes, alone.
        sink.record(0.0, 0.0, "info", "y".repeat(MAX_BYTES_PER_PUSH + 1));
        sink.record(0.0, 1.0, "info", "z".into());
        assert_eq!(sink.take_batch(&platform).len(), 1);
        assert_eq!(sink.take_batch(&platform)[0].line, "z");
    }

    #[test]
    fn pushes_carry_nanosecond_string_timestamps_and_bounded_labels() {
        let sink = unreachable_sink();
        let entry = |ms: f64, level, line: &str| Entry {
            timestamp_ms: ms,
            level,
            line: line.into(),
        };
        let batch = [
            entry(1_764_590_000_124.0, "info", "second"),
            entry(1_764_590_000_200.0, "error", "failed"),
            entry(1_764_590_000_123.0, "info", "first"),
        ];
        let body: serde_json::Value = serde_json::from_slice(&sink.body(&batch)).unwrap();
        let streams = body["streams"].as_array().unwrap();
        assert_eq!(streams.len(), 2, "one stream per level: {body}");
        let info = streams
            .iter()
            .find(|s| s["stream"]["level"] == "info")
            .unwrap();
        assert_eq!(info["values"][0][0], "1764590000123000000");
        assert_eq!(info["values"][0][1], "first");
        assert_eq!(info["values"][1][1], "second");
        let labels = info["stream"].as_object().unwrap();
        let names: Vec<_> = labels.keys().map(String::as_str).collect();
        assert_eq!(names, ["environment", "job", "level"]);
    }

    /// Records the bodies it is sent; the first send waits until released,
    /// like a slow Loki.
    struct SlowLoki {
        bodies: std::sync::Mutex<Vec<serde_json::Value>>,
        release: tokio::sync::Semaphore,
    }

    impl outbound::Fetch for SlowLoki {
        fn fetch(
            &self,
            request: outbound::Request,
            _timeout: std::time::Duration,
        ) -> outbound::BoxFuture<'_, Result<outbound::Response, outbound::FetchError>> {
            Box::pin(async move {
                let first = self.bodies.lock().unwrap().is_empty();
                self.bodies
                    .lock()
                    .unwrap()
                    .push(serde_json::from_slice(request.body()).unwrap());
                if first {
                    let _ = self.release.acquire().await.unwrap();
                }
                Ok(http::Response::builder()
                    .status(204)
                    .body(Bytes::new())
                    .unwrap())
            })
        }
    }

    fn lines_of(body: &serde_json::Value) -> Vec<String> {
        body["streams"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["values"].as_array().unwrap().iter())
            .map(|v| v[1].as_str().unwrap().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn lines_arriving_during_a_push_go_in_one_more_push_and_overflow_is_counted() {
        let loki = Arc::new(SlowLoki {
            bodies: Default::default(),
            release: tokio::sync::Semaphore::new(0),
        });
        let mut platform = Platform::native();
        platform.fetch = loki.clone();
        let sink = Arc::new(LogSink::new(
            SinkTarget {
                url: "http://127.0.0.1:1/loki/api/v1/push".into(),
                user: None,
                password: None,
            },
            "rc",
        ));
        assert!(
            sink.record((platform.now_millis)(), 1.0, "info", "first".into())
                .is_some(),
            "no push in flight yet"
        );
        let task = tokio::spawn({
            let (sink, platform) = (sink.clone(), platform.clone());
            async move { sink.push_buffered(&platform).await }
        });
        while loki.bodies.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        // While the first push hangs, requests only buffer their lines.
        for i in 0..MAX_BUFFERED_LINES + 5 {
            assert!(sink
                .record((platform.now_millis)(), 2.0, "info", format!("line {i}"))
                .is_none());
        }
        loki.release.add_permits(1);
        task.await.unwrap();
        assert_eq!(
            loki.bodies.lock().unwrap().len(),
            MAX_PUSHES_PER_TASK,
            "one task stops after its share of pushes"
        );
        // The slot is free again: the next request's line starts a task,
        // which takes what the last one left.
        assert!(sink
            .record((platform.now_millis)(), 3.0, "info", "next".into())
            .is_some());
        sink.push_buffered(&platform).await;
        let bodies = loki.bodies.lock().unwrap().clone();
        assert_eq!(lines_of(&bodies[0]), ["first"]);
        let later: Vec<String> = bodies[1..].iter().flat_map(lines_of).collect();
        assert_eq!(
            later.len(),
            MAX_BUFFERED_LINES + 2,
            "kept lines, a warning, the next"
        );
        assert_eq!(later[0], "line 0");
        assert_eq!(later.last().unwrap(), "next");
        assert!(
            later.iter().any(|l| l.contains("\"dropped\":5")),
            "the overflow is reported"
        );
        assert!(bodies
            .iter()
            .all(|b| lines_of(b).len() <= MAX_LINES_PER_PUSH + 1));
    }
}
