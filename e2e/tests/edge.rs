//! The API's edge behaviour through the real Worker in workerd: problem
//! documents, request ids, security headers, CORS and readiness.

use e2e::{api, http, stack};

fn allowed_origin() -> &'static str {
    &stack().api.as_ref().unwrap().allowed_origins[0]
}

#[tokio::test]
async fn unknown_routes_are_problem_documents() {
    let response = http()
        .get(format!("{}/no/such/route", api()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["type"], "/problems/not-found");
    assert_eq!(body["title"], "Not found");
    assert_eq!(body["status"], 404);
    assert_eq!(body["instance"], id.as_str());
}

#[tokio::test]
async fn wrong_methods_are_405_problems_with_allow() {
    let response = http()
        .delete(format!("{}/healthz", api()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert!(response.headers()["allow"]
        .to_str()
        .unwrap()
        .contains("GET"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["type"], "/problems/method-not-allowed");
}

#[tokio::test]
async fn request_ids_come_from_cf_ray_or_are_generated() {
    let response = http()
        .get(format!("{}/healthz", api()))
        .header("cf-ray", "8f1a2b3c4d5e6f70-SJC")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "8f1a2b3c4d5e6f70-SJC");
    let timing = response.headers()["server-timing"].to_str().unwrap();
    assert!(timing.contains("total;dur="), "{timing}");

    let a = http()
        .get(format!("{}/healthz", api()))
        .send()
        .await
        .unwrap();
    let b = http()
        .get(format!("{}/healthz", api()))
        .send()
        .await
        .unwrap();
    let (a, b) = (&a.headers()["x-request-id"], &b.headers()["x-request-id"]);
    assert_eq!(a.len(), 32);
    assert_ne!(a, b);
}

#[tokio::test]
async fn responses_carry_security_headers() {
    let response = http()
        .get(format!("{}/healthz", api()))
        .send()
        .await
        .unwrap();
    let h = response.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(h["strict-transport-security"]
        .to_str()
        .unwrap()
        .contains("max-age"));
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
}

#[tokio::test]
async fn cors_allows_the_pages_origins_and_refuses_others() {
    let allowed = http()
        .get(format!("{}/healthz", api()))
        .header("origin", allowed_origin())
        .send()
        .await
        .unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        allowed_origin()
    );
    assert_eq!(
        allowed.headers()["access-control-allow-credentials"],
        "true"
    );

    let refused = http()
        .get(format!("{}/healthz", api()))
        .header("origin", "https://attacker.example.net")
        .send()
        .await
        .unwrap();
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());

    let preflight = http()
        .request(reqwest::Method::OPTIONS, format!("{}/v1/pages/home", api()))
        .header("origin", allowed_origin())
        .header("access-control-request-method", "PUT")
        .header("access-control-request-headers", "content-type, if-match")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        allowed_origin()
    );
    assert!(preflight.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("PUT"));
    assert!(preflight.headers()["access-control-max-age"]
        .to_str()
        .is_ok());
}

#[tokio::test]
async fn readyz_checks_tidb_and_redis_through_the_worker() {
    let response = http()
        .get(format!("{}/readyz", api()))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["environment"], "dev");
    // TiDB through the HTTP driver and the local gateway, Redis over the
    // Worker's TCP socket, B2 (SigV4-checking S3 server) with a signed
    // HEAD of the bucket: all answered, each with its latency.
    for dependency in ["tidb", "redis", "b2"] {
        let check = &body["checks"][dependency];
        assert_eq!(check["ok"], true, "{dependency}: {body}");
        assert!(check["latency_ms"].as_f64().unwrap() >= 0.0, "{body}");
    }
    assert_eq!(body["checks"]["tidb"]["required"], true);
}

#[tokio::test]
async fn the_openapi_document_is_served_by_the_worker() {
    let document = e2e::json(http().get(format!("{}/openapi.json", api()))).await;
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(document["paths"]["/healthz"]["get"].is_object());
    assert!(document["paths"]["/readyz"]["get"]["responses"]["503"].is_object());
}

#[tokio::test]
async fn a_request_past_its_deadline_is_a_504_problem() {
    let deadline = stack().api.as_ref().unwrap().request_deadline_ms;
    let response = http()
        .get(format!("{}/_test/sleep?ms={}", api(), deadline + 5000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["type"], "/problems/timeout");
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains(&deadline.to_string()));
}

/// A client that sends part of its body and then nothing, with its length
/// declared or chunked: the request deadline answers it with a 408 problem,
/// where the Worker once waited for a declared body as long as the client
/// stayed connected (it read it before the deadline started). Sent by hand,
/// as no HTTP client stops halfway on purpose.
#[tokio::test]
async fn a_body_that_stops_arriving_is_a_408_problem() {
    let declared = stalled_body_answer("content-length: 100\r\n\r\n{\"title\":").await;
    let chunked =
        stalled_body_answer("transfer-encoding: chunked\r\n\r\n9\r\n{\"title\":\r\n").await;
    for head in [declared, chunked] {
        assert!(head.starts_with("http/1.1 408"), "{head}");
        assert!(
            head.contains("content-type: application/problem+json"),
            "{head}"
        );
    }
}

/// The head of the answer (lowercase) to a page write whose request ends
/// with `rest` (its body's framing and the start of the body) and then
/// sends nothing more.
async fn stalled_body_answer(rest: &str) -> String {
    use tokio::io::AsyncWriteExt;

    let deadline = stack().api.as_ref().unwrap().request_deadline_ms;
    let address = api().strip_prefix("http://").unwrap();
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "PUT /v1/pages/a-stalled-body HTTP/1.1\r\nhost: api\r\n\
         content-type: application/json\r\n{rest}"
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    // An answer after the deadline.
    e2e::answer_head(
        &mut socket,
        std::time::Duration::from_millis(deadline + 10_000),
    )
    .await
}

/// A sleep on the isolate's timer (the one readiness checks and
/// background retries use) ends when it should inside a request. The
/// Worker polls a request right in the callback that wakes it, and
/// workers-rs' `Delay` wakes before it marks itself done: the poll saw it
/// still pending, and the request waited for its deadline instead.
#[tokio::test]
async fn a_short_sleep_inside_a_request_ends_on_time() {
    let deadline = stack().api.as_ref().unwrap().request_deadline_ms;
    let started = std::time::Instant::now();
    let response = http()
        .get(format!("{}/_test/sleep?ms=300", api()))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "slept");
    assert!(
        took >= std::time::Duration::from_millis(300)
            && took < std::time::Duration::from_millis(deadline / 2),
        "took {took:?}, the request's deadline is {deadline} ms"
    );
}

#[tokio::test]
async fn bad_query_parameters_are_400_problems() {
    let response = http()
        .get(format!("{}/_test/sleep?ms=soon", api()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["type"], "/problems/bad-request");
}

/// Through workerd too: a path segment that is not percent-encoded UTF-8
/// is a 400 problem, and a long path is not echoed whole by the 404 (both
/// found by the any-request fuzzing natively).
#[tokio::test]
async fn malformed_and_long_paths_are_short_problem_documents() {
    let response = http()
        .get(format!("{}/v1/files/%AA", api()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let long = "x".repeat(4000);
    let response = http()
        .get(format!("{}/v1/{long}", api()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body = response.bytes().await.unwrap();
    assert!(body.len() < 2048, "a 404 of {} bytes", body.len());
}

/// The Worker hands the headers most responses share to JS as cached
/// templates (api-worker/src/bridge.rs): answers of different shapes,
/// interleaved and repeated, must each keep their own headers and never
/// another answer's.
#[tokio::test]
async fn interleaved_answers_keep_their_own_headers() {
    async fn get(path: &str, origin: &str) -> reqwest::Response {
        http()
            .get(format!("{}{path}", api()))
            .header("origin", origin)
            .send()
            .await
            .unwrap()
    }
    let mut ids = std::collections::HashSet::new();
    for _ in 0..3 {
        let allowed = get("/healthz", allowed_origin()).await;
        let refused = get("/healthz", "https://attacker.example.net").await;
        let missing = get("/no/such/route", "https://attacker.example.net").await;
        for (response, content_type) in [
            (&allowed, "application/json"),
            (&refused, "application/json"),
            (&missing, "application/problem+json"),
        ] {
            let headers = response.headers();
            assert_eq!(headers["content-type"], content_type);
            assert_eq!(headers["x-content-type-options"], "nosniff");
            assert_eq!(headers["x-frame-options"], "DENY");
            assert!(headers["server-timing"]
                .to_str()
                .unwrap()
                .contains("total;dur="));
            let id = headers["x-request-id"].to_str().unwrap().to_owned();
            assert!(ids.insert(id), "a request id was given twice");
        }
        assert_eq!(
            allowed.headers()["access-control-allow-origin"],
            allowed_origin()
        );
        for response in [&refused, &missing] {
            assert!(response
                .headers()
                .get("access-control-allow-origin")
                .is_none());
            assert!(response
                .headers()
                .get("access-control-allow-credentials")
                .is_none());
        }
    }
}
