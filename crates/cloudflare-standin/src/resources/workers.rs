//! Workers: scripts, versions, deployments, secrets, settings, zone routes
//! and custom domains.
//!
//! Semantics emulated from Cloudflare's docs: a script upload (PUT) creates a
//! version and deploys it to 100%; a version upload (POST .../versions) only
//! creates one; a deployment names versions whose percentages sum to 100;
//! putting or deleting a secret creates a version from the current one and
//! deploys it (annotated `workers/triggered_by: secret`). In an upload,
//! `keep_bindings` (binding types) and `inherit` bindings carry bindings
//! over from the latest version (an `inherit` with a `version_id` from that
//! version); an `inherit` that cannot be resolved is dropped, or, with
//! `?bindings_inherit=strict`, fails the upload (400, code 10021) as the
//! published document describes. The script's current version is the
//! newest version of its newest deployment (see [`Script::current_version`]).
//! Secret values are never returned. Codes: 10007 script not found, 10020
//! duplicate route pattern, 10005 route not found, 10056 secret not found,
//! 10217 version not found, 10216 percentages not summing to 100, 10021
//! unresolvable inherit binding in a strict upload, 10220 a deployment
//! going back to a version older than a secret change without
//! `?force=true` (as the published document describes the `force`
//! parameter; see [`secrets_changed_since`]), 100114 custom domain not
//! found. Cron Triggers belong to the script: `PUT .../schedules`
//! replaces them all and uploads or deployments never touch them; an
//! expression without five fields is refused with 400 (code 10100 is this
//! stand-in's choice: Cloudflare does not document that one).

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::{new_id, new_uuid, not_emulated, now, sha256_hex, Call, Store};
use crate::envelope::{ApiError, ApiResult, Reply};

/// A Worker script and its history.
pub(crate) struct Script {
    pub account: String,
    pub name: String,
    pub tag: String,
    pub created_on: String,
    pub modified_on: String,
    pub versions: Vec<Version>,
    /// Newest first, as the API lists them.
    pub deployments: Vec<Value>,
    /// `logpush`, `observability`, `tags`, `tail_consumers`, `placement`.
    pub settings: Value,
    /// Main module source of the latest upload, for the download endpoint.
    pub main_source: (String, bytes::Bytes),
    /// Cron Triggers (`{cron, created_on, modified_on}`): the script's, not
    /// a version's, so uploads and deployments leave them as they are.
    pub schedules: Vec<Value>,
}

/// One immutable version of a script.
pub(crate) struct Version {
    pub id: String,
    pub number: u64,
    pub created_on: String,
    pub source: String,
    pub annotations: Value,
    pub main_module: String,
    /// (part name, content type, sha256, size).
    pub modules: Vec<(String, String, String, usize)>,
    /// Full bindings, secret values included (never returned).
    pub bindings: Vec<Value>,
    pub compatibility_date: Option<String>,
    pub compatibility_flags: Vec<String>,
    pub usage_model: String,
}

/// Bindings as the API shows them: secret values removed.
fn public_bindings(bindings: &[Value]) -> Vec<Value> {
    bindings
        .iter()
        .map(|binding| {
            let mut shown = binding.clone();
            if let Some(map) = shown.as_object_mut() {
                if binding["type"] != "plain_text" {
                    map.remove("text");
                }
                map.remove("key_base64");
                map.remove("key_jwk");
            }
            shown
        })
        .collect()
}

impl Version {
    fn metadata(&self) -> Value {
        json!({
            "author_email": "deploy@example.com",
            "author_id": "00000000000000000000000000000000",
            "created_on": self.created_on,
            "modified_on": self.created_on,
            "source": self.source,
            "hasPreview": false,
        })
    }

    fn summary(&self) -> Value {
        json!({
            "id": self.id,
            "number": self.number,
            "metadata": self.metadata(),
            "annotations": self.annotations,
        })
    }

    /// The version detail (`GET .../versions/{id}`).
    pub fn detail(&self) -> Value {
        let mut runtime = json!({
            "compatibility_flags": self.compatibility_flags,
            "usage_model": self.usage_model,
        });
        if let Some(date) = &self.compatibility_date {
            runtime["compatibility_date"] = json!(date);
        }
        json!({
            "id": self.id,
            "number": self.number,
            "metadata": self.metadata(),
            "annotations": self.annotations,
            "resources": {
                "bindings": public_bindings(&self.bindings),
                "script": {
                    "etag": self.modules.first().map(|m| m.2.clone()).unwrap_or_default(),
                    "handlers": ["fetch"],
                },
                "script_runtime": runtime,
            },
        })
    }
}

impl Script {
    /// The current version: the newest (highest-numbered) version of the
    /// newest deployment, which is what the deploy tool reads as live and
    /// what the edge emulation answers as. During a gradual deployment
    /// that is the new version, whatever its share of traffic.
    pub fn current_version(&self) -> Option<&Version> {
        self.deployments.first()?["versions"]
            .as_array()?
            .iter()
            .filter_map(|entry| {
                let id = entry["version_id"].as_str()?;
                self.versions.iter().find(|v| v.id == id)
            })
            .max_by_key(|v| v.number)
    }

    /// What settings, secrets and the script's summary describe, and what
    /// secret changes and settings PATCHes build on: the current version,
    /// or the latest one while nothing is deployed.
    pub fn base_version(&self) -> Option<&Version> {
        self.current_version().or(self.versions.last())
    }

    /// The script as listed and as the upload answers.
    pub fn summary(&self) -> Value {
        let version = self.base_version();
        let mut summary = json!({
            "id": self.name,
            "tag": self.tag,
            "etag": version.and_then(|v| v.modules.first()).map(|m| m.2.clone()).unwrap_or_default(),
            "handlers": ["fetch"],
            "created_on": self.created_on,
            "modified_on": self.modified_on,
            "has_modules": true,
            "has_assets": false,
            "startup_time_ms": 1,
            "usage_model": version.map(|v| v.usage_model.clone()).unwrap_or_else(|| "standard".into()),
            "compatibility_flags": version.map(|v| v.compatibility_flags.clone()).unwrap_or_default(),
            "logpush": self.settings["logpush"],
            "tail_consumers": self.settings["tail_consumers"],
        });
        if let Some(date) = version.and_then(|v| v.compatibility_date.clone()) {
            summary["compatibility_date"] = json!(date);
        }
        if self.settings["observability"].is_object() {
            summary["observability"] = self.settings["observability"].clone();
        }
        if let Some(deployment) = self.deployments.first() {
            summary["deployment_id"] = deployment["id"].clone();
        }
        summary
    }

    fn settings_view(&self) -> Value {
        let version = self.base_version();
        let mut view = json!({
            "bindings": version.map(|v| public_bindings(&v.bindings)).unwrap_or_default(),
            "compatibility_flags": version.map(|v| v.compatibility_flags.clone()).unwrap_or_default(),
            "usage_model": version.map(|v| v.usage_model.clone()).unwrap_or_else(|| "standard".into()),
            "logpush": self.settings["logpush"],
            "tags": self.settings["tags"],
            "tail_consumers": self.settings["tail_consumers"],
        });
        if let Some(date) = version.and_then(|v| v.compatibility_date.clone()) {
            view["compatibility_date"] = json!(date);
        }
        if self.settings["observability"].is_object() {
            view["observability"] = self.settings["observability"].clone();
        }
        view
    }

    fn script_settings_view(&self) -> Value {
        let mut view = json!({
            "logpush": self.settings["logpush"],
            "tags": self.settings["tags"],
            "tail_consumers": self.settings["tail_consumers"],
        });
        if self.settings["observability"].is_object() {
            view["observability"] = self.settings["observability"].clone();
        }
        view
    }

    fn deploy(&mut self, versions: Value, annotations: Value, source: &str) -> Value {
        let deployment = json!({
            "id": new_uuid(),
            "source": source,
            "strategy": "percentage",
            "author_email": "deploy@example.com",
            "created_on": now(),
            "annotations": annotations,
            "versions": versions,
        });
        self.deployments.insert(0, deployment.clone());
        self.modified_on = now();
        deployment
    }

    /// Adds a version derived from the current one with `bindings`, and
    /// deploys it (what secret changes and settings PATCHes do).
    fn redeploy_with(&mut self, bindings: Vec<Value>, trigger: &str) -> String {
        let base = self.base_version();
        let version = Version {
            id: new_uuid(),
            number: self.versions.len() as u64 + 1,
            created_on: now(),
            source: "api".into(),
            annotations: json!({"workers/triggered_by": trigger}),
            main_module: base.map(|b| b.main_module.clone()).unwrap_or_default(),
            modules: base.map(|b| b.modules.clone()).unwrap_or_default(),
            bindings,
            compatibility_date: base.and_then(|b| b.compatibility_date.clone()),
            compatibility_flags: base
                .map(|b| b.compatibility_flags.clone())
                .unwrap_or_default(),
            usage_model: base
                .map(|b| b.usage_model.clone())
                .unwrap_or_else(|| "standard".into()),
        };
        let id = version.id.clone();
        self.versions.push(version);
        self.deploy(
            json!([{"version_id": id, "percentage": 100.0}]),
            json!({"workers/triggered_by": trigger}),
            "api",
        );
        id
    }
}

fn script_not_found() -> ApiError {
    ApiError::not_found(10007, "This Worker does not exist on your account.")
}

fn key(call: &Call) -> (String, String) {
    (
        call.param("account_id").to_owned(),
        call.param("script_name").to_owned(),
    )
}

pub(super) fn dispatch(store: &mut Store, call: &Call) -> ApiResult {
    match call.op_id.as_str() {
        "worker-routes-list-routes" => {
            let routes = store
                .routes
                .get(call.param("zone_id"))
                .cloned()
                .unwrap_or_default();
            Ok(Reply::new(Value::Array(routes)))
        }
        "worker-routes-create-route" | "worker-routes-update-route" => upsert_route(store, call),
        "worker-routes-get-route" => {
            let route = store
                .routes
                .get(call.param("zone_id"))
                .and_then(|r| r.iter().find(|r| r["id"] == call.param("route_id")))
                .cloned()
                .ok_or_else(route_not_found)?;
            Ok(Reply::new(route))
        }
        "worker-routes-delete-route" => {
            let routes = store
                .routes
                .entry(call.param("zone_id").to_owned())
                .or_default();
            let before = routes.len();
            routes.retain(|r| r["id"] != call.param("route_id"));
            if routes.len() == before {
                return Err(route_not_found());
            }
            Ok(Reply::new(json!({"id": call.param("route_id")})))
        }
        "workers.domains.list" => {
            let account = call.param("account_id");
            let items: Vec<Value> = store
                .worker_domains
                .iter()
                .filter(|(a, _)| a == account)
                .map(|(_, d)| d)
                .filter(|d| {
                    ["hostname", "service", "zone_id", "zone_name", "environment"]
                        .iter()
                        .all(|f| call.query(f).is_none_or(|want| d[*f] == want))
                })
                .cloned()
                .collect();
            Ok(Reply::new(Value::Array(items)))
        }
        "workers.domains.update" => attach_domain(store, call),
        "workers.domains.get" => store
            .worker_domains
            .iter()
            .find(|(a, d)| a == call.param("account_id") && d["id"] == call.param("domain_id"))
            .map(|(_, d)| Reply::new(d.clone()))
            .ok_or_else(domain_not_found),
        "workers.domains.delete" => {
            let before = store.worker_domains.len();
            store.worker_domains.retain(|(a, d)| {
                !(a == call.param("account_id") && d["id"] == call.param("domain_id"))
            });
            if store.worker_domains.len() == before {
                return Err(domain_not_found());
            }
            Ok(Reply::new(Value::Null))
        }
        "worker-script-list-workers" => {
            let account = call.param("account_id");
            let items: Vec<Value> = store
                .scripts
                .values()
                .filter(|s| s.account == account)
                .map(Script::summary)
                .collect();
            Ok(Reply::new(Value::Array(items)))
        }
        "worker-script-upload-worker-module" => upload(store, call, true),
        "worker-versions-upload-version" => upload(store, call, false),
        "worker-script-delete-worker" => {
            let (account, name) = key(call);
            if store.scripts.remove(&(account, name.clone())).is_none() {
                return Err(script_not_found());
            }
            store
                .worker_domains
                .retain(|(_, d)| d["service"] != name.as_str());
            Ok(Reply::new(Value::Null))
        }
        other => {
            let script = store
                .scripts
                .get_mut(&key(call))
                .ok_or_else(script_not_found)?;
            script_operation(script, other, call)
        }
    }
}

fn script_operation(script: &mut Script, op: &str, call: &Call) -> ApiResult {
    let reply = match op {
        "worker-script-download-worker" => {
            let (content_type, source) = script.main_source.clone();
            let mut reply = Reply::new(Value::Null);
            reply.raw = Some((content_type, source));
            reply
        }
        "worker-versions-list-versions" => {
            let items: Vec<Value> = script.versions.iter().rev().map(Version::summary).collect();
            let mut reply = call.paginate(items, 10);
            reply.result = json!({"items": reply.result});
            reply
        }
        "worker-versions-get-version-detail" => {
            let version = script
                .versions
                .iter()
                .find(|v| v.id == call.param("version_id"))
                .ok_or_else(|| version_not_found(call.param("version_id")))?;
            Reply::new(version.detail())
        }
        "worker-deployments-list-deployments" => {
            Reply::new(json!({"deployments": script.deployments}))
        }
        "worker-deployments-get-deployment" => {
            let deployment = script
                .deployments
                .iter()
                .find(|d| d["id"] == call.param("deployment_id"))
                .cloned()
                .ok_or_else(deployment_not_found)?;
            Reply::new(deployment)
        }
        "worker-deployments-delete-deployment" => {
            let id = call.param("deployment_id");
            let position = script
                .deployments
                .iter()
                .position(|d| d["id"] == id)
                .ok_or_else(deployment_not_found)?;
            if position == 0 {
                return Err(ApiError::bad_request(
                    10218,
                    "Cannot delete the latest deployment of a Worker.",
                ));
            }
            script.deployments.remove(position);
            Reply::new(Value::Null)
        }
        "worker-deployments-create-deployment" => create_deployment(script, call)?,
        "worker-list-script-secrets" => {
            let version = script.base_version();
            let items: Vec<Value> = version
                .map(|v| v.bindings.as_slice())
                .unwrap_or_default()
                .iter()
                .filter(|b| b["type"] == "secret_text" || b["type"] == "secret_key")
                .map(|b| json!({"name": b["name"], "type": b["type"]}))
                .collect();
            Reply::new(Value::Array(items))
        }
        "worker-get-script-secret" => {
            let name = call.param("secret_name");
            let version = script.base_version();
            let secret = version
                .map(|v| v.bindings.as_slice())
                .unwrap_or_default()
                .iter()
                .find(|b| {
                    b["name"] == name && (b["type"] == "secret_text" || b["type"] == "secret_key")
                })
                .ok_or_else(|| secret_not_found(name))?;
            Reply::new(json!({"name": secret["name"], "type": secret["type"]}))
        }
        "worker-put-script-secret" => {
            let body = call.body().clone();
            let name = body["name"].as_str().unwrap_or_default().to_owned();
            let mut bindings: Vec<Value> = script
                .base_version()
                .map(|v| v.bindings.clone())
                .unwrap_or_default();
            bindings.retain(|b| b["name"] != name.as_str());
            bindings.push(body.clone());
            script.redeploy_with(bindings, "secret");
            Reply::new(json!({"name": name, "type": body["type"]}))
        }
        "worker-delete-script-secret" => {
            let name = call.param("secret_name").to_owned();
            let mut bindings: Vec<Value> = script
                .base_version()
                .map(|v| v.bindings.clone())
                .unwrap_or_default();
            let before = bindings.len();
            bindings.retain(|b| {
                !(b["name"] == name.as_str()
                    && (b["type"] == "secret_text" || b["type"] == "secret_key"))
            });
            if bindings.len() == before {
                return Err(secret_not_found(&name));
            }
            script.redeploy_with(bindings, "secret");
            Reply::new(Value::Null)
        }
        "worker-cron-trigger-get-cron-triggers" => {
            Reply::new(json!({"schedules": script.schedules}))
        }
        "worker-cron-trigger-update-cron-triggers" => {
            Reply::new(json!({"schedules": replace_schedules(script, call.body())?}))
        }
        "worker-script-settings-get-settings" => Reply::new(script.script_settings_view()),
        "worker-script-settings-patch-settings" => {
            merge_settings(script, call.body());
            Reply::new(script.script_settings_view())
        }
        "worker-script-get-settings" => Reply::new(script.settings_view()),
        "worker-script-patch-settings" => {
            let body = call.body().clone();
            merge_settings(script, &body);
            let changes_version = [
                "bindings",
                "compatibility_date",
                "compatibility_flags",
                "usage_model",
            ]
            .iter()
            .any(|k| body.get(*k).is_some());
            if changes_version {
                let base = script.base_version();
                let bindings = match body.get("bindings").and_then(Value::as_array) {
                    Some(new) => resolve_bindings(new, base, &script.versions, &[]).0,
                    None => base.map(|b| b.bindings.clone()).unwrap_or_default(),
                };
                script.redeploy_with(bindings, "settings");
                let latest = script.versions.last_mut().expect("just added");
                if let Some(date) = body["compatibility_date"].as_str() {
                    latest.compatibility_date = Some(date.to_owned());
                }
                if let Some(flags) = body["compatibility_flags"].as_array() {
                    latest.compatibility_flags = flags
                        .iter()
                        .filter_map(|f| f.as_str().map(str::to_owned))
                        .collect();
                }
                if let Some(model) = body["usage_model"].as_str() {
                    latest.usage_model = model.to_owned();
                }
            }
            Reply::new(script.settings_view())
        }
        _ => return Err(not_emulated(op)),
    };
    Ok(reply)
}

/// `PUT .../schedules`: the body (a JSON array of `{cron}`, checked against
/// the schema before this runs) replaces every trigger. A trigger that
/// stays keeps its `created_on`. Each expression must have the five fields
/// of a Workers cron (minute, hour, day of month, month, day of week).
fn replace_schedules(script: &mut Script, body: &Value) -> Result<Vec<Value>, ApiError> {
    let stamp = now();
    let mut schedules = Vec::new();
    for item in body.as_array().map(Vec::as_slice).unwrap_or_default() {
        let cron = item["cron"].as_str().unwrap_or_default();
        if !is_cron(cron) {
            return Err(ApiError::bad_request(
                10100,
                format!("Invalid cron expression: {cron:?}"),
            ));
        }
        let created_on = script
            .schedules
            .iter()
            .find(|s| s["cron"] == cron)
            .map_or(json!(stamp), |s| s["created_on"].clone());
        schedules.push(json!({"cron": cron, "created_on": created_on, "modified_on": stamp}));
    }
    script.schedules = schedules.clone();
    Ok(schedules)
}

/// Five fields of digits, names (`MON`, `JAN`), `*`, `/`, `,`, `-`, `L`
/// and `#`, as the Workers cron syntax allows.
fn is_cron(cron: &str) -> bool {
    let fields: Vec<&str> = cron.split_whitespace().collect();
    fields.len() == 5
        && fields.iter().all(|f| {
            f.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '*' | '/' | ',' | '-' | '#'))
        })
}

fn merge_settings(script: &mut Script, body: &Value) {
    for key in [
        "logpush",
        "observability",
        "tags",
        "tail_consumers",
        "placement",
    ] {
        if let Some(value) = body.get(key) {
            script.settings[key] = value.clone();
        }
    }
    script.modified_on = now();
}

/// The bindings of a new version: `new` with its `inherit` entries
/// resolved (against the version their `version_id` names, else against
/// `previous`; `old_name` renames), plus the bindings of `previous` whose
/// type `keep_types` (`keep_bindings`) lists and whose name `new` does not
/// use. Also returns the names of the `inherit` entries that could not be
/// resolved, which are dropped.
fn resolve_bindings(
    new: &[Value],
    previous: Option<&Version>,
    versions: &[Version],
    keep_types: &[String],
) -> (Vec<Value>, Vec<String>) {
    let mut bindings = Vec::new();
    let mut unresolved = Vec::new();
    for binding in new {
        if binding["type"] != "inherit" {
            bindings.push(binding.clone());
            continue;
        }
        let source = match binding["version_id"].as_str() {
            None | Some("latest") => previous,
            Some(id) => versions.iter().find(|v| v.id == id),
        };
        let from = binding.get("old_name").unwrap_or(&binding["name"]);
        match source.and_then(|v| v.bindings.iter().find(|b| b["name"] == *from)) {
            Some(found) => {
                let mut found = found.clone();
                found["name"] = binding["name"].clone();
                bindings.push(found);
            }
            None => unresolved.push(binding["name"].as_str().unwrap_or_default().to_owned()),
        }
    }
    for old in previous.map(|v| v.bindings.as_slice()).unwrap_or_default() {
        let kept = old["type"]
            .as_str()
            .is_some_and(|t| keep_types.iter().any(|k| k == t));
        if kept && !bindings.iter().any(|b| b["name"] == old["name"]) {
            bindings.push(old.clone());
        }
    }
    (bindings, unresolved)
}

fn upload(store: &mut Store, call: &Call, deploy: bool) -> ApiResult {
    let key = key(call);
    let metadata = call.body().clone();
    if !deploy && !store.scripts.contains_key(&key) {
        return Err(script_not_found());
    }
    // Bindings first: a strict upload that fails changes nothing.
    let keep: Vec<String> = metadata["keep_bindings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect();
    let new_bindings = metadata["bindings"].as_array().cloned().unwrap_or_default();
    let existing = store.scripts.get(&key);
    let (bindings, unresolved) = resolve_bindings(
        &new_bindings,
        existing.and_then(|s| s.versions.last()),
        existing.map(|s| s.versions.as_slice()).unwrap_or_default(),
        &keep,
    );
    if !unresolved.is_empty() && call.query("bindings_inherit") == Some("strict") {
        return Err(ApiError::bad_request(
            10021,
            format!(
                "Uploaded script has invalid bindings: inherit bindings could not be resolved against the previous version: {}",
                unresolved.join(", ")
            ),
        ));
    }
    let stamp = now();
    let script = store.scripts.entry(key.clone()).or_insert_with(|| Script {
        account: key.0.clone(),
        name: key.1.clone(),
        tag: new_id(),
        created_on: stamp.clone(),
        modified_on: stamp.clone(),
        versions: Vec::new(),
        deployments: Vec::new(),
        settings: json!({"logpush": false, "tags": [], "tail_consumers": []}),
        main_source: ("application/javascript+module".into(), bytes::Bytes::new()),
        schedules: Vec::new(),
    });
    let main_module = metadata["main_module"]
        .as_str()
        .or(metadata["body_part"].as_str())
        .map(str::to_owned)
        .or_else(|| {
            call.parts
                .iter()
                .find(|p| p.name != "metadata")
                .map(|p| p.name.clone())
        })
        .unwrap_or_default();
    let modules: Vec<(String, String, String, usize)> = call
        .parts
        .iter()
        .filter(|p| p.name != "metadata")
        .map(|p| {
            (
                p.name.clone(),
                p.content_type.clone().unwrap_or_default(),
                sha256_hex(&p.data),
                p.data.len(),
            )
        })
        .collect();
    if let Some(part) = call.parts.iter().find(|p| p.name == main_module) {
        script.main_source = (
            part.content_type
                .clone()
                .unwrap_or_else(|| "application/javascript".into()),
            part.data.clone(),
        );
    }
    let mut annotations = metadata["annotations"].clone();
    if !annotations.is_object() {
        annotations = json!({});
    }
    annotations["workers/triggered_by"] = json!(if deploy { "upload" } else { "version_upload" });
    let version = Version {
        id: new_uuid(),
        number: script.versions.len() as u64 + 1,
        created_on: stamp,
        source: "api".into(),
        annotations,
        main_module,
        modules,
        bindings,
        compatibility_date: metadata["compatibility_date"].as_str().map(str::to_owned),
        compatibility_flags: metadata["compatibility_flags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str().map(str::to_owned))
            .collect(),
        usage_model: metadata["usage_model"]
            .as_str()
            .unwrap_or("standard")
            .to_owned(),
    };
    let version_id = version.id.clone();
    script.versions.push(version);
    if deploy {
        merge_settings(script, &metadata);
        script.deploy(
            json!([{"version_id": version_id, "percentage": 100.0}]),
            json!({"workers/triggered_by": "upload"}),
            "api",
        );
        Ok(Reply::new(script.summary()))
    } else {
        let version = script.versions.last().expect("just added");
        Ok(Reply::new(json!({
            "id": version.id,
            "number": version.number,
            "metadata": version.metadata(),
            "annotations": version.annotations,
            "resources": version.detail()["resources"],
            "startup_time_ms": 1,
        })))
    }
}

fn create_deployment(script: &mut Script, call: &Call) -> ApiResult {
    let body = call.body();
    let versions = body["versions"].as_array().cloned().unwrap_or_default();
    let mut total = 0.0;
    for entry in &versions {
        let id = entry["version_id"].as_str().unwrap_or_default();
        if !script.versions.iter().any(|v| v.id == id) {
            return Err(version_not_found(id));
        }
        total += entry["percentage"].as_f64().unwrap_or(0.0);
    }
    if versions.is_empty() || (total - 100.0).abs() > 1e-6 {
        return Err(ApiError::invalid_request(
            10216,
            format!("Version percentages must sum to 100, got {total}"),
        ));
    }
    if versions.len() > 2 {
        return Err(ApiError::invalid_request(
            10216,
            "A deployment can split traffic between at most two versions.",
        ));
    }
    let changed = secrets_changed_since(script, &versions);
    if !changed.is_empty() && call.query("force") != Some("true") {
        return Err(ApiError::bad_request(
            10220,
            format!(
                "A secret has changed since this version was active. If you are sure this is ok, add a ?force=true query parameter to allow the rollback. The following secrets have changed: {}",
                changed.join(", ")
            ),
        ));
    }
    let mut annotations = body["annotations"].clone();
    if !annotations.is_object() {
        annotations = json!({});
    }
    annotations["workers/triggered_by"] = json!("deployment");
    Ok(Reply::new(script.deploy(
        json!(versions),
        annotations,
        "api",
    )))
}

/// The secrets that differ between the current version and a version of
/// `entries` that goes back to before it: one older than the current
/// version and not serving now (a share of the current deployment is
/// still active, so keeping or resizing it is no rollback).
fn secrets_changed_since(script: &Script, entries: &[Value]) -> Vec<String> {
    let Some(current) = script.current_version() else {
        return Vec::new();
    };
    let serving = script.deployments.first().map_or(Vec::new(), |d| {
        d["versions"].as_array().cloned().unwrap_or_default()
    });
    let is_secret = |b: &&Value| b["type"] == "secret_text" || b["type"] == "secret_key";
    let secret = |version: &Version, name: &Value| -> Option<Value> {
        version
            .bindings
            .iter()
            .filter(is_secret)
            .find(|b| b["name"] == *name)
            .cloned()
    };
    let mut changed = Vec::new();
    for entry in entries {
        let id = &entry["version_id"];
        let Some(target) = script.versions.iter().find(|v| v.id == *id) else {
            continue;
        };
        if target.number >= current.number || serving.iter().any(|e| e["version_id"] == *id) {
            continue;
        }
        for binding in current
            .bindings
            .iter()
            .chain(&target.bindings)
            .filter(is_secret)
        {
            let name = &binding["name"];
            if secret(current, name) != secret(target, name) {
                changed.push(name.as_str().unwrap_or_default().to_owned());
            }
        }
    }
    changed.sort();
    changed.dedup();
    changed
}

fn upsert_route(store: &mut Store, call: &Call) -> ApiResult {
    let zone = call.param("zone_id").to_owned();
    let body = call.body();
    let pattern = body["pattern"].as_str().unwrap_or_default().to_owned();
    let routes = store.routes.entry(zone).or_default();
    let updating = call.op_id == "worker-routes-update-route";
    let id = if updating {
        let id = call.param("route_id").to_owned();
        if !routes.iter().any(|r| r["id"] == id.as_str()) {
            return Err(route_not_found());
        }
        id
    } else {
        new_id()
    };
    if routes
        .iter()
        .any(|r| r["pattern"] == pattern.as_str() && r["id"] != id.as_str())
    {
        return Err(ApiError::conflict(
            10020,
            "A route with the same pattern already exists.",
        ));
    }
    let mut route = json!({"id": id, "pattern": pattern});
    if let Some(script) = body.get("script") {
        route["script"] = script.clone();
    }
    routes.retain(|r| r["id"] != id.as_str());
    routes.push(route.clone());
    Ok(Reply::new(route))
}

fn attach_domain(store: &mut Store, call: &Call) -> ApiResult {
    let account = call.param("account_id").to_owned();
    let body = call.body();
    let hostname = body["hostname"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let zone = match body["zone_id"].as_str() {
        Some(id) => store.zone(id)?.clone(),
        None => store.zone_for_host(&hostname).cloned().ok_or_else(|| {
            ApiError::bad_request(
                100117,
                "Hostname does not belong to a zone on this account.",
            )
        })?,
    };
    let zone_name = zone["name"].as_str().unwrap_or_default();
    if hostname != zone_name && !hostname.ends_with(&format!(".{zone_name}")) {
        return Err(ApiError::bad_request(
            100117,
            "Hostname does not belong to the given zone.",
        ));
    }
    let service = body["service"].as_str().unwrap_or_default().to_owned();
    if !store
        .scripts
        .contains_key(&(account.clone(), service.clone()))
    {
        return Err(script_not_found());
    }
    let existing_id = store
        .worker_domains
        .iter()
        .find(|(_, d)| d["hostname"] == hostname.as_str())
        .and_then(|(_, d)| d["id"].as_str().map(str::to_owned));
    let domain = json!({
        "id": existing_id.clone().unwrap_or_else(new_id),
        "cert_id": new_uuid(),
        "hostname": hostname,
        "service": service,
        "environment": body["environment"].as_str().unwrap_or("production"),
        "zone_id": zone["id"],
        "zone_name": zone["name"],
    });
    store
        .worker_domains
        .retain(|(_, d)| d["hostname"] != hostname.as_str());
    store.worker_domains.push((account, domain.clone()));
    Ok(Reply::new(domain))
}

fn route_not_found() -> ApiError {
    ApiError::not_found(10005, "Route not found.")
}

fn domain_not_found() -> ApiError {
    ApiError::not_found(100114, "Domain not found.")
}

fn deployment_not_found() -> ApiError {
    ApiError::not_found(10219, "Deployment not found.")
}

fn version_not_found(id: &str) -> ApiError {
    ApiError::not_found(10217, format!("Version {id} not found."))
}

fn secret_not_found(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        10056,
        format!("Binding {name} not found."),
    )
}
