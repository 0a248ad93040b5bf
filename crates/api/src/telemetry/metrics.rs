//! Request and dependency metrics as Prometheus remote write 1.0.
//!
//! Each isolate keeps cumulative histograms (requests by route template,
//! method and status class; dependency calls by name) and, after a
//! request, pushes all of them with an `instance` label of its own, so
//! Prometheus sees ordinary counters per isolate and `rate()`/`sum()` work
//! across isolates. At most one push per isolate is in flight: a request
//! finishing meanwhile is included in the next push, so the load on the
//! sink stays bounded however busy the isolate is. The push in flight makes
//! that next push itself (after the interval) when anything was counted
//! while it was sent: such a request claims no push, and if it was the
//! isolate's last, nothing else would send it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use outbound::Bytes;
use prom_remote_write::{TimeSeries, WriteRequest};

use super::schedule::{SendSchedule, MIN_INTERVAL_MS};
use super::Finished;
use crate::config::SinkTarget;
use crate::Platform;

/// Pushes one task makes at most: what is counted during the last of them
/// waits for the next request's push, so a sink slower than the requests
/// arrive does not keep one request's background task alive for ever.
const MAX_PUSHES_PER_TASK: usize = 4;

/// Upper bounds of the duration buckets, in seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Clone, Default)]
struct Histogram {
    /// Observations at or below each bucket bound (not cumulative here).
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(i) = BUCKETS.iter().position(|&le| seconds <= le) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }
}

#[derive(Debug, Default)]
struct Registry {
    requests: BTreeMap<(String, String, &'static str), Histogram>,
    dependencies: BTreeMap<&'static str, Histogram>,
    /// Requests observed so far: a push whose snapshot has fewer is stale.
    observed: u64,
}

pub struct MetricsSink {
    target: SinkTarget,
    environment: String,
    /// This isolate's `instance` label: series of different isolates never
    /// collide, so each stays a plain monotonic counter.
    instance: Mutex<Option<String>>,
    registry: Mutex<Registry>,
    schedule: SendSchedule,
}

impl std::fmt::Debug for MetricsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsSink")
            .field("url", &self.target.url)
            .finish_non_exhaustive()
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

impl MetricsSink {
    pub fn new(target: SinkTarget, environment: &str) -> Self {
        MetricsSink {
            target,
            environment: environment.to_owned(),
            instance: Mutex::new(None),
            registry: Mutex::default(),
            schedule: SendSchedule::default(),
        }
    }

    /// Counts a finished request and its dependency calls.
    pub fn observe(&self, route: &str, finished: &Finished) {
        let Ok(mut registry) = self.registry.lock() else {
            return;
        };
        registry.observed += 1;
        registry
            .requests
            .entry((
                route.to_owned(),
                finished.method.clone(),
                status_class(finished.status),
            ))
            .or_default()
            .observe(finished.duration_ms / 1000.0);
        for dependency in &finished.dependencies {
            registry
                .dependencies
                .entry(dependency.name)
                .or_default()
                .observe(dependency.millis / 1000.0);
        }
    }

    /// Claims the next push (see [`SendSchedule`]): how long to wait first,
    /// or `None` when this request need not push.
    pub fn claim(&self, now_ms: f64) -> Option<f64> {
        self.schedule.claim(now_ms)
    }

    /// Pushes everything counted so far (cumulative, so a push that fails
    /// loses nothing the next one does not carry), after a [`claim`]; then,
    /// while requests were counted during the push, pushes again once the
    /// interval is over (at most [`MAX_PUSHES_PER_TASK`] in all), since
    /// those requests claimed no push of their own.
    ///
    /// [`claim`]: MetricsSink::claim
    pub async fn push(&self, platform: &Platform) {
        let mut outcome = Ok(());
        let mut last_start_ms = None;
        for _ in 0..MAX_PUSHES_PER_TASK {
            if let Some(last_start_ms) = last_start_ms {
                let since = (platform.now_millis)() - last_start_ms;
                super::wait(platform, MIN_INTERVAL_MS - since).await;
            }
            let now_ms = (platform.now_millis)();
            last_start_ms = Some(now_ms);
            self.schedule.started(now_ms);
            let Some((body, observed)) = self.body(platform, now_ms) else {
                self.schedule.release();
                return;
            };
            outcome = self.send(platform, body).await;
            let counted_since = self
                .registry
                .lock()
                .is_ok_and(|registry| registry.observed > observed);
            if outcome.is_err() || !counted_since {
                break;
            }
        }
        let notice = self
            .schedule
            .finished((platform.now_millis)(), outcome.is_ok());
        super::tell_console(platform, "metrics push", notice, outcome.err());
    }

    /// The encoded snapshot at `now_ms`, and how many requests it counts.
    fn body(&self, platform: &Platform, now_ms: f64) -> Option<(Vec<u8>, u64)> {
        let instance = self.instance(platform);
        let registry = self.registry.lock().ok()?;
        let body = self
            .snapshot(&registry, &instance, now_ms as i64)
            .encode_body();
        Some((body, registry.observed))
    }

    async fn send(&self, platform: &Platform, body: Vec<u8>) -> Result<(), String> {
        let mut request = http::Request::builder()
            .method(http::Method::POST)
            .uri(&self.target.url)
            .header("content-type", prom_remote_write::CONTENT_TYPE)
            .header("content-encoding", prom_remote_write::CONTENT_ENCODING)
            .header(
                prom_remote_write::VERSION_HEADER.0,
                prom_remote_write::VERSION_HEADER.1,
            );
        if let Some(auth) = self.target.authorization() {
            request = request.header("authorization", auth);
        }
        super::post(platform, request.body(Bytes::from(body))).await
    }

    fn instance(&self, platform: &Platform) -> String {
        let mut instance = self.instance.lock().expect("instance lock");
        instance
            .get_or_insert_with(|| format!("{:016x}", (platform.random_u64)()))
            .clone()
    }

    fn snapshot(&self, registry: &Registry, instance: &str, now_ms: i64) -> WriteRequest {
        let common = [
            ("job", "edge-api"),
            ("environment", self.environment.as_str()),
            ("instance", instance),
        ];
        let mut timeseries = Vec::new();
        for ((route, method, class), histogram) in &registry.requests {
            let labels = [
                ("route", route.as_str()),
                ("method", method.as_str()),
                ("status_class", *class),
            ];
            let labels: Vec<(&str, &str)> = common.iter().chain(labels.iter()).copied().collect();
            histogram_series(
                &mut timeseries,
                "edge_api_request_duration_seconds",
                &labels,
                histogram,
                now_ms,
            );
        }
        for (dependency, histogram) in &registry.dependencies {
            let labels: Vec<(&str, &str)> = common
                .iter()
                .copied()
                .chain(std::iter::once(("dependency", *dependency)))
                .collect();
            histogram_series(
                &mut timeseries,
                "edge_api_dependency_duration_seconds",
                &labels,
                histogram,
                now_ms,
            );
        }
        WriteRequest { timeseries }
    }
}

/// `NAME_bucket{le}` (cumulative, `+Inf` included), `NAME_sum`, `NAME_count`.
fn histogram_series(
    out: &mut Vec<TimeSeries>,
    name: &str,
    labels: &[(&str, &str)],
    histogram: &Histogram,
    now_ms: i64,
) {
    let series = |metric: &str, le: Option<&str>, value: f64| {
        let mut all: Vec<(&str, &str)> = labels.to_vec();
        if let Some(le) = le {
            all.push(("le", le));
        }
        TimeSeries::new(metric, all).with_sample(value, now_ms)
    };
    let bucket = format!("{name}_bucket");
    let mut cumulative = 0;
    for (le, count) in BUCKETS.iter().zip(histogram.buckets) {
        cumulative += count;
        out.push(series(&bucket, Some(&le.to_string()), cumulative as f64));
    }
    out.push(series(&bucket, Some("+Inf"), histogram.count as f64));
    out.push(series(&format!("{name}_sum"), None, histogram.sum));
    out.push(series(
        &format!("{name}_count"),
        None,
        histogram.count as f64,
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(status: u16, millis: f64) -> Finished {
        Finished {
            request_id: "r".into(),
            method: "GET".into(),
            url: "https://api.example.com/v1/pages/a".into(),
            path: "/v1/pages/a".into(),
            headers: None,
            status,
            started_ms: 0.0,
            duration_ms: millis,
            dependencies: vec![super::super::DependencyTime {
                name: "db",
                outcome: None,
                millis: 3.0,
            }],
            problem: None,
            cause: None,
            colo: None,
        }
    }

    fn label<'a>(series: &'a TimeSeries, name: &str) -> Option<&'a str> {
        series
            .labels
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.as_str())
    }

    #[test]
    fn histograms_are_cumulative_with_bounded_labels() {
        let sink = MetricsSink::new(
            SinkTarget {
                url: "http://127.0.0.1:1/api/v1/write".into(),
                user: None,
                password: None,
            },
            "dev",
        );
        sink.observe("/v1/pages/{slug}", &finished(200, 7.0));
        sink.observe("/v1/pages/{slug}", &finished(200, 300.0));
        sink.observe("/v1/pages/{slug}", &finished(503, 12_000.0));
        let registry = sink.registry.lock().unwrap();
        let snapshot = sink.snapshot(&registry, "i1", 1000);
        let find = |name: &str, class: &str, le: Option<&str>| {
            snapshot
                .timeseries
                .iter()
                .find(|s| {
                    label(s, "__name__") == Some(name)
                        && label(s, "status_class") == Some(class)
                        && label(s, "le") == le
                })
                .map(|s| s.samples[0].value)
        };
        let bucket = "edge_api_request_duration_seconds_bucket";
        assert_eq!(find(bucket, "2xx", Some("0.005")), Some(0.0));
        assert_eq!(find(bucket, "2xx", Some("0.01")), Some(1.0));
        assert_eq!(find(bucket, "2xx", Some("0.5")), Some(2.0));
        assert_eq!(find(bucket, "2xx", Some("+Inf")), Some(2.0));
        assert_eq!(
            find(bucket, "5xx", Some("10")),
            Some(0.0),
            "12 s is over every bound"
        );
        assert_eq!(find(bucket, "5xx", Some("+Inf")), Some(1.0));
        assert_eq!(
            find("edge_api_request_duration_seconds_count", "2xx", None),
            Some(2.0)
        );
        let dependency = snapshot
            .timeseries
            .iter()
            .find(|s| label(s, "__name__") == Some("edge_api_dependency_duration_seconds_count"))
            .unwrap();
        assert_eq!(label(dependency, "dependency"), Some("db"));
        assert_eq!(dependency.samples[0].value, 3.0);
        // Two request histograms (2xx, 5xx) and one dependency's, each its
        // buckets, `+Inf`, `_sum` and `_count`: what README's "Metrics"
        // says an isolate costs in series.
        assert_eq!(snapshot.timeseries.len(), 3 * (BUCKETS.len() + 3));
        assert_eq!(BUCKETS.len() + 3, 14);
        for series in &snapshot.timeseries {
            assert_eq!(label(series, "instance"), Some("i1"));
            assert_eq!(label(series, "job"), Some("edge-api"));
            let names: Vec<_> = series.labels.iter().map(|l| l.name.as_str()).collect();
            let mut sorted = names.clone();
            sorted.sort();
            assert_eq!(names, sorted, "labels sorted, as remote write requires");
        }
    }

    /// Records the snapshots it is sent; the first send waits until
    /// released, like a slow Prometheus.
    struct SlowPrometheus {
        bodies: Mutex<Vec<WriteRequest>>,
        release: tokio::sync::Semaphore,
    }

    impl outbound::Fetch for SlowPrometheus {
        fn fetch(
            &self,
            request: outbound::Request,
            _timeout: std::time::Duration,
        ) -> outbound::BoxFuture<'_, Result<outbound::Response, outbound::FetchError>> {
            Box::pin(async move {
                let body = WriteRequest::decode_body(request.body()).unwrap();
                let first = {
                    let mut bodies = self.bodies.lock().unwrap();
                    bodies.push(body);
                    bodies.len() == 1
                };
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

    /// Sleeps not at all, and records how long it was asked to.
    #[derive(Default)]
    struct NoWait(Mutex<Vec<std::time::Duration>>);

    impl outbound::Timer for NoWait {
        fn sleep(&self, duration: std::time::Duration) -> outbound::BoxFuture<'static, ()> {
            self.0.lock().unwrap().push(duration);
            Box::pin(async {})
        }
    }

    fn requests_counted(body: &WriteRequest) -> f64 {
        body.timeseries
            .iter()
            .find(|s| label(s, "__name__") == Some("edge_api_request_duration_seconds_count"))
            .map_or(0.0, |s| s.samples[0].value)
    }

    #[tokio::test]
    async fn requests_counted_during_a_push_go_in_one_more_push() {
        use std::sync::Arc;

        let prometheus = Arc::new(SlowPrometheus {
            bodies: Default::default(),
            release: tokio::sync::Semaphore::new(0),
        });
        let timer = Arc::new(NoWait::default());
        let mut platform = Platform::native();
        platform.fetch = prometheus.clone();
        platform.timer = timer.clone();
        let sink = Arc::new(MetricsSink::new(
            SinkTarget {
                url: "http://127.0.0.1:1/api/v1/write".into(),
                user: None,
                password: None,
            },
            "dev",
        ));
        sink.observe("/v1/pages", &finished(200, 7.0));
        assert!(sink.claim((platform.now_millis)()).is_some());
        let task = tokio::spawn({
            let (sink, platform) = (sink.clone(), platform.clone());
            async move { sink.push(&platform).await }
        });
        while prometheus.bodies.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        // The isolate's last request finishes while the push hangs: it
        // claims nothing, so the push in flight must carry it.
        sink.observe("/v1/pages", &finished(200, 8.0));
        assert!(sink.claim((platform.now_millis)()).is_none());
        prometheus.release.add_permits(1);
        task.await.unwrap();
        let counted: Vec<f64> = prometheus
            .bodies
            .lock()
            .unwrap()
            .iter()
            .map(requests_counted)
            .collect();
        assert_eq!(counted, [1.0, 2.0], "a second push with the late request");
        let waits = timer.0.lock().unwrap().clone();
        assert_eq!(waits.len(), 1, "{waits:?}");
        assert!(
            waits[0].as_millis() as f64 <= MIN_INTERVAL_MS,
            "the second push waits out what is left of the interval: {waits:?}"
        );
        // Nothing counted during a push: it is the only one.
        assert!(sink.claim((platform.now_millis)()).is_some(), "slot freed");
        sink.push(&platform).await;
        assert_eq!(prometheus.bodies.lock().unwrap().len(), 3);
    }
}
