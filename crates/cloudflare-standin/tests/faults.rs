//! Fault injection: rate limits, 5xx, hangs, the Nth call, after-apply.
mod common;

use std::time::Duration;

use cloudflare_standin::{Fault, FaultKind};
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let api = start().await;
    api.standin.inject(
        Fault::next(FaultKind::RateLimit {
            retry_after_secs: 7,
        })
        .times(2),
    );
    for _ in 0..2 {
        let response = api.request(Method::GET, "/zones").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()["retry-after"], "7");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_error(&body, 971);
    }
    let (status, _) = api.get("/zones").await;
    assert_eq!(status, StatusCode::OK);
    assert!(api.standin.pending_faults().is_empty());
    assert_eq!(
        api.standin.requests().iter().filter(|r| r.faulted).count(),
        2
    );
}

#[tokio::test]
async fn server_errors_match_method_and_path() {
    let api = start().await;
    api.standin.inject(
        Fault::next(FaultKind::ServerError {
            status: 503,
            html: false,
        })
        .method("POST")
        .path_contains("/dns_records"),
    );
    let (status, _) = api.get(&format!("/zones/{ZONE}/dns_records")).await;
    assert_eq!(status, StatusCode::OK, "GETs do not match");
    let (status, body) = api
        .post(
            &format!("/zones/{ZONE}/dns_records"),
            json!({"type": "A", "name": "x", "content": "192.0.2.1", "ttl": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_error(&body, 10013);
    assert!(
        api.standin.dns_records(ZONE).is_empty(),
        "a fault before apply changes nothing"
    );
}

#[tokio::test]
async fn the_nth_call_from_now_fails() {
    let api = start().await;
    api.standin.inject(
        Fault::next(FaultKind::ServerError {
            status: 500,
            html: false,
        })
        .nth(3),
    );
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(api.get("/zones").await.0.as_u16());
    }
    assert_eq!(statuses, [200, 200, 500, 200]);
}

#[tokio::test]
async fn after_apply_faults_change_state_but_fail_the_answer() {
    let api = start().await;
    api.standin.inject(
        Fault::next(FaultKind::ServerError {
            status: 502,
            html: true,
        })
        .after_apply(),
    );
    let response = api
        .request(Method::POST, &format!("/zones/{ZONE}/dns_records"))
        .json(&json!({"type": "A", "name": "x", "content": "192.0.2.1", "ttl": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(response.headers()["content-type"], "text/html");
    assert_eq!(api.standin.dns_records(ZONE).len(), 1);
}

#[tokio::test]
async fn hangs_make_client_timeouts_fire() {
    let api = start().await;
    api.standin
        .inject(Fault::next(FaultKind::Hang { delay_ms: None }));
    let error = api
        .request(Method::GET, "/zones")
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .expect_err("the call hangs");
    assert!(error.is_timeout(), "{error}");
    // A delayed answer arrives after the delay.
    api.standin.inject(Fault::next(FaultKind::Hang {
        delay_ms: Some(200),
    }));
    let started = std::time::Instant::now();
    let response = api.request(Method::GET, "/zones").send().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    let (status, _) = api.get("/zones").await;
    assert_eq!(status, StatusCode::OK);
}
