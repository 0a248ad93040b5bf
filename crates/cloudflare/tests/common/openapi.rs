//! Checks requests the client sent against Cloudflare's published OpenAPI
//! document with the stand-in's validator (the same vendored document and
//! the same quirks: path parameters, query, body and the types of multipart
//! parts), plus the stand-in's strict checks that Cloudflare
//! itself does not make: fields no schema declares (likely misspellings)
//! and output-only (`readOnly`) fields sent.

use cloudflare_standin::openapi::{spec, BodyKind};
use serde_json::Value;

use super::{parse_multipart, Recorded};

/// Every problem with `request`; empty when it matches its operation.
pub fn problems(request: &Recorded) -> Vec<String> {
    let spec = spec();
    let Some((op, params)) = spec.find(&request.method, &request.path) else {
        return vec![format!("no operation {} {}", request.method, request.path)];
    };
    let mut problems = Vec::new();
    problems.extend(spec.validate_path(op, &params).err());
    problems.extend(spec.validate_query(op, &request.query).err());
    let content_type = request.header("content-type").unwrap_or_default();
    let body: Result<Option<Value>, String> = match &op.body {
        _ if request.body.is_empty() => Ok(None),
        BodyKind::None => Err("a body was sent but the operation takes none".into()),
        BodyKind::Json if content_type == "application/json" => {
            serde_json::from_slice(&request.body)
                .map(Some)
                .map_err(|e| format!("body is not JSON: {e}"))
        }
        BodyKind::Multipart { json_part } if content_type.starts_with("multipart/form-data") => {
            let parts = parse_multipart(content_type, &request.body);
            problems.extend(
                spec.validate_part_types(
                    op,
                    parts
                        .iter()
                        .map(|p| (p.name.as_str(), p.content_type.as_deref())),
                )
                .err(),
            );
            match json_part
                .as_ref()
                .map(|name| parts.iter().find(|p| &p.name == name))
            {
                None => Ok(None),
                Some(None) => Err(format!("multipart part {json_part:?} is missing")),
                Some(Some(part)) if part.content_type.as_deref() != Some("application/json") => {
                    Err(format!(
                        "part {:?} is not typed application/json",
                        part.name
                    ))
                }
                Some(Some(part)) => serde_json::from_slice(&part.body)
                    .map(Some)
                    .map_err(|e| format!("part {:?} is not JSON: {e}", part.name)),
            }
        }
        kind => Err(format!("content type {content_type:?} for a {kind:?} body")),
    };
    match body {
        Ok(body) => {
            problems.extend(spec.validate_body(op, body.as_ref()).err());
            if let Some(body) = &body {
                problems.extend(spec.strict_problems(op, body));
            }
        }
        Err(problem) => problems.push(problem),
    }
    problems
}

/// Panics with every problem found in `request`.
pub fn check(request: &Recorded) {
    let problems = problems(request);
    assert!(
        problems.is_empty(),
        "{} {} does not match the OpenAPI schema:\n  {}",
        request.method,
        request.path,
        problems.join("\n  ")
    );
}
