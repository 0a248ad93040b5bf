//! `multipart/form-data` bodies (script uploads, Pages deployments), read
//! whole with `multer`.

use bytes::Bytes;

/// One part of a multipart body.
#[derive(Debug, Clone)]
pub struct Part {
    pub name: String,
    pub content_type: Option<String>,
    pub data: Bytes,
}

/// Splits a body into its parts; the error says why it is not multipart.
pub async fn parse(content_type: &str, body: Bytes) -> Result<Vec<Part>, String> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| format!("bad multipart Content-Type: {e}"))?;
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut parts = Vec::new();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| format!("malformed multipart body: {e}"))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        let content_type = field.content_type().map(|m| m.to_string());
        let data = field
            .bytes()
            .await
            .map_err(|e| format!("malformed multipart part `{name}`: {e}"))?;
        parts.push(Part {
            name,
            content_type,
            data,
        });
    }
    Ok(parts)
}

/// Checks that the parts a script upload's metadata names are present:
/// `main_module` / `body_part`, and the `part` of `wasm_module`,
/// `text_blob` and `data_blob` bindings.
pub fn check_named_parts(metadata: &serde_json::Value, parts: &[Part]) -> Result<(), String> {
    let has = |name: &str| parts.iter().any(|p| p.name == name);
    for key in ["main_module", "body_part"] {
        if let Some(name) = metadata[key].as_str() {
            if !has(name) {
                return Err(format!(
                    "metadata.{key} names part `{name}`, which is missing"
                ));
            }
        }
    }
    for binding in metadata["bindings"].as_array().into_iter().flatten() {
        if let Some(name) = binding["part"].as_str() {
            if !has(name) {
                return Err(format!(
                    "binding `{}` names part `{name}`, which is missing",
                    binding["name"].as_str().unwrap_or_default()
                ));
            }
        }
    }
    Ok(())
}
