//! Pages: projects, deployment configs, domains, deployments, upload tokens
//! and the asset endpoints `wrangler pages deploy` uses (which are not in the
//! published document: `POST /pages/assets/check-missing`, `/upload`,
//! `/upsert-hashes`, authenticated with the upload-token JWT).
//!
//! PATCH merges like Cloudflare: objects merge key by key, and a `null`
//! env var or binding deletes it. Secret env var values are never returned
//! (shown as `""`). A deployment from branch `production_branch` is a
//! production deployment, any other branch a preview. Codes: 8000007
//! project not found, 8000002 duplicate project name, 8000009 deployment not
//! found, 8000018 domain already added, 8000010 domain not found, 8000034
//! deleting the live production deployment without `force`.

use axum::http::{header, HeaderMap, Method, StatusCode};
use base64::Engine;
use serde_json::{json, Map, Value};

use super::{new_id, new_uuid, not_emulated, now, Call, Store};
use crate::envelope::{ApiError, ApiResult, Reply};
use crate::Shared;

/// A Pages project with its private facts.
pub(crate) struct Project {
    pub id: String,
    pub name: String,
    pub created_on: String,
    pub production_branch: String,
    pub build_config: Value,
    /// `preview` and `production` configs, secret values included.
    pub configs: Value,
    pub domains: Vec<Value>,
    /// Oldest first.
    pub deployments: Vec<Deployment>,
    pub canonical: Option<String>,
}

pub(crate) struct Deployment {
    pub view: Value,
    /// Path → asset hash, as `wrangler pages deploy` sent it.
    pub manifest: Value,
}

fn default_config() -> Value {
    json!({
        "env_vars": {},
        "fail_open": true,
        "always_use_latest_compatibility_date": false,
        "compatibility_date": "2023-01-01",
        "compatibility_flags": [],
        "build_image_major_version": 3,
        "usage_model": "standard",
    })
}

/// Hides secret env var values, and names the environment of a service
/// binding given without one (`production`, Cloudflare's default).
fn public_config(config: &Value) -> Value {
    let mut config = config.clone();
    if let Some(services) = config.get_mut("services").and_then(Value::as_object_mut) {
        for binding in services.values_mut() {
            if binding.is_object() && binding.get("environment").is_none() {
                binding["environment"] = json!("production");
            }
        }
    }
    if let Some(vars) = config["env_vars"].as_object_mut() {
        for var in vars.values_mut() {
            if var["type"] == "secret_text" {
                var["value"] = json!("");
            }
        }
    }
    config
}

/// Cloudflare's PATCH merge: objects merge recursively, `null` deletes.
fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(target), Some(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else if value.is_object() && target.get(key).is_some_and(Value::is_object) {
                    merge(target.get_mut(key).expect("checked"), value);
                } else {
                    target.insert(key.clone(), value.clone());
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

impl Project {
    pub fn view(&self) -> Value {
        let latest = self.deployments.last().map(|d| d.view.clone());
        let canonical = self
            .canonical
            .as_ref()
            .and_then(|id| {
                self.deployments
                    .iter()
                    .find(|d| d.view["id"] == id.as_str())
            })
            .map(|d| d.view.clone());
        json!({
            "id": self.id,
            "name": self.name,
            "subdomain": format!("{}.pages.dev", self.name),
            "domains": self.domains.iter().map(|d| d["name"].clone()).collect::<Vec<_>>(),
            "production_branch": self.production_branch,
            "created_on": self.created_on,
            "build_config": self.build_config,
            "deployment_configs": {
                "preview": public_config(&self.configs["preview"]),
                "production": public_config(&self.configs["production"]),
            },
            "latest_deployment": latest,
            "canonical_deployment": canonical,
            "production_script_name": format!("pages-worker--{}-production", self.id),
            "preview_script_name": format!("pages-worker--{}-preview", self.id),
            "uses_functions": false,
            "framework": "",
            "framework_version": "",
        })
    }
}

fn project_not_found() -> ApiError {
    ApiError::not_found(
        8000007,
        "Project not found. The specified project name does not match any of your existing projects.",
    )
}

fn key(call: &Call) -> (String, String) {
    (
        call.param("account_id").to_owned(),
        call.param("project_name").to_owned(),
    )
}

pub(super) fn dispatch(store: &mut Store, call: &Call) -> ApiResult {
    match call.op_id.as_str() {
        "pages-project-get-projects" => {
            let account = call.param("account_id");
            let items: Vec<Value> = store
                .pages
                .iter()
                .filter(|((a, _), _)| a == account)
                .map(|(_, p)| p.view())
                .collect();
            Ok(call.paginate(items, 10))
        }
        "pages-project-create-project" => create(store, call),
        "pages-project-get-upload-token" => {
            let (account, name) = key(call);
            store.pages.get(&key(call)).ok_or_else(project_not_found)?;
            let jwt = upload_jwt(&account, &name);
            store.upload_tokens.insert(jwt.clone(), (account, name));
            Ok(Reply::new(json!({"jwt": jwt})))
        }
        "pages-project-delete-project" => {
            store
                .pages
                .remove(&key(call))
                .ok_or_else(project_not_found)?;
            Ok(Reply::new(Value::Null))
        }
        op => {
            let project = store
                .pages
                .get_mut(&key(call))
                .ok_or_else(project_not_found)?;
            project_operation(project, op, call)
        }
    }
}

fn create(store: &mut Store, call: &Call) -> ApiResult {
    let body = call.body();
    let account = call.param("account_id").to_owned();
    let name = body["name"].as_str().unwrap_or_default().to_owned();
    if name.is_empty() {
        return Err(ApiError::bad_request(
            8000000,
            "A project name is required.",
        ));
    }
    if store.pages.contains_key(&(account.clone(), name.clone())) {
        return Err(ApiError::conflict(
            8000002,
            "A project with this name already exists. Choose a different project name.",
        ));
    }
    let mut configs = json!({"preview": default_config(), "production": default_config()});
    if let Some(patch) = body.get("deployment_configs") {
        merge(&mut configs, patch);
    }
    let mut build_config = json!({"web_analytics_tag": null, "web_analytics_token": null});
    if let Some(patch) = body.get("build_config") {
        merge(&mut build_config, patch);
    }
    let project = Project {
        id: new_uuid(),
        name: name.clone(),
        created_on: now(),
        production_branch: body["production_branch"]
            .as_str()
            .unwrap_or("main")
            .to_owned(),
        build_config,
        configs,
        domains: Vec::new(),
        deployments: Vec::new(),
        canonical: None,
    };
    let view = project.view();
    store.pages.insert((account, name), project);
    Ok(Reply::new(view))
}

fn project_operation(project: &mut Project, op: &str, call: &Call) -> ApiResult {
    match op {
        "pages-project-get-project" => Ok(Reply::new(project.view())),
        "pages-project-update-project" => {
            let body = call.body();
            if let Some(patch) = body.get("deployment_configs") {
                merge(&mut project.configs, patch);
            }
            if let Some(patch) = body.get("build_config") {
                merge(&mut project.build_config, patch);
            }
            if let Some(branch) = body["production_branch"].as_str() {
                project.production_branch = branch.to_owned();
            }
            Ok(Reply::new(project.view()))
        }
        "pages-deployment-get-deployments" => {
            let items: Vec<Value> = project
                .deployments
                .iter()
                .rev()
                .map(|d| d.view.clone())
                .filter(|d| call.query("env").is_none_or(|env| d["environment"] == env))
                .collect();
            Ok(call.paginate(items, 25))
        }
        "pages-deployment-create-deployment" => create_deployment(project, call),
        "pages-deployment-get-deployment-info" => {
            let id = call.param("deployment_id");
            find_deployment(project, id).map(|d| Reply::new(d.view.clone()))
        }
        "pages-deployment-delete-deployment" => {
            let id = call.param("deployment_id").to_owned();
            find_deployment(project, &id)?;
            let force = call.query("force") == Some("true");
            if project.canonical.as_deref() == Some(id.as_str()) && !force {
                return Err(ApiError::bad_request(
                    8000034,
                    "You cannot delete the current production deployment. Deploy a new version or roll back first.",
                ));
            }
            project.deployments.retain(|d| d.view["id"] != id.as_str());
            if project.canonical.as_deref() == Some(id.as_str()) {
                project.canonical = None;
            }
            Ok(Reply::new(Value::Null))
        }
        "pages-deployment-rollback-deployment" => {
            let id = call.param("deployment_id").to_owned();
            let deployment = find_deployment(project, &id)?;
            if deployment.view["environment"] != "production" {
                return Err(ApiError::bad_request(
                    8000035,
                    "Only production deployments can be rolled back to.",
                ));
            }
            let view = deployment.view.clone();
            project.canonical = Some(id);
            Ok(Reply::new(view))
        }
        "pages-domains-get-domains" => Ok(Reply::new(Value::Array(project.domains.clone()))),
        "pages-domains-add-domain" => {
            let name = call.body()["name"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase();
            if project.domains.iter().any(|d| d["name"] == name.as_str()) {
                return Err(ApiError::conflict(
                    8000018,
                    "You have already added this custom domain.",
                ));
            }
            let id = new_uuid();
            let domain = json!({
                "id": id,
                "domain_id": id,
                "name": name,
                "status": "active",
                "created_on": now(),
                "certificate_authority": "google",
                "zone_tag": "",
                "validation_data": {"status": "active", "method": "http"},
                "verification_data": {"status": "active"},
            });
            project.domains.push(domain.clone());
            Ok(Reply::new(domain))
        }
        "pages-domains-get-domain" | "pages-domains-patch-domain" => {
            let name = call.param("domain_name");
            project
                .domains
                .iter()
                .find(|d| d["name"] == name)
                .map(|d| Reply::new(d.clone()))
                .ok_or_else(domain_not_found)
        }
        "pages-domains-delete-domain" => {
            let name = call.param("domain_name");
            let before = project.domains.len();
            project.domains.retain(|d| d["name"] != name);
            if before == project.domains.len() {
                return Err(domain_not_found());
            }
            Ok(Reply::new(Value::Null))
        }
        other => Err(not_emulated(other)),
    }
}

fn domain_not_found() -> ApiError {
    ApiError::not_found(8000010, "The custom domain was not found for this project.")
}

fn find_deployment<'a>(project: &'a Project, id: &str) -> Result<&'a Deployment, ApiError> {
    project
        .deployments
        .iter()
        .find(|d| d.view["id"] == id)
        .ok_or_else(|| ApiError::not_found(8000009, "The deployment ID you have specified does not exist. Update the deployment ID and try again."))
}

fn create_deployment(project: &mut Project, call: &Call) -> ApiResult {
    let text = |name: &str| {
        call.parts
            .iter()
            .find(|p| p.name == name)
            .map(|p| String::from_utf8_lossy(&p.data).into_owned())
    };
    let manifest: Value = match text("manifest") {
        Some(manifest) => serde_json::from_str(&manifest)
            .map_err(|e| ApiError::bad_request(8000096, format!("Invalid manifest: {e}")))?,
        None => json!({}),
    };
    let branch = text("branch").unwrap_or_else(|| project.production_branch.clone());
    let environment = if branch == project.production_branch {
        "production"
    } else {
        "preview"
    };
    let id = new_uuid();
    let short_id = id[..8].to_owned();
    let stamp = now();
    let stage = |name: &str| json!({"name": name, "started_on": stamp, "ended_on": stamp, "status": "success"});
    let alias = format!(
        "https://{}.{}.pages.dev",
        branch
            .to_ascii_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "-"),
        project.name
    );
    let view = json!({
        "id": id,
        "short_id": short_id,
        "project_id": project.id,
        "project_name": project.name,
        "environment": environment,
        "url": format!("https://{short_id}.{}.pages.dev", project.name),
        "created_on": stamp,
        "modified_on": stamp,
        "aliases": if environment == "preview" { json!([alias]) } else { Value::Null },
        "latest_stage": stage("deploy"),
        "stages": [stage("queued"), stage("initialize"), stage("clone_repo"), stage("build"), stage("deploy")],
        "deployment_trigger": {
            "type": "ad_hoc",
            "metadata": {
                "branch": branch,
                "commit_hash": text("commit_hash").unwrap_or_default(),
                "commit_message": text("commit_message").unwrap_or_default(),
                "commit_dirty": text("commit_dirty").as_deref() == Some("true"),
            },
        },
        "env_vars": public_config(&project.configs[environment])["env_vars"],
        "compatibility_date": project.configs[environment]["compatibility_date"],
        "compatibility_flags": project.configs[environment]["compatibility_flags"],
        "build_config": project.build_config,
        "source": {
            "type": "github",
            "config": {
                "deployments_enabled": false,
                "owner": "",
                "owner_id": "",
                "path_excludes": [],
                "path_includes": [],
                "pr_comments_enabled": false,
                "preview_branch_excludes": [],
                "preview_branch_includes": [],
                "preview_deployment_setting": "none",
                "production_branch": project.production_branch,
                "production_deployments_enabled": false,
                "repo_id": "",
                "repo_name": "",
            },
        },
        "is_skipped": false,
        "production_branch": project.production_branch,
        "uses_functions": call.parts.iter().any(|p| p.name == "_worker.bundle" || p.name == "_worker.js"),
    });
    if environment == "production" {
        project.canonical = Some(id.clone());
    }
    project.deployments.push(Deployment {
        view: view.clone(),
        manifest,
    });
    Ok(Reply::new(view))
}

/// A JWT shaped like Cloudflare's upload token: wrangler decodes its `exp`.
fn upload_jwt(account: &str, project: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let claims = json!({
        "accountId": account,
        "projectName": project,
        "nonce": new_id(),
        "exp": exp,
    });
    let payload = b64.encode(claims.to_string());
    let signature = b64.encode(new_id());
    format!("{header}.{payload}.{signature}")
}

/// The asset endpoints (`/pages/assets/...`), answered when the bearer is
/// an upload token this stand-in issued; `None` for any other path.
pub(crate) fn wrangler_assets(
    shared: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Result<Reply, ApiError>> {
    let endpoint = path.strip_prefix("/pages/assets/")?;
    if method != Method::POST || !["check-missing", "upload", "upsert-hashes"].contains(&endpoint) {
        return None;
    }
    let mut store = shared.store();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !store.upload_tokens.contains_key(bearer) {
        return Some(Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            8000013,
            "Authorization failed: the upload token is invalid or has expired.",
        )));
    }
    let body: Value = match serde_json::from_slice(body) {
        Ok(body) => body,
        Err(e) => {
            return Some(Err(ApiError::bad_request(
                8000096,
                format!("Invalid JSON: {e}"),
            )))
        }
    };
    let hashes = || -> Vec<String> {
        body["hashes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h.as_str().map(str::to_owned))
            .collect()
    };
    Some(Ok(match endpoint {
        "check-missing" => {
            let missing: Vec<String> = hashes()
                .into_iter()
                .filter(|h| !store.pages_assets.contains(h))
                .collect();
            Reply::new(json!(missing))
        }
        "upload" => {
            let files = body.as_array().cloned().unwrap_or_default();
            for file in &files {
                let Some(key) = file["key"].as_str() else {
                    return Some(Err(ApiError::bad_request(
                        8000096,
                        "Each file needs a `key`.",
                    )));
                };
                store.pages_assets.insert(key.to_owned());
            }
            Reply::new(json!({"successful_key_count": files.len(), "unsuccessful_keys": []}))
        }
        _ => {
            for hash in hashes() {
                store.pages_assets.insert(hash);
            }
            Reply::new(Value::Object(Map::new()))
        }
    }))
}
