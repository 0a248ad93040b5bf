//! Telemetry from the real Worker to the real sinks: a forced 500 read
//! back from Bugsink (Sentry's protocol) with every secret scrubbed, the
//! request metrics queried from Prometheus with PromQL, and the request's
//! log line read back from the Loki stand-in.

use e2e::sentry::event_containing;
use e2e::{api, eventually, git_head, http, json, stack, unique};
use serde_json::Value;

#[tokio::test]
async fn a_server_error_reaches_sentry_with_its_context_and_no_secrets() {
    let marker = unique("marker");
    let secrets = [
        "query-s3cret",
        "cookie-s3cret",
        "bearer-s3cret",
        "jwt-s3cret",
        "client-s3cret",
    ];
    let response = http()
        .get(format!(
            "{}/_test/fail?marker={marker}&token=query-s3cret",
            api()
        ))
        .header("cookie", "CF_Authorization=cookie-s3cret; theme=dark")
        .header("authorization", "Bearer bearer-s3cret")
        .header("cf-access-jwt-assertion", "jwt-s3cret")
        .header("cf-access-client-secret", "client-s3cret")
        .header("user-agent", "e2e-telemetry")
        .header("referer", "https://e2e.example/from")
        .header("x-not-read", "dropped")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.text().await.unwrap();
    assert!(
        !body.contains(&marker),
        "the cause is not the client's: {body}"
    );

    let event = eventually("the Sentry event", || event_containing(&marker)).await;
    let text = event.to_string();
    for secret in secrets {
        assert!(!text.contains(secret), "{secret} reached Sentry: {text}");
    }
    let data = &event["data"];
    assert_eq!(data["environment"], "dev", "{data}");
    assert!(
        git_head().starts_with(data["release"].as_str().unwrap().trim_end_matches("-dirty")),
        "{data}"
    );
    assert_eq!(data["transaction"], "GET /_test/fail", "{data}");
    assert_eq!(data["request"]["method"], "GET");
    assert_eq!(data["request"]["headers"]["user-agent"], "e2e-telemetry");
    // The API sees only the headers it reads (`api::request_headers::READ`:
    // the bridge fetches those, the edge drops any other), so no other
    // header reaches Sentry.
    assert_eq!(
        data["request"]["headers"]["referer"],
        "https://e2e.example/from"
    );
    assert!(
        data["request"]["headers"].get("x-not-read").is_none(),
        "{data}"
    );
    assert!(
        data["request"]["url"]
            .as_str()
            .unwrap()
            .contains("token=%5BFiltered%5D"),
        "{data}"
    );
    assert!(
        text.contains(&request_id),
        "the request id is a tag: {text}"
    );
    assert!(text.contains(&format!("forced failure {marker}")), "{text}");
}

/// `sum(QUERY)` from Prometheus, 0 when there is no such series yet.
async fn prometheus_sum(query: &str) -> f64 {
    let answer = json(
        http()
            .get(format!("{}/api/v1/query", stack().prometheus.url))
            .query(&[("query", format!("sum({query})"))]),
    )
    .await;
    assert_eq!(answer["status"], "success", "{answer}");
    answer["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn request_and_dependency_metrics_reach_prometheus() {
    let requests = r#"edge_api_request_duration_seconds_count{route="/healthz",method="GET",status_class="2xx",environment="dev"}"#;
    let not_found =
        r#"edge_api_request_duration_seconds_count{route="unmatched",status_class="4xx"}"#;
    let before = prometheus_sum(requests).await;
    for _ in 0..5 {
        let response = http()
            .get(format!("{}/healthz", api()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let missing = http()
        .get(format!("{}/{}", api(), unique("nowhere-")))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let counted = eventually("the request metrics", || async {
        // One push per isolate is in flight at a time; another request
        // carries whatever a skipped push would have.
        let _ = http().get(format!("{}/healthz", api())).send().await;
        let now = prometheus_sum(requests).await;
        (now >= before + 5.0).then_some(now)
    })
    .await;
    assert!(counted >= before + 5.0);
    assert!(prometheus_sum(not_found).await >= 1.0);
    // Raw paths never become labels.
    let raw =
        prometheus_sum(r#"edge_api_request_duration_seconds_count{route=~"/nowhere.*"}"#).await;
    assert_eq!(raw, 0.0);
    let page = http()
        .get(format!("{}/v1/pages/{}", api(), unique("metrics-")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 404, "a read that asked the database");
    eventually("the dependency metrics", || async {
        let _ = http().get(format!("{}/healthz", api())).send().await;
        let calls =
            prometheus_sum(r#"edge_api_dependency_duration_seconds_count{dependency="db"}"#).await;
        (calls >= 1.0).then_some(calls)
    })
    .await;
}

#[tokio::test]
async fn each_request_leaves_one_log_line_in_loki() {
    let ray = format!("{}-SJC", unique("ray"));
    let response = http()
        .get(format!(
            "{}/v1/pages/{}?secret=query-s3cret",
            api(),
            unique("missing-")
        ))
        .header("cf-ray", &ray)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["x-request-id"], ray.as_str());
    let loki = &stack().loki;
    let line: Value = eventually("the log line", || async {
        let answer = json(
            http()
                .get(format!("{}/loki/api/v1/query_range", loki.url))
                .basic_auth(&loki.user, Some(&loki.password))
                .query(&[
                    ("query", r#"{job="edge-api",environment="dev"}"#),
                    ("limit", "5000"),
                ]),
        )
        .await;
        answer["data"]["result"]
            .as_array()?
            .iter()
            .flat_map(|stream| stream["values"].as_array().cloned().unwrap_or_default())
            .filter_map(|value| serde_json::from_str::<Value>(value[1].as_str()?).ok())
            .find(|line| line["request_id"] == ray.as_str())
    })
    .await;
    assert_eq!(line["route"], "/v1/pages/{slug}", "{line}");
    assert_eq!(line["status"], 404);
    assert_eq!(line["colo"], "SJC");
    assert_eq!(line["problem"], "/problems/not-found");
    assert!(line["path"]
        .as_str()
        .unwrap()
        .starts_with("/v1/pages/missing-"));
    assert!(line["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(line["dependencies_ms"]["db"].as_f64().is_some(), "{line}");
    assert!(!line.to_string().contains("query-s3cret"), "{line}");
}
