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
    assert!(
        secret.chars().all(|c| c.is_ascii_hexdigit()),
        "plain hex digits: {secret}"
    );
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
    let host = "api.rc.example.com";
    let creds = Some((client_id.as_str(), secret.as_str()));

    let anonymous = api.edge(host, "/readyz", None).await;
    assert_eq!(anonymous.status(), StatusCode::FOUND);
    assert_eq!(
        anonymous.headers()["location"],
        "https://team.cloudflareaccess.com/cdn-cgi/access/login/api.rc.example.com?redirect_url=%2Freadyz",
        "the login redirect names the path, URL-encoded"
    );

    let wrong = api
        .edge(host, "/readyz", Some((&client_id, "not-the-secret")))
        .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);

    let admitted = api.edge(host, "/readyz", creds).await;
    assert_eq!(admitted.status(), StatusCode::OK);
    let body: Value = admitted.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["version_id"], version.as_str());

    api.standin.set_version_healthy(&version, false);
    // By path prefix, for clients that cannot set `Host`.
    let sick = api
        .client
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
    let (status, _) = api
        .control(
            Method::POST,
            "/health",
            Some(json!({"version_id": version, "healthy": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let healthy = api.edge(host, "/readyz", creds).await;
    assert_eq!(healthy.status(), StatusCode::OK);
    // The API itself still answers on the loopback address.
    let (status, _) = api.get("/user/tokens/verify").await;
    assert_eq!(status, StatusCode::OK);
    api.assert_clean();
}

#[tokio::test]
async fn the_edge_answers_a_gradual_deployment_as_its_new_version() {
    let api = start().await;
    let (token_id, client_id, secret) = service_token(&api).await;
    let old = protected_worker(&api, &token_id).await;
    let script = format!("/accounts/{ACCOUNT}/workers/scripts/api-worker");
    let (status, body) = api
        .multipart(
            Method::POST,
            &format!("{script}/versions"),
            worker_form(
                json!({"main_module": "worker.js"}),
                "worker.js",
                "export default {}",
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new = body["result"]["id"].as_str().unwrap().to_owned();
    let (status, body) = api
        .post(
            &format!("{script}/deployments"),
            json!({"strategy": "percentage", "versions": [
                {"version_id": old, "percentage": 90}, {"version_id": new, "percentage": 10}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let creds = Some((client_id.as_str(), secret.as_str()));
    let canary = api.edge("api.rc.example.com", "/readyz", creds).await;
    assert_eq!(canary.status(), StatusCode::OK);
    let body: Value = canary.json().await.unwrap();
    assert_eq!(
        body["version_id"],
        new.as_str(),
        "the newest version of the current deployment, though it has 10%"
    );
    api.standin.set_version_healthy(&new, false);
    let sick = api.edge("api.rc.example.com", "/readyz", creds).await;
    assert_eq!(sick.status(), StatusCode::SERVICE_UNAVAILABLE);
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
    let empty = api.edge("rc.example.com", "/", None).await;
    assert_eq!(
        empty.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "nothing deployed yet"
    );
    let body: Value = empty.json().await.unwrap();
    assert_eq!(body["status"], "no deployment");
    let form = reqwest::multipart::Form::new()
        .text("manifest", "{}")
        .text("branch", "main");
    api.multipart(
        Method::POST,
        &format!("/accounts/{ACCOUNT}/pages/projects/web-rc/deployments"),
        form,
    )
    .await;
    let ready = api.edge("rc.example.com", "/", None).await;
    assert_eq!(ready.status(), StatusCode::OK);
    api.standin.set_host_healthy("rc.example.com", false);
    let sick = api.edge("web-rc.pages.dev", "/", None).await;
    assert_eq!(
        sick.status(),
        StatusCode::OK,
        "only the marked hostname is unhealthy"
    );
    let sick = api.edge("rc.example.com", "/", None).await;
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
async fn a_worker_without_a_deployment_is_unavailable_at_the_edge() {
    let api = start().await;
    let script = format!("/accounts/{ACCOUNT}/workers/scripts/api-worker");
    let (status, body) = api
        .multipart(
            Method::PUT,
            &script,
            worker_form(
                json!({"main_module": "worker.js"}),
                "worker.js",
                "export default {}",
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = api
        .post(
            &format!("/zones/{ZONE}/workers/routes"),
            json!({"pattern": "api.rc.example.com/*", "script": "api-worker"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        api.edge("api.rc.example.com", "/readyz", None)
            .await
            .status(),
        StatusCode::OK
    );
    // The script gone, its route still names it: nothing is deployed.
    let (status, _) = api.delete(&script).await;
    assert_eq!(status, StatusCode::OK);
    let gone = api.edge("api.rc.example.com", "/readyz", None).await;
    assert_eq!(gone.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = gone.json().await.unwrap();
    assert_eq!(body["status"], "no deployment");
    // Loopback addresses are the stand-in itself, not edge hostnames.
    let api_call = api
        .edge("127.0.0.1", "/client/v4/user/tokens/verify", None)
        .await;
    assert_eq!(api_call.status(), StatusCode::BAD_REQUEST, "no token: 9106");
    api.assert_clean();
}

#[tokio::test]
async fn zone_level_access_is_refused() {
    let api = start().await;
    let (status, body) = api.get(&format!("/zones/{ZONE}/access/apps")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, 12000);
}
