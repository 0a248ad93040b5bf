//! Cloudflare's published OpenAPI 3.0.3 document (the vendored subset) as a
//! request validator: finds the operation for a method and path, checks query
//! parameters and JSON bodies (or the JSON part of a multipart body) against
//! the operation's schemas, and checks the stand-in's own answers against the
//! response schemas.
//!
//! OpenAPI 3.0 schema objects are close to JSON Schema draft 4 (boolean
//! `exclusiveMinimum`, siblings of `$ref` ignored), so the document is
//! validated with `jsonschema` in draft-4 mode after one conversion:
//! `nullable: true` becomes a `null` alternative. `readOnly`, `writeOnly`,
//! `example`, `discriminator` and `x-*` are annotations the validator ignores.
//! Draft 4 knows no `format: uuid` (the validator checks it from draft
//! 2019-09 on and passes formats it does not know), so `uuid` is registered
//! here; `binary` (multipart parts) stays an annotation.
//!
//! Path parameters are checked against their schemas too (identifiers of at
//! most 32 characters, UUIDs), and each multipart part's `Content-Type`
//! against the operation's `encoding`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, Validator};
use serde_json::{json, Map, Value};

/// The vendored document, byte for byte as cut from Cloudflare's schema.
pub const DOCUMENT: &str = include_str!("../openapi/cloudflare-api-subset.json");

/// Operations the deploy tool uses that the vendored cut lacks (the Cron
/// Triggers of a script), with the components they add; merged into
/// [`DOCUMENT`] on load. See `openapi/README.md` for where each part comes
/// from.
pub const SUPPLEMENT: &str = include_str!("../openapi/cloudflare-api-supplement.json");

/// Fields the published document marks `required` in a *request* schema
/// although they are output-only (assigned by Cloudflare; Cloudflare's own
/// SDK omits them). Errors for exactly these (operation, property) pairs are
/// ignored; nothing else about those schemas is relaxed.
const REQUIRED_OUTPUT_ONLY: &[(&str, &str)] = &[
    ("worker-routes-create-route", "id"),
    ("worker-routes-update-route", "id"),
    ("workers.domains.update", "id"),
    ("workers.domains.update", "cert_id"),
    // Computed from `hostname` when left out.
    ("workers.domains.update", "zone_id"),
    ("workers.domains.update", "zone_name"),
    ("worker-deployments-create-deployment", "id"),
    ("worker-deployments-create-deployment", "source"),
    ("worker-deployments-create-deployment", "created_on"),
];

/// Path parameters whose published schema is narrower than the ids
/// Cloudflare hands out, so a request naming a real one must not be refused:
/// (operation, parameter, why). Only a `maxLength` error is let through;
/// the type and every other constraint still hold.
const PATH_PARAM_QUIRKS: &[(&str, &str, &str)] = &[
    (
        "pages-deployment-get-deployment-info",
        "deployment_id",
        "Pages deployment ids are UUIDs (36 characters, as in wrangler's own tests; the document's pages_deployment.id example is dashed too), the shared identifier schema says maxLength 32",
    ),
    (
        "pages-deployment-delete-deployment",
        "deployment_id",
        "as above",
    ),
    (
        "pages-deployment-rollback-deployment",
        "deployment_id",
        "as above",
    ),
];

/// Parts whose `Content-Type` Cloudflare accepts beyond the document's
/// `encoding`: (operation, part, type, why).
const ENCODING_QUIRKS: &[(&str, &str, &str, &str)] = &[
    (
        "pages-deployment-create-deployment",
        "_headers",
        "application/octet-stream",
        "wrangler pages deploy appends its files as File objects without a type, which FormData labels application/octet-stream",
    ),
    (
        "pages-deployment-create-deployment",
        "_redirects",
        "application/octet-stream",
        "as above",
    ),
    (
        "pages-deployment-create-deployment",
        "_routes.json",
        "application/octet-stream",
        "as above",
    ),
    (
        "pages-deployment-create-deployment",
        "_worker.bundle",
        "application/octet-stream",
        "as above",
    ),
    (
        "pages-deployment-create-deployment",
        "functions-filepath-routing-config.json",
        "application/octet-stream",
        "as above",
    ),
];

/// Places where Cloudflare's real answers differ from the document's
/// response schema, so the self-check must not flag the stand-in for
/// answering like Cloudflare: (operation, instance path with `*` for any
/// array index, why).
const RESPONSE_QUIRKS: &[(&str, &str, &str)] = &[
    (
        "pages-project-get-project",
        "/result/latest_deployment",
        "null until the first deployment",
    ),
    (
        "pages-project-get-project",
        "/result/canonical_deployment",
        "null until the first production deployment",
    ),
    (
        "pages-project-create-project",
        "/result/latest_deployment",
        "null until the first deployment",
    ),
    (
        "pages-project-create-project",
        "/result/canonical_deployment",
        "null until the first production deployment",
    ),
    (
        "pages-project-update-project",
        "/result/latest_deployment",
        "null until the first deployment",
    ),
    (
        "pages-project-update-project",
        "/result/canonical_deployment",
        "null until the first production deployment",
    ),
    (
        "pages-project-get-projects",
        "/result/*/latest_deployment",
        "null until the first deployment",
    ),
    (
        "pages-project-get-projects",
        "/result/*/canonical_deployment",
        "null until the first production deployment",
    ),
];

/// Cloudflare answers DNS records without `data` for types that have none
/// and with `"comment": null` when there is no comment; the document
/// requires both (`comment` as a string). The self-check fills them in on a
/// copy, so every other property of a record is still checked.
fn normalize_dns_answer(op_id: &str, body: &Value) -> Value {
    fn fill(record: &mut Value) {
        if let Some(map) = record.as_object_mut() {
            map.entry("data").or_insert_with(|| json!({}));
            if map.get("comment").is_some_and(Value::is_null) {
                map.insert("comment".into(), json!(""));
            }
        }
    }
    let mut body = body.clone();
    if !op_id.starts_with("dns-records") {
        return body;
    }
    match &mut body["result"] {
        Value::Array(records) => records.iter_mut().for_each(fill),
        Value::Object(map) if map.contains_key("posts") => {
            for list in map.values_mut() {
                if let Value::Array(records) = list {
                    records.iter_mut().for_each(fill);
                }
            }
        }
        record @ Value::Object(_) => fill(record),
        _ => {}
    }
    body
}

/// Secret bindings are answered without their write-only `text`, which the
/// document marks required; the self-check fills it in on a copy.
fn fill_write_only_secret_text(node: &mut Value) {
    match node {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("secret_text") {
                map.entry("text").or_insert_with(|| json!(""));
            }
            map.values_mut().for_each(fill_write_only_secret_text);
        }
        Value::Array(items) => items.iter_mut().for_each(fill_write_only_secret_text),
        _ => {}
    }
}

fn path_matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    pattern.len() == path.len()
        && pattern
            .iter()
            .zip(&path)
            .all(|(p, s)| *p == *s || (*p == "*" && s.parse::<usize>().is_ok()))
}

/// How an operation's request body is encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyKind {
    /// No body is expected.
    None,
    /// `application/json`.
    Json,
    /// `multipart/form-data`; the named part holds JSON (`metadata` for script
    /// uploads, `settings` for the settings PATCH, none for Pages deployments).
    Multipart { json_part: Option<String> },
}

/// One operation of the document.
#[derive(Debug)]
pub struct Operation {
    /// `operationId`, or `METHOD template` where the document has none
    /// (the Access apps and service tokens operations).
    pub id: String,
    pub method: String,
    pub template: String,
    segments: Vec<Segment>,
    /// Query parameter name → JSON pointer to its schema.
    query: Vec<(String, String, Option<Value>)>,
    /// Path parameter name → JSON pointer to its schema, where it has one.
    path: Vec<(String, String, Option<Value>)>,
    pub body: BodyKind,
    /// The `encoding` of a multipart body, by part.
    part_types: Vec<PartTypes>,
    /// JSON pointer of the request body schema (the JSON part's schema for multipart).
    body_schema: Option<String>,
    body_required: bool,
    /// Status code → JSON pointer of the success response schema.
    responses: Vec<(u16, String)>,
}

/// The content types the document allows for a multipart property.
#[derive(Debug)]
struct PartTypes {
    property: String,
    /// Media types (`type/subtype`, lowercase; `type/*` and `*/*` match
    /// any subtype or type).
    types: Vec<String>,
    /// An array of binary strings (`files` of Worker uploads): the parts it
    /// stands for are named by their file names, not by the property.
    collection: bool,
}

#[derive(Debug)]
enum Segment {
    Literal(String),
    Param(String),
}

/// The parsed document with lazily compiled validators.
pub struct Spec {
    /// The document as published, for [`Spec::strict_problems`] (which reads
    /// `readOnly` beside `$ref`, where the nullable conversion moves things).
    raw: Value,
    converted: Value,
    operations: Vec<Operation>,
    validators: Mutex<HashMap<String, Arc<Validator>>>,
}

/// The process-wide parsed document (parsing 650 kB takes a moment).
pub fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        Spec::parse(DOCUMENT, SUPPLEMENT).expect("vendored OpenAPI document parses")
    })
}

/// A JSON pointer as a URI fragment (braces of path templates escaped).
fn uri_fragment(pointer: &str) -> String {
    pointer.replace('{', "%7B").replace('}', "%7D")
}

fn escape_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

impl Spec {
    /// Parses `text` with the paths and component schemas of `supplement`
    /// added; a supplement that redefines anything already there is refused,
    /// so it can never shadow the published document.
    fn parse(text: &str, supplement: &str) -> anyhow::Result<Spec> {
        let mut raw: Value = serde_json::from_str(text)?;
        let extra: Value = serde_json::from_str(supplement)?;
        for (section, pointer) in [("paths", "/paths"), ("schemas", "/components/schemas")] {
            let target = raw
                .pointer_mut(pointer)
                .and_then(Value::as_object_mut)
                .ok_or_else(|| anyhow::anyhow!("no {section} in the document"))?;
            for (name, value) in extra
                .pointer(pointer)
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                anyhow::ensure!(
                    !target.contains_key(name),
                    "the supplement redefines {section} {name}"
                );
                target.insert(name.clone(), value.clone());
            }
        }
        let mut converted = raw.clone();
        convert_nullable(&mut converted);
        let mut operations = Vec::new();
        let paths = raw["paths"]
            .as_object()
            .ok_or_else(|| anyhow::anyhow!("no paths"))?;
        for (template, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            for (method, op) in item {
                if !["get", "put", "post", "patch", "delete"].contains(&method.as_str()) {
                    continue;
                }
                let base = format!("/paths/{}/{}", escape_pointer(template), method);
                operations.push(Operation::parse(&raw, template, method, op, &base));
            }
        }
        // Most literal segments first, so `/dns_records/batch` wins over
        // `/dns_records/{dns_record_id}`.
        operations.sort_by_key(|op| {
            std::cmp::Reverse(
                op.segments
                    .iter()
                    .filter(|s| matches!(s, Segment::Literal(_)))
                    .count(),
            )
        });
        Ok(Spec {
            raw,
            converted,
            operations,
            validators: Mutex::default(),
        })
    }

    /// All operations in the document.
    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }

    /// The operation for `method` and a path below `/client/v4`, with the
    /// path parameters it binds.
    pub fn find(&self, method: &str, path: &str) -> Option<(&Operation, HashMap<String, String>)> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        self.operations
            .iter()
            .filter(|op| op.method.eq_ignore_ascii_case(method))
            .find_map(|op| op.bind(&parts).map(|params| (op, params)))
    }

    /// The operation with this id.
    pub fn operation(&self, id: &str) -> Option<&Operation> {
        self.operations.iter().find(|op| op.id == id)
    }

    fn validator(&self, pointer: &str) -> Result<Arc<Validator>, String> {
        if let Some(v) = self.validators.lock().unwrap().get(pointer) {
            return Ok(v.clone());
        }
        // The whole document is the root resource so `#/components/...`
        // references resolve; draft 4 ignores the siblings of `$ref`.
        let mut root = self.converted.clone();
        root.as_object_mut().expect("document is an object").insert(
            "$ref".into(),
            Value::String(format!("#{}", uri_fragment(pointer))),
        );
        let validator = jsonschema::options()
            .with_draft(Draft::Draft4)
            .should_validate_formats(true)
            .with_format("uuid", is_uuid)
            .build(&root)
            .map_err(|e| format!("schema at {pointer} does not compile: {e}"))?;
        let validator = Arc::new(validator);
        self.validators
            .lock()
            .unwrap()
            .insert(pointer.to_owned(), validator.clone());
        Ok(validator)
    }

    /// Checks a request value (body, query or path parameter).
    fn check(&self, op_id: &str, pointer: &str, instance: &Value) -> Result<(), String> {
        self.check_with(pointer, instance, |error| {
            !is_allowed_output_only(op_id, error.kind(), error.instance_path())
        })
    }

    /// Checks `instance` against the schema at `pointer`, reporting the
    /// errors `keep` keeps.
    fn check_with(
        &self,
        pointer: &str,
        instance: &Value,
        keep: impl Fn(&jsonschema::ValidationError<'_>) -> bool,
    ) -> Result<(), String> {
        let validator = self.validator(pointer)?;
        let messages: Vec<String> = validator
            .iter_errors(instance)
            .filter(|error| keep(error))
            .map(|error| {
                let at = error.instance_path().to_string();
                if at.is_empty() {
                    error.to_string()
                } else {
                    format!("{at}: {error}")
                }
            })
            .collect();
        if messages.is_empty() {
            Ok(())
        } else {
            Err(messages.join("; "))
        }
    }

    /// Checks query parameters: unknown names and values that do not fit the
    /// parameter's schema are violations.
    pub fn validate_query(&self, op: &Operation, query: &[(String, String)]) -> Result<(), String> {
        for (name, value) in query {
            let Some((_, pointer, schema)) = op.query.iter().find(|(n, _, _)| n == name) else {
                return Err(format!("unknown query parameter `{name}`"));
            };
            let typed = coerce_query_value(value, schema.as_ref());
            self.check(&op.id, pointer, &typed)
                .map_err(|e| format!("query parameter `{name}`: {e}"))?;
        }
        Ok(())
    }

    /// Checks the path parameters [`Spec::find`] bound against their
    /// schemas (e.g. identifiers of at most 32 characters, `format: uuid`),
    /// except the `maxLength` of the [`PATH_PARAM_QUIRKS`].
    pub fn validate_path(
        &self,
        op: &Operation,
        params: &HashMap<String, String>,
    ) -> Result<(), String> {
        for (name, pointer, schema) in &op.path {
            let Some(value) = params.get(name) else {
                continue;
            };
            let typed = coerce_query_value(value, schema.as_ref());
            let too_long_allowed = PATH_PARAM_QUIRKS
                .iter()
                .any(|(id, param, _)| *id == op.id && param == name);
            self.check_with(pointer, &typed, |error| {
                !(too_long_allowed && matches!(error.kind(), ValidationErrorKind::MaxLength { .. }))
            })
            .map_err(|e| format!("path parameter `{name}`: {e}"))?;
        }
        Ok(())
    }

    /// Checks each multipart part's `Content-Type` (name, type) against the
    /// operation's `encoding`: a part named like a property takes that
    /// property's types, any other part those of the array of files
    /// (`files` of Worker uploads, whose parts are named by file name).
    ///
    /// A part without a `Content-Type` is not checked: wrangler sends the
    /// `metadata` of Worker uploads and the `manifest` of Pages deployments
    /// as plain form fields, and Cloudflare accepts them. A part that says
    /// its type must say one the document lists (or an [`ENCODING_QUIRKS`]
    /// one); parameters such as `charset` are ignored.
    pub fn validate_part_types<'a>(
        &self,
        op: &Operation,
        parts: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<(), String> {
        for (name, content_type) in parts {
            let Some(content_type) = content_type else {
                continue;
            };
            let encoding = op
                .part_types
                .iter()
                .find(|p| p.property == name)
                .or_else(|| op.part_types.iter().find(|p| p.collection));
            let Some(encoding) = encoding else {
                continue;
            };
            let essence = content_type
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            let listed = encoding
                .types
                .iter()
                .any(|t| media_type_matches(t, &essence));
            let quirk = ENCODING_QUIRKS
                .iter()
                .any(|(id, part, t, _)| *id == op.id && *part == name && *t == essence);
            if !listed && !quirk {
                return Err(format!(
                    "part `{name}` has Content-Type `{content_type}`; `{}` allows {}",
                    encoding.property,
                    encoding.types.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Checks a JSON body (or a multipart body's JSON part) against the
    /// operation's request schema.
    pub fn validate_body(&self, op: &Operation, body: Option<&Value>) -> Result<(), String> {
        match (body, &op.body_schema) {
            (None, Some(_)) if op.body_required => Err("request body is required".into()),
            (Some(body), Some(pointer)) => self.check(&op.id, pointer, body),
            _ => Ok(()),
        }
    }

    /// Checks a complete answer body against the operation's response schema
    /// for that status, when the document declares one.
    pub fn validate_response(
        &self,
        op: &Operation,
        status: u16,
        body: &Value,
    ) -> Result<(), String> {
        match op.responses.iter().find(|(code, _)| *code == status) {
            Some((_, pointer)) => {
                let mut body = normalize_dns_answer(&op.id, body);
                fill_write_only_secret_text(&mut body);
                self.check_with(pointer, &body, |error| {
                    let at = error.instance_path().to_string();
                    !RESPONSE_QUIRKS
                        .iter()
                        .any(|(id, pattern, _)| *id == op.id && path_matches(pattern, &at))
                })
            }
            None => Ok(()),
        }
    }

    /// Problems JSON Schema validation lets through, for a client's own
    /// tests that want to be stricter than Cloudflare (which ignores fields
    /// it does not know, so the stand-in accepts them): fields that no branch
    /// of the request schema declares (through `$ref`, `allOf`, `oneOf` and
    /// `anyOf`) where no branch allows additional properties, which are most
    /// likely misspellings; and fields marked `readOnly` (output-only) by
    /// every branch that declares them, read on the property node itself
    /// before its `$ref` is followed (JSON Schema draft 4 ignores the
    /// siblings of `$ref`) and on what it leads to.
    /// `body` is the JSON body, or the JSON part of a multipart body.
    pub fn strict_problems(&self, op: &Operation, body: &Value) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(schema) = op.body_schema.as_deref().and_then(|p| self.raw.pointer(p)) {
            self.strict_walk(&[schema], body, "", &mut problems);
        }
        problems
    }

    /// Walks `value` alongside the union of `schemas` (alternatives that may
    /// each describe it).
    fn strict_walk(&self, schemas: &[&Value], value: &Value, at: &str, problems: &mut Vec<String>) {
        let mut branches = Vec::new();
        for schema in schemas {
            self.branches(schema, &mut branches, 0);
        }
        match value {
            Value::Object(map) => {
                let declares = branches
                    .iter()
                    .any(|b| b.get("properties").is_some_and(Value::is_object));
                let open = branches.iter().any(|b| {
                    matches!(
                        b.get("additionalProperties"),
                        Some(Value::Bool(true) | Value::Object(_))
                    )
                });
                let extra: Vec<&Value> = branches
                    .iter()
                    .filter_map(|b| b.get("additionalProperties"))
                    .filter(|a| a.is_object())
                    .collect();
                for (name, item) in map {
                    let path = format!("{at}/{}", escape_pointer(name));
                    let declared: Vec<&Value> = branches
                        .iter()
                        .filter_map(|b| b.get("properties")?.get(name))
                        .collect();
                    if declared.is_empty() {
                        if declares && !open {
                            problems.push(format!(
                                "{path}: field `{name}` is not declared by the schema"
                            ));
                        } else if !extra.is_empty() {
                            self.strict_walk(&extra, item, &path, problems);
                        }
                        continue;
                    }
                    // Alternatives (`oneOf`/`anyOf`, e.g. DNS record types)
                    // may differ; output-only when every declaration says so.
                    if declared.iter().all(|p| self.is_read_only(p)) {
                        problems.push(format!(
                            "{path}: field `{name}` is output-only (readOnly) but was sent"
                        ));
                    }
                    self.strict_walk(&declared, item, &path, problems);
                }
            }
            Value::Array(items) => {
                let item_schemas: Vec<&Value> =
                    branches.iter().filter_map(|b| b.get("items")).collect();
                if !item_schemas.is_empty() {
                    for (i, item) in items.iter().enumerate() {
                        self.strict_walk(&item_schemas, item, &format!("{at}/{i}"), problems);
                    }
                }
            }
            _ => {}
        }
    }

    /// `schema` and, recursively, its `allOf`/`oneOf`/`anyOf` branches, each
    /// with its `$ref`s followed.
    fn branches<'a>(&'a self, schema: &'a Value, out: &mut Vec<&'a Value>, depth: usize) {
        if depth > 32 {
            return;
        }
        let schema = resolve(&self.raw, schema, &mut String::new());
        out.push(schema);
        for key in ["allOf", "oneOf", "anyOf"] {
            for branch in schema
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                self.branches(branch, out, depth + 1);
            }
        }
    }

    /// Whether a property node, or anything its `$ref` chain leads to, says
    /// `readOnly: true`.
    fn is_read_only<'a>(&'a self, mut node: &'a Value) -> bool {
        for _ in 0..32 {
            if node.get("readOnly").and_then(Value::as_bool) == Some(true) {
                return true;
            }
            match node
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| self.raw.pointer(r.trim_start_matches('#')))
            {
                Some(next) => node = next,
                None => return false,
            }
        }
        false
    }

    /// The declared default of an integer query parameter (e.g. `per_page`).
    pub fn query_default(&self, op: &Operation, name: &str) -> Option<u64> {
        op.query
            .iter()
            .find(|(n, _, _)| n == name)
            .and_then(|(_, _, schema)| schema.as_ref()?.get("default")?.as_u64())
    }
}

fn is_allowed_output_only(
    op_id: &str,
    kind: &ValidationErrorKind,
    at: &jsonschema::paths::Location,
) -> bool {
    match kind {
        ValidationErrorKind::Required { property } => {
            at.to_string().is_empty()
                && REQUIRED_OUTPUT_ONLY
                    .iter()
                    .any(|(op, field)| *op == op_id && property.as_str() == Some(field))
        }
        _ => false,
    }
}

/// Query strings carry text; give the validator the type the schema asks for.
fn coerce_query_value(value: &str, schema: Option<&Value>) -> Value {
    let kind = schema.and_then(|s| s.get("type")).and_then(Value::as_str);
    match kind {
        Some("integer") => value
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(value.into())),
        Some("number") => value
            .parse::<f64>()
            .ok()
            .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
            .unwrap_or_else(|| Value::String(value.into())),
        Some("boolean") => match value {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(value.into()),
        },
        _ => Value::String(value.into()),
    }
}

/// `format: uuid`: the hyphenated form, 8-4-4-4-12 hex digits (either
/// case), as JSON Schema 2019-09 defines it.
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether `essence` (`type/subtype`, lowercase) is the media `range`
/// (`type/subtype`, `type/*` or `*/*`).
fn media_type_matches(range: &str, essence: &str) -> bool {
    match range.split_once('/') {
        Some(("*", "*")) => true,
        Some((kind, "*")) => essence.split_once('/').is_some_and(|(k, _)| k == kind),
        _ => range == essence,
    }
}

/// The media types of an `encoding` entry's `contentType`: a comma-separated
/// list, which in the published document once wraps one in backticks
/// (`` `text/x-python` `` in the version upload).
fn content_types(list: &str) -> Vec<String> {
    list.split(',')
        .map(|t| t.trim().trim_matches('`').trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

fn resolve<'a>(doc: &'a Value, mut node: &'a Value, pointer: &mut String) -> &'a Value {
    while let Some(reference) = node.get("$ref").and_then(Value::as_str) {
        let target = reference.trim_start_matches('#');
        match doc.pointer(target) {
            Some(next) => {
                *pointer = target.to_owned();
                node = next;
            }
            None => break,
        }
    }
    node
}

impl Operation {
    fn parse(doc: &Value, template: &str, method: &str, op: &Value, base: &str) -> Operation {
        let id = op
            .get("operationId")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{} {}", method.to_uppercase(), template));
        let segments = template
            .trim_matches('/')
            .split('/')
            .map(|s| {
                if s.starts_with('{') && s.ends_with('}') {
                    Segment::Param(s[1..s.len() - 1].to_owned())
                } else {
                    Segment::Literal(s.to_owned())
                }
            })
            .collect();
        let mut query = Vec::new();
        let mut path = Vec::new();
        for (i, param) in op
            .get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let mut pointer = format!("{base}/parameters/{i}");
            let param = resolve(doc, param, &mut pointer);
            let name = param["name"].as_str().unwrap_or_default().to_owned();
            let mut schema_pointer = format!("{pointer}/schema");
            let schema = resolve(doc, &param["schema"], &mut schema_pointer).clone();
            match param.get("in").and_then(Value::as_str) {
                Some("query") => query.push((name, schema_pointer, Some(schema))),
                Some("path") if param.get("schema").is_some() => {
                    path.push((name, schema_pointer, Some(schema)))
                }
                _ => {}
            }
        }
        let mut body = BodyKind::None;
        let mut part_types = Vec::new();
        let mut body_schema = None;
        let mut body_required = false;
        if let Some(request) = op.get("requestBody") {
            let mut pointer = format!("{base}/requestBody");
            let request = resolve(doc, request, &mut pointer);
            body_required = request.get("required").and_then(Value::as_bool) == Some(true);
            let content = &request["content"];
            if content.get("application/json").is_some() {
                body = BodyKind::Json;
                body_schema = Some(format!("{pointer}/content/application~1json/schema"));
            } else if let Some(multipart) = content.get("multipart/form-data") {
                let mut schema_pointer = format!("{pointer}/content/multipart~1form-data/schema");
                let schema = resolve(doc, &multipart["schema"], &mut schema_pointer);
                let json_part = ["metadata", "settings"]
                    .into_iter()
                    .find(|name| schema["properties"].get(*name).is_some());
                body_schema = json_part.map(|name| format!("{schema_pointer}/properties/{name}"));
                body = BodyKind::Multipart {
                    json_part: json_part.map(str::to_owned),
                };
                for (property, encoding) in multipart["encoding"].as_object().into_iter().flatten()
                {
                    let Some(list) = encoding.get("contentType").and_then(Value::as_str) else {
                        continue;
                    };
                    let mut at = String::new();
                    let declared = resolve(doc, &schema["properties"][property], &mut at);
                    let collection = declared.get("type").and_then(Value::as_str) == Some("array")
                        && declared.pointer("/items/format").and_then(Value::as_str)
                            == Some("binary");
                    part_types.push(PartTypes {
                        property: property.clone(),
                        types: content_types(list),
                        collection,
                    });
                }
            }
        }
        let mut responses = Vec::new();
        for (code, response) in op["responses"].as_object().into_iter().flatten() {
            let Ok(status) = code.parse::<u16>() else {
                continue;
            };
            let mut pointer = format!("{base}/responses/{code}");
            let response = resolve(doc, response, &mut pointer);
            if response
                .pointer("/content/application~1json/schema")
                .is_some()
            {
                responses.push((
                    status,
                    format!("{pointer}/content/application~1json/schema"),
                ));
            }
        }
        Operation {
            id,
            method: method.to_uppercase(),
            template: template.to_owned(),
            segments,
            query,
            path,
            body,
            part_types,
            body_schema,
            body_required,
            responses,
        }
    }

    fn bind(&self, parts: &[&str]) -> Option<HashMap<String, String>> {
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut params = HashMap::new();
        for (segment, part) in self.segments.iter().zip(parts) {
            match segment {
                Segment::Literal(literal) if literal == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(_) if part.is_empty() => return None,
                Segment::Param(name) => {
                    params.insert(name.clone(), percent_decode(part));
                }
            }
        }
        Some(params)
    }

    /// The success status the document declares (200, or 201/202 for some
    /// Access operations).
    pub fn success_status(&self) -> u16 {
        self.responses
            .iter()
            .map(|(code, _)| *code)
            .filter(|code| (200..300).contains(code))
            .min()
            .unwrap_or(200)
    }
}

/// Decodes `%XX` escapes in a path segment (e.g. secret names, hostnames).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Rewrites OpenAPI 3.0 `nullable: true` as a JSON Schema `null` alternative,
/// everywhere in the document except inside `example`/`examples` values.
fn convert_nullable(node: &mut Value) {
    match node {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if key != "example" && key != "examples" && key != "default" && key != "enum" {
                    convert_nullable(value);
                }
            }
            if map.get("nullable").and_then(Value::as_bool) == Some(true) {
                make_nullable(map);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(convert_nullable),
        _ => {}
    }
}

fn make_nullable(map: &mut Map<String, Value>) {
    map.remove("nullable");
    let simple = map.get("$ref").is_none()
        && ["anyOf", "oneOf", "allOf"]
            .iter()
            .all(|k| map.get(*k).is_none());
    if simple {
        if let Some(Value::String(kind)) = map.get("type").cloned() {
            map.insert("type".into(), json!([kind, "null"]));
            if let Some(Value::Array(options)) = map.get_mut("enum") {
                if !options.contains(&Value::Null) {
                    options.push(Value::Null);
                }
            }
            return;
        }
        if map.get("type").is_none() && map.get("enum").is_none() {
            // Untyped and nullable: already accepts null.
            return;
        }
    }
    let inner = std::mem::take(map);
    map.insert(
        "anyOf".into(),
        json!([{"type": "null"}, Value::Object(inner)]),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nullable_becomes_a_null_alternative() {
        let mut schema = json!({"type": "string", "nullable": true, "enum": ["a"]});
        convert_nullable(&mut schema);
        assert_eq!(
            schema,
            json!({"type": ["string", "null"], "enum": ["a", null]})
        );
        let mut schema = json!({"nullable": true, "allOf": [{"type": "object"}]});
        convert_nullable(&mut schema);
        assert_eq!(
            schema,
            json!({"anyOf": [{"type": "null"}, {"allOf": [{"type": "object"}]}]})
        );
    }

    #[test]
    fn output_only_required_fields_are_allowed_only_where_listed() {
        let spec = spec();
        let (create, _) = spec.find("POST", "/zones/z1/workers/routes").unwrap();
        assert_eq!(create.id, "worker-routes-create-route");
        assert!(spec
            .validate_body(
                create,
                Some(&json!({"pattern": "a.example.com/*", "script": "w"}))
            )
            .is_ok());
        // Everything else about the schema still holds: `pattern` is required.
        let error = spec
            .validate_body(create, Some(&json!({"script": "w"})))
            .unwrap_err();
        assert!(error.contains("pattern"), "{error}");
    }

    #[test]
    fn the_response_self_check_catches_wrong_shapes() {
        let spec = spec();
        let (op, _) = spec.find("GET", "/zones/z1/workers/routes").unwrap();
        let good = json!({"success": true, "errors": [], "messages": [],
                          "result": [{"id": "0123456789abcdef0123456789abcdef", "pattern": "a/*"}]});
        assert!(spec.validate_response(op, 200, &good).is_ok());
        let bad = json!({"success": true, "errors": [], "messages": [], "result": [{"id": 5}]});
        assert!(spec.validate_response(op, 200, &bad).is_err());
    }

    #[test]
    fn query_values_are_typed_before_checking() {
        let spec = spec();
        let (op, _) = spec.find("GET", "/zones/z1/dns_records").unwrap();
        let ok = [("per_page".to_owned(), "50".to_owned())];
        assert!(spec.validate_query(op, &ok).is_ok());
        let unknown = [("colour".to_owned(), "red".to_owned())];
        assert!(spec
            .validate_query(op, &unknown)
            .unwrap_err()
            .contains("colour"));
    }

    #[test]
    fn strict_problems_flag_undeclared_and_output_only_fields() {
        let spec = spec();
        let (update, _) = spec.find("PUT", "/zones/z1/workers/routes/r1").unwrap();
        let good = json!({"pattern": "a.example.com/*", "script": "w"});
        assert_eq!(spec.strict_problems(update, &good), Vec::<String>::new());
        // `id` is marked readOnly beside its `$ref`; `scirpt` is declared by
        // no branch. The stand-in itself accepts both, as Cloudflare does.
        let bad = json!({"id": "r1", "pattern": "a.example.com/*", "scirpt": "w"});
        assert!(spec.validate_body(update, Some(&bad)).is_ok());
        let problems = spec.strict_problems(update, &bad);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("/id:") && p.contains("readOnly")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("/scirpt:") && p.contains("not declared")),
            "{problems:?}"
        );

        // Nested, and readOnly directly on the property.
        let (deploy, _) = spec
            .find("POST", "/accounts/a/workers/scripts/s/deployments")
            .unwrap();
        let body = json!({"strategy": "percentage",
                          "versions": [{"version_id": "v", "percentage": 100, "weight": 1}],
                          "annotations": {"workers/message": "m", "workers/triggered_by": "x"}});
        let problems = spec.strict_problems(deploy, &body);
        assert_eq!(
            problems,
            [
                "/annotations/workers~1triggered_by: field `workers/triggered_by` is output-only (readOnly) but was sent",
                "/versions/0/weight: field `weight` is not declared by the schema",
            ],
        );

        // Through `oneOf` branches (bindings) in a multipart JSON part.
        let (upload, _) = spec.find("PUT", "/accounts/a/workers/scripts/s").unwrap();
        let metadata = json!({"main_module": "w.js",
                              "bindings": [{"type": "plain_text", "name": "A", "text": "x"},
                                           {"type": "service", "name": "B", "service": "b", "servise": "c"}]});
        let problems = spec.strict_problems(upload, &metadata);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("/bindings/1/servise:"),
            "{problems:?}"
        );
    }

    #[test]
    fn uuids_are_the_hyphenated_form() {
        assert!(is_uuid("6b2a2d6c-8d3b-4e0f-9a43-2b1f5b7c0d11"));
        assert!(is_uuid("6B2A2D6C-8D3B-4E0F-9A43-2B1F5B7C0D11"));
        assert!(!is_uuid("6b2a2d6c8d3b4e0f9a432b1f5b7c0d11"));
        assert!(!is_uuid("6b2a2d6c-8d3b-4e0f-9a43-2b1f5b7c0d1g"));
        assert!(!is_uuid("6b2a2d6c-8d3b-4e0f-9a432-b1f5b7c0d11"));
        assert!(!is_uuid("v1"));
    }

    #[test]
    fn part_types_follow_the_encoding() {
        let spec = spec();
        let (upload, _) = spec
            .find("POST", "/accounts/a/workers/scripts/s/versions")
            .unwrap();
        let ok = [
            ("metadata", Some("application/json")),
            ("worker.js", Some("application/javascript+module")),
            ("module.wasm", Some("application/wasm")),
            // Listed in backticks in the published document.
            ("main.py", Some("text/x-python")),
            ("data.bin", Some("Application/Octet-Stream; x=y")),
            ("untyped", None),
        ];
        assert_eq!(spec.validate_part_types(upload, ok), Ok(()));
        for bad in [
            ("metadata", Some("text/plain")),
            ("module.wasm", Some("application/x-wasm")),
        ] {
            assert!(spec.validate_part_types(upload, [bad]).is_err(), "{bad:?}");
        }

        // Pages deployments: by property, with wrangler's octet-stream files.
        let (pages, _) = spec
            .find("POST", "/accounts/a/pages/projects/p/deployments")
            .unwrap();
        let ok = [
            ("manifest", None),
            ("manifest", Some("application/json")),
            ("_headers", Some("text/plain")),
            ("_headers", Some("application/octet-stream")),
            ("branch", Some("text/plain")),
        ];
        assert_eq!(spec.validate_part_types(pages, ok), Ok(()));
        for bad in [
            ("manifest", Some("application/octet-stream")),
            ("_routes.json", Some("text/plain")),
        ] {
            assert!(spec.validate_part_types(pages, [bad]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn percent_escapes_are_decoded() {
        assert_eq!(percent_decode("MY%20SECRET%2Fx"), "MY SECRET/x");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
