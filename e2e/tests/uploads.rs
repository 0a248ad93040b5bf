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

/// The object the upload URL wrote.
async fn stored(id: &str) -> Option<b2::ObjectInfo> {
    e2e::storage()
        .head_object(&format!("uploads/{id}"), SystemTime::now(), TIMEOUT)
        .await
        .unwrap()
}

/// The completed file's own copy.
async fn stored_file(id: &str) -> Option<b2::ObjectInfo> {
    e2e::storage()
        .head_object(&format!("files/{id}"), SystemTime::now(), TIMEOUT)
        .await
        .unwrap()
}

/// A completed upload of `bytes` (of the size `request` declares): its id.
async fn completed(request: &Value, bytes: &[u8]) -> String {
    let grant = granted("uploader@example.com", request).await;
    let id = grant["id"].as_str().unwrap().to_owned();
    assert_eq!(send(&grant, bytes.to_vec()).await, 200);
    assert_eq!(complete(&id, "uploader@example.com").await.status(), 200);
    id
}

/// Copies the upload's object to the file's key, as a completion does (one
/// cut off before it recorded the copy, here).
async fn copy_to_file_key(id: &str) {
    let etag = stored(id).await.unwrap().etag.unwrap();
    let copy = e2e::storage()
        .copy_object(
            &format!("uploads/{id}"),
            &format!("files/{id}"),
            &etag,
            SystemTime::now(),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(copy, b2::Copy::Copied);
}

/// The file's bytes, through the API's redirect.
async fn downloaded(id: &str) -> Vec<u8> {
    let redirect = http()
        .get(format!("{}/v1/files/{id}", api()))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 302);
    let location = redirect.headers()["location"].to_str().unwrap().to_owned();
    let download = http().get(&location).send().await.unwrap();
    assert_eq!(download.status(), 200);
    download.bytes().await.unwrap().to_vec()
}

/// Whether the sweep has removed the completed upload's uploaded object.
async fn settled(id: &str) -> bool {
    let settled_at: Option<Option<String>> =
        sqlx::query_scalar("SELECT CAST(settled_at AS CHAR) FROM upload_files WHERE upload_id = ?")
            .bind(id)
            .fetch_optional(&mut database().await)
            .await
            .unwrap();
    settled_at.expect("a copied file has its row").is_some()
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
async fn a_completed_file_cannot_be_replaced_through_its_still_valid_upload_url() {
    let grant = granted(
        "uploader@example.com",
        &json!({"file_name": "logo.png", "content_type": "image/png", "size_bytes": 8}),
    )
    .await;
    let id = grant["id"].as_str().unwrap().to_owned();
    assert_eq!(send(&grant, b"original".to_vec()).await, 200);
    assert_eq!(complete(&id, "uploader@example.com").await.status(), 200);
    assert_eq!(downloaded(&id).await, b"original");

    // Whoever holds the URL (it was in a browser's history, a proxy's log)
    // can still PUT the same size and type to it while it is valid.
    assert_eq!(send(&grant, b"replaced".to_vec()).await, 200);
    assert_eq!(downloaded(&id).await, b"original");
    let again: Value = complete(&id, "uploader@example.com")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["size_bytes"], 8);
    assert_eq!(downloaded(&id).await, b"original");
}

#[tokio::test]
async fn a_completion_checks_and_copies_only_while_it_holds_the_uploads_row() {
    let grant = granted(
        "uploader@example.com",
        &json!({"file_name": "held.txt", "content_type": "text/plain", "size_bytes": 4}),
    )
    .await;
    let id = grant["id"].as_str().unwrap().to_owned();
    assert_eq!(send(&grant, b"held".to_vec()).await, 200);
    // Another completion (or the sweep) holds the row.
    let mut db = database().await;
    let mut held = sqlx::Connection::begin(&mut db).await.unwrap();
    sqlx::query("SELECT status FROM uploads WHERE id = ? FOR UPDATE")
        .bind(&id)
        .execute(&mut *held)
        .await
        .unwrap();
    let completing = tokio::spawn({
        let id = id.clone();
        async move { complete(&id, "uploader@example.com").await.status() }
    });
    // The completion is waiting for the row (its locking read is in
    // MariaDB's process list until it gets the row), well
    // inside the wait the Worker allows (half the local stack's 3 s
    // request deadline, in whole seconds: 1 s).
    let waiting = async {
        loop {
            let waits: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                 WHERE INFO LIKE 'SELECT % FROM uploads u % FOR UPDATE WAIT %' \
                 AND ID <> CONNECTION_ID()",
            )
            .fetch_one(&mut database().await)
            .await
            .unwrap();
            if waits > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_millis(800), waiting)
        .await
        .expect("the completion waits for the row");
    assert!(!completing.is_finished());
    assert!(
        stored_file(&id).await.is_none(),
        "nothing is copied before the row is held"
    );
    held.commit().await.unwrap();
    assert_eq!(completing.await.unwrap(), 200);
    assert_eq!(downloaded(&id).await, b"held");
}

#[tokio::test]
async fn a_completion_after_an_earlier_copy_landed_serves_the_checked_bytes() {
    let grant = granted(
        "uploader@example.com",
        &json!({"file_name": "big.txt", "content_type": "text/plain", "size_bytes": 5}),
    )
    .await;
    let id = grant["id"].as_str().unwrap().to_owned();
    assert_eq!(send(&grant, b"hello".to_vec()).await, 200);
    // An earlier completion's copy landed after its answer was lost.
    copy_to_file_key(&id).await;
    assert_eq!(row_status(&id).await.as_deref(), Some("pending"));

    assert_eq!(complete(&id, "uploader@example.com").await.status(), 200);
    assert_eq!(downloaded(&id).await, b"hello");

    // A copy of other bytes (the upload replaced before completion) is
    // not taken for the checked object: the completion copies again.
    let other = granted(
        "uploader@example.com",
        &json!({"file_name": "b.txt", "content_type": "text/plain", "size_bytes": 5}),
    )
    .await;
    let other_id = other["id"].as_str().unwrap().to_owned();
    assert_eq!(send(&other, b"first".to_vec()).await, 200);
    copy_to_file_key(&other_id).await;
    assert_eq!(send(&other, b"final".to_vec()).await, 200);
    assert_eq!(
        complete(&other_id, "uploader@example.com").await.status(),
        200
    );
    assert_eq!(downloaded(&other_id).await, b"final");
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
async fn the_cron_sweep_removes_abandoned_uploads_and_settles_completed_ones() {
    let request = json!({"file_name": "draft.txt", "content_type": "text/plain", "size_bytes": 5});
    let abandoned = granted("uploader@example.com", &request).await;
    let abandoned_id = abandoned["id"].as_str().unwrap().to_owned();
    assert_eq!(send(&abandoned, b"hello".to_vec()).await, 200);
    // A completion that copied the file and never recorded it.
    copy_to_file_key(&abandoned_id).await;
    let fresh = granted("uploader@example.com", &request).await;
    let fresh_id = fresh["id"].as_str().unwrap().to_owned();
    let kept_id = completed(&request, b"hello").await;
    let recent_id = completed(&request, b"hello").await;
    // Completed by a Worker from before files were copied (a rollback, or a
    // canary split with the old version): served from the object its URL
    // wrote, which must stay.
    let legacy = granted("uploader@example.com", &request).await;
    let legacy_id = legacy["id"].as_str().unwrap().to_owned();
    assert_eq!(send(&legacy, b"older".to_vec()).await, 200);
    let mut db = database().await;
    sqlx::query(
        "UPDATE uploads SET status = 'complete', size_bytes = 5, \
         completed_at = UTC_TIMESTAMP(3) WHERE id = ?",
    )
    .bind(&legacy_id)
    .execute(&mut db)
    .await
    .unwrap();
    assert!(stored_file(&legacy_id).await.is_none(), "not copied");
    assert_eq!(downloaded(&legacy_id).await, b"older");

    // A copied file whose copy went missing: its uploaded object, the
    // only copy left, must stay.
    let lost_id = completed(&request, b"alone").await;
    e2e::storage()
        .delete_object(&format!("files/{lost_id}"), SystemTime::now(), TIMEOUT)
        .await
        .unwrap();

    // Eight days old: past UPLOAD_ABANDON_AFTER_SECS (one day by default),
    // and past the week a copied file's uploaded object is kept for.
    for id in [&abandoned_id, &kept_id, &legacy_id, &lost_id] {
        sqlx::query("UPDATE uploads SET created_at = created_at - INTERVAL 8 DAY WHERE id = ?")
            .bind(id)
            .execute(&mut db)
            .await
            .unwrap();
        sqlx::query(
            "UPDATE upload_files SET copied_at = copied_at - INTERVAL 8 DAY WHERE upload_id = ?",
        )
        .bind(id)
        .execute(&mut db)
        .await
        .unwrap();
    }

    run_cron().await;
    assert_eq!(row_status(&abandoned_id).await, None, "row removed");
    assert!(stored(&abandoned_id).await.is_none(), "object removed");
    assert!(stored_file(&abandoned_id).await.is_none(), "copy removed");
    assert_eq!(row_status(&fresh_id).await.as_deref(), Some("pending"));
    // Still `complete` to every Worker version; only the file is left.
    assert_eq!(row_status(&kept_id).await.as_deref(), Some("complete"));
    assert!(settled(&kept_id).await, "settled");
    assert!(stored(&kept_id).await.is_none(), "uploaded object removed");
    assert!(stored_file(&kept_id).await.is_some(), "the file stays");
    // A week has not passed: a rollback to a Worker from before copies
    // still finds what it serves, the uploaded object.
    assert_eq!(row_status(&recent_id).await.as_deref(), Some("complete"));
    assert!(!settled(&recent_id).await);
    assert!(stored(&recent_id).await.is_some());
    assert_eq!(row_status(&legacy_id).await.as_deref(), Some("complete"));
    assert!(stored(&legacy_id).await.is_some(), "a legacy file stays");
    assert!(!settled(&lost_id).await, "not settled without its copy");
    assert!(stored(&lost_id).await.is_some(), "the only copy left stays");
    problem(
        complete(&abandoned_id, "uploader@example.com").await,
        404,
        "/problems/not-found",
    )
    .await;

    // A second run (or one racing the first) finds nothing more to do, and
    // settled files are still served and completed as before.
    run_cron().await;
    assert!(settled(&kept_id).await);
    assert_eq!(downloaded(&kept_id).await, b"hello");
    assert_eq!(downloaded(&legacy_id).await, b"older");
    let again = complete(&kept_id, "uploader@example.com").await;
    assert_eq!(again.status(), 200);
    let file: Value = again.json().await.unwrap();
    assert_eq!(file["size_bytes"], 5);
}
