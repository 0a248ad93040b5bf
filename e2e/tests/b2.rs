//! The `b2` client against the stack's S3 server (s3s-fs, which checks
//! SigV4 the way B2 does): readiness answers, a browser-style upload and
//! download through presigned URLs, expiry, and cleanup.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use b2::{Client, Config, Credentials, Error};
use e2e::{http, stack, unique};
use outbound::ReqwestFetch;

const TIMEOUT: Duration = Duration::from_secs(10);

fn config() -> Config {
    let s3 = &stack().s3;
    Config {
        endpoint: s3.endpoint.clone(),
        region: s3.region.clone(),
        bucket: s3.bucket.clone(),
        credentials: Credentials::new(&s3.access_key_id, &s3.secret_access_key),
    }
}

fn client(config: Config) -> Client {
    Client::new(config, Arc::new(ReqwestFetch::default())).unwrap()
}

/// Uploads `body` as a browser would: PUT to the URL with the listed headers.
async fn upload(put: &b2::PresignedPut, body: &'static [u8]) -> reqwest::StatusCode {
    let mut request = http().put(&put.url).body(body);
    for (name, value) in &put.headers {
        request = request.header(name, value);
    }
    request.send().await.unwrap().status()
}

#[tokio::test]
async fn head_bucket_answers_for_the_real_bucket_and_credentials() {
    client(config())
        .head_bucket(SystemTime::now(), TIMEOUT)
        .await
        .unwrap();
}

#[tokio::test]
async fn head_bucket_with_a_wrong_secret_is_access_denied() {
    let wrong = Config {
        credentials: Credentials::new(&stack().s3.access_key_id, "not-the-secret"),
        ..config()
    };
    let err = client(wrong)
        .head_bucket(SystemTime::now(), TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AccessDenied { .. }), "{err:?}");
}

#[tokio::test]
async fn head_bucket_of_an_unknown_bucket_is_not_found() {
    let missing = Config {
        bucket: unique("missing"),
        ..config()
    };
    let err = client(missing)
        .head_bucket(SystemTime::now(), TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn head_bucket_with_nothing_listening_is_a_network_error_without_secrets() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nowhere = Config {
        endpoint: format!("http://127.0.0.1:{port}"),
        ..config()
    };
    let err = client(nowhere)
        .head_bucket(SystemTime::now(), TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Network(_)), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(&stack().s3.access_key_id), "{shown}");
    assert!(!shown.contains("X-Amz-Signature"), "{shown}");
}

#[tokio::test]
async fn a_presigned_put_uploads_and_head_object_sees_its_size_and_type() {
    let b2 = client(config());
    let key = unique("uploads/");
    let body: &[u8] = b"%PDF-1.7 not really a pdf";
    let put = b2
        .presign_put(
            &key,
            "application/pdf",
            Some(body.len() as u64),
            Duration::from_secs(300),
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!(upload(&put, body).await, 200);

    let info = b2
        .head_object(&key, SystemTime::now(), TIMEOUT)
        .await
        .unwrap()
        .expect("the object exists");
    assert_eq!(info.size, body.len() as u64);
    assert_eq!(info.content_type.as_deref(), Some("application/pdf"));
    assert!(info.etag.is_some());
}

#[tokio::test]
async fn a_presigned_put_refuses_another_content_type_or_length() {
    let b2 = client(config());
    let key = unique("uploads/");
    let put = b2
        .presign_put(
            &key,
            "image/png",
            Some(4),
            Duration::from_secs(300),
            SystemTime::now(),
        )
        .unwrap();
    let other_type = b2::PresignedPut {
        headers: vec![("content-type".into(), "text/html".into())],
        ..put.clone()
    };
    assert_eq!(upload(&other_type, b"abcd").await, 403);
    assert_eq!(upload(&put, b"abcde").await, 403);
    assert_eq!(
        b2.head_object(&key, SystemTime::now(), TIMEOUT).await,
        Ok(None)
    );
    // The same URL with what was signed goes through.
    assert_eq!(upload(&put, b"abcd").await, 200);
}

#[tokio::test]
async fn a_presigned_get_downloads_the_bytes_with_the_disposition_asked_for() {
    let b2 = client(config());
    let key = unique("files/");
    let body: &[u8] = b"hello from b2";
    let put = b2
        .presign_put(
            &key,
            "text/plain",
            None,
            Duration::from_secs(300),
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!(upload(&put, body).await, 200);

    let disposition = "attachment; filename=\"hello.txt\"";
    let url = b2
        .presign_get(
            &key,
            Duration::from_secs(60),
            Some(disposition),
            SystemTime::now(),
        )
        .unwrap();
    let response = http().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-disposition"].to_str().unwrap(),
        disposition
    );
    assert_eq!(&response.bytes().await.unwrap()[..], body);
}

#[tokio::test]
async fn an_expired_presigned_url_is_refused() {
    let b2 = client(config());
    let key = unique("files/");
    let put = b2
        .presign_put(
            &key,
            "text/plain",
            None,
            Duration::from_secs(300),
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!(upload(&put, b"soon gone").await, 200);

    // Signed an hour ago for one minute.
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let expired = b2
        .presign_get(&key, Duration::from_secs(60), None, an_hour_ago)
        .unwrap();
    assert_eq!(http().get(&expired).send().await.unwrap().status(), 403);
    let fresh = b2
        .presign_get(&key, Duration::from_secs(60), None, SystemTime::now())
        .unwrap();
    assert_eq!(http().get(&fresh).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn delete_object_removes_it_and_deleting_again_succeeds() {
    let b2 = client(config());
    let key = unique("files/");
    let put = b2
        .presign_put(
            &key,
            "text/plain",
            None,
            Duration::from_secs(300),
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!(upload(&put, b"to delete").await, 200);
    assert!(b2
        .head_object(&key, SystemTime::now(), TIMEOUT)
        .await
        .unwrap()
        .is_some());

    b2.delete_object(&key, SystemTime::now(), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        b2.head_object(&key, SystemTime::now(), TIMEOUT).await,
        Ok(None)
    );
    b2.delete_object(&key, SystemTime::now(), TIMEOUT)
        .await
        .unwrap();
}

#[tokio::test]
async fn copy_object_copies_only_the_version_that_was_checked() {
    let b2 = client(config());
    let now = SystemTime::now;
    let source = unique("uploads/copy source ");
    let destination = unique("files/copy-");
    let put = b2
        .presign_put(&source, "text/plain", None, Duration::from_secs(300), now())
        .unwrap();
    assert_eq!(upload(&put, b"first").await, 200);
    let checked = b2
        .head_object(&source, now(), TIMEOUT)
        .await
        .unwrap()
        .unwrap();
    let etag = checked.etag.clone().unwrap();

    assert_eq!(
        b2.copy_object(&source, &destination, &etag, now(), TIMEOUT)
            .await,
        Ok(b2::Copy::Copied)
    );
    let copy = b2
        .head_object(&destination, now(), TIMEOUT)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (copy.size, copy.content_type.as_deref()),
        (5, Some("text/plain"))
    );
    assert!(b2::same_etag(copy.etag.as_deref().unwrap(), &etag));
    let get = b2
        .presign_get(&destination, Duration::from_secs(60), None, now())
        .unwrap();
    assert_eq!(
        http().get(&get).send().await.unwrap().text().await.unwrap(),
        "first"
    );

    // The source replaced after the check: nothing is copied.
    assert_eq!(upload(&put, b"other").await, 200);
    assert_eq!(
        b2.copy_object(&source, &destination, &etag, now(), TIMEOUT)
            .await,
        Ok(b2::Copy::SourceChanged)
    );
    assert_eq!(
        http().get(&get).send().await.unwrap().text().await.unwrap(),
        "first"
    );

    b2.delete_object(&source, now(), TIMEOUT).await.unwrap();
    assert_eq!(
        b2.copy_object(&source, &destination, &etag, now(), TIMEOUT)
            .await,
        Ok(b2::Copy::SourceMissing)
    );
    b2.delete_object(&destination, now(), TIMEOUT)
        .await
        .unwrap();
}
