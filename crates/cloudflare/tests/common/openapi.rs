//! Validates requests the client sent against the request schemas of
//! Cloudflare's published OpenAPI document (the subset the stand-in uses),
//! so field names, types and required fields are checked at test time.
//!
//! A small validator for the OpenAPI 3.0 keywords the subset uses: `$ref`,
//! `type`, `nullable`, `enum`, `required`, `properties`,
//! `additionalProperties`, `items`, `allOf`/`anyOf`/`oneOf`, length and
//! range bounds, common formats. Required means required, even for
//! `readOnly` fields, except for the listed quirks (as in the stand-in);
//! sending a `readOnly` field is flagged. Fields no schema declares are
//! flagged too (stricter than JSON Schema: they are likely misspellings).
//! Multipart bodies: each JSON part is checked against its property schema,
//! and required parts must be present; file parts are free-form.

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;

use super::Recorded;

/// Request-schema quirks of the published document, by operation: fields
/// it marks required although Cloudflare assigns or computes them (its own
/// SDK omits them). Only exactly these may be missing; nothing else is
/// relaxed. The stand-in allows the same list.
const QUIRKS: &[(&str, &str, &str)] = &[
    ("POST", "/zones/{zone_id}/workers/routes", "id"),
    ("PUT", "/zones/{zone_id}/workers/routes/{route_id}", "id"),
    ("PUT", "/accounts/{account_id}/workers/domains", "id"),
    ("PUT", "/accounts/{account_id}/workers/domains", "cert_id"),
    ("PUT", "/accounts/{account_id}/workers/domains", "zone_id"),
    ("PUT", "/accounts/{account_id}/workers/domains", "zone_name"),
    (
        "POST",
        "/accounts/{account_id}/workers/scripts/{script_name}/deployments",
        "id",
    ),
    (
        "POST",
        "/accounts/{account_id}/workers/scripts/{script_name}/deployments",
        "source",
    ),
    (
        "POST",
        "/accounts/{account_id}/workers/scripts/{script_name}/deployments",
        "created_on",
    ),
];

pub struct Spec {
    doc: Value,
}

fn candidates() -> Vec<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    vec![
        manifest.join("../cloudflare-standin/openapi/cloudflare-api-subset.json"),
        PathBuf::from("/work/shared/cloudflare-api/openapi-subset.json"),
        manifest.join("../../../shared/cloudflare-api/openapi-subset.json"),
    ]
}

/// The spec, or `None` (with a notice) when no copy is on this machine.
pub fn spec() -> Option<&'static Spec> {
    static SPEC: OnceLock<Option<Spec>> = OnceLock::new();
    SPEC.get_or_init(|| {
        for path in candidates() {
            if let Ok(text) = std::fs::read_to_string(&path) {
                let doc = serde_json::from_str(&text).expect("the OpenAPI file is JSON");
                return Some(Spec { doc });
            }
        }
        eprintln!(
            "NOTICE: no Cloudflare OpenAPI subset found (looked in {:?}); schema checks skipped",
            candidates()
        );
        None
    })
    .as_ref()
}

/// Checks a recorded request against its operation; panics with every
/// problem found. Does nothing when the spec is absent.
pub fn check(request: &Recorded) {
    let Some(spec) = spec() else { return };
    let problems = spec.problems(request);
    assert!(
        problems.is_empty(),
        "{} {} does not match the OpenAPI schema:\n  {}",
        request.method,
        request.path,
        problems.join("\n  ")
    );
}

impl Spec {
    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        let mut schema = schema;
        while let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let pointer = reference.trim_start_matches('#');
            schema = self
                .doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("unresolvable {reference}"));
        }
        schema
    }

    /// The path template and operation matching a concrete request.
    fn operation(&self, method: &str, path: &str) -> Option<(String, &Value)> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut best: Option<(usize, String, &Value)> = None;
        for (template, item) in self.doc["paths"].as_object()? {
            let parts: Vec<&str> = template.trim_start_matches('/').split('/').collect();
            if parts.len() != segments.len() {
                continue;
            }
            let matches = parts
                .iter()
                .zip(&segments)
                .all(|(t, s)| t.starts_with('{') || t == s);
            let Some(op) = item.get(method.to_ascii_lowercase()) else {
                continue;
            };
            if matches {
                let literal = parts.iter().filter(|t| !t.starts_with('{')).count();
                if best.as_ref().is_none_or(|(l, _, _)| literal > *l) {
                    best = Some((literal, template.clone(), op));
                }
            }
        }
        best.map(|(_, t, op)| (t, op))
    }

    pub fn problems(&self, request: &Recorded) -> Vec<String> {
        let Some((template, op)) = self.operation(&request.method, &request.path) else {
            return vec![format!("no operation {} {}", request.method, request.path)];
        };
        let mut problems = Vec::new();

        // Query parameters must be declared, with valid values.
        let params: Vec<&Value> = op
            .get("parameters")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|p| self.resolve(p)).collect())
            .unwrap_or_default();
        for (key, value) in &request.query {
            match params
                .iter()
                .find(|p| p["in"] == "query" && p["name"] == key.as_str())
            {
                None => problems.push(format!("query parameter {key:?} is not declared")),
                Some(param) => {
                    let schema = self.resolve(&param["schema"]);
                    let typed = match schema.get("type").and_then(Value::as_str) {
                        Some("integer") | Some("number") => value
                            .parse::<f64>()
                            .map(Value::from)
                            .unwrap_or(Value::String(value.clone())),
                        Some("boolean") => value
                            .parse::<bool>()
                            .map(Value::Bool)
                            .unwrap_or(Value::String(value.clone())),
                        _ => Value::String(value.clone()),
                    };
                    self.validate(schema, &typed, &format!("?{key}"), &[], &mut problems);
                }
            }
        }

        let quirks: Vec<&str> = QUIRKS
            .iter()
            .filter(|(m, t, _)| *m == request.method && *t == template)
            .map(|(_, _, f)| *f)
            .collect();
        let Some(body) = op.get("requestBody").map(|b| self.resolve(b)) else {
            if !request.body.is_empty() {
                problems.push("a body was sent but the operation takes none".into());
            }
            return problems;
        };
        let content_type = request.header("content-type").unwrap_or("");
        if content_type.starts_with("multipart/form-data") {
            let Some(schema) = body.pointer("/content/multipart~1form-data/schema") else {
                problems.push("multipart body for an operation without one".into());
                return problems;
            };
            let schema = self.resolve(schema);
            let parts = super::parse_multipart(content_type, &request.body);
            for name in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !parts.iter().any(|p| p.name == name) {
                    problems.push(format!("multipart part {name:?} is missing"));
                }
            }
            for part in parts
                .iter()
                .filter(|p| p.content_type.as_deref() == Some("application/json"))
            {
                let Some(property) = schema.pointer(&format!("/properties/{}", part.name)) else {
                    problems.push(format!("JSON part {:?} is not declared", part.name));
                    continue;
                };
                match serde_json::from_slice::<Value>(&part.body) {
                    Ok(value) => {
                        self.validate(property, &value, &part.name, &quirks, &mut problems)
                    }
                    Err(e) => problems.push(format!("part {:?} is not JSON: {e}", part.name)),
                }
            }
        } else if let Some(schema) = body.pointer("/content/application~1json/schema") {
            match serde_json::from_slice::<Value>(&request.body) {
                Ok(value) => {
                    self.validate(self.resolve(schema), &value, "", &quirks, &mut problems)
                }
                Err(e) => problems.push(format!("body is not JSON: {e}")),
            }
        } else {
            problems.push(format!("unexpected content type {content_type:?}"));
        }
        problems
    }

    fn validate(
        &self,
        schema: &Value,
        value: &Value,
        at: &str,
        quirks: &[&str],
        problems: &mut Vec<String>,
    ) {
        self.validate_with(schema, value, at, quirks, &[], problems)
    }

    /// Property names declared by `schema` and its `allOf` branches.
    fn declared(&self, schema: &Value, names: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            names.extend(properties.keys().cloned());
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for sub in all {
                self.declared(sub, names);
            }
        }
    }

    /// `inherited`: property names declared by enclosing schemas (of which
    /// this one is an `allOf`/`anyOf` branch), so that unknown-field checks
    /// see the whole object's declaration.
    fn validate_with(
        &self,
        schema: &Value,
        value: &Value,
        at: &str,
        quirks: &[&str],
        inherited: &[String],
        problems: &mut Vec<String>,
    ) {
        let schema = self.resolve(schema);
        let mut known = inherited.to_vec();
        self.declared(schema, &mut known);
        if value.is_null() && schema.get("nullable") == Some(&Value::Bool(true)) {
            return;
        }
        if let Some(expected) = schema.get("type").and_then(Value::as_str) {
            let ok = match expected {
                "string" => value.is_string(),
                "number" => value.is_number(),
                "integer" => value.as_f64().is_some_and(|n| n.fract() == 0.0),
                "boolean" => value.is_boolean(),
                "array" => value.is_array(),
                "object" => value.is_object(),
                _ => true,
            };
            if !ok {
                problems.push(format!("{at}: expected {expected}, got {value}"));
                return;
            }
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array) {
            if !options.contains(value) {
                problems.push(format!("{at}: {value} is not one of {options:?}"));
            }
        }
        if let (Some(s), Some(format)) =
            (value.as_str(), schema.get("format").and_then(Value::as_str))
        {
            if !format_ok(format, s) {
                problems.push(format!("{at}: {s:?} is not a valid {format}"));
            }
        }
        if let Some(s) = value.as_str() {
            let len = s.chars().count() as u64;
            if schema
                .get("maxLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| len > m)
            {
                problems.push(format!("{at}: longer than maxLength"));
            }
            if schema
                .get("minLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| len < m)
            {
                problems.push(format!("{at}: shorter than minLength"));
            }
        }
        if let Some(n) = value.as_f64() {
            if schema
                .get("maximum")
                .and_then(Value::as_f64)
                .is_some_and(|m| n > m)
            {
                problems.push(format!("{at}: {n} above maximum"));
            }
            if schema
                .get("minimum")
                .and_then(Value::as_f64)
                .is_some_and(|m| n < m)
            {
                problems.push(format!("{at}: {n} below minimum"));
            }
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for sub in all {
                self.validate_with(sub, value, at, quirks, &known, problems);
            }
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(alternatives) = schema.get(key).and_then(Value::as_array) {
                let mut reasons = Vec::new();
                let matched = alternatives.iter().any(|sub| {
                    let mut sub_problems = Vec::new();
                    self.validate_with(sub, value, at, quirks, &known, &mut sub_problems);
                    let ok = sub_problems.is_empty();
                    reasons.push(sub_problems);
                    ok
                });
                if !matched {
                    let closest = reasons.into_iter().min_by_key(Vec::len).unwrap_or_default();
                    problems.push(format!(
                        "{at}: matches none of {key} (closest: {})",
                        closest.join("; ")
                    ));
                }
            }
        }
        if let Some(object) = value.as_object() {
            let properties = schema.get("properties").and_then(Value::as_object);
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for name in required.iter().filter_map(Value::as_str) {
                    if !object.contains_key(name) && !quirks.contains(&name) {
                        problems.push(format!("{at}: missing required {name:?}"));
                    }
                }
            }
            for (name, item) in object {
                let path = format!("{at}.{name}");
                match properties.and_then(|p| p.get(name)) {
                    Some(property) => {
                        if self.resolve(property).get("readOnly") == Some(&Value::Bool(true)) {
                            problems.push(format!("{path}: output-only field sent"));
                        }
                        self.validate(property, item, &path, &[], problems);
                    }
                    None => match schema.get("additionalProperties") {
                        Some(extra) if extra.is_object() => {
                            self.validate(extra, item, &path, &[], problems)
                        }
                        // Stricter than JSON Schema on purpose: a field no
                        // branch declares is most likely a misspelling.
                        _ if !known.is_empty()
                            && !known.contains(name)
                            && schema.get("anyOf").is_none()
                            && schema.get("oneOf").is_none() =>
                        {
                            problems.push(format!("{path}: unknown field"))
                        }
                        _ => {}
                    },
                }
            }
        }
        if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
            for (i, item) in array.iter().enumerate() {
                self.validate(items, item, &format!("{at}[{i}]"), &[], problems);
            }
        }
    }
}

fn format_ok(format: &str, s: &str) -> bool {
    match format {
        "uuid" => {
            let groups: Vec<&str> = s.split('-').collect();
            groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
                && groups
                    .iter()
                    .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
        }
        "email" => s
            .split_once('@')
            .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty()),
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        _ => true,
    }
}
