//! Access apps, policies, service tokens, and the edge emulation.
mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn access(rest: &str) -> String {
    format!("/accounts/{ACCOUNT}/access{rest}")
}

async fn service_token(api: &Api) -> (String, String, String) {
    let (status, body) = api
        .post(&access("/service_tokens"), json!({"name": "deploy-health"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = &body["result"];
    (
        token["id"].as_str().unwrap().to_owned(),
        token["client_id"].as_str().unwrap().to_owned(),
        token["client_secret"].as_str().unwrap().to_owned(),
    )
}

async fn policy(api: &Api, include: Value) -> String {
    let (status, body) = api
        .post(
            &access("/policies"),
            json!({"name": "health", "decision": "non_identity", "include": include}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["result"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn service_token_secret_is_shown_once() {
    let api = start().await;
    let (id, client_id, secret) = service_token(&api).await;
    assert!(client_id.ends_with(".access"));
    assert_eq!(secret.len(), 64);
    let (_, body) = api.get(&access(&format!("/service_tokens/{id}"))).await;
    assert_eq!(body["result"]["client_id"], client_id.as_str());
    assert!(body["result"].get("client_secret").is_none());
    let (_, body) = api.get(&access("/service_tokens")).await;
    assert!(!body.to_string().contains(&secret));
    let (status, _) = api.delete(&access(&format!("/service_tokens/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api.get(&access(&format!("/service_tokens/{id}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, 12130);
    api.assert_clean();
}

#[tokio::test]
async fn apps_embed_reusable_policies_in_precedence() {
    let api = start().await;
    let (token_id, _, _) = service_token(&api).await;
    let by_token = policy(&api, json!([{"service_token": {"token_id": token_id}}])).await;
    let by_email = policy(&api, json!([{"email_domain": {"domain": "example.com"}}])).await;
    let (status, body) = api
        .post(
            &access("/apps"),
            json!({"type": "self_hosted", "name": "API rc", "domain": "api.rc.example.com",
                   "session_duration": "24h",
                   "policies": [{"id": by_token, "precedence": 1}, {"id": by_email, "precedence": 2}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let app = &body["result"];
    assert_eq!(app["policies"][0]["id"], by_token.as_str());
    assert_eq!(app["policies"][1]["precedence"], 2);
    assert_eq!(app["destinations"][0]["uri"], "api.rc.example.com");
    let app_id = app["id"].as_str().unwrap().to_owned();

    let (status, body) = api
        .post(
            &access("/apps"),
            json!({"type": "self_hosted", "name": "dup", "domain": "api.rc.example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, 12132);
    let (status, body) = api.delete(&access(&format!("/policies/{by_email}"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, 12133);
    let (_, body) = api.get(&access(&format!("/policies/{by_token}"))).await;
    assert_eq!(body["result"]["app_count"], 1);
    let (_, body) = api
        .get(&access("/apps?domain=api.rc.example.com&exact=true"))
        .await;
    assert_eq!(body["result"].as_array().unwrap().len(), 1);

    let (status, body) = api
        .put(
            &access(&format!("/apps/{app_id}")),
            json!({"type": "self_hosted", "name": "API rc", "domain": "api.rc.example.com", "policies": [by_token]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["policies"].as_array().unwrap().len(), 1);
    assert_eq!(body["result"]["aud"], app["aud"]);
    let (status, _) = api.delete(&access(&format!("/apps/{app_id}"))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = api.delete(&access(&format!("/policies/{by_email}"))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    api.assert_clean();
}

/// Deploys a Worker on a custom domain behind Access; returns the version id.
async fn protected_worker(api: &Api, token_id: &str) -> String {
    let (status, body) = api
        .multipart(
            Method::PUT,
            &format!("/accounts/{ACCOUNT}/workers/scripts/api-worker"),
            worker_form(
                json!({"main_module": "worker.js"}),
                "worker.js",
                "export default {}",
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = api
        .put(
            &format!("/accounts/{ACCOUNT}/workers/domains"),
            json!({"hostname": "api.rc.example.com", "service": "api-worker", "zone_id": ZONE}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let policy_id = policy(api, json!([{"service_token": {"token_id": token_id}}])).await;
    let (status, _) = api
        .post(
            &access("/apps"),
            json!({"type": "self_hosted", "name": "API rc", "domain": "api.rc.example.com", "policies": [policy_id]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    api.standin.current_deployment("api-worker").unwrap()["versions"][0]["version_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_edge_answers_health_checks_behind_access() {
    let api = start().await;
    let (token_id, client_id, secret) = service_token(&api).await;
    let version = protected_worker(&api, &token_id).await;
    let readyz = format!("http://{}/readyz", api.standin.addr());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let anonymous = client
        .get(&readyz)
        .header("Host", "api.rc.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::FOUND);
    assert!(anonymous.headers()["location"]
        .to_str()
        .unwrap()
        .contains("cloudflareaccess.com"));

    let wrong = client
        .get(&readyz)
        .header("Host", "api.rc.example.com")
        .header("CF-Access-Client-Id", &client_id)
        .header("CF-Access-Client-Secret", "not-the-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);

    let admitted = client
        .get(&readyz)
        .header("Host", "api.rc.example.com")
        .header("CF-Access-Client-Id", &client_id)
        .header("CF-Access-Client-Secret", &secret)
        .send()
        .await
        .unwrap();
    assert_eq!(admitted.status(), StatusCode::OK);
    let body: Value = admitted.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["version_id"], version.as_str());

    api.standin.set_version_healthy(&version, false);
    let sick = client
        .get(format!(
            "http://{}/__edge/api.rc.example.com/readyz",
            api.standin.addr()
        ))
        .header("CF-Access-Client-Id", &client_id)
        .header("CF-Access-Client-Secret", &secret)
        .send()
        .await
        .unwrap();
    assert_eq!(sick.status(), StatusCode::SERVICE_UNAVAILABLE);

    // Over the control API, as a separate process would.
    let control = format!("http://{}/__standin/health", api.standin.addr());
    client
        .post(&control)
        .json(&json!({"version_id": version, "healthy": true}))
        .send()
        .await
        .unwrap();
    let healthy = client
        .get(&readyz)
        .header("Host", "api.rc.example.com")
        .header("CF-Access-Client-Id", &client_id)
        .header("CF-Access-Client-Secret", &secret)
        .send()
        .await
        .unwrap();
    assert_eq!(healthy.status(), StatusCode::OK);
    // The API itself still answers on the loopback address.
    let (status, _) = api.get("/user/tokens/verify").await;
    assert_eq!(status, StatusCode::OK);
    api.assert_clean();
}

#[tokio::test]
async fn the_edge_serves_pages_domains_and_unknown_hosts() {
    let api = start().await;
    let (status, _) = api
        .post(
            &format!("/accounts/{ACCOUNT}/pages/projects"),
            json!({"name": "web-rc", "production_branch": "main"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    api.post(
        &format!("/accounts/{ACCOUNT}/pages/projects/web-rc/domains"),
        json!({"name": "rc.example.com"}),
    )
    .await;
    let url = format!("http://{}/", api.standin.addr());
    let empty = api
        .client
        .get(&url)
        .header("Host", "rc.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        empty.status(),
        StatusCode::NOT_FOUND,
        "nothing deployed yet"
    );
    let form = reqwest::multipart::Form::new()
        .text("manifest", "{}")
        .text("branch", "main");
    api.multipart(
        Method::POST,
        &format!("/accounts/{ACCOUNT}/pages/projects/web-rc/deployments"),
        form,
    )
    .await;
    let ready = api
        .client
        .get(&url)
        .header("Host", "rc.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    api.standin.set_host_healthy("rc.example.com", false);
    let sick = api
        .client
        .get(&url)
        .header("Host", "web-rc.pages.dev")
        .send()
        .await
        .unwrap();
    assert_eq!(
        sick.status(),
        StatusCode::OK,
        "only the marked hostname is unhealthy"
    );
    let sick = api
        .client
        .get(&url)
        .header("Host", "rc.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(sick.status(), StatusCode::SERVICE_UNAVAILABLE);
    let unknown = api
        .client
        .get(format!(
            "http://{}/__edge/nobody.example.org/readyz",
            api.standin.addr()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    api.assert_clean();
}

#[tokio::test]
async fn zone_level_access_is_refused() {
    let api = start().await;
    let (status, body) = api.get(&format!("/zones/{ZONE}/access/apps")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, 12000);
}
