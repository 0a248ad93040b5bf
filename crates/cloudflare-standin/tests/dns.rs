//! DNS records: CRUD, filters, pagination, conflicts, batch, validation.
mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn records() -> String {
    format!("/zones/{ZONE}/dns_records")
}

async fn create(api: &Api, body: Value) -> (StatusCode, Value) {
    api.post(&records(), body).await
}

#[tokio::test]
async fn records_are_created_read_updated_and_deleted() {
    let api = start().await;
    let (status, body) = create(
        &api,
        json!({"type": "A", "name": "api.rc", "content": "192.0.2.10", "ttl": 1, "proxied": true,
               "comment": "managed by deploy", "tags": ["owner:deploy"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let record = &body["result"];
    let id = record["id"].as_str().unwrap();
    assert_eq!(id.len(), 32);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(record["name"], "api.rc.example.com");
    assert_eq!(record["proxied"], true);
    assert_eq!(record["comment"], "managed by deploy");
    assert_eq!(record["tags"], json!(["owner:deploy"]));
    assert!(record["created_on"].as_str().unwrap().ends_with('Z'));

    let (status, body) = api.get(&format!("{}/{id}", records())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["result"]["content"], "192.0.2.10");

    let (status, body) = api
        .patch(
            &format!("{}/{id}", records()),
            // The published schema requires name, type and ttl on PATCH too.
            json!({"type": "A", "name": "api.rc.example.com", "ttl": 1, "content": "192.0.2.11"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["content"], "192.0.2.11");
    assert_eq!(body["result"]["comment"], "managed by deploy");

    let (status, body) = api
        .put(
            &format!("{}/{id}", records()),
            json!({"type": "A", "name": "api.rc.example.com", "content": "192.0.2.12", "ttl": 300}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["ttl"], 300);
    assert_eq!(body["result"]["proxied"], false);
    assert_eq!(body["result"]["comment"], Value::Null);

    let (status, body) = api.delete(&format!("{}/{id}", records())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["result"]["id"], id);
    let (status, body) = api.get(&format!("{}/{id}", records())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, 81044);
    assert!(api.standin.dns_records(ZONE).is_empty());
    api.assert_clean();
}

#[tokio::test]
async fn cloudflare_conflict_rules_apply() {
    let api = start().await;
    let (status, _) = create(
        &api,
        json!({"type": "A", "name": "www", "content": "192.0.2.1", "ttl": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Identical record.
    let (status, body) = create(
        &api,
        json!({"type": "A", "name": "www", "content": "192.0.2.1", "ttl": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, 81058);
    // A second A record at the same name is fine (round robin).
    let (status, _) = create(
        &api,
        json!({"type": "A", "name": "www", "content": "192.0.2.2", "ttl": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // CNAME next to A records.
    let (status, body) = create(
        &api,
        json!({"type": "CNAME", "name": "www", "content": "x.example.net", "ttl": 1}),
    )
    .await;
    assert_error(&body, 81053);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A next to a CNAME, TXT next to a CNAME.
    create(
        &api,
        json!({"type": "CNAME", "name": "docs", "content": "x.example.net", "ttl": 1}),
    )
    .await;
    let (_, body) = create(
        &api,
        json!({"type": "AAAA", "name": "docs", "content": "2001:db8::1", "ttl": 1}),
    )
    .await;
    assert_error(&body, 81053);
    let (_, body) = create(
        &api,
        json!({"type": "TXT", "name": "docs", "content": "hello", "ttl": 1}),
    )
    .await;
    assert_error(&body, 81054);
    // Only A, AAAA and CNAME can be proxied.
    let (status, body) = create(
        &api,
        json!({"type": "TXT", "name": "t", "content": "v", "ttl": 1, "proxied": true}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, 9004);
    assert_eq!(api.standin.dns_records(ZONE).len(), 3);
    // Conflicts depend on state and are not violations; proxying a TXT
    // record is wrong whatever the state, so it is one.
    let violations = api.standin.violations();
    assert_eq!(violations.len(), 1, "{violations:#?}");
    assert!(violations[0].message.contains("cannot be proxied"));
    assert!(api.standin.response_mismatches().is_empty());
}

#[tokio::test]
async fn schema_violations_are_refused_and_recorded() {
    let api = start().await;
    let (status, body) = create(
        &api,
        json!({"type": 12, "name": "x", "content": "192.0.2.1", "ttl": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, 9207);
    let (status, _) = create(&api, json!({"type": "A", "content": "192.0.2.1", "ttl": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = create(
        &api,
        json!({"type": "A", "name": "x", "content": "not-an-ip", "ttl": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let violations = api.standin.violations();
    assert_eq!(violations.len(), 3, "{violations:#?}");
    assert!(violations
        .iter()
        .all(|v| v.operation == "dns-records-for-a-zone-create-dns-record"));
    assert!(api.standin.dns_records(ZONE).is_empty());
    assert!(!api.standin.requests()[0].valid);
}

#[tokio::test]
async fn lists_filter_and_paginate() {
    let api = start().await;
    for i in 0..5 {
        let (status, body) = create(
            &api,
            json!({"type": "A", "name": format!("host{i}"), "content": format!("192.0.2.{i}"), "ttl": 1,
                   "comment": if i % 2 == 0 { "even" } else { "odd" }}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    create(
        &api,
        json!({"type": "TXT", "name": "host1", "content": "note", "ttl": 1}),
    )
    .await;

    let (_, body) = api.get(&format!("{}?per_page=2&page=2", records())).await;
    assert_eq!(body["result"].as_array().unwrap().len(), 2);
    assert_eq!(
        body["result_info"],
        json!({"page": 2, "per_page": 2, "count": 2, "total_count": 6, "total_pages": 3})
    );
    let (_, body) = api.get(&format!("{}?per_page=4&page=2", records())).await;
    assert_eq!(body["result_info"]["count"], 2);

    let (_, body) = api
        .get(&format!("{}?name=host1.example.com", records()))
        .await;
    assert_eq!(body["result"].as_array().unwrap().len(), 2);
    let (_, body) = api
        .get(&format!("{}?name=host1.example.com&type=TXT", records()))
        .await;
    assert_eq!(body["result"].as_array().unwrap().len(), 1);
    assert_eq!(body["result"][0]["content"], "note");
    let (_, body) = api.get(&format!("{}?comment=even", records())).await;
    assert_eq!(body["result_info"]["total_count"], 3);
    let (_, body) = api
        .get(&format!("{}?content.contains=192.0.2.", records()))
        .await;
    assert_eq!(body["result_info"]["total_count"], 5);
    api.assert_clean();
}

#[tokio::test]
async fn batch_applies_deletes_patches_puts_posts_atomically() {
    let api = start().await;
    let (_, a) = create(
        &api,
        json!({"type": "A", "name": "a", "content": "192.0.2.1", "ttl": 1}),
    )
    .await;
    let (_, b) = create(
        &api,
        json!({"type": "A", "name": "b", "content": "192.0.2.2", "ttl": 1}),
    )
    .await;
    let a_id = a["result"]["id"].as_str().unwrap().to_owned();
    let b_id = b["result"]["id"].as_str().unwrap().to_owned();

    // The delete of `a` comes first, so posting a CNAME at `a` succeeds.
    let (status, body) = api
        .post(
            &format!("{}/batch", records()),
            json!({
                "deletes": [{"id": a_id}],
                "patches": [{"id": b_id, "type": "A", "name": "b", "ttl": 1, "content": "192.0.2.3"}],
                "posts": [{"type": "CNAME", "name": "a", "content": "target.example.net", "ttl": 1}],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["deletes"][0]["id"], a_id.as_str());
    assert_eq!(body["result"]["patches"][0]["content"], "192.0.2.3");
    assert_eq!(body["result"]["posts"][0]["type"], "CNAME");
    assert_eq!(api.standin.dns_records(ZONE).len(), 2);

    // A failing post rolls back the whole batch.
    let (status, body) = api
        .post(
            &format!("{}/batch", records()),
            json!({
                "deletes": [{"id": b_id}],
                "posts": [{"type": "A", "name": "a", "content": "192.0.2.9", "ttl": 1}],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, 81053);
    let names: Vec<String> = api
        .standin
        .dns_records(ZONE)
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["b.example.com", "a.example.com"]);
    api.assert_clean();
}

#[tokio::test]
async fn a_partial_patch_breaks_the_published_schema() {
    let api = start().await;
    let (_, body) = create(
        &api,
        json!({"type": "A", "name": "p", "content": "192.0.2.1", "ttl": 1}),
    )
    .await;
    let id = body["result"]["id"].as_str().unwrap();
    // Cloudflare's document requires name, type and ttl on PATCH as well.
    let (status, body) = api
        .patch(
            &format!("{}/{id}", records()),
            json!({"content": "192.0.2.2"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, 9207);
    assert_eq!(
        api.standin.violations()[0].operation,
        "dns-records-for-a-zone-patch-dns-record"
    );
    assert_eq!(api.standin.dns_records(ZONE)[0]["content"], "192.0.2.1");
}
