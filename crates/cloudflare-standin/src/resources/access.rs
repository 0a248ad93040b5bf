//! Access (account level): applications, reusable policies and service
//! tokens. Apps reference reusable policies by id (string or
//! `{id, precedence}`); answers embed the policies, as Cloudflare does. A
//! service token's `client_secret` is returned only on create; the stand-in
//! keeps its SHA-256 for the edge emulation. Codes: 12130 not found, 12132
//! an app for that domain exists, 12133 policy still used by an app.

use serde_json::{json, Value};

use super::{new_id, new_uuid, not_emulated, now, sha256_hex, Call, Store};
use crate::envelope::{ApiError, ApiResult, Reply};

fn not_found(what: &str) -> ApiError {
    ApiError::not_found(
        12130,
        format!("access.api.error.not_found: {what} not found"),
    )
}

fn account(call: &Call) -> String {
    call.params
        .get("account_id")
        .or_else(|| call.params.get("account_or_zone_id"))
        .cloned()
        .unwrap_or_default()
}

pub(super) fn dispatch(store: &mut Store, call: &Call) -> ApiResult {
    let account = account(call);
    let op = call.op_id.as_str();
    match op {
        "access-policies-list-access-reusable-policies" => {
            let items: Vec<Value> = store
                .access_policies
                .iter()
                .filter(|(a, _)| *a == account)
                .map(|(_, p)| with_app_count(store, p))
                .collect();
            Ok(call.paginate(items, 25))
        }
        "access-policies-create-an-access-reusable-policy" => {
            let policy = policy_object(&new_uuid(), call.body(), None);
            store.access_policies.push((account, policy.clone()));
            Ok(Reply::new(policy))
        }
        "access-policies-get-an-access-reusable-policy" => store
            .access_policies
            .iter()
            .find(|(a, p)| *a == account && p["id"] == call.param("policy_id"))
            .map(|(_, p)| Reply::new(with_app_count(store, p)))
            .ok_or_else(|| not_found("policy")),
        "access-policies-update-an-access-reusable-policy" => {
            let id = call.param("policy_id");
            let slot = store
                .access_policies
                .iter_mut()
                .find(|(a, p)| *a == account && p["id"] == id)
                .ok_or_else(|| not_found("policy"))?;
            let created = slot.1["created_at"].as_str().map(str::to_owned);
            slot.1 = policy_object(id, call.body(), created);
            let policy = slot.1.clone();
            refresh_app_policies(store, &policy);
            Ok(Reply::new(policy))
        }
        "access-policies-delete-an-access-reusable-policy" => {
            let id = call.param("policy_id");
            if !store
                .access_policies
                .iter()
                .any(|(a, p)| *a == account && p["id"] == id)
            {
                return Err(not_found("policy"));
            }
            let in_use = store.access_apps.iter().any(|(a, app)| {
                *a == account
                    && app["policies"]
                        .as_array()
                        .is_some_and(|ps| ps.iter().any(|p| p["id"] == id))
            });
            if in_use {
                return Err(ApiError::bad_request(
                    12133,
                    "access.api.error.policy_in_use: remove the policy from its applications first",
                ));
            }
            store
                .access_policies
                .retain(|(a, p)| !(*a == account && p["id"] == id));
            Ok(Reply::new(json!({"id": id})))
        }
        _ if op.contains("/access/apps") => apps(store, call, &account),
        _ if op.contains("/access/service_tokens") => service_tokens(store, call, &account),
        other => Err(not_emulated(other)),
    }
}

fn policy_object(id: &str, body: &Value, created: Option<String>) -> Value {
    let stamp = now();
    let mut policy = json!({
        "id": id,
        "name": body["name"],
        "decision": body["decision"],
        "include": body.get("include").cloned().unwrap_or(json!([])),
        "exclude": body.get("exclude").cloned().unwrap_or(json!([])),
        "require": body.get("require").cloned().unwrap_or(json!([])),
        "reusable": true,
        "created_at": created.unwrap_or_else(|| stamp.clone()),
        "updated_at": stamp,
    });
    if let Some(duration) = body.get("session_duration") {
        policy["session_duration"] = duration.clone();
    }
    policy
}

fn with_app_count(store: &Store, policy: &Value) -> Value {
    let count = store
        .access_apps
        .iter()
        .filter(|(_, app)| {
            app["policies"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["id"] == policy["id"]))
        })
        .count();
    let mut policy = policy.clone();
    policy["app_count"] = json!(count);
    policy
}

/// Keeps the policies embedded in apps in step with their definition.
fn refresh_app_policies(store: &mut Store, policy: &Value) {
    for (_, app) in store.access_apps.iter_mut() {
        if let Some(policies) = app["policies"].as_array_mut() {
            for embedded in policies.iter_mut().filter(|p| p["id"] == policy["id"]) {
                let precedence = embedded["precedence"].clone();
                *embedded = policy.clone();
                embedded["precedence"] = precedence;
            }
        }
    }
}

fn app_object(
    store: &Store,
    account: &str,
    id: &str,
    body: &Value,
    previous: Option<&Value>,
) -> Result<Value, ApiError> {
    let mut app = body.clone();
    let stamp = now();
    app["id"] = json!(id);
    app["aud"] = previous
        .map(|p| p["aud"].clone())
        .unwrap_or_else(|| json!(format!("{}{}", new_id(), new_id())));
    if app.get("type").is_none() {
        app["type"] = json!("self_hosted");
    }
    if app.get("session_duration").is_none() {
        app["session_duration"] = json!("24h");
    }
    if app["domain"].is_string() && app.get("destinations").is_none() {
        app["destinations"] = json!([{"type": "public", "uri": app["domain"]}]);
    }
    app["created_at"] = previous
        .map(|p| p["created_at"].clone())
        .unwrap_or_else(|| json!(stamp));
    app["updated_at"] = json!(stamp);
    let mut policies = Vec::new();
    for (index, reference) in body["policies"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let (policy_id, precedence) = match reference {
            Value::String(id) => (id.clone(), json!(index + 1)),
            other => (
                other["id"].as_str().unwrap_or_default().to_owned(),
                other
                    .get("precedence")
                    .cloned()
                    .unwrap_or_else(|| json!(index + 1)),
            ),
        };
        let policy = store
            .access_policies
            .iter()
            .find(|(a, p)| a == account && p["id"] == policy_id.as_str())
            .map(|(_, p)| p.clone())
            .ok_or_else(|| {
                ApiError::bad_request(
                    12130,
                    format!("access.api.error.not_found: policy {policy_id} not found"),
                )
            })?;
        let mut embedded = policy;
        embedded["precedence"] = precedence;
        policies.push(embedded);
    }
    app["policies"] = json!(policies);
    Ok(app)
}

fn domains_of(app: &Value) -> Vec<String> {
    let mut domains: Vec<String> = app["destinations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["uri"].as_str().map(str::to_ascii_lowercase))
        .collect();
    if let Some(domain) = app["domain"].as_str() {
        domains.push(domain.to_ascii_lowercase());
    }
    domains
}

fn apps(store: &mut Store, call: &Call, account: &str) -> ApiResult {
    let op = call.op_id.as_str();
    let app_id = call.param("app_id").to_owned();
    match op.split(' ').next().unwrap_or_default() {
        "GET" if app_id.is_empty() => {
            let exact = call.query("exact") == Some("true");
            let matches = |value: &Value, wanted: Option<&str>| {
                wanted.is_none_or(|w| {
                    let v = value.as_str().unwrap_or_default();
                    if exact {
                        v == w
                    } else {
                        v.contains(w)
                    }
                })
            };
            let items: Vec<Value> = store
                .access_apps
                .iter()
                .filter(|(a, _)| a == account)
                .map(|(_, app)| app)
                .filter(|app| matches(&app["name"], call.query("name")))
                .filter(|app| matches(&app["domain"], call.query("domain")))
                .filter(|app| matches(&app["aud"], call.query("aud")))
                .cloned()
                .collect();
            Ok(call.paginate(items, 1000))
        }
        "GET" => store
            .access_apps
            .iter()
            .find(|(a, app)| a == account && app["id"] == app_id.as_str())
            .map(|(_, app)| Reply::new(app.clone()))
            .ok_or_else(|| not_found("application")),
        "POST" | "PUT" => {
            let previous = if op.starts_with("PUT") {
                Some(
                    store
                        .access_apps
                        .iter()
                        .find(|(a, app)| a == account && app["id"] == app_id.as_str())
                        .map(|(_, app)| app.clone())
                        .ok_or_else(|| not_found("application"))?,
                )
            } else {
                None
            };
            let id = previous
                .as_ref()
                .and_then(|p| p["id"].as_str().map(str::to_owned))
                .unwrap_or_else(new_uuid);
            let app = app_object(store, account, &id, call.body(), previous.as_ref())?;
            let new_domains = domains_of(&app);
            let clash = store.access_apps.iter().any(|(a, other)| {
                a == account
                    && other["id"] != id.as_str()
                    && domains_of(other).iter().any(|d| new_domains.contains(d))
            });
            if clash {
                return Err(ApiError::conflict(
                    12132,
                    "access.api.error.conflict: an application with this domain already exists",
                ));
            }
            store.access_apps.retain(|(_, a)| a["id"] != id.as_str());
            store.access_apps.push((account.to_owned(), app.clone()));
            Ok(Reply::new(app))
        }
        "DELETE" => {
            let before = store.access_apps.len();
            store
                .access_apps
                .retain(|(a, app)| !(a == account && app["id"] == app_id.as_str()));
            if before == store.access_apps.len() {
                return Err(not_found("application"));
            }
            Ok(Reply::new(json!({"id": app_id})))
        }
        _ => Err(not_emulated(op)),
    }
}

fn token_view(token: &Value) -> Value {
    let mut token = token.clone();
    if let Some(map) = token.as_object_mut() {
        map.remove("client_secret");
    }
    token
}

fn service_tokens(store: &mut Store, call: &Call, account: &str) -> ApiResult {
    let op = call.op_id.as_str();
    let token_id = call.param("service_token_id").to_owned();
    let find = |store: &Store| {
        store
            .service_tokens
            .iter()
            .position(|(a, t, _)| a == account && t["id"] == token_id.as_str())
            .ok_or_else(|| not_found("service token"))
    };
    match op.split(' ').next().unwrap_or_default() {
        "GET" if token_id.is_empty() => {
            let items: Vec<Value> = store
                .service_tokens
                .iter()
                .filter(|(a, _, _)| a == account)
                .map(|(_, t, _)| t)
                .filter(|t| call.query("name").is_none_or(|n| t["name"] == n))
                .filter(|t| {
                    call.query("search")
                        .is_none_or(|s| t["name"].as_str().unwrap_or_default().contains(s))
                })
                .map(token_view)
                .collect();
            Ok(call.paginate(items, 1000))
        }
        "GET" => {
            let index = find(store)?;
            Ok(Reply::new(token_view(&store.service_tokens[index].1)))
        }
        "POST" => {
            let body = call.body();
            // 64 hex digits (256 random bits), as Cloudflare's secrets look.
            let secret = format!("{}{}", new_id(), new_id());
            let stamp = now();
            let duration = body["duration"].as_str().unwrap_or("8760h").to_owned();
            let token = json!({
                "id": new_uuid(),
                "name": body["name"],
                "client_id": format!("{}.access", new_id()),
                "duration": duration,
                "expires_at": expiry(&duration),
                "created_at": stamp,
                "updated_at": stamp,
                "client_secret_version": body.get("client_secret_version").cloned().unwrap_or(json!(1)),
            });
            store.service_tokens.push((
                account.to_owned(),
                token.clone(),
                sha256_hex(secret.as_bytes()),
            ));
            let mut shown = token;
            shown["client_secret"] = json!(secret);
            Ok(Reply::new(shown))
        }
        "PUT" => {
            let index = find(store)?;
            let token = &mut store.service_tokens[index].1;
            for key in [
                "name",
                "duration",
                "client_secret_version",
                "previous_client_secret_expires_at",
            ] {
                if let Some(value) = call.body().get(key) {
                    token[key] = value.clone();
                }
            }
            if let Some(duration) = call.body()["duration"].as_str() {
                token["expires_at"] = json!(expiry(duration));
            }
            token["updated_at"] = json!(now());
            Ok(Reply::new(token_view(token)))
        }
        "DELETE" => {
            let index = find(store)?;
            let (_, token, _) = store.service_tokens.remove(index);
            Ok(Reply::new(token_view(&token)))
        }
        _ => Err(not_emulated(op)),
    }
}

/// `now + duration` for durations like `8760h` (hours only; else a year).
fn expiry(duration: &str) -> String {
    let hours = duration
        .strip_suffix('h')
        .and_then(|h| h.parse::<i64>().ok())
        .unwrap_or(8760);
    let at = time::OffsetDateTime::now_utc() + time::Duration::hours(hours);
    at.format(&time::format_description::well_known::Rfc3339)
        .expect("timestamp formats")
}

/// Apps whose domain or destinations cover `hostname` + `path`.
pub(super) fn apps_covering(store: &Store, hostname: &str, path: &str) -> Vec<Value> {
    let target = format!("{}{}", hostname.to_ascii_lowercase(), path);
    store
        .access_apps
        .iter()
        .map(|(_, app)| app)
        .filter(|app| {
            domains_of(app).iter().any(|domain| {
                let domain = domain.trim_end_matches('*').trim_end_matches('/');
                match domain.strip_prefix("*.") {
                    Some(suffix) => hostname.ends_with(&format!(".{suffix}")),
                    None => {
                        target == domain
                            || target.starts_with(&format!("{domain}/"))
                            || (!domain.contains('/') && hostname == domain)
                    }
                }
            })
        })
        .cloned()
        .collect()
}
