//! DNS records of a zone: list (filters `name`, `type`, `content`, `comment`,
//! `proxied`, `tag` with `.exact/.contains/.startswith/.endswith`,
//! `comment.present/absent`, `match`, `order`, `direction`, `page`,
//! `per_page`), create, get, patch, put, delete and batch.
//!
//! Cloudflare's checks emulated: a CNAME cannot share its name with any other
//! record, nor an A/AAAA with a CNAME (81053); other types next to a CNAME
//! (81054); an identical record (81058); `proxied` only for A, AAAA and CNAME
//! (9004); an unknown record id (81044).

use serde_json::{json, Value};

use super::{not_emulated, now, Call, Store};
use crate::envelope::{ApiError, ApiResult, Reply};

pub(super) fn dispatch(store: &mut Store, call: &Call) -> ApiResult {
    let zone_id = call.param("zone_id").to_owned();
    let zone_name = store.zone(&zone_id)?["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let records = store.dns.entry(zone_id.clone()).or_default();
    let zone = ZoneRef {
        id: &zone_id,
        name: &zone_name,
    };
    match call.op_id.as_str() {
        "dns-records-for-a-zone-list-dns-records" => list(records, call),
        "dns-records-for-a-zone-create-dns-record" => {
            let record = create(records, &zone, call.body())?;
            Ok(Reply::new(record))
        }
        "dns-records-for-a-zone-dns-record-details" => Ok(Reply::new(
            find(records, call.param("dns_record_id"))?.clone(),
        )),
        "dns-records-for-a-zone-patch-dns-record" => {
            let record = update(
                records,
                &zone,
                call.param("dns_record_id"),
                call.body(),
                true,
            )?;
            Ok(Reply::new(record))
        }
        "dns-records-for-a-zone-update-dns-record" => {
            let record = update(
                records,
                &zone,
                call.param("dns_record_id"),
                call.body(),
                false,
            )?;
            Ok(Reply::new(record))
        }
        "dns-records-for-a-zone-delete-dns-record" => {
            let id = call.param("dns_record_id");
            find(records, id)?;
            records.retain(|r| r["id"] != id);
            Ok(Reply::new(json!({"id": id})))
        }
        "dns-records-for-a-zone-batch-dns-records" => batch(records, &zone, call.body()),
        other => Err(not_emulated(other)),
    }
}

struct ZoneRef<'a> {
    id: &'a str,
    name: &'a str,
}

fn not_found() -> ApiError {
    ApiError::not_found(81044, "Record does not exist.")
}

fn find<'a>(records: &'a [Value], id: &str) -> Result<&'a Value, ApiError> {
    records.iter().find(|r| r["id"] == id).ok_or_else(not_found)
}

/// Cloudflare stores fully qualified names; `@` and relative names are
/// completed with the zone name.
fn qualify(name: &str, zone: &str) -> String {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name == "@" || name.is_empty() {
        zone.to_owned()
    } else if name == zone || name.ends_with(&format!(".{zone}")) {
        name
    } else {
        format!("{name}.{zone}")
    }
}

fn proxiable(kind: &str) -> bool {
    matches!(kind, "A" | "AAAA" | "CNAME")
}

/// Builds the stored record from a request body (PUT/POST) or merged body (PATCH).
fn build(
    zone: &ZoneRef,
    id: &str,
    body: &Value,
    previous: Option<&Value>,
) -> Result<Value, ApiError> {
    let kind = body["type"].as_str().unwrap_or_default().to_owned();
    let name = qualify(body["name"].as_str().unwrap_or_default(), zone.name);
    let proxied = body["proxied"].as_bool().unwrap_or(false);
    if proxied && !proxiable(&kind) {
        return Err(ApiError::invalid_request(
            9004,
            format!("This record type cannot be proxied: {kind}"),
        ));
    }
    let content = match (&body["content"], &body["data"]) {
        (Value::String(c), _) => c.clone(),
        (_, Value::Object(data)) => data
            .values()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    };
    let stamp = now();
    let created = previous
        .and_then(|p| p["created_on"].as_str())
        .unwrap_or(&stamp)
        .to_owned();
    let mut record = json!({
        "id": id,
        "zone_id": zone.id,
        "zone_name": zone.name,
        "name": name,
        "type": kind,
        "content": content,
        "proxiable": proxiable(&kind),
        "proxied": proxied,
        "ttl": body.get("ttl").cloned().unwrap_or(json!(1)),
        "settings": body.get("settings").cloned().unwrap_or(json!({})),
        "meta": {},
        "comment": body.get("comment").cloned().unwrap_or(Value::Null),
        "tags": body.get("tags").cloned().unwrap_or(json!([])),
        "created_on": created,
        "modified_on": stamp,
    });
    if let Some(priority) = body.get("priority") {
        record["priority"] = priority.clone();
    }
    if let Some(data) = body.get("data") {
        record["data"] = data.clone();
    }
    if previous.is_none_or(|p| p["comment"] != record["comment"]) {
        record["comment_modified_on"] = json!(stamp);
    } else if let Some(at) = previous.and_then(|p| p.get("comment_modified_on")) {
        record["comment_modified_on"] = at.clone();
    }
    if previous.is_none_or(|p| p["tags"] != record["tags"]) {
        record["tags_modified_on"] = json!(stamp);
    } else if let Some(at) = previous.and_then(|p| p.get("tags_modified_on")) {
        record["tags_modified_on"] = at.clone();
    }
    Ok(record)
}

/// Cloudflare's conflict rules for `record` among `others` (itself excluded).
fn check_conflicts(records: &[Value], record: &Value) -> Result<(), ApiError> {
    let same_name = records
        .iter()
        .filter(|r| r["id"] != record["id"] && r["name"] == record["name"]);
    for existing in same_name {
        let new_kind = record["type"].as_str().unwrap_or_default();
        let old_kind = existing["type"].as_str().unwrap_or_default();
        if existing["type"] == record["type"]
            && existing["content"] == record["content"]
            && existing.get("priority") == record.get("priority")
        {
            return Err(ApiError::bad_request(
                81058,
                "An identical record already exists.",
            ));
        }
        if new_kind == "CNAME" || (old_kind == "CNAME" && matches!(new_kind, "A" | "AAAA")) {
            return Err(ApiError::bad_request(
                81053,
                "An A, AAAA, or CNAME record with that host already exists.",
            ));
        }
        if old_kind == "CNAME" {
            return Err(ApiError::bad_request(
                81054,
                "A CNAME record with that host already exists.",
            ));
        }
    }
    Ok(())
}

fn create(records: &mut Vec<Value>, zone: &ZoneRef, body: &Value) -> Result<Value, ApiError> {
    let record = build(zone, &super::new_id(), body, None)?;
    check_conflicts(records, &record)?;
    records.push(record.clone());
    Ok(record)
}

fn update(
    records: &mut [Value],
    zone: &ZoneRef,
    id: &str,
    body: &Value,
    merge: bool,
) -> Result<Value, ApiError> {
    let previous = find(records, id)?.clone();
    let mut effective = if merge {
        let mut base = previous.clone();
        for (key, value) in body.as_object().into_iter().flatten() {
            base[key] = value.clone();
        }
        base
    } else {
        body.clone()
    };
    if effective.get("type").is_none() {
        effective["type"] = previous["type"].clone();
    }
    if effective.get("name").is_none() {
        effective["name"] = previous["name"].clone();
    }
    let record = build(zone, id, &effective, Some(&previous))?;
    check_conflicts(records, &record)?;
    let slot = records
        .iter_mut()
        .find(|r| r["id"] == id)
        .expect("found above");
    *slot = record.clone();
    Ok(record)
}

/// Deletes, then patches, then puts, then posts, all or nothing.
fn batch(records: &mut Vec<Value>, zone: &ZoneRef, body: &Value) -> ApiResult {
    let mut working = records.clone();
    let list = |key: &str| body[key].as_array().cloned().unwrap_or_default();
    let mut deleted = Vec::new();
    for item in list("deletes") {
        let id = item["id"].as_str().unwrap_or_default();
        deleted.push(find(&working, id)?.clone());
        working.retain(|r| r["id"] != id);
    }
    let mut patched = Vec::new();
    for item in list("patches") {
        let id = item["id"].as_str().unwrap_or_default().to_owned();
        patched.push(update(&mut working, zone, &id, &item, true)?);
    }
    let mut put = Vec::new();
    for item in list("puts") {
        let id = item["id"].as_str().unwrap_or_default().to_owned();
        put.push(update(&mut working, zone, &id, &item, false)?);
    }
    let mut posted = Vec::new();
    for item in list("posts") {
        posted.push(create(&mut working, zone, &item)?);
    }
    *records = working;
    Ok(Reply::new(json!({
        "deletes": deleted,
        "patches": patched,
        "puts": put,
        "posts": posted,
    })))
}

fn text_matches(value: Option<&str>, op: &str, wanted: &str) -> bool {
    let value = value.map(str::to_ascii_lowercase);
    let wanted = wanted.to_ascii_lowercase();
    match (op, value) {
        ("present", v) => v.is_some_and(|v| !v.is_empty()),
        ("absent", v) => v.is_none_or(|v| v.is_empty()),
        (_, None) => false,
        ("contains", Some(v)) => v.contains(&wanted),
        ("startswith", Some(v)) => v.starts_with(&wanted),
        ("endswith", Some(v)) => v.ends_with(&wanted),
        (_, Some(v)) => v == wanted,
    }
}

/// One list filter from the query string.
type RecordFilter = Box<dyn Fn(&Value) -> bool>;

fn list(records: &[Value], call: &Call) -> ApiResult {
    let match_any = call.query("match") == Some("any");
    let mut checks: Vec<RecordFilter> = Vec::new();
    for (key, wanted) in &call.query {
        let (field, op) = key.split_once('.').unwrap_or((key.as_str(), "exact"));
        let wanted = wanted.clone();
        let op = op.to_owned();
        match field {
            "name" | "content" | "comment" => {
                let field = field.to_owned();
                checks.push(Box::new(move |r| {
                    text_matches(r[field.as_str()].as_str(), &op, &wanted)
                }));
            }
            "type" => checks.push(Box::new(move |r| r["type"] == wanted.as_str())),
            "proxied" => checks.push(Box::new(move |r| {
                r["proxied"].as_bool() == Some(wanted == "true")
            })),
            "tag" => checks.push(Box::new(move |r| {
                let tags = r["tags"].as_array().cloned().unwrap_or_default();
                tags.iter().any(|t| {
                    let tag = t.as_str().unwrap_or_default();
                    let tag_name = tag.split(':').next().unwrap_or_default();
                    match op.as_str() {
                        "present" => tag_name == wanted,
                        "absent" => false,
                        _ => text_matches(Some(tag), &op, &wanted),
                    }
                }) || (op == "absent"
                    && !tags
                        .iter()
                        .any(|t| t.as_str().unwrap_or_default().split(':').next() == Some(&wanted)))
            })),
            _ => {}
        }
    }
    let mut items: Vec<Value> = records
        .iter()
        .filter(|r| {
            checks.is_empty()
                || if match_any {
                    checks.iter().any(|check| check(r))
                } else {
                    checks.iter().all(|check| check(r))
                }
        })
        .cloned()
        .collect();
    if let Some(order) = call.query("order") {
        items.sort_by(|a, b| a[order].to_string().cmp(&b[order].to_string()));
        if call.query("direction") == Some("desc") {
            items.reverse();
        }
    }
    Ok(call.paginate(items, 100))
}
