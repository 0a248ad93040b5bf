//! Pages projects, configs, domains and deployments.
mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const PROJECT: &str = "web-rc";

fn projects() -> String {
    format!("/accounts/{ACCOUNT}/pages/projects")
}

fn project(rest: &str) -> String {
    format!("{}/{PROJECT}{rest}", projects())
}

async fn create(api: &Api) -> Value {
    let (status, body) = api
        .post(
            &projects(),
            json!({
                "name": PROJECT,
                "production_branch": "main",
                "deployment_configs": {
                    "production": {
                        "compatibility_date": "2025-01-01",
                        "env_vars": {
                            "API_BASE": {"type": "plain_text", "value": "https://api.rc.example.com"},
                            "SESSION_KEY": {"type": "secret_text", "value": "very-secret"},
                        },
                        "services": {"API": {"service": "api-worker", "environment": "production"}},
                    },
                },
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn projects_keep_configs_and_hide_secrets() {
    let api = start().await;
    let body = create(&api).await;
    let production = &body["result"]["deployment_configs"]["production"];
    assert_eq!(
        production["env_vars"]["API_BASE"]["value"],
        "https://api.rc.example.com"
    );
    assert_eq!(production["env_vars"]["SESSION_KEY"]["type"], "secret_text");
    assert_eq!(production["env_vars"]["SESSION_KEY"]["value"], "");
    assert_eq!(production["services"]["API"]["service"], "api-worker");
    assert_eq!(
        api.standin
            .pages_env_var(PROJECT, "production", "SESSION_KEY")
            .as_deref(),
        Some("very-secret")
    );
    let (status, body) = api
        .post(
            &projects(),
            json!({"name": PROJECT, "production_branch": "main"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, 8000002);
    let (_, body) = api.get(&projects()).await;
    assert_eq!(body["result_info"]["total_count"], 1);
    let (status, body) = api.get(&format!("{}/nope", projects())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, 8000007);
    api.assert_clean();
}

#[tokio::test]
async fn patch_merges_and_null_deletes() {
    let api = start().await;
    create(&api).await;
    let (status, body) = api
        .patch(
            &project(""),
            json!({"deployment_configs": {"production": {"env_vars": {
                "API_BASE": null,
                "FEATURE": {"type": "plain_text", "value": "on"},
            }}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let vars = &body["result"]["deployment_configs"]["production"]["env_vars"];
    assert!(vars.get("API_BASE").is_none());
    assert_eq!(vars["FEATURE"]["value"], "on");
    assert_eq!(
        vars["SESSION_KEY"]["type"], "secret_text",
        "untouched vars stay"
    );
    assert_eq!(
        body["result"]["deployment_configs"]["production"]["services"]["API"]["service"],
        "api-worker"
    );
    api.assert_clean();
}

#[tokio::test]
async fn domains_are_added_listed_and_deleted() {
    let api = start().await;
    create(&api).await;
    let (status, body) = api
        .post(&project("/domains"), json!({"name": "rc.example.com"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["status"], "active");
    let (status, body) = api
        .post(&project("/domains"), json!({"name": "rc.example.com"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, 8000018);
    let (_, body) = api.get(&project("/domains")).await;
    assert_eq!(body["result"][0]["name"], "rc.example.com");
    let (status, _) = api
        .call(Method::PATCH, &project("/domains/rc.example.com"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api.delete(&project("/domains/rc.example.com")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api.get(&project("/domains/rc.example.com")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, 8000010);
    api.assert_clean();
}

async fn deploy(api: &Api, branch: &str) -> Value {
    let form = reqwest::multipart::Form::new()
        .text(
            "manifest",
            json!({"/index.html": "0123456789abcdef0123456789abcdef"}).to_string(),
        )
        .text("branch", branch.to_owned())
        .text("commit_hash", "abc123")
        .text("commit_message", "deploy")
        .text("commit_dirty", "false");
    let (status, body) = api
        .multipart(Method::POST, &project("/deployments"), form)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["result"].clone()
}

#[tokio::test]
async fn deployments_are_created_listed_rolled_back_and_deleted() {
    let api = start().await;
    create(&api).await;
    let first = deploy(&api, "main").await;
    assert_eq!(first["environment"], "production");
    assert_eq!(first["latest_stage"]["status"], "success");
    assert_eq!(first["env_vars"]["SESSION_KEY"]["value"], "");
    let preview = deploy(&api, "feature/x").await;
    assert_eq!(preview["environment"], "preview");
    let second = deploy(&api, "main").await;
    let first_id = first["id"].as_str().unwrap();
    assert_eq!(
        api.standin.pages_manifest(PROJECT, first_id).unwrap(),
        json!({"/index.html": "0123456789abcdef0123456789abcdef"})
    );

    let (_, body) = api.get(&project("/deployments?env=production")).await;
    assert_eq!(body["result"].as_array().unwrap().len(), 2);
    assert_eq!(body["result"][0]["id"], second["id"]);
    let (_, body) = api.get(&project("")).await;
    assert_eq!(body["result"]["canonical_deployment"]["id"], second["id"]);

    let (status, body) = api
        .post(
            &project(&format!("/deployments/{first_id}/rollback")),
            json!(null),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = api.get(&project("")).await;
    assert_eq!(body["result"]["canonical_deployment"]["id"], first_id);

    let (status, body) = api
        .delete(&project(&format!("/deployments/{first_id}")))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, 8000034);
    let second_id = second["id"].as_str().unwrap();
    let (status, _) = api
        .delete(&project(&format!("/deployments/{second_id}")))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api
        .get(&project(&format!("/deployments/{second_id}")))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, 8000009);

    let (_, body) = api.get(&project("/upload-token")).await;
    assert_eq!(
        body["result"]["jwt"].as_str().unwrap().split('.').count(),
        3
    );
    let (status, _) = api.delete(&project("")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(api.standin.pages_project(PROJECT).is_none());
    api.assert_clean();
}
