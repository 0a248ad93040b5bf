//! Admin routes, service-binding trust and the request deadline, natively:
//! real RS256 tokens from a generated key, served by a JWKS endpoint on a
//! local port and fetched over HTTP like the Worker does.

use std::sync::OnceLock;

use access::testing::{service_claims, user_claims, SigningKey};
use api::{App, Platform};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::Response;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

const AUD: &str = "api-aud";
const SITE_AUD: &str = "admin-site-aud";
const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate("test-key"))
}

/// Serves the key's JWKS on a free local port; returns the team domain.
async fn team() -> String {
    let jwks = json!({ "keys": [key().jwk()] });
    let app = axum::Router::new().route(
        "/cdn-cgi/access/certs",
        axum::routing::get(move || async move { axum::Json(jwks) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn app(team: &str, extra: &[(&str, &str)]) -> api::Api {
    let mut vars: std::collections::HashMap<String, String> = [
        ("ENVIRONMENT", "dev"),
        ("ALLOWED_ORIGINS", "http://localhost:8788"),
        ("ACCESS_TEAM_DOMAIN", team),
        ("ACCESS_AUD", AUD),
        ("ACCESS_BINDING_AUD", SITE_AUD),
        ("ACCESS_SERVICE_TOKENS", "ci.access"),
        ("BINDING_SECRET", SECRET),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    api::router(App::new(|n| vars.get(n).cloned(), Platform::native()))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn send(router: &api::Api, request: Request<Body>) -> (Response, serde_json::Value) {
    let response = router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (Response::from_parts(parts, Body::empty()), json)
}

fn whoami() -> axum::http::request::Builder {
    Request::get("/v1/admin/whoami")
}

/// `whoami` with `token` in the Access header, and `binding_token` as the
/// Pages shim sends its secret; the status and the body.
async fn whoami_with(
    router: &api::Api,
    token: &str,
    binding_token: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let mut request = whoami().header("cf-access-jwt-assertion", token);
    if let Some(secret) = binding_token {
        request = request.header("x-api-binding-token", secret);
    }
    let (response, body) = send(router, request.body(Body::empty()).unwrap()).await;
    (response.status(), body)
}

#[tokio::test]
async fn a_user_token_in_the_header_or_cookie_identifies_the_caller() {
    let team = team().await;
    let router = app(&team, &[]).await;
    let token = key().sign(&user_claims(&team, AUD, "ada@example.com", now()));

    let request = whoami()
        .header("cf-access-jwt-assertion", &token)
        .body(Body::empty())
        .unwrap();
    let (response, body) = send(&router, request).await;
    assert_eq!(response.status(), StatusCode::OK, "{body}");
    assert_eq!(body["kind"], "user");
    assert_eq!(body["email"], "ada@example.com");
    assert_eq!(body["author"], "ada@example.com");
    assert_eq!(body["via"], "internet");
    let timing = response.headers()["server-timing"].to_str().unwrap();
    assert!(timing.contains("access;dur="), "{timing}");

    let request = whoami()
        .header("cookie", format!("CF_Authorization={token}"))
        .body(Body::empty())
        .unwrap();
    let (response, _) = send(&router, request).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn no_token_is_a_401_problem_naming_how_to_authenticate() {
    let team = team().await;
    let router = app(&team, &[]).await;
    let (response, body) = send(&router, whoami().body(Body::empty()).unwrap()).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(body["type"], "/problems/unauthorized");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert!(response.headers().contains_key("www-authenticate"));
    assert_eq!(
        body["instance"],
        response.headers()["x-request-id"].to_str().unwrap()
    );
}

#[tokio::test]
async fn an_expired_token_is_401_and_another_applications_is_403() {
    let team = team().await;
    let router = app(&team, &[]).await;
    let mut claims = user_claims(&team, AUD, "ada@example.com", now() - 3600);
    claims["exp"] = json!(now() - 600);
    let request = whoami()
        .header("cf-access-jwt-assertion", key().sign(&claims))
        .body(Body::empty())
        .unwrap();
    let (response, body) = send(&router, request).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        body["detail"].as_str().unwrap().contains("expired"),
        "{body}"
    );

    let other = key().sign(&user_claims(&team, "other-aud", "ada@example.com", now()));
    let request = whoami()
        .header("cf-access-jwt-assertion", other)
        .body(Body::empty())
        .unwrap();
    let (response, body) = send(&router, request).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(body["type"], "/problems/forbidden");
}

#[tokio::test]
async fn the_admin_sites_token_counts_only_with_the_binding_secret() {
    let team = team().await;
    let router = app(&team, &[]).await;
    let token = key().sign(&user_claims(&team, SITE_AUD, "ada@example.com", now()));

    let (status, _) = whoami_with(&router, &token, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, body) = whoami_with(&router, &token, Some(SECRET)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["via"], "binding");

    let (status, body) = whoami_with(&router, &token, Some("guess")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!body.to_string().contains("guess"));
}

/// prd: no Access application covers the API's hostname, so `ACCESS_AUD`
/// is empty and the admin site's tokens count only through the binding.
#[tokio::test]
async fn with_no_audience_of_its_own_the_api_lets_admin_tokens_in_through_the_binding_only() {
    let team = team().await;
    // (`dev`: the local team domain is plain http.)
    let router = app(&team, &[("ACCESS_AUD", "")]).await;
    let site = key().sign(&user_claims(&team, SITE_AUD, "ada@example.com", now()));
    let (status, body) = whoami_with(&router, &site, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // A token of what was the API's audience counts nowhere now.
    let api = key().sign(&user_claims(&team, AUD, "ada@example.com", now()));
    for binding in [None, Some(SECRET)] {
        let (status, body) = whoami_with(&router, &api, binding).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    let (status, body) = whoami_with(&router, &site, Some(SECRET)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["via"], "binding");
}

#[tokio::test]
async fn service_tokens_are_identified_by_client_id() {
    let team = team().await;
    let router = app(&team, &[]).await;
    let token = key().sign(&service_claims(&team, AUD, "ci.access", now()));
    let request = whoami()
        .header("cf-access-jwt-assertion", token)
        .body(Body::empty())
        .unwrap();
    let (response, body) = send(&router, request).await;
    assert_eq!(response.status(), StatusCode::OK, "{body}");
    assert_eq!(body["kind"], "service");
    assert_eq!(body["client_id"], "ci.access");
}

#[tokio::test]
async fn without_access_configured_admin_routes_are_503_and_readyz_says_why() {
    let router = app("", &[]).await;
    let (response, body) = send(&router, whoami().body(Body::empty()).unwrap()).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["type"], "/problems/unavailable");
    let (response, body) = send(
        &router,
        Request::get("/readyz").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body["checks"]["config"]["issues"][0]["name"],
        "ACCESS_TEAM_DOMAIN"
    );
}

thread_local! {
    /// What the app wrote to its error log on this thread (`tokio::test`
    /// runs each test on its own thread).
    static LOGGED: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn log_to_thread(line: &str) {
    LOGGED.with(|logged| logged.borrow_mut().push(line.to_owned()));
}

/// With the team's certs endpoint down and no keys cached, admin routes
/// are a 503 to retry: the problem names no URL nor what the fetch said
/// (`prd` is public), and the cause goes to the log.
#[tokio::test]
async fn unreachable_access_keys_are_a_503_to_retry_with_the_cause_logged_only() {
    // Nothing listens there.
    let team = "http://127.0.0.1:1";
    let vars: std::collections::HashMap<String, String> = [
        ("ENVIRONMENT", "dev"),
        ("ALLOWED_ORIGINS", "http://localhost:8788"),
        ("ACCESS_TEAM_DOMAIN", team),
        ("ACCESS_AUD", AUD),
        ("BINDING_SECRET", SECRET),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let platform = Platform {
        log_error: log_to_thread,
        ..Platform::native()
    };
    let router = api::router(App::new(|n| vars.get(n).cloned(), platform));
    let token = key().sign(&user_claims(team, AUD, "ada@example.com", now()));
    let request = whoami()
        .header("cf-access-jwt-assertion", token)
        .body(Body::empty())
        .unwrap();
    let (response, body) = send(&router, request).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["type"], "/problems/unavailable");
    assert_eq!(response.headers()["retry-after"], "5");
    let detail = body["detail"].as_str().unwrap();
    for internal in ["127.0.0.1", "certs", "http", "network", "error sending"] {
        assert!(!detail.contains(internal), "{internal:?} in {detail:?}");
    }
    let id = response.headers()["x-request-id"].to_str().unwrap();
    let logged = LOGGED.with(|logged| logged.borrow().clone());
    assert!(
        logged
            .iter()
            .any(|line| line.contains(id) && line.contains("127.0.0.1:1")),
        "the cause is logged under the request id: {logged:?}"
    );
}

/// A client that stops sending its body: the deadline still ends the
/// request, as a 408 (its body never came, so nothing was done), where the
/// request once waited for as long as the client stayed connected.
#[tokio::test]
async fn a_body_that_stops_arriving_is_a_408_problem_at_the_deadline() {
    let team = team().await;
    let router = app(&team, &[("REQUEST_DEADLINE_MS", "200")]).await;
    let first: Result<&[u8], std::io::Error> = Ok(br#"{"title":"#);
    let stalled = futures_util::stream::iter([first]).chain(futures_util::stream::pending());
    let request = Request::put("/v1/pages/stalled")
        .header("content-type", "application/json")
        .header("content-length", "100")
        .body(Body::from_stream(stalled))
        .unwrap();
    let (response, body) =
        tokio::time::timeout(std::time::Duration::from_secs(5), send(&router, request))
            .await
            .expect("an answer at the deadline");
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(body["type"], "/problems/request-timeout");
    assert_eq!(body["status"], 408);
}

#[tokio::test]
async fn a_request_past_its_deadline_is_a_504_problem() {
    let team = team().await;
    let router = app(&team, &[("REQUEST_DEADLINE_MS", "200")]).await;
    let (response, body) = send(
        &router,
        Request::get("/_test/sleep?ms=5000")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(body["type"], "/problems/timeout");
    let (response, _) = send(
        &router,
        Request::get("/_test/sleep?ms=10")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}
