//! The cross-cutting behaviour of the router, exercised natively through
//! `tower::ServiceExt::oneshot` (the same router the Worker serves).

use api::{App, Platform};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::response::Response;
use http_body_util::BodyExt;
use tower::ServiceExt;

const ORIGIN: &str = "https://www.rc.example.com";

fn app(vars: &[(&str, &str)]) -> api::Api {
    let vars: std::collections::HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    api::router(App::new(|n| vars.get(n).cloned(), Platform::native()))
}

fn configured() -> api::Api {
    let mut vars = vec![
        ("ENVIRONMENT", "rc"),
        ("ALLOWED_ORIGINS", ORIGIN),
        ("ACCESS_TEAM_DOMAIN", "https://team.cloudflareaccess.com"),
        ("ACCESS_AUD", "api-aud"),
        ("BINDING_SECRET", "0123456789abcdef0123456789abcdef"),
    ];
    // Nothing listens there: the dependency checks fail fast.
    vars.extend(api::testing::UNREACHABLE_DEPENDENCIES);
    app(&vars)
}

async fn send(router: api::Api, request: Request<Body>) -> (Response, serde_json::Value) {
    let response = router.oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (Response::from_parts(parts, Body::empty()), json)
}

#[tokio::test]
async fn unknown_routes_are_404_problems_with_the_request_id() {
    let (response, body) = send(
        configured(),
        Request::get("/nope").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 32);
    assert_eq!(body["type"], "/problems/not-found");
    assert_eq!(body["status"], 404);
    assert_eq!(body["instance"], id);
}

/// A path segment that is not percent-encoded UTF-8 is a 400 problem on
/// every route with a parameter (axum's own extractor answered plain text
/// on the uploads routes; found by `check_any_request`'s fuzzing).
#[tokio::test]
async fn a_segment_that_is_not_utf8_is_a_400_problem() {
    for path in ["/v1/files/%AA", "/v1/pages/%AA", "/v1/pages/%AA/revisions"] {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let (response, body) = send(configured(), request).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json",
            "{path}"
        );
        assert_eq!(body["status"], 400, "{path}");
        assert!(!body["detail"].as_str().unwrap().contains("%AA"), "{body}");
    }
}

/// A file id that cannot be one is not repeated in the 404 (the fuzzing
/// found a 2 KiB problem repeating a long path).
#[tokio::test]
async fn a_404_does_not_repeat_a_file_id_that_cannot_be_one() {
    let long = "x".repeat(3000);
    let request = Request::get(format!("/v1/files/{long}")).body(Body::empty());
    let (response, body) = send(configured(), request.unwrap()).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let detail = body["detail"].as_str().unwrap();
    assert!(!detail.contains("xxx") && detail.len() < 100, "{detail}");
}

#[tokio::test]
async fn wrong_methods_are_405_problems_with_allow() {
    let (response, body) = send(
        configured(),
        Request::delete("/healthz").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let allow = response.headers()[header::ALLOW].to_str().unwrap();
    assert!(allow.contains("GET"), "{allow}");
    assert_eq!(body["type"], "/problems/method-not-allowed");
    assert!(body["instance"].is_string());
}

#[tokio::test]
async fn the_request_id_comes_from_cf_ray() {
    let request = Request::get("/healthz")
        .header("cf-ray", "8f1a2b3c4d5e6f70-SJC")
        .body(Body::empty())
        .unwrap();
    let (response, _) = send(configured(), request).await;
    assert_eq!(response.headers()["x-request-id"], "8f1a2b3c4d5e6f70-SJC");
    let timing = response.headers()["server-timing"].to_str().unwrap();
    assert!(timing.starts_with("total;dur="), "{timing}");
}

#[tokio::test]
async fn every_response_has_security_headers() {
    for path in ["/healthz", "/nope"] {
        let (response, _) = send(
            configured(),
            Request::get(path).body(Body::empty()).unwrap(),
        )
        .await;
        let h = response.headers();
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert!(h["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age="));
        assert_eq!(h["cross-origin-resource-policy"], "same-site");
        assert!(h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'"));
    }
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let allowed = Request::get("/healthz")
        .header("origin", ORIGIN)
        .body(Body::empty())
        .unwrap();
    let (response, _) = send(configured(), allowed).await;
    assert_eq!(response.headers()["access-control-allow-origin"], ORIGIN);
    assert_eq!(
        response.headers()["access-control-allow-credentials"],
        "true"
    );

    let refused = Request::get("/healthz")
        .header("origin", "https://evil.example.net")
        .body(Body::empty())
        .unwrap();
    let (response, _) = send(configured(), refused).await;
    // Nothing of CORS for a refused origin, nor for a request without one;
    // caches still learn that the answer depends on it.
    for name in [
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "access-control-expose-headers",
    ] {
        assert!(response.headers().get(name).is_none(), "{name}");
    }
    let plain = Request::get("/healthz").body(Body::empty()).unwrap();
    let (response, _) = send(configured(), plain).await;
    for name in [
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "access-control-expose-headers",
    ] {
        assert!(response.headers().get(name).is_none(), "{name}");
    }
    assert!(response.headers()["vary"]
        .to_str()
        .unwrap()
        .contains("origin"));
}

#[tokio::test]
async fn preflights_are_answered_before_any_route() {
    // A preflight for a route that does not exist yet still succeeds: it
    // never reaches routing, let alone storage.
    let preflight = Request::options("/v1/pages/anything")
        .header("origin", ORIGIN)
        .header("access-control-request-method", "PUT")
        .header("access-control-request-headers", "content-type, if-match")
        .body(Body::empty())
        .unwrap();
    let (response, _) = send(configured(), preflight).await;
    assert_eq!(response.status(), StatusCode::OK);
    let h = response.headers();
    assert_eq!(h["access-control-allow-origin"], ORIGIN);
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("PUT"));
    assert_eq!(h["access-control-max-age"], "7200");
    assert!(h.get("x-request-id").is_some());
    assert_eq!(h["x-content-type-options"], "nosniff");
    // Not even the rate limiter (Redis) was asked.
    let timing = h["server-timing"].to_str().unwrap();
    assert!(timing.starts_with("total;"), "{timing}");
    assert!(h.get("ratelimit-limit").is_none());
}

#[tokio::test]
async fn readyz_names_what_is_missing() {
    let (response, body) = send(
        app(&[("ENVIRONMENT", "rc")]),
        Request::get("/readyz").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "unready");
    assert_eq!(
        body["checks"]["config"]["issues"][0]["name"],
        "ALLOWED_ORIGINS"
    );
    // Each dependency names the settings it lacks.
    let checks = &body["checks"];
    assert_eq!(
        checks["tidb"]["error"], "not configured: TIDB_DATABASE_URL",
        "{body}"
    );
    assert_eq!(
        checks["redis"]["error"], "not configured: REDIS_URL",
        "{body}"
    );
    assert_eq!(
        checks["b2"]["error"],
        "not configured: B2_ENDPOINT, B2_REGION, B2_BUCKET, B2_KEY_ID, B2_APPLICATION_KEY",
        "{body}"
    );

    let (response, body) = send(
        configured(),
        Request::get("/readyz").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "unready");
    let checks = &body["checks"];
    assert_eq!(checks["config"]["ok"], true, "{body}");
    assert_eq!(checks["tidb"]["ok"], false);
    assert_eq!(checks["tidb"]["required"], true);
    assert!(checks["tidb"]["latency_ms"].is_number());
    assert!(checks["tidb"]["error"].is_string());
    assert_eq!(checks["redis"]["ok"], false);
    assert_eq!(checks["redis"]["required"], false);
    assert_eq!(checks["redis"]["error"], "unreachable", "{body}");
    assert_eq!(checks["b2"]["ok"], false);
    assert_eq!(checks["b2"]["required"], false);
    assert!(!body.to_string().contains("pw@"), "no credentials: {body}");
    assert!(
        !body.to_string().contains("b2-pw"),
        "no credentials: {body}"
    );
}

/// `/readyz` is public (in `prd`): a failed check says what kind of
/// failure it is, never the driver's words, which name the endpoint, the
/// bucket and what the server said.
#[tokio::test]
async fn readyz_reports_failures_as_categories_without_internals() {
    let (response, body) = send(
        configured(),
        Request::get("/readyz").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    // TiDB's endpoint is derived as `https://http-127.0.0.1:1`, which is
    // no valid URL: no request can be made from that setting.
    for (dependency, category) in [
        ("tidb", "misconfigured"),
        ("redis", "unreachable"),
        ("b2", "unreachable"),
    ] {
        let check = &body["checks"][dependency];
        assert_eq!(check["ok"], false, "{dependency}: {body}");
        assert_eq!(check["error"], category, "{dependency}: {body}");
        assert!(check["latency_ms"].is_number(), "{dependency}: {body}");
    }
    let text = body.to_string();
    for internal in ["127.0.0.1", "/files", "files/", "http", "error sending"] {
        assert!(!text.contains(internal), "{internal:?} in {body}");
    }
}

#[tokio::test]
async fn healthz_reports_the_build() {
    let (response, body) = send(
        configured(),
        Request::get("/healthz").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["commit"], api::BuildInfo::CURRENT.commit);
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let (response, document) = send(
        configured(),
        Request::get("/openapi.json").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1"),
        "{document}"
    );
    let paths = document["paths"].as_object().unwrap();
    for path in ["/healthz", "/readyz", "/openapi.json"] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    for (path, operations) in paths {
        for method in operations.as_object().unwrap().keys() {
            let request = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(path)
                .body(Body::empty())
                .unwrap();
            let (response, body) = send(configured(), request).await;
            // A handler may answer 404 for what it does not find (a file id
            // like the literal `{id}`); only the router's own 404 (the
            // fallback) and 405 mean the route is missing.
            let unrouted = response.status() == StatusCode::NOT_FOUND
                && body["detail"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("There is nothing at"));
            assert!(
                !unrouted && response.status() != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is documented but answered {}: {body}",
                response.status()
            );
        }
    }
    assert!(document["components"]["schemas"]["Problem"].is_object());
}

#[tokio::test]
async fn every_v1_operation_documents_rate_limits_and_outages() {
    let (_, document) = send(
        configured(),
        Request::get("/openapi.json").body(Body::empty()).unwrap(),
    )
    .await;
    let paths = document["paths"].as_object().unwrap();
    let mut checked = 0;
    for (path, operations) in paths.iter().filter(|(p, _)| p.starts_with("/v1/")) {
        for (method, operation) in operations.as_object().unwrap() {
            let responses = &operation["responses"];
            for status in ["429", "503"] {
                assert!(
                    responses.get(status).is_some(),
                    "{method} {path} does not document {status}"
                );
            }
            if operation.get("security").is_some() {
                assert!(responses.get("401").is_some(), "{method} {path}: 401");
                assert!(responses.get("403").is_some(), "{method} {path}: 403");
            }
            checked += 1;
        }
    }
    assert!(checked >= 6, "only {checked} /v1 operations");
}
