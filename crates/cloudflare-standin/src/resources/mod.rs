//! The stand-in's state and the operations on it. Objects are kept in the
//! shapes the API answers with (serde_json values), next to the few private
//! facts the API never shows (secret values, module hashes, manifests).

mod access;
mod dns;
mod pages;
mod workers;

use std::collections::{BTreeMap, HashMap, HashSet};

use axum::http::StatusCode;
use rand::Rng;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::envelope::{paginate, ApiError, ApiResult, Reply};
use crate::multipart::Part;
use crate::Config;

pub(crate) use pages::wrangler_assets;

/// One validated API call, as the resource code sees it.
pub(crate) struct Call {
    pub op_id: String,
    /// The request path below `/client/v4`, for routing errors.
    pub path: String,
    pub params: HashMap<String, String>,
    pub query: Vec<(String, String)>,
    /// The JSON body, or a multipart body's JSON part.
    pub json: Option<Value>,
    pub parts: Vec<Part>,
    pub default_per_page: Option<u64>,
}

impl Call {
    pub fn param(&self, name: &str) -> &str {
        self.params
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn body(&self) -> &Value {
        static NULL: Value = Value::Null;
        self.json.as_ref().unwrap_or(&NULL)
    }

    /// Pages a list with the operation's `page`/`per_page` (and its default).
    pub fn paginate(&self, items: Vec<Value>, fallback_per_page: u64) -> Reply {
        let page = self.query("page").and_then(|p| p.parse().ok());
        let per_page = self
            .query("per_page")
            .and_then(|p| p.parse().ok())
            .or(self.default_per_page)
            .unwrap_or(fallback_per_page);
        paginate(items, page, per_page)
    }
}

/// 32 lowercase hex digits, the shape of Cloudflare's object ids.
pub(crate) fn new_id() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    hex::encode(bytes)
}

/// A random (version 4) UUID, for versions, deployments and Access objects.
pub(crate) fn new_uuid() -> String {
    let mut bytes: [u8; 16] = rand::rng().random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let h = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Now, RFC 3339 in UTC with microseconds, as Cloudflare writes timestamps.
pub(crate) fn now() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    ))
    .expect("timestamp formats")
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The answer for an operation of the document the stand-in does not
/// emulate: 501 with code 7000.
pub(crate) fn not_emulated(op: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        7000,
        format!("operation {op} is in the schema but not emulated by the stand-in"),
    )
}

/// Everything the stand-in holds.
pub(crate) struct Store {
    pub accounts: Vec<Value>,
    pub zones: Vec<Value>,
    pub dns: BTreeMap<String, Vec<Value>>,
    pub routes: BTreeMap<String, Vec<Value>>,
    pub scripts: BTreeMap<(String, String), workers::Script>,
    pub worker_domains: Vec<(String, Value)>,
    pub pages: BTreeMap<(String, String), pages::Project>,
    pub pages_assets: HashSet<String>,
    pub upload_tokens: HashMap<String, (String, String)>,
    pub access_apps: Vec<(String, Value)>,
    pub access_policies: Vec<(String, Value)>,
    pub service_tokens: Vec<(String, Value, String)>,
    pub unhealthy_versions: HashSet<String>,
    pub unhealthy_hosts: HashSet<String>,
}

impl Store {
    pub fn new(config: &Config) -> Store {
        let created = now();
        let accounts = config
            .accounts
            .iter()
            .map(|a| json!({"id": a.id, "name": a.name}))
            .collect();
        let zones = config
            .zones
            .iter()
            .map(|z| {
                let account_name = config
                    .accounts
                    .iter()
                    .find(|a| a.id == z.account_id)
                    .map(|a| a.name.clone())
                    .unwrap_or_default();
                zone_object(
                    &z.id,
                    &z.name,
                    &z.account_id,
                    &account_name,
                    "active",
                    &created,
                )
            })
            .collect();
        Store {
            accounts,
            zones,
            dns: BTreeMap::new(),
            routes: BTreeMap::new(),
            scripts: BTreeMap::new(),
            worker_domains: Vec::new(),
            pages: BTreeMap::new(),
            pages_assets: HashSet::new(),
            upload_tokens: HashMap::new(),
            access_apps: Vec::new(),
            access_policies: Vec::new(),
            service_tokens: Vec::new(),
            unhealthy_versions: HashSet::new(),
            unhealthy_hosts: HashSet::new(),
        }
    }

    /// Runs one operation, by operation id.
    pub fn dispatch(&mut self, config: &Config, call: &Call) -> ApiResult {
        let op = call.op_id.as_str();
        // An account the stand-in lacks is one the token cannot reach:
        // Cloudflare does not route the request at all.
        if let Some(account) = call.params.get("account_id") {
            self.account(account)
                .map_err(|_| ApiError::unroutable(&call.path))?;
        }
        if let Some(kind) = call.params.get("accounts_or_zones") {
            if kind != "accounts" {
                return Err(ApiError::bad_request(
                    12000,
                    "zone-level Access is not supported by the stand-in",
                ));
            }
            self.account(call.param("account_or_zone_id"))
                .map_err(|_| ApiError::unroutable(&call.path))?;
        }
        if op != "zones-0-delete" && op != "zones-0-get" && op != "zones-0-patch" {
            if let Some(zone) = call.params.get("zone_id") {
                self.zone(zone)?;
            }
        }
        match op {
            "user-api-tokens-verify-token" | "account-api-tokens-verify-token" => {
                let mut reply = Reply::new(json!({
                    "id": sha256_hex(config.token.as_bytes())[..32].to_owned(),
                    "status": "active",
                }));
                reply.messages = vec![json!({
                    "code": 10000,
                    "message": "This API Token is valid and active",
                    "type": null,
                })];
                Ok(reply)
            }
            "zones-get" => self.list_zones(call),
            "zones-0-get" => Ok(Reply::new(self.zone(call.param("zone_id"))?.clone())),
            "zones-post" => self.create_zone(call),
            "zones-0-patch" => self.patch_zone(call),
            "zones-0-delete" => {
                let id = call.param("zone_id").to_owned();
                self.zone(&id)?;
                self.zones.retain(|z| z["id"] != id.as_str());
                self.dns.remove(&id);
                self.routes.remove(&id);
                Ok(Reply::new(json!({"id": id})))
            }
            _ if op.starts_with("dns-records") => dns::dispatch(self, call),
            _ if op.starts_with("worker") => workers::dispatch(self, call),
            _ if op.starts_with("pages") => pages::dispatch(self, call),
            _ if op.starts_with("access")
                || op.contains("/access/apps")
                || op.contains("/access/service_tokens") =>
            {
                access::dispatch(self, call)
            }
            _ => Err(not_emulated(op)),
        }
    }

    pub fn account(&self, id: &str) -> Result<&Value, ApiError> {
        self.accounts
            .iter()
            .find(|a| a["id"] == id)
            .ok_or_else(|| ApiError::new(StatusCode::FORBIDDEN, 10000, "Authentication error"))
    }

    pub fn zone(&self, id: &str) -> Result<&Value, ApiError> {
        self.zones.iter().find(|z| z["id"] == id).ok_or_else(|| {
            ApiError::bad_request(
                7003,
                format!(
                    "Could not route to /zones/{id}, perhaps your object identifier is invalid?"
                ),
            )
        })
    }

    /// The zone whose name is `hostname` or its longest suffix.
    pub fn zone_for_host(&self, hostname: &str) -> Option<&Value> {
        self.zones
            .iter()
            .filter(|z| {
                let name = z["name"].as_str().unwrap_or_default();
                hostname == name || hostname.ends_with(&format!(".{name}"))
            })
            .max_by_key(|z| z["name"].as_str().unwrap_or_default().len())
    }

    fn list_zones(&self, call: &Call) -> ApiResult {
        let items: Vec<Value> = self
            .zones
            .iter()
            .filter(|z| call.query("name").is_none_or(|n| z["name"] == n))
            .filter(|z| {
                call.query("account.id")
                    .is_none_or(|a| z["account"]["id"] == a)
            })
            .filter(|z| {
                call.query("account.name")
                    .is_none_or(|a| z["account"]["name"] == a)
            })
            .filter(|z| call.query("status").is_none_or(|s| z["status"] == s))
            .cloned()
            .collect();
        Ok(call.paginate(items, 20))
    }

    fn create_zone(&mut self, call: &Call) -> ApiResult {
        let body = call.body();
        let name = body["name"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let account_id = body["account"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let account_name = self.account(&account_id)?["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if self.zones.iter().any(|z| z["name"] == name.as_str()) {
            return Err(ApiError::bad_request(
                1061,
                format!("{name} already exists"),
            ));
        }
        let zone = zone_object(
            &new_id(),
            &name,
            &account_id,
            &account_name,
            "pending",
            &now(),
        );
        self.zones.push(zone.clone());
        Ok(Reply::new(zone))
    }

    fn patch_zone(&mut self, call: &Call) -> ApiResult {
        let id = call.param("zone_id").to_owned();
        self.zone(&id)?;
        let zone = self
            .zones
            .iter_mut()
            .find(|z| z["id"] == id.as_str())
            .expect("checked");
        for key in ["paused", "type", "vanity_name_servers"] {
            if let Some(value) = call.body().get(key) {
                zone[key] = value.clone();
            }
        }
        zone["modified_on"] = json!(now());
        Ok(Reply::new(zone.clone()))
    }

    // ---- readers for tests and the control API ----

    pub fn snapshot(&self) -> Value {
        let scripts: Vec<Value> = self
            .scripts
            .values()
            .map(|s| {
                json!({
                    "name": s.name,
                    "script": s.summary(),
                    "versions": s.versions.iter().map(|v| v.detail()).collect::<Vec<_>>(),
                    "deployments": s.deployments,
                    "settings": s.settings,
                })
            })
            .collect();
        let pages: Vec<Value> = self
            .pages
            .values()
            .map(|p| {
                json!({
                    "project": p.view(),
                    "deployments": p.deployments.iter().map(|d| &d.view).collect::<Vec<_>>(),
                    "manifests": p.deployments.iter().map(|d| (d.view["id"].as_str().unwrap_or_default().to_owned(), d.manifest.clone())).collect::<BTreeMap<_, _>>(),
                    "domains": p.domains,
                })
            })
            .collect();
        json!({
            "accounts": self.accounts,
            "zones": self.zones,
            "dns_records": self.dns,
            "worker_routes": self.routes,
            "worker_scripts": scripts,
            "worker_domains": self.worker_domains.iter().map(|(_, d)| d).collect::<Vec<_>>(),
            "pages_projects": pages,
            "access": self.access_snapshot(),
            "unhealthy_versions": self.unhealthy_versions,
            "unhealthy_hosts": self.unhealthy_hosts,
        })
    }

    pub fn dns_records(&self, zone_id: &str) -> Vec<Value> {
        self.dns.get(zone_id).cloned().unwrap_or_default()
    }

    fn script_by_name(&self, name: &str) -> Option<&workers::Script> {
        self.scripts.values().find(|s| s.name == name)
    }

    pub fn current_deployment(&self, script: &str) -> Option<Value> {
        self.script_by_name(script)?.deployments.first().cloned()
    }

    pub fn version_detail(&self, script: &str, version_id: &str) -> Option<Value> {
        self.script_by_name(script)?
            .versions
            .iter()
            .find(|v| v.id == version_id)
            .map(|v| v.detail())
    }

    pub fn secret_value(&self, script: &str, name: &str) -> Option<String> {
        let version = self.script_by_name(script)?.base_version()?;
        version
            .bindings
            .iter()
            .find(|b| b["name"] == name && b["type"] == "secret_text")
            .and_then(|b| b["text"].as_str().map(str::to_owned))
    }

    pub fn schedules(&self, script: &str) -> Vec<String> {
        self.script_by_name(script)
            .map(|s| {
                s.schedules
                    .iter()
                    .filter_map(|s| s["cron"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn pages_project(&self, name: &str) -> Option<Value> {
        self.pages
            .values()
            .find(|p| p.name == name)
            .map(|p| p.view())
    }

    pub fn pages_env_var(&self, project: &str, environment: &str, name: &str) -> Option<String> {
        let project = self.pages.values().find(|p| p.name == project)?;
        project.configs[environment]["env_vars"][name]["value"]
            .as_str()
            .map(str::to_owned)
    }

    pub fn pages_manifest(&self, project: &str, deployment_id: &str) -> Option<Value> {
        let project = self.pages.values().find(|p| p.name == project)?;
        project
            .deployments
            .iter()
            .find(|d| d.view["id"] == deployment_id)
            .map(|d| d.manifest.clone())
    }

    pub fn access_snapshot(&self) -> Value {
        json!({
            "apps": self.access_apps.iter().map(|(_, a)| a).collect::<Vec<_>>(),
            "policies": self.access_policies.iter().map(|(_, p)| p).collect::<Vec<_>>(),
            "service_tokens": self.service_tokens.iter().map(|(_, t, _)| t).collect::<Vec<_>>(),
        })
    }

    pub fn set_version_health(&mut self, version_id: &str, healthy: bool) {
        if healthy {
            self.unhealthy_versions.remove(version_id);
        } else {
            self.unhealthy_versions.insert(version_id.to_owned());
        }
    }

    pub fn set_host_health(&mut self, hostname: &str, healthy: bool) {
        let hostname = hostname.to_ascii_lowercase();
        if healthy {
            self.unhealthy_hosts.remove(&hostname);
        } else {
            self.unhealthy_hosts.insert(hostname);
        }
    }

    /// What serves `hostname` at the edge, if the stand-in knows it.
    pub fn edge_target(&self, hostname: &str) -> Option<EdgeTarget> {
        let hostname = hostname.to_ascii_lowercase();
        if let Some((_, domain)) = self
            .worker_domains
            .iter()
            .find(|(_, d)| d["hostname"] == hostname.as_str())
        {
            let script = domain["service"].as_str().unwrap_or_default();
            return Some(EdgeTarget::Worker(script.to_owned()));
        }
        for routes in self.routes.values() {
            for route in routes {
                let pattern = route["pattern"].as_str().unwrap_or_default();
                let host = pattern.split('/').next().unwrap_or_default();
                let matches = match host.strip_prefix("*.") {
                    Some(suffix) => hostname.ends_with(&format!(".{suffix}")),
                    None => match host.strip_prefix('*') {
                        Some(suffix) => hostname.ends_with(suffix),
                        None => host == hostname,
                    },
                };
                if matches {
                    if let Some(script) = route["script"].as_str() {
                        return Some(EdgeTarget::Worker(script.to_owned()));
                    }
                }
            }
        }
        for project in self.pages.values() {
            let subdomain = format!("{}.pages.dev", project.name);
            if project
                .domains
                .iter()
                .any(|d| d["name"] == hostname.as_str())
                || hostname == subdomain
                || hostname.ends_with(&format!(".{subdomain}"))
            {
                return Some(EdgeTarget::Pages(project.name.clone()));
            }
        }
        None
    }

    /// The Worker version the edge emulation answers as: the script's
    /// current version (see `Script::current_version`).
    pub fn serving_version(&self, script: &str) -> Option<String> {
        let version = self.script_by_name(script)?.current_version()?;
        Some(version.id.clone())
    }

    /// Access apps covering `hostname` and the path, with their policies resolved.
    pub fn access_apps_for(&self, hostname: &str, path: &str) -> Vec<Value> {
        access::apps_covering(self, hostname, path)
    }

    /// Whether a service token's credentials are valid; returns its id.
    pub fn service_token_id(&self, client_id: &str, client_secret: &str) -> Option<String> {
        let hash = sha256_hex(client_secret.as_bytes());
        self.service_tokens
            .iter()
            .find(|(_, t, secret)| t["client_id"] == client_id && *secret == hash)
            .and_then(|(_, t, _)| t["id"].as_str().map(str::to_owned))
    }
}

/// What answers for a hostname at the edge.
pub(crate) enum EdgeTarget {
    Worker(String),
    Pages(String),
}

fn zone_object(
    id: &str,
    name: &str,
    account_id: &str,
    account_name: &str,
    status: &str,
    created: &str,
) -> Value {
    json!({
        "id": id,
        "name": name,
        "account": {"id": account_id, "name": account_name},
        "status": status,
        "type": "full",
        "paused": false,
        "development_mode": 0,
        "name_servers": ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"],
        "original_name_servers": null,
        "original_registrar": null,
        "original_dnshost": null,
        "vanity_name_servers": [],
        "created_on": created,
        "modified_on": created,
        "activated_on": created,
        "meta": {
            "cdn_only": false,
            "custom_certificate_quota": 0,
            "dns_only": false,
            "foundation_dns": false,
            "page_rule_quota": 3,
            "phishing_detected": false,
            "step": 2,
        },
        "owner": {"id": account_id, "name": account_name, "type": "organization"},
        "permissions": [],
        "plan": {
            "id": "0feeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
            "name": "Free Website",
            "price": 0,
            "currency": "USD",
            "frequency": "",
            "is_subscribed": false,
            "can_subscribe": false,
            "legacy_id": "free",
            "legacy_discount": false,
            "externally_managed": false,
        },
    })
}
