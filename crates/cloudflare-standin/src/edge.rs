//! Edge emulation for health checks. A request whose `Host` is a hostname
//! the stand-in knows (Workers custom domain, Workers route pattern, Pages
//! custom domain or `<project>.pages.dev`), or whose path is
//! `/__edge/{hostname}/{path}`, is answered as that hostname's deployment
//! would:
//! - Access first: if an Access app covers the hostname (and path), the
//!   request needs `CF-Access-Client-Id`/`CF-Access-Client-Secret` of a
//!   service token that one of the app's policies lets in (`allow` or
//!   `non_identity` with a `service_token` rule naming it or an
//!   `any_valid_service_token` rule; a `bypass` policy for `everyone` needs
//!   nothing). Without credentials: 302 to the team's login page; with
//!   credentials that are not let in: 403.
//! - Then `200 {"status":"ready", ...}` naming the serving Worker version or
//!   Pages deployment, or 503 `{"status":"unhealthy"}` when a test marked
//!   that version (or the hostname) unhealthy, 503 `{"status":"no
//!   deployment"}` when nothing is deployed (a Worker with no deployment,
//!   a Pages project with no production deployment). A Worker answers as
//!   its current version: the newest version (highest number) of its
//!   newest deployment, as the deploy tool reads it, so a gradual
//!   deployment is checked through its new version.
//!
//! By `Host` header, an IP literal or `localhost` is the stand-in itself
//! (API and control calls), never an edge hostname.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::resources::EdgeTarget;
use crate::{json_response, Shared};

pub(crate) fn handle(shared: &Shared, path: &str, headers: &HeaderMap) -> Option<Response> {
    let via_prefix = path.starts_with("/__edge/");
    let (hostname, path) = match path.strip_prefix("/__edge/") {
        Some(rest) => {
            let (host, rest) = rest.split_once('/').unwrap_or((rest, ""));
            (host.to_ascii_lowercase(), format!("/{rest}"))
        }
        None => {
            let host = host_name(headers.get(header::HOST)?.to_str().ok()?);
            // API and control calls go to the stand-in's own address: an IP
            // literal or localhost is never an edge hostname, so they are
            // answered without taking the store lock.
            if host.parse::<std::net::IpAddr>().is_ok() || host.eq_ignore_ascii_case("localhost") {
                return None;
            }
            (host.to_ascii_lowercase(), path.to_owned())
        }
    };
    let store = shared.store();
    let Some(target) = store.edge_target(&hostname) else {
        // By Host header, an unknown name (127.0.0.1, localhost, ...) is
        // a call for the API or the control API.
        return via_prefix.then(|| {
            json_response(
                StatusCode::NOT_FOUND,
                &json!({"status": "unknown host", "hostname": hostname}),
            )
        });
    };
    let apps = store.access_apps_for(&hostname, &path);
    if !apps.is_empty() {
        let client_id = header_text(headers, "cf-access-client-id");
        let client_secret = header_text(headers, "cf-access-client-secret");
        let token_id = match (&client_id, &client_secret) {
            (Some(id), Some(secret)) => store.service_token_id(id, secret),
            _ => None,
        };
        let admitted = apps.iter().any(|app| admits(app, token_id.as_deref()));
        if !admitted {
            if client_id.is_none() {
                let mut response = StatusCode::FOUND.into_response();
                let location = format!(
                    "https://team.cloudflareaccess.com/cdn-cgi/access/login/{hostname}?redirect_url={}",
                    url_encode(&path)
                );
                if let Ok(value) = HeaderValue::from_str(&location) {
                    response.headers_mut().insert(header::LOCATION, value);
                }
                return Some(response);
            }
            return Some(
                (
                    StatusCode::FORBIDDEN,
                    "Forbidden. You don't have permission to view this.\n",
                )
                    .into_response(),
            );
        }
    }
    let host_unhealthy = store.unhealthy_hosts.contains(&hostname);
    let response = match target {
        EdgeTarget::Worker(script) => match store.serving_version(&script) {
            None => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"status": "no deployment", "script": script}),
            ),
            Some(version) => {
                let unhealthy = host_unhealthy || store.unhealthy_versions.contains(&version);
                let status = if unhealthy { "unhealthy" } else { "ready" };
                json_response(
                    if unhealthy {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::OK
                    },
                    &json!({"status": status, "script": script, "version_id": version, "path": path}),
                )
            }
        },
        EdgeTarget::Pages(project) => {
            let deployment = store
                .pages_project(&project)
                .map(|p| p["canonical_deployment"]["id"].clone())
                .unwrap_or(Value::Null);
            if deployment.is_null() {
                json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"status": "no deployment", "project": project}),
                )
            } else {
                let status = if host_unhealthy { "unhealthy" } else { "ready" };
                json_response(
                    if host_unhealthy {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::OK
                    },
                    &json!({"status": status, "project": project, "deployment_id": deployment, "path": path}),
                )
            }
        }
    };
    Some(response)
}

/// The host of a `Host` header value, without the port (and without the
/// brackets of an IPv6 literal).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map(|(h, _)| h).unwrap_or(rest);
    }
    host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Whether one of the app's policies lets this service token (or anyone) in.
fn admits(app: &Value, token_id: Option<&str>) -> bool {
    app["policies"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|policy| {
            let include = policy["include"].as_array().cloned().unwrap_or_default();
            match policy["decision"].as_str() {
                Some("bypass") => include.iter().any(|rule| rule.get("everyone").is_some()),
                Some("allow") | Some("non_identity") => token_id.is_some_and(|id| {
                    include.iter().any(|rule| {
                        rule.get("any_valid_service_token").is_some()
                            || rule["service_token"]["token_id"] == id
                    })
                }),
                _ => false,
            }
        })
}
