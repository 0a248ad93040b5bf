//! Workers: uploads, versions, deployments, secrets, settings, routes, domains.
mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const SCRIPT: &str = "api-worker";

fn script_path(rest: &str) -> String {
    format!("/accounts/{ACCOUNT}/workers/scripts/{SCRIPT}{rest}")
}

fn metadata() -> Value {
    json!({
        "main_module": "worker.js",
        "compatibility_date": "2025-01-01",
        "compatibility_flags": ["nodejs_compat"],
        "bindings": [
            {"type": "plain_text", "name": "ENVIRONMENT", "text": "rc"},
            {"type": "secret_text", "name": "API_KEY", "text": "s3cret"},
            {"type": "service", "name": "AUTH", "service": "auth-worker", "environment": "production"},
        ],
        "observability": {"enabled": true},
        "keep_bindings": ["secret_text"],
    })
}

async fn upload(api: &Api) -> Value {
    let (status, body) = api
        .multipart(
            Method::PUT,
            &script_path(""),
            worker_form(
                metadata(),
                "worker.js",
                "export default { fetch() { return new Response('ok') } }",
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn a_module_upload_creates_and_deploys_a_version() {
    let api = start().await;
    let body = upload(&api).await;
    assert_eq!(body["result"]["id"], SCRIPT);
    let deployment = api.standin.current_deployment(SCRIPT).expect("deployed");
    assert_eq!(deployment["strategy"], "percentage");
    assert_eq!(deployment["versions"][0]["percentage"], 100.0);
    let version_id = deployment["versions"][0]["version_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, body) = api
        .get(&script_path(&format!("/versions/{version_id}")))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let bindings = body["result"]["resources"]["bindings"].as_array().unwrap();
    let env = bindings
        .iter()
        .find(|b| b["name"] == "ENVIRONMENT")
        .unwrap();
    assert_eq!(env["text"], "rc");
    let secret = bindings.iter().find(|b| b["name"] == "API_KEY").unwrap();
    assert_eq!(secret["type"], "secret_text");
    assert!(
        secret.get("text").is_none(),
        "secret values are never returned"
    );
    assert_eq!(
        body["result"]["resources"]["script_runtime"]["compatibility_date"],
        "2025-01-01"
    );

    let (_, body) = api
        .get(&format!("/accounts/{ACCOUNT}/workers/scripts"))
        .await;
    assert_eq!(body["result"][0]["id"], SCRIPT);
    let (_, body) = api.get(&script_path("/deployments")).await;
    assert_eq!(body["result"]["deployments"].as_array().unwrap().len(), 1);
    let download = api
        .request(Method::GET, &script_path(""))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    assert!(download
        .text()
        .await
        .unwrap()
        .contains("new Response('ok')"));
    api.assert_clean();
}

#[tokio::test]
async fn invalid_metadata_and_missing_modules_are_refused() {
    let api = start().await;
    let bad =
        json!({"main_module": "worker.js", "bindings": [{"type": "plain_text", "name": "X"}]});
    let (status, body) = api
        .multipart(
            Method::PUT,
            &script_path(""),
            worker_form(bad, "worker.js", "export default {}"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, 9207);
    let missing = json!({"main_module": "index.js"});
    let (status, body) = api
        .multipart(
            Method::PUT,
            &script_path(""),
            worker_form(missing, "worker.js", "export default {}"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("index.js"));
    let violations = api.standin.violations();
    assert_eq!(violations.len(), 2);
    assert!(violations
        .iter()
        .all(|v| v.operation == "worker-script-upload-worker-module"));
    let (status, body) = api.get(&script_path("/deployments")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, 10007);
}

#[tokio::test]
async fn versions_and_percentage_deployments() {
    let api = start().await;
    upload(&api).await;
    let first =
        api.standin.current_deployment(SCRIPT).unwrap()["versions"][0]["version_id"].clone();
    let mut meta = metadata();
    meta["annotations"] = json!({"workers/message": "candidate", "workers/tag": "v2"});
    meta["bindings"][0]["text"] = json!("rc2");
    let (status, body) = api
        .multipart(
            Method::POST,
            &script_path("/versions"),
            worker_form(meta, "worker.js", "export default {}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = body["result"]["id"].clone();
    assert_eq!(body["result"]["annotations"]["workers/tag"], "v2");
    // Uploading a version does not deploy it.
    assert_eq!(
        api.standin.current_deployment(SCRIPT).unwrap()["versions"][0]["version_id"],
        first
    );

    let (_, body) = api.get(&script_path("/versions")).await;
    assert_eq!(body["result"]["items"].as_array().unwrap().len(), 2);

    let (status, body) = api
        .post(
            &script_path("/deployments"),
            json!({"strategy": "percentage", "versions": [
                {"version_id": second, "percentage": 10}, {"version_id": first, "percentage": 80}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, 10216);
    // Refused on its content alone, so it is a violation too.
    let violations = api.standin.violations();
    assert_eq!(violations.len(), 1, "{violations:#?}");
    assert_eq!(
        violations[0].operation,
        "worker-deployments-create-deployment"
    );
    assert!(violations[0].message.contains("sum to 100"));
    let (status, body) = api
        .post(
            &script_path("/deployments"),
            json!({"strategy": "percentage", "versions": [
                {"version_id": "6b2a2d6c-8d3b-4e0f-9a43-2b1f5b7c0d11", "percentage": 100}]}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, 10217);
    let (status, body) = api
        .post(
            &script_path("/deployments"),
            json!({"strategy": "percentage", "annotations": {"workers/message": "canary"}, "versions": [
                {"version_id": second, "percentage": 10}, {"version_id": first, "percentage": 90}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["annotations"]["workers/message"], "canary");
    let current = api.standin.current_deployment(SCRIPT).unwrap();
    assert_eq!(current["versions"][0]["version_id"], second);
    let version = api
        .standin
        .version(SCRIPT, second.as_str().unwrap())
        .unwrap();
    let env = &version["resources"]["bindings"][0];
    assert_eq!(env["text"], "rc2");
    // The secret was kept by `keep_bindings` ... and redefined by the metadata.
    assert_eq!(
        api.standin.secret_value(SCRIPT, "API_KEY").as_deref(),
        Some("s3cret")
    );
    assert_eq!(api.standin.violations().len(), 1);
    assert!(api.standin.response_mismatches().is_empty());
}

fn current_version_id(api: &Api) -> String {
    api.standin.current_deployment(SCRIPT).unwrap()["versions"][0]["version_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn binding_names(api: &Api, version_id: &str) -> Vec<String> {
    let version = api.standin.version(SCRIPT, version_id).unwrap();
    version["resources"]["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn inherit_bindings_resolve_and_strict_uploads_fail_on_unresolvable_ones() {
    let api = start().await;
    upload(&api).await;
    let first = current_version_id(&api);
    let (_, body) = api.get(&script_path("/versions")).await;
    assert_eq!(body["result"]["items"].as_array().unwrap().len(), 1);

    // Without `strict`, an unresolvable inherit is dropped; a resolvable
    // one is carried over (renamed by `old_name`) with its value.
    let lenient = json!({"main_module": "worker.js", "bindings": [
        {"type": "inherit", "name": "SECRET", "old_name": "API_KEY"},
        {"type": "inherit", "name": "MISSING"},
    ]});
    let (status, body) = api
        .multipart(
            Method::PUT,
            &script_path(""),
            worker_form(lenient, "worker.js", "export default {}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = current_version_id(&api);
    assert_ne!(second, first);
    assert_eq!(binding_names(&api, &second), ["SECRET"]);
    let version = api.standin.version(SCRIPT, &second).unwrap();
    assert_eq!(version["resources"]["bindings"][0]["type"], "secret_text");
    assert_eq!(
        api.standin.secret_value(SCRIPT, "SECRET").as_deref(),
        Some("s3cret")
    );

    // With `strict`, an upload with an unresolvable inherit fails (as a
    // script or a version upload) and changes nothing; the message names
    // only the unresolvable one.
    let unresolvable = json!({"main_module": "worker.js", "bindings": [
        {"type": "inherit", "name": "SECRET"},
        {"type": "inherit", "name": "MISSING"},
    ]});
    for (method, path) in [
        (Method::PUT, script_path("?bindings_inherit=strict")),
        (
            Method::POST,
            script_path("/versions?bindings_inherit=strict"),
        ),
    ] {
        let (status, body) = api
            .multipart(
                method,
                &path,
                worker_form(unresolvable.clone(), "worker.js", "export default {}"),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_error(&body, 10021);
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("MISSING"), "{message}");
        assert!(!message.contains("SECRET"), "{message}");
    }
    let (_, body) = api.get(&script_path("/versions")).await;
    assert_eq!(body["result"]["items"].as_array().unwrap().len(), 2);
    assert_eq!(current_version_id(&api), second);

    // A strict upload whose inherits resolve succeeds; `version_id` picks
    // the version to inherit from, and without `keep_bindings` nothing
    // else (not even secrets) is carried over.
    let strict = json!({"main_module": "worker.js", "bindings": [
        {"type": "inherit", "name": "ENVIRONMENT", "version_id": first},
    ]});
    let (status, body) = api
        .multipart(
            Method::PUT,
            &script_path("?bindings_inherit=strict"),
            worker_form(strict, "worker.js", "export default {}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let third = current_version_id(&api);
    assert_eq!(binding_names(&api, &third), ["ENVIRONMENT"]);
    let version = api.standin.version(SCRIPT, &third).unwrap();
    assert_eq!(version["resources"]["bindings"][0]["text"], "rc");
    assert_eq!(api.standin.secret_value(SCRIPT, "SECRET"), None);

    // `keep_bindings` keeps the listed types from the latest version.
    let kept = json!({"main_module": "worker.js", "bindings": [
        {"type": "inherit", "name": "SECRET", "version_id": second},
    ], "keep_bindings": ["plain_text"]});
    let (status, body) = api
        .multipart(
            Method::PUT,
            &script_path("?bindings_inherit=strict"),
            worker_form(kept, "worker.js", "export default {}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        binding_names(&api, &current_version_id(&api)),
        ["SECRET", "ENVIRONMENT"]
    );
    api.assert_clean();
}

#[tokio::test]
async fn the_current_version_is_the_newest_of_the_current_deployment() {
    let api = start().await;
    upload(&api).await;
    let old = current_version_id(&api);
    let new = new_version(&api, 0, "canary").await;
    // The old version keeps most traffic and is listed first.
    let (status, body) = api
        .post(
            &script_path("/deployments"),
            json!({"strategy": "percentage", "versions": [
                {"version_id": old, "percentage": 90}, {"version_id": new, "percentage": 10}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Settings describe, and a secret change builds on, the new version.
    let (_, body) = api.get(&script_path("/settings")).await;
    let env = body["result"]["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "ENVIRONMENT")
        .unwrap()
        .clone();
    assert_eq!(env["text"], "canary");
    let (status, body) = api
        .put(
            &script_path("/secrets"),
            json!({"name": "DB_PASSWORD", "text": "hunter2", "type": "secret_text"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let after = current_version_id(&api);
    let version = api.standin.version(SCRIPT, &after).unwrap();
    let env = version["resources"]["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "ENVIRONMENT")
        .unwrap()
        .clone();
    assert_eq!(env["text"], "canary");
    api.assert_clean();
}

/// Uploads a version (not deployed) whose binding `binding` has `text`
/// instead of the one in [`metadata`]; its id.
async fn new_version(api: &Api, binding: usize, text: &str) -> String {
    let mut meta = metadata();
    meta["bindings"][binding]["text"] = json!(text);
    let (status, body) = api
        .multipart(
            Method::POST,
            &script_path("/versions"),
            worker_form(meta, "worker.js", "export default {}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["result"]["id"].as_str().unwrap().to_owned()
}

/// `{strategy, versions}` for `(version_id, percentage)` pairs.
fn split(versions: &[(&str, f64)]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|(id, p)| json!({"version_id": id, "percentage": p}))
        .collect();
    json!({"strategy": "percentage", "versions": versions})
}

#[tokio::test]
async fn going_back_to_a_version_older_than_a_secret_change_needs_force() {
    let api = start().await;
    upload(&api).await;
    let first = current_version_id(&api);
    let (status, body) = api
        .put(
            &script_path("/secrets"),
            json!({"name": "API_KEY", "text": "rotated", "type": "secret_text"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rotated = current_version_id(&api);

    let (status, body) = api
        .post(&script_path("/deployments"), split(&[(&first, 100.0)]))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, 10220);
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.ends_with("The following secrets have changed: API_KEY"),
        "{message}"
    );
    assert!(!body.to_string().contains("rotated"), "no secret value");
    assert_eq!(current_version_id(&api), rotated, "nothing deployed");

    let (status, body) = api
        .post(
            &script_path("/deployments?force=true"),
            split(&[(&first, 100.0)]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(current_version_id(&api), first);
    // A refusal of the state, not of the request: no violation.
    api.assert_clean();
}

#[tokio::test]
async fn a_split_with_a_serving_version_is_no_rollback() {
    let api = start().await;
    upload(&api).await;
    let stable = current_version_id(&api);
    let canary = new_version(&api, 1, "canary-secret").await;
    // The stable version serves, so keeping and resizing its share is
    // allowed although the canary's secret differs.
    for share in [10.0, 20.0, 100.0] {
        let mut versions = vec![(canary.as_str(), share)];
        if share < 100.0 {
            versions.push((stable.as_str(), 100.0 - share));
        }
        let (status, body) = api
            .post(&script_path("/deployments"), split(&versions))
            .await;
        assert_eq!(status, StatusCode::OK, "{share}: {body}");
    }
    // Once it no longer serves, bringing it back is a rollback.
    let back = split(&[(&canary, 10.0), (&stable, 90.0)]);
    let (status, body) = api.post(&script_path("/deployments"), back.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, 10220);
    let (status, body) = api
        .post(&script_path("/deployments?force=true"), back)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    api.assert_clean();
}

#[tokio::test]
async fn a_bad_deployment_body_is_a_violation() {
    let api = start().await;
    upload(&api).await;
    let (status, _) = api
        .post(
            &script_path("/deployments"),
            json!({"strategy": "all-at-once", "versions": []}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        api.standin.violations()[0].operation,
        "worker-deployments-create-deployment"
    );
}

#[tokio::test]
async fn a_deployment_of_a_version_id_that_is_no_uuid_is_refused() {
    let api = start().await;
    upload(&api).await;
    let (status, body) = api
        .post(
            &script_path("/deployments"),
            split(&[("not-a-uuid", 100.0)]),
        )
        .await;
    // Cloudflare refuses it with a 400, not as an unknown version (404).
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, 9207);
    let violations = api.standin.violations();
    assert_eq!(violations.len(), 1, "{violations:#?}");
    assert!(
        violations[0].message.contains("/versions/0/version_id")
            && violations[0].message.contains("uuid"),
        "{violations:#?}"
    );
    // 32 hex digits without the dashes are no UUID either.
    let (status, _) = api
        .post(&script_path("/deployments"), split(&[(ACCOUNT, 100.0)]))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(api.standin.violations().len(), 2);
}

/// A version upload whose metadata binds the wasm module `module.wasm`,
/// sent with `wasm_type` as that part's Content-Type.
fn wasm_version_form(wasm_type: &str) -> reqwest::multipart::Form {
    let meta = json!({"main_module": "worker.js", "bindings": [
        {"type": "wasm_module", "name": "WASM", "part": "module.wasm"},
    ]});
    worker_form(meta, "worker.js", "export default {}").part(
        "module.wasm",
        reqwest::multipart::Part::bytes(b"\0asm\x01\0\0\0".to_vec())
            .file_name("module.wasm")
            .mime_str(wasm_type)
            .unwrap(),
    )
}

#[tokio::test]
async fn multipart_parts_must_carry_a_type_the_encoding_lists() {
    let api = start().await;
    upload(&api).await;
    // `application/x-wasm` is not among the types the version upload's
    // `encoding` lists for its files.
    let (status, body) = api
        .multipart(
            Method::POST,
            &script_path("/versions"),
            wasm_version_form("application/x-wasm"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, 9207);
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("module.wasm") && message.contains("application/x-wasm"),
        "{message}"
    );
    let violations = api.standin.violations();
    assert_eq!(violations.len(), 1, "{violations:#?}");
    assert_eq!(violations[0].operation, "worker-versions-upload-version");

    // The metadata must be JSON when it says its type.
    let form = reqwest::multipart::Form::new()
        .part(
            "metadata",
            reqwest::multipart::Part::text(json!({"main_module": "worker.js"}).to_string())
                .mime_str("text/plain")
                .unwrap(),
        )
        .part(
            "worker.js",
            reqwest::multipart::Part::text("export default {}")
                .file_name("worker.js")
                .mime_str("application/javascript+module")
                .unwrap(),
        );
    let (status, body) = api
        .multipart(Method::POST, &script_path("/versions"), form)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("`metadata`"),
        "{body}"
    );
    assert_eq!(api.standin.violations().len(), 2);

    // Labelled `application/wasm`, the same upload is taken; so is a
    // metadata part without a type, as wrangler sends it.
    let (status, body) = api
        .multipart(
            Method::POST,
            &script_path("/versions"),
            wasm_version_form("application/wasm"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let form = reqwest::multipart::Form::new()
        .text("metadata", json!({"main_module": "worker.js"}).to_string())
        .part(
            "worker.js",
            reqwest::multipart::Part::text("export default {}")
                .file_name("worker.js")
                .mime_str("application/javascript+module; charset=utf-8")
                .unwrap(),
        );
    let (status, body) = api
        .multipart(Method::POST, &script_path("/versions"), form)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(api.standin.violations().len(), 2);
    assert!(api.standin.response_mismatches().is_empty());
}

#[tokio::test]
async fn secrets_create_versions_and_never_show_values() {
    let api = start().await;
    upload(&api).await;
    let before = api.standin.current_deployment(SCRIPT).unwrap()["id"].clone();
    let (status, body) = api
        .put(
            &script_path("/secrets"),
            json!({"name": "DB_PASSWORD", "text": "hunter2", "type": "secret_text"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["result"].get("text").is_none());
    let after = api.standin.current_deployment(SCRIPT).unwrap();
    assert_ne!(after["id"], before, "a secret change deploys a new version");
    assert_eq!(after["annotations"]["workers/triggered_by"], "secret");

    let (_, body) = api.get(&script_path("/secrets")).await;
    let names: Vec<&str> = body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["API_KEY", "DB_PASSWORD"]);
    assert!(body.to_string().find("hunter2").is_none());
    let (status, body) = api.get(&script_path("/secrets/DB_PASSWORD")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["result"]["type"], "secret_text");
    assert_eq!(
        api.standin.secret_value(SCRIPT, "DB_PASSWORD").as_deref(),
        Some("hunter2")
    );

    let (status, _) = api.delete(&script_path("/secrets/DB_PASSWORD")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api.get(&script_path("/secrets/DB_PASSWORD")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, 10056);
    api.assert_clean();
}

#[tokio::test]
async fn settings_and_script_settings() {
    let api = start().await;
    upload(&api).await;
    let (status, body) = api.get(&script_path("/script-settings")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["result"]["observability"]["enabled"], true);
    let (status, body) = api
        .patch(
            &script_path("/script-settings"),
            json!({"logpush": true, "observability": {"enabled": false}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["logpush"], true);

    let form = reqwest::multipart::Form::new().part(
        "settings",
        reqwest::multipart::Part::text(json!({"compatibility_date": "2025-06-01"}).to_string())
            .mime_str("application/json")
            .unwrap(),
    );
    let (status, body) = api
        .multipart(Method::PATCH, &script_path("/settings"), form)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["compatibility_date"], "2025-06-01");
    let (_, body) = api.get(&script_path("/settings")).await;
    assert_eq!(body["result"]["logpush"], true);
    assert_eq!(body["result"]["bindings"].as_array().unwrap().len(), 3);
    api.assert_clean();
}

#[tokio::test]
async fn routes_are_unique_per_pattern() {
    let api = start().await;
    upload(&api).await;
    let routes = format!("/zones/{ZONE}/workers/routes");
    let (status, body) = api
        .post(
            &routes,
            json!({"pattern": "api.rc.example.com/*", "script": SCRIPT}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["result"]["id"].as_str().unwrap().to_owned();
    let (status, body) = api
        .post(
            &routes,
            json!({"pattern": "api.rc.example.com/*", "script": SCRIPT}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, 10020);
    let (status, body) = api
        .put(
            &format!("{routes}/{id}"),
            json!({"pattern": "api.rc.example.com/v1/*", "script": SCRIPT}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = api.get(&routes).await;
    assert_eq!(body["result"][0]["pattern"], "api.rc.example.com/v1/*");
    let (status, _) = api.delete(&format!("{routes}/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api.get(&format!("{routes}/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, 10005);
    api.assert_clean();
}

#[tokio::test]
async fn custom_domains_attach_list_and_detach() {
    let api = start().await;
    upload(&api).await;
    let domains = format!("/accounts/{ACCOUNT}/workers/domains");
    let (status, body) = api
        .put(&domains, json!({"hostname": "api.rc.example.com", "service": SCRIPT, "zone_id": ZONE, "environment": "production"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["zone_name"], ZONE_NAME);
    let id = body["result"]["id"].as_str().unwrap().to_owned();
    let (status, body) = api
        .put(
            &domains,
            json!({"hostname": "other.example.com", "service": "missing-worker"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, 10007);
    let (_, body) = api
        .get(&format!("{domains}?hostname=api.rc.example.com"))
        .await;
    assert_eq!(body["result"].as_array().unwrap().len(), 1);
    let (_, body) = api.get(&format!("{domains}?service=nope")).await;
    assert_eq!(body["result"], json!([]));
    let (status, _) = api.delete(&format!("{domains}/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api.get(&format!("{domains}/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, 100114);
    api.assert_clean();
}

#[tokio::test]
async fn cron_triggers_are_the_scripts_and_replaced_whole() {
    let api = start().await;
    let (status, body) = api.get(&script_path("/schedules")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, 10007);

    upload(&api).await;
    let (status, body) = api.get(&script_path("/schedules")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"], json!({"schedules": []}));

    let (status, body) = api
        .put(
            &script_path("/schedules"),
            json!([{"cron": "*/15 * * * *"}, {"cron": "0 3 * * mon-fri"}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let first = body["result"]["schedules"].clone();
    assert_eq!(first[0]["cron"], "*/15 * * * *");
    assert!(first[0]["created_on"].is_string() && first[0]["modified_on"].is_string());

    // A new version leaves them; a put replaces the set, and a trigger
    // that stays keeps its creation time.
    upload(&api).await;
    let (_, body) = api
        .put(
            &script_path("/schedules"),
            json!([{"cron": "*/15 * * * *"}]),
        )
        .await;
    let second = &body["result"]["schedules"];
    assert_eq!(second.as_array().unwrap().len(), 1, "{body}");
    assert_eq!(second[0]["created_on"], first[0]["created_on"]);
    assert_eq!(api.standin.schedules(SCRIPT), ["*/15 * * * *"]);
    api.assert_clean();

    // Not five fields: refused, nothing changed.
    let (status, body) = api
        .put(&script_path("/schedules"), json!([{"cron": "*/15 * * *"}]))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, 10100);
    assert_eq!(api.standin.schedules(SCRIPT), ["*/15 * * * *"]);

    // The object form some clients send is not the published body (a bare
    // array): a schema violation.
    let (status, _) = api
        .put(
            &script_path("/schedules"),
            json!({"schedules": [{"cron": "* * * * *"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        api.standin.violations()[0].operation,
        "worker-cron-trigger-update-cron-triggers"
    );
    assert_eq!(api.standin.schedules(SCRIPT), ["*/15 * * * *"]);
}
