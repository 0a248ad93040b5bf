//! Files through the real Worker: an upload granted by the API, sent by
//! "the browser" straight to the S3 server with the presigned URL (which
//! checks the signature, and with it the pinned type and length),
//! completed, and downloaded through the API's redirect; mismatches,
//! mistakes, and the cron sweep of abandoned uploads in TiDB and storage.

use std::time::{Duration, SystemTime};

use e2e::access::user_token;
use e2e::{api, database, http, run_cron, stack, unique};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(10);

async fn grant(author: &str, request: &Value) -> reqwest::Response {
    http()
        .post(format!("{}/v1/uploads", api()))
        .header("cf-access-jwt-assertion", user_token(author))
        .json(request)
        .send()
        .await
        .unwrap()
}

async fn granted(author: &str, request: &Value) -> Value {
    let response = grant(author, request).await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(location, body["complete_url"], "{body}");
    assert_eq!(body["status"], "pending");
    assert_eq!(body["upload"]["method"], "PUT");
    body
}

/// PUTs `bytes` to the grant's URL as a browser would.
async fn send(grant: &Value, bytes: Vec<u8>) -> reqwest::StatusCode {
    let mut request = http()
        .put(grant["upload"]["url"].as_str().unwrap())
        .body(bytes);
    for (name, value) in grant["upload"]["headers"].as_object().unwrap() {
        request = request.header(name, value.as_str().unwrap());
    }
    request.send().await.unwrap().status()
}

async fn complete(id: &str, author: &str) -> reqwest::Response {
    http()
        .post(format!("{}/v1/uploads/{id}/complete", api()))
        .header("cf-access-jwt-assertion", user_token(author))
        .send()
        .await
        .unwrap()
}

async fn problem(response: reqwest::Response, status: u16, kind: &str) -> Value {
    let got = response.status();
    let content_type = response.headers().get("content-type").cloned();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{body}");
    assert_eq!(content_type.unwrap(), "application/problem+json");
    assert_eq!(body["type"], kind, "{body}");
    body
}

async fn stored(id: &str) -> Option<b2::ObjectInfo> {
    e2e::storage()
        .head_object(&format!("uploads/{id}"), SystemTime::now(), TIMEOUT)
        .await
        .unwrap()
}

async fn row_status(id: &str) -> Option<String> {
    sqlx::query_scalar("SELECT CONVERT(status USING utf8mb4) FROM uploads WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut database().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_file_goes_from_grant_to_storage_to_completion_to_download() {
    let contents: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let grant = granted(
        "uploader@example.com",
        &json!({"file_name": "Quarterly report (final).pdf", "content_type": "application/pdf",
                "size_bytes": contents.len()}),
    )
    .await;
    let id = grant["id"].as_str().unwrap().to_owned();
    assert_eq!(
        grant["upload"]["headers"]["content-type"],
        "application/pdf"
    );
    assert!(
        !grant.to_string().contains(&stack().s3.secret_access_key),
        "the grant must not carry the storage secret"
    );

    // The signature pins the length and the type: other bodies are refused
    // by storage itself.
    assert_eq!(send(&grant, contents[..1000].to_vec()).await, 403);
    let mut wrong_type = grant.clone();
    wrong_type["upload"]["headers"]["content-type"] = json!("text/html");
    assert_eq!(send(&wrong_type, contents.clone()).await, 403);
    assert!(stored(&id).await.is_none());

    // Completing before the file arrived is a conflict, and changes nothing.
    problem(
        complete(&id, "uploader@example.com").await,
        409,
        "/problems/conflict",
    )
    .await;
    assert_eq!(row_status(&id).await.as_deref(), Some("pending"));

    assert_eq!(send(&grant, contents.clone()).await, 200);
    let done = complete(&id, "uploader@example.com").await;
    assert_eq!(done.status(), 200);
    let file: Value = done.json().await.unwrap();
    assert_eq!(file["id"], id.as_str());
    assert_eq!(file["file_name"], "Quarterly report (final).pdf");
    assert_eq!(file["content_type"], "application/pdf");
    assert_eq!(file["size_bytes"], contents.len());
    assert_eq!(file["author"], "uploader@example.com");
    assert_eq!(file["download_url"], format!("/v1/files/{id}"));
    assert!(file["completed_at"].as_str().unwrap().ends_with('Z'));
    // Completing again answers the same file.
    let again: Value = complete(&id, "uploader@example.com")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again, file);

    // Downloads need no token: a redirect to a presigned GET.
    let redirect = http()
        .get(format!("{}/v1/files/{id}", api()))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 302);
    assert_eq!(redirect.headers()["cache-control"], "private, max-age=60");
    let location = redirect.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&stack().s3.endpoint), "{location}");
    let download = http().get(&location).send().await.unwrap();
    assert_eq!(download.status(), 200);
    let disposition = download.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        disposition,
        "attachment; filename=\"Quarterly report (final).pdf\"; \
         filename*=UTF-8''Quarterly%20report%20%28final%29.pdf"
    );
    assert_eq!(download.bytes().await.unwrap().to_vec(), contents);
}

#[tokio::test]
async fn a_stored_file_unlike_its_declaration_is_deleted_and_refused_and_the_upload_stays_open() {
    let grant = granted(
        "uploader@example.com",
        &json!({"file_name": "notes.txt", "content_type": "text/plain", "size_bytes": 10}),
    )
    .await;
    let id = grant["id"].as_str().unwrap().to_owned();
    // Something other than the granted URL wrote the object (a leaked key,
    // a misbehaving tool): 20 bytes where 10 were declared.
    let put = e2e::storage()
        .presign_put(
            &format!("uploads/{id}"),
            "text/plain",
            None,
            Duration::from_secs(60),
            SystemTime::now(),
        )
        .unwrap();
    let mut request = http().put(&put.url).body(vec![b'x'; 20]);
    for (name, value) in &put.headers {
        request = request.header(name, value);
    }
    assert_eq!(request.send().await.unwrap().status(), 200);
    assert_eq!(stored(&id).await.unwrap().size, 20);

    let refused = problem(
        complete(&id, "uploader@example.com").await,
        422,
        "/problems/validation-failed",
    )
    .await;
    let detail = refused["detail"].as_str().unwrap();
    assert!(
        detail.contains("20 bytes") && detail.contains("10 bytes"),
        "{detail}"
    );
    assert!(stored(&id).await.is_none(), "the object is deleted");
    // Its row stays pending: the upload URL is still valid, and whatever
    // is put there next is tracked (completed, or swept with the row).
    assert_eq!(row_status(&id).await.as_deref(), Some("pending"));
    problem(
        complete(&id, "uploader@example.com").await,
        409,
        "/problems/conflict",
    )
    .await;
    problem(
        http()
            .get(format!("{}/v1/files/{id}", api()))
            .send()
            .await
            .unwrap(),
        404,
        "/problems/not-found",
    )
    .await;
    assert_eq!(send(&grant, vec![b'y'; 10]).await, 200);
    let completed = complete(&id, "uploader@example.com").await;
    assert_eq!(completed.status(), 200);
    assert_eq!(row_status(&id).await.as_deref(), Some("complete"));
}

#[tokio::test]
async fn bad_declarations_are_refused_and_record_nothing() {
    let author = format!("{}@example.com", unique("mistakes-"));
    let cases = [
        json!({"file_name": "a.exe", "content_type": "application/x-msdownload", "size_bytes": 10}),
        json!({"file_name": "a.svg", "content_type": "image/svg+xml", "size_bytes": 10}),
        json!({"file_name": "a.txt", "content_type": " text/plain", "size_bytes": 10}),
        json!({"file_name": "a.txt", "content_type": "text/plain; charset=utf-8", "size_bytes": 10}),
        json!({"file_name": "a.png", "content_type": "image/png", "size_bytes": 0}),
        json!({"file_name": "a.png", "content_type": "image/png", "size_bytes": 25 * 1024 * 1024 + 1}),
        json!({"file_name": "../etc/passwd", "content_type": "text/plain", "size_bytes": 10}),
        json!({"file_name": "a\u{0}b.txt", "content_type": "text/plain", "size_bytes": 10}),
        json!({"file_name": "  ", "content_type": "text/plain", "size_bytes": 10}),
        json!({"file_name": "x".repeat(256), "content_type": "text/plain", "size_bytes": 10}),
    ];
    for case in &cases {
        let body = problem(
            grant(&author, case).await,
            422,
            "/problems/validation-failed",
        )
        .await;
        assert!(body["detail"].is_string(), "{case}: {body}");
    }
    for (case, status, kind) in [
        (
            json!({"file_name": "a.txt"}),
            422,
            "/problems/validation-failed",
        ),
        (
            json!({"file_name": "a.txt", "content_type": "text/plain", "size_bytes": -1}),
            422,
            "/problems/validation-failed",
        ),
        (
            json!({"file_name": "a.txt", "content_type": "text/plain", "size_bytes": 1, "path": "x"}),
            422,
            "/problems/validation-failed",
        ),
    ] {
        problem(grant(&author, &case).await, status, kind).await;
    }
    let not_json = http()
        .post(format!("{}/v1/uploads", api()))
        .header("cf-access-jwt-assertion", user_token(&author))
        .header("content-type", "text/plain")
        .body("file_name=a.txt")
        .send()
        .await
        .unwrap();
    problem(not_json, 415, "/problems/unsupported-media-type").await;
    let anonymous = http()
        .post(format!("{}/v1/uploads", api()))
        .json(&json!({"file_name": "a.txt", "content_type": "text/plain", "size_bytes": 1}))
        .send()
        .await
        .unwrap();
    problem(anonymous, 401, "/problems/unauthorized").await;

    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM uploads WHERE author = ?")
        .bind(&author)
        .fetch_one(&mut database().await)
        .await
        .unwrap();
    assert_eq!(rows, 0, "no refused request may leave a row");
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_not_found() {
    for id in [
        "0123456789abcdef0123456789abcdef",
        "nope",
        "..%2F..%2Fsecrets",
    ] {
        problem(
            complete(id, "uploader@example.com").await,
            404,
            "/problems/not-found",
        )
        .await;
        problem(
            http()
                .get(format!("{}/v1/files/{id}", api()))
                .send()
                .await
                .unwrap(),
            404,
            "/problems/not-found",
        )
        .await;
    }
}

#[tokio::test]
async fn the_cron_sweep_removes_abandoned_uploads_from_both_stores() {
    let request = json!({"file_name": "draft.txt", "content_type": "text/plain", "size_bytes": 5});
    let abandoned = granted("uploader@example.com", &request).await;
    let abandoned_id = abandoned["id"].as_str().unwrap().to_owned();
    assert_eq!(send(&abandoned, b"hello".to_vec()).await, 200);
    let fresh = granted("uploader@example.com", &request).await;
    let fresh_id = fresh["id"].as_str().unwrap().to_owned();
    let kept = granted("uploader@example.com", &request).await;
    let kept_id = kept["id"].as_str().unwrap().to_owned();
    assert_eq!(send(&kept, b"hello".to_vec()).await, 200);
    assert_eq!(
        complete(&kept_id, "uploader@example.com").await.status(),
        200
    );

    // Two days old: past UPLOAD_ABANDON_AFTER_SECS (one day by default).
    let mut db = database().await;
    for id in [&abandoned_id, &kept_id] {
        sqlx::query("UPDATE uploads SET created_at = created_at - INTERVAL 2 DAY WHERE id = ?")
            .bind(id)
            .execute(&mut db)
            .await
            .unwrap();
    }

    run_cron().await;
    assert_eq!(row_status(&abandoned_id).await, None, "row removed");
    assert!(stored(&abandoned_id).await.is_none(), "object removed");
    assert_eq!(row_status(&fresh_id).await.as_deref(), Some("pending"));
    assert_eq!(row_status(&kept_id).await.as_deref(), Some("complete"));
    assert!(stored(&kept_id).await.is_some());
    problem(
        complete(&abandoned_id, "uploader@example.com").await,
        404,
        "/problems/not-found",
    )
    .await;

    // A second run (or one racing the first) finds nothing more to do.
    run_cron().await;
    assert_eq!(row_status(&kept_id).await.as_deref(), Some("complete"));
    let redirect = http()
        .get(format!("{}/v1/files/{kept_id}", api()))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 302);
}
