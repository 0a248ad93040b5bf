//! Native tests against a fake `Fetch` that records what would be sent.
//! The signatures themselves are checked against a real SigV4 server in
//! `e2e/tests/b2.rs`, and recomputed here as a server that reads `+` in a
//! query as a plus sign would (`server_signature`).

use std::sync::Mutex;

use outbound::{BoxFuture, FetchError, Request, Response};

use super::*;

const KEY_ID: &str = "004a1b2c3d4e5f60000000001";
const APP_KEY: &str = "K004SuperSecretApplicationKeyValue";
/// 2026-05-01T12:00:00Z.
const T: u64 = 1_777_636_800;

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// Answers every request with the next scripted result and keeps the
/// requests.
#[derive(Default)]
struct FakeFetch {
    answers: Mutex<Vec<Result<Response, FetchError>>>,
    sent: Mutex<Vec<(Request, Duration)>>,
}

impl FakeFetch {
    fn answering(answers: Vec<Result<Response, FetchError>>) -> Arc<Self> {
        Arc::new(FakeFetch {
            answers: Mutex::new(answers.into_iter().rev().collect()),
            sent: Mutex::default(),
        })
    }

    fn sent(&self) -> Vec<(http::Method, String, http::HeaderMap, Duration)> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|(r, t)| {
                (
                    r.method().clone(),
                    r.uri().to_string(),
                    r.headers().clone(),
                    *t,
                )
            })
            .collect()
    }
}

impl Fetch for FakeFetch {
    fn fetch(
        &self,
        request: Request,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Response, FetchError>> {
        self.sent.lock().unwrap().push((request, timeout));
        let answer = self
            .answers
            .lock()
            .unwrap()
            .pop()
            .expect("a scripted answer");
        Box::pin(async move { answer })
    }
}

fn status(code: u16) -> Result<Response, FetchError> {
    Ok(http::Response::builder()
        .status(code)
        .body(Bytes::new())
        .unwrap())
}

fn xml_error(code: u16, s3_code: &str) -> Result<Response, FetchError> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{s3_code}</Code>\
         <Message>whatever</Message></Error>"
    );
    Ok(http::Response::builder()
        .status(code)
        .body(Bytes::from(body))
        .unwrap())
}

fn config() -> Config {
    Config {
        endpoint: "https://s3.us-west-004.backblazeb2.com".into(),
        region: "us-west-004".into(),
        bucket: "files".into(),
        credentials: Credentials::new(KEY_ID, APP_KEY),
    }
}

fn client(fetch: Arc<FakeFetch>) -> Client {
    Client::new(config(), fetch).unwrap()
}

fn query(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param(url: &str, name: &str) -> Option<String> {
    query(url)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn assert_no_checksum(url: &str, headers: &http::HeaderMap) {
    for name in headers.keys() {
        assert!(!name.as_str().contains("checksum"), "{name}");
    }
    for (k, _) in query(url) {
        assert!(!k.to_ascii_lowercase().contains("checksum"), "{k}");
    }
}

#[tokio::test]
async fn head_bucket_sends_a_signed_path_style_head_with_the_callers_timeout() {
    let fetch = FakeFetch::answering(vec![status(200)]);
    let b2 = client(fetch.clone());
    b2.head_bucket(at(T), Duration::from_millis(1500))
        .await
        .unwrap();
    let sent = fetch.sent();
    assert_eq!(sent.len(), 1);
    let (method, url, headers, timeout) = &sent[0];
    assert_eq!(method, http::Method::HEAD);
    assert!(
        url.starts_with("https://s3.us-west-004.backblazeb2.com/files/?"),
        "{url}"
    );
    assert_eq!(*timeout, Duration::from_millis(1500));
    assert_eq!(
        param(url, "X-Amz-Algorithm").as_deref(),
        Some("AWS4-HMAC-SHA256")
    );
    assert_eq!(
        param(url, "X-Amz-Credential").as_deref(),
        Some("004a1b2c3d4e5f60000000001/20260501/us-west-004/s3/aws4_request")
    );
    assert_eq!(
        param(url, "X-Amz-Date").as_deref(),
        Some("20260501T120000Z")
    );
    assert_eq!(param(url, "X-Amz-SignedHeaders").as_deref(), Some("host"));
    assert_eq!(param(url, "X-Amz-Signature").map(|s| s.len()), Some(64));
    assert!(!url.contains(APP_KEY));
    assert_no_checksum(url, headers);
}

#[tokio::test]
async fn head_bucket_tells_refused_credentials_from_a_missing_bucket_and_silence() {
    let fetch = FakeFetch::answering(vec![
        status(403),
        xml_error(403, "InvalidAccessKeyId"),
        status(404),
        Err(FetchError::Timeout(Duration::from_secs(2))),
        status(500),
    ]);
    let b2 = client(fetch);
    let t = Duration::from_secs(2);
    assert_eq!(
        b2.head_bucket(at(T), t).await,
        Err(Error::AccessDenied { code: None })
    );
    assert_eq!(
        b2.head_bucket(at(T), t).await,
        Err(Error::AccessDenied {
            code: Some("InvalidAccessKeyId".into())
        })
    );
    assert_eq!(
        b2.head_bucket(at(T), t).await,
        Err(Error::NotFound { code: None })
    );
    assert_eq!(
        b2.head_bucket(at(T), t).await,
        Err(Error::Timeout(Duration::from_secs(2)))
    );
    assert_eq!(
        b2.head_bucket(at(T), t).await,
        Err(Error::Unexpected {
            status: 500,
            code: None
        })
    );
}

#[tokio::test]
async fn a_network_error_loses_the_signed_query_and_the_key_id() {
    // What reqwest says when the connection is refused: the whole URL.
    let fetch = FakeFetch::answering(vec![Err(FetchError::Network(format!(
        "error sending request for url (https://s3.us-west-004.backblazeb2.com/files/?\
         X-Amz-Credential={KEY_ID}%2F20260501&X-Amz-Signature=abc): connection refused; \
         key {KEY_ID}"
    )))]);
    let err = client(fetch)
        .head_bucket(at(T), Duration::from_secs(1))
        .await
        .unwrap_err();
    let Error::Network(text) = &err else {
        panic!("{err:?}")
    };
    assert!(text.contains("connection refused"), "{text}");
    for shown in [format!("{err}"), format!("{err:?}")] {
        assert!(!shown.contains(KEY_ID), "{shown}");
        assert!(!shown.contains("X-Amz-Signature"), "{shown}");
    }
}

#[test]
fn a_fixed_time_gives_the_same_signature_and_another_time_another() {
    let b2 = client(FakeFetch::answering(vec![]));
    let get = |t| {
        b2.presign_get("a/b.txt", Duration::from_secs(300), None, at(t))
            .unwrap()
    };
    assert_eq!(get(T), get(T));
    assert_ne!(
        param(&get(T), "X-Amz-Signature"),
        param(&get(T + 1), "X-Amz-Signature")
    );
    // Computed independently of rusty-s3 (SigV4 query auth by hand in
    // Python: GET /files/a/b.txt, host the only signed header,
    // UNSIGNED-PAYLOAD), so a change in what is signed shows up here.
    assert_eq!(
        param(&get(T), "X-Amz-Signature").as_deref(),
        Some(PINNED_GET_SIGNATURE)
    );
}

const PINNED_GET_SIGNATURE: &str =
    "7bfe9f2bc6fca8daacc63b9e30d26c9a238f35d781378c97c45a77a36389a208";

/// SigV4's `UriEncode` as its definition says: every byte but
/// `A-Z a-z 0-9 - . _ ~` as `%XX` (written out here, apart from the
/// client's encoding).
fn uri_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The canonical query a server rebuilds from a URL's raw query when it
/// reads it as RFC 3986 does (`%XX` decoded, `+` a plus sign), as
/// S3-compatible servers may: parameters but the signature, encoded,
/// sorted by name.
fn canonical_query(raw: &str) -> String {
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(text)
            .decode_utf8()
            .unwrap()
            .into_owned()
    };
    let mut pairs: Vec<(String, String)> = raw
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .filter(|(name, _)| *name != "X-Amz-Signature")
        .map(|(name, value)| (uri_encode(&decode(name)), uri_encode(&decode(value))))
        .collect();
    pairs.sort();
    let pairs: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect();
    pairs.join("&")
}

/// The SigV4 signature such a server computes for a presigned GET of
/// `url` made at [`T`] (host the only signed header, UNSIGNED-PAYLOAD),
/// independently of rusty-s3.
fn server_signature(url: &str) -> String {
    use hmac::{Hmac, Mac as _};
    use sha2::{Digest as _, Sha256};
    let hmac = |key: &[u8], data: &str| {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().to_vec()
    };
    let url = url::Url::parse(url).unwrap();
    let canonical_request = format!(
        "GET\n{}\n{}\nhost:{}\n\nhost\nUNSIGNED-PAYLOAD",
        url.path(),
        canonical_query(url.query().unwrap()),
        url.host_str().unwrap()
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n20260501T120000Z\n20260501/us-west-004/s3/aws4_request\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let key = ["20260501", "us-west-004", "s3", "aws4_request"]
        .into_iter()
        .fold(format!("AWS4{APP_KEY}").into_bytes(), |key, part| {
            hmac(&key, part)
        });
    hex::encode(hmac(&key, &string_to_sign))
}

/// What a download link's `response-content-disposition` may hold: spaces
/// (in every one), and characters that form encoding and SigV4 encode
/// differently (`*`, `~`, `+`) or that are themselves escapes (`%`).
const AWKWARD_DISPOSITION: &str =
    "attachment; filename=\"Q1 report*~+é.pdf\"; filename*=UTF-8''Q1%20report.pdf";

#[test]
fn a_presigned_query_is_written_exactly_as_it_was_signed() {
    let b2 = client(FakeFetch::answering(vec![]));
    let url = b2
        .presign_get(
            "f/1",
            Duration::from_secs(60),
            Some(AWKWARD_DISPOSITION),
            at(T),
        )
        .unwrap();
    let parsed = url::Url::parse(&url).unwrap();
    assert_eq!(parsed.as_str(), url, "the URL is already in normal form");
    let raw = parsed.query().unwrap();
    let (signed, signature) = raw.rsplit_once("&X-Amz-Signature=").unwrap();
    // What SigV4 signs: each parameter but the signature, UriEncoded, in
    // order of name; the URL carries those very bytes, the signature last.
    let mut expected: Vec<String> = query(&url)
        .iter()
        .filter(|(name, _)| name != "X-Amz-Signature")
        .map(|(name, value)| format!("{}={}", uri_encode(name), uri_encode(value)))
        .collect();
    expected.sort();
    assert_eq!(signed, expected.join("&"));
    assert!(
        signed.contains("response-content-disposition=attachment%3B%20filename%3D%22Q1%20report%2A~%2B%C3%A9.pdf%22%3B%20filename%2A%3DUTF-8%27%27Q1%2520report.pdf"),
        "{signed}"
    );
    assert_eq!(signature, server_signature(&url));
    assert_eq!(
        param(&url, "response-content-disposition").as_deref(),
        Some(AWKWARD_DISPOSITION)
    );
}

/// A server that reads the query as RFC 3986 does (`+` is not a space)
/// computes the signature the URL carries, for every kind of URL.
#[tokio::test]
async fn a_strict_server_accepts_every_signed_url() {
    let fetch = FakeFetch::answering(vec![status(200)]);
    let b2 = client(fetch.clone());
    let ten_min = Duration::from_secs(600);
    // The recomputation itself, against the signature pinned above.
    let plain = b2.presign_get("a/b.txt", Duration::from_secs(300), None, at(T));
    assert_eq!(server_signature(&plain.unwrap()), PINNED_GET_SIGNATURE);
    for disposition in [
        AWKWARD_DISPOSITION,
        "inline",
        "attachment; filename=\"a b.pdf\"",
    ] {
        let url = b2
            .presign_get("dir/x y.pdf", ten_min, Some(disposition), at(T))
            .unwrap();
        assert_eq!(
            param(&url, "X-Amz-Signature"),
            Some(server_signature(&url)),
            "{disposition}"
        );
    }
    // The Worker's own requests go out the same way.
    b2.head_bucket(at(T), ten_min).await.unwrap();
    let (_, sent, _, _) = &fetch.sent()[0];
    let raw = url::Url::parse(sent).unwrap().query().unwrap().to_owned();
    assert_eq!(
        raw.rsplit_once("&X-Amz-Signature=").unwrap().0,
        canonical_query(&raw)
    );
}

#[test]
fn presign_put_signs_type_and_length_and_lists_the_type_for_the_browser() {
    let b2 = client(FakeFetch::answering(vec![]));
    let put = b2
        .presign_put(
            "uploads/x y.pdf",
            "application/pdf",
            Some(1234),
            Duration::from_secs(600),
            at(T),
        )
        .unwrap();
    assert!(
        put.url
            .starts_with("https://s3.us-west-004.backblazeb2.com/files/uploads/x%20y.pdf?"),
        "{}",
        put.url
    );
    assert_eq!(
        param(&put.url, "X-Amz-SignedHeaders").as_deref(),
        Some("content-length;content-type;host")
    );
    assert_eq!(param(&put.url, "X-Amz-Expires").as_deref(), Some("600"));
    assert_eq!(
        put.headers,
        vec![("content-type".to_owned(), "application/pdf".to_owned())]
    );
    assert_no_checksum(&put.url, &http::HeaderMap::new());

    let unsized_put = b2
        .presign_put("k", "text/plain", None, Duration::from_secs(60), at(T))
        .unwrap();
    assert_eq!(
        param(&unsized_put.url, "X-Amz-SignedHeaders").as_deref(),
        Some("content-type;host")
    );
}

#[test]
fn presign_get_passes_the_content_disposition_in_the_signed_query() {
    let b2 = client(FakeFetch::answering(vec![]));
    let disposition = "attachment; filename=\"report.pdf\"";
    let url = b2
        .presign_get("f/1", Duration::from_secs(60), Some(disposition), at(T))
        .unwrap();
    assert!(
        url.starts_with("https://s3.us-west-004.backblazeb2.com/files/f/1?"),
        "{url}"
    );
    assert_eq!(
        param(&url, "response-content-disposition").as_deref(),
        Some(disposition)
    );
    let plain = b2
        .presign_get("f/1", Duration::from_secs(60), None, at(T))
        .unwrap();
    assert_ne!(
        param(&url, "X-Amz-Signature"),
        param(&plain, "X-Amz-Signature")
    );
}

#[test]
fn keys_and_expiries_that_cannot_be_signed_are_refused() {
    let b2 = client(FakeFetch::answering(vec![]));
    let ten_min = Duration::from_secs(600);
    for key in [
        "",
        "/abs",
        "../other-bucket/x",
        "a/./b",
        "a/../../b",
        "a\nb",
    ] {
        assert!(
            matches!(
                b2.presign_get(key, ten_min, None, at(T)),
                Err(Error::Invalid(_))
            ),
            "{key:?}"
        );
    }
    for expires in [Duration::ZERO, MAX_EXPIRY + Duration::from_secs(1)] {
        assert!(matches!(
            b2.presign_put("k", "text/plain", None, expires, at(T)),
            Err(Error::Invalid(_))
        ));
    }
    assert!(b2
        .presign_put("k", "text/plain", None, MAX_EXPIRY, at(T))
        .is_ok());
    assert!(matches!(
        b2.presign_put("k", "text/plain\r\nx-evil: 1", None, ten_min, at(T)),
        Err(Error::Invalid(_))
    ));
    // Characters that mean something in a URL stay in the key.
    let url = b2.presign_get("a?b#c", ten_min, None, at(T)).unwrap();
    assert!(url.contains("/files/a%3Fb%23c?"), "{url}");
}

#[tokio::test]
async fn head_object_reads_size_type_and_etag_and_none_when_missing() {
    let found = http::Response::builder()
        .status(200)
        .header("content-length", "1234")
        .header("content-type", "application/pdf")
        .header("etag", "\"9b2cf535f27731c974343645a3985328\"")
        .body(Bytes::new())
        .unwrap();
    let fetch = FakeFetch::answering(vec![Ok(found), status(404), status(403)]);
    let b2 = client(fetch.clone());
    let t = Duration::from_secs(3);
    assert_eq!(
        b2.head_object("uploads/1", at(T), t).await,
        Ok(Some(ObjectInfo {
            size: 1234,
            content_type: Some("application/pdf".into()),
            etag: Some("\"9b2cf535f27731c974343645a3985328\"".into()),
        }))
    );
    assert_eq!(b2.head_object("uploads/2", at(T), t).await, Ok(None));
    assert_eq!(
        b2.head_object("uploads/3", at(T), t).await,
        Err(Error::AccessDenied { code: None })
    );
    let sent = fetch.sent();
    assert_eq!(sent[0].0, http::Method::HEAD);
    assert!(
        sent[0]
            .1
            .starts_with("https://s3.us-west-004.backblazeb2.com/files/uploads/1?"),
        "{}",
        sent[0].1
    );
    for (_, url, headers, _) in &sent {
        assert_no_checksum(url, headers);
    }
}

#[tokio::test]
async fn delete_object_succeeds_when_already_gone_but_not_without_a_bucket() {
    let fetch = FakeFetch::answering(vec![
        status(204),
        xml_error(404, "NoSuchKey"),
        xml_error(404, "NoSuchBucket"),
        xml_error(503, "SlowDown"),
    ]);
    let b2 = client(fetch.clone());
    let t = Duration::from_secs(3);
    assert_eq!(b2.delete_object("k", at(T), t).await, Ok(()));
    assert_eq!(b2.delete_object("k", at(T), t).await, Ok(()));
    assert_eq!(
        b2.delete_object("k", at(T), t).await,
        Err(Error::NotFound {
            code: Some("NoSuchBucket".into())
        })
    );
    assert_eq!(
        b2.delete_object("k", at(T), t).await,
        Err(Error::Unexpected {
            status: 503,
            code: Some("SlowDown".into())
        })
    );
    let sent = fetch.sent();
    assert_eq!(sent[0].0, http::Method::DELETE);
    assert!(sent[0]
        .1
        .starts_with("https://s3.us-west-004.backblazeb2.com/files/k?"));
}

#[test]
fn an_error_code_is_kept_only_when_it_looks_like_one() {
    assert_eq!(
        error::error_code(b"<Error><Code>AccessDenied</Code></Error>").as_deref(),
        Some("AccessDenied")
    );
    assert_eq!(
        error::error_code(b"<Error><Code>echo of ?X-Amz-Credential=abc</Code></Error>"),
        None
    );
    assert_eq!(error::error_code(b"not xml"), None);
}

#[test]
fn credentials_appear_in_no_debug_output() {
    let b2 = client(FakeFetch::answering(vec![]));
    let put = b2
        .presign_put("k", "text/plain", None, Duration::from_secs(60), at(T))
        .unwrap();
    assert!(
        put.url.contains(KEY_ID),
        "the URL itself must carry the key id"
    );
    for shown in [
        format!("{:?}", config()),
        format!("{:?}", Credentials::new(KEY_ID, APP_KEY)),
        format!("{b2:?}"),
        format!("{put:?}"),
    ] {
        assert!(!shown.contains(KEY_ID), "{shown}");
        assert!(!shown.contains(APP_KEY), "{shown}");
    }
}

#[test]
fn bad_endpoints_are_refused_at_construction() {
    for endpoint in ["not a url", "ftp://host", "mailto:x@y"] {
        let config = Config {
            endpoint: endpoint.into(),
            ..config()
        };
        let err = Client::new(config, FakeFetch::answering(vec![])).unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{endpoint}: {err:?}");
        assert!(!format!("{err}").contains(APP_KEY));
    }
}

fn xml_ok(body: &str) -> Result<Response, FetchError> {
    Ok(http::Response::builder()
        .status(200)
        .body(Bytes::from(body.to_owned()))
        .unwrap())
}

#[tokio::test]
async fn copy_object_signs_its_source_and_condition_and_tells_each_outcome() {
    let fetch = FakeFetch::answering(vec![
        xml_ok(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CopyObjectResult>\
             <LastModified>2026-05-01T12:00:00.000Z</LastModified>\
             <ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag></CopyObjectResult>",
        ),
        xml_error(404, "NoSuchKey"),
        xml_error(412, "PreconditionFailed"),
        // A copy that failed after S3 had started answering.
        xml_ok("<Error><Code>InternalError</Code><Message>x</Message></Error>"),
        // A 200 whose body says nothing (cut off): not a finished copy.
        xml_ok("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
        xml_error(404, "NoSuchBucket"),
    ]);
    let b2 = client(fetch.clone());
    let t = Duration::from_secs(4);
    let etag = "\"9b2cf535f27731c974343645a3985328\"";
    assert_eq!(
        b2.copy_object("uploads/a b", "files/1", etag, at(T), t)
            .await,
        Ok(Copy::Copied)
    );
    assert_eq!(
        b2.copy_object("uploads/2", "files/2", etag, at(T), t).await,
        Ok(Copy::SourceMissing)
    );
    assert_eq!(
        b2.copy_object("uploads/3", "files/3", etag, at(T), t).await,
        Ok(Copy::SourceChanged)
    );
    assert_eq!(
        b2.copy_object("uploads/4", "files/4", etag, at(T), t).await,
        Err(Error::Unexpected {
            status: 200,
            code: Some("InternalError".into())
        })
    );
    assert_eq!(
        b2.copy_object("uploads/4", "files/4", etag, at(T), t).await,
        Err(Error::Unexpected {
            status: 200,
            code: None
        })
    );
    assert_eq!(
        b2.copy_object("uploads/5", "files/5", etag, at(T), t).await,
        Err(Error::NotFound {
            code: Some("NoSuchBucket".into())
        })
    );
    let sent = fetch.sent();
    let (method, url, headers, timeout) = &sent[0];
    assert_eq!(method, http::Method::PUT);
    assert_eq!(*timeout, t);
    assert!(
        url.starts_with("https://s3.us-west-004.backblazeb2.com/files/files/1?"),
        "{url}"
    );
    assert_eq!(headers["x-amz-copy-source"], "files/uploads/a%20b");
    assert_eq!(headers["x-amz-copy-source-if-match"], etag);
    assert_eq!(
        param(url, "X-Amz-SignedHeaders").as_deref(),
        Some("host;x-amz-copy-source;x-amz-copy-source-if-match")
    );
    for (_, url, headers, _) in &sent {
        assert_no_checksum(url, headers);
    }
    assert!(matches!(
        b2.copy_object("../x", "files/1", etag, at(T), t).await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        b2.copy_object("uploads/1", "files/1", "\"a\nb\"", at(T), t)
            .await,
        Err(Error::Invalid(_))
    ));
}

#[test]
fn etags_compare_without_their_quotes() {
    assert!(same_etag("\"abc\"", "abc"));
    assert!(same_etag("\"abc\"", "\"abc\""));
    assert!(!same_etag("\"abc\"", "\"abd\""));
}
