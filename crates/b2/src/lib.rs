//! A small Backblaze B2 client over B2's S3-compatible API, for the Worker:
//! `head_bucket` for `/readyz`, presigned PUT and GET URLs that browsers use
//! to upload and download files directly, `head_object` / `delete_object`
//! to check and clean up uploads, and `copy_object` to move a checked
//! upload where its upload URL cannot write.
//!
//! Signing is rusty-s3 (SigV4, query-string auth, path-style addressing);
//! HTTP goes through [`outbound::Fetch`], so the same code runs in the
//! Worker and natively in tests. Every operation takes the current time from
//! its caller, because no clock can be read on wasm32-unknown-unknown.
//!
//! Not for: listing, multipart uploads, bucket management, retries, or
//! moving object bodies through the Worker (browsers talk to B2 directly).
//! It never sends `x-amz-checksum-*` headers, which B2 rejects.

mod error;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use outbound::{Bytes, Fetch};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rusty_s3::actions::{DeleteObject, GetObject, HeadBucket, HeadObject, PutObject};
use rusty_s3::{S3Action, UrlStyle};

pub use error::Error;

/// SigV4 refuses presigned URLs valid for longer than seven days.
pub const MAX_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long the URLs the Worker signs for its own requests stay valid. They
/// never leave the Worker, so this only has to cover the request itself plus
/// clock skew between the Worker and B2 (S3 allows 15 minutes of it).
const OWN_REQUEST_EXPIRY: Duration = Duration::from_secs(15 * 60);

/// A B2 application key: its id and the secret. Neither is ever printed;
/// the id is not a secret to B2 but it names the account's key, so it stays
/// out of logs as well.
#[derive(Clone)]
pub struct Credentials {
    key_id: String,
    application_key: String,
}

impl Credentials {
    pub fn new(key_id: impl Into<String>, application_key: impl Into<String>) -> Self {
        Credentials {
            key_id: key_id.into(),
            application_key: application_key.into(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

/// Where the bucket is and how to sign for it.
#[derive(Debug, Clone)]
pub struct Config {
    /// The S3 endpoint without the bucket, e.g.
    /// `https://s3.us-west-004.backblazeb2.com`.
    pub endpoint: String,
    /// The B2 region, e.g. `us-west-004` (part of the signature's scope).
    pub region: String,
    pub bucket: String,
    pub credentials: Credentials,
}

/// The request a browser must make to upload one object: `PUT url` with
/// exactly these headers and a body of the signed length.
#[derive(Clone, PartialEq, Eq)]
pub struct PresignedPut {
    pub url: String,
    /// Headers covered by the signature that the browser must set itself,
    /// with these exact values. `Content-Length`, when signed, is not listed:
    /// browsers set it from the body and refuse to let scripts set it.
    pub headers: Vec<(String, String)>,
}

impl fmt::Debug for PresignedPut {
    /// Without the query, which holds the key id and the signature.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresignedPut")
            .field("url", &error::redact(&self.url, &[]))
            .field("headers", &self.headers)
            .finish()
    }
}

/// What `HEAD` tells about a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    pub content_type: Option<String>,
    /// The `ETag` header as sent, quotes included.
    pub etag: Option<String>,
}

/// What [`Client::copy_object`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Copy {
    /// The destination now holds the source's bytes and metadata.
    Copied,
    /// There is no source object (any more).
    SourceMissing,
    /// The source's ETag is no longer the one the copy was made on: it was
    /// replaced after it was checked.
    SourceChanged,
}

/// A client for one bucket.
#[derive(Clone)]
pub struct Client {
    bucket: rusty_s3::Bucket,
    credentials: rusty_s3::Credentials,
    fetch: Arc<dyn Fetch>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.bucket.base_url().as_str())
            .field("region", &self.bucket.region())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Checks the endpoint, region and bucket; the credentials are only
    /// checked by B2 (see [`Client::head_bucket`]).
    pub fn new(config: Config, fetch: Arc<dyn Fetch>) -> Result<Self, Error> {
        let endpoint: url::Url = config
            .endpoint
            .parse()
            .map_err(|e| Error::Invalid(format!("endpoint {:?}: {e}", config.endpoint)))?;
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host_str().is_none() {
            return Err(Error::Invalid(format!(
                "endpoint {:?} is not an http(s) URL with a host",
                config.endpoint
            )));
        }
        if config.region.is_empty() {
            return Err(Error::Invalid("empty region".into()));
        }
        if config.bucket.is_empty() || config.bucket.contains(['/', '?', '#']) {
            return Err(Error::Invalid(format!("bucket name {:?}", config.bucket)));
        }
        let bucket = rusty_s3::Bucket::new(endpoint, UrlStyle::Path, config.bucket, config.region)
            .map_err(|e| Error::Invalid(format!("endpoint {:?}: {e}", config.endpoint)))?;
        let Credentials {
            key_id,
            application_key,
        } = config.credentials;
        Ok(Client {
            bucket,
            credentials: rusty_s3::Credentials::new(key_id, application_key),
            fetch,
        })
    }

    /// Whether the bucket is reachable with these credentials, for
    /// readiness: `Ok` on 200, [`Error::AccessDenied`] when the key is
    /// refused, [`Error::NotFound`] when there is no such bucket, and
    /// [`Error::Timeout`] or [`Error::Network`] when B2 did not answer.
    pub async fn head_bucket(&self, now: SystemTime, timeout: Duration) -> Result<(), Error> {
        let url = signed(
            HeadBucket::new(&self.bucket, Some(&self.credentials)),
            OWN_REQUEST_EXPIRY,
            now,
        )?;
        let response = self.send(http::Method::HEAD, url, timeout).await?;
        match response.status().as_u16() {
            200..=299 => Ok(()),
            status => Err(Error::from_status(status, response.body())),
        }
    }

    /// Signs an upload of `key` for a browser. `content_type` (and
    /// `content_length`, when given) are signed, so B2 refuses an upload
    /// with any other type or size.
    pub fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        content_length: Option<u64>,
        expires: Duration,
        now: SystemTime,
    ) -> Result<PresignedPut, Error> {
        check_key(key)?;
        check_expiry(expires)?;
        http::HeaderValue::from_str(content_type)
            .map_err(|_| Error::Invalid(format!("content type {content_type:?}")))?;
        let length = content_length.map(|n| n.to_string());
        let mut action = PutObject::new(&self.bucket, Some(&self.credentials), key);
        // rusty-s3 wants header names in lowercase: it signs them as given.
        action.headers_mut().insert("content-type", content_type);
        if let Some(length) = &length {
            action
                .headers_mut()
                .insert("content-length", length.as_str());
        }
        Ok(PresignedPut {
            url: signed(action, expires, now)?.into(),
            headers: vec![("content-type".into(), content_type.into())],
        })
    }

    /// Signs a download of `key`. `content_disposition`, when given, is what
    /// B2 answers as `Content-Disposition` (e.g. `attachment;
    /// filename="a.pdf"`), so the browser saves the file under its name.
    pub fn presign_get(
        &self,
        key: &str,
        expires: Duration,
        content_disposition: Option<&str>,
        now: SystemTime,
    ) -> Result<String, Error> {
        check_key(key)?;
        check_expiry(expires)?;
        let mut action = GetObject::new(&self.bucket, Some(&self.credentials), key);
        if let Some(disposition) = content_disposition {
            action
                .query_mut()
                .insert("response-content-disposition", disposition);
        }
        Ok(signed(action, expires, now)?.into())
    }

    /// The object's size, type and ETag; `None` when there is no such
    /// object (an upload that never happened).
    pub async fn head_object(
        &self,
        key: &str,
        now: SystemTime,
        timeout: Duration,
    ) -> Result<Option<ObjectInfo>, Error> {
        check_key(key)?;
        let url = signed(
            HeadObject::new(&self.bucket, Some(&self.credentials), key),
            OWN_REQUEST_EXPIRY,
            now,
        )?;
        let response = self.send(http::Method::HEAD, url, timeout).await?;
        let status = response.status().as_u16();
        if status == 404 {
            return Ok(None);
        }
        if !(200..=299).contains(&status) {
            return Err(Error::from_status(status, response.body()));
        }
        let header = |name: http::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let size = header(http::header::CONTENT_LENGTH)
            .and_then(|v| v.parse().ok())
            .ok_or(Error::Unexpected {
                status,
                code: Some("MissingContentLength".into()),
            })?;
        Ok(Some(ObjectInfo {
            size,
            content_type: header(http::header::CONTENT_TYPE),
            etag: header(http::header::ETAG),
        }))
    }

    /// Deletes `key`. Deleting an object that is not there succeeds, as in
    /// S3: the cleanup of abandoned uploads may run twice.
    pub async fn delete_object(
        &self,
        key: &str,
        now: SystemTime,
        timeout: Duration,
    ) -> Result<(), Error> {
        check_key(key)?;
        let url = signed(
            DeleteObject::new(&self.bucket, Some(&self.credentials), key),
            OWN_REQUEST_EXPIRY,
            now,
        )?;
        let response = self.send(http::Method::DELETE, url, timeout).await?;
        match response.status().as_u16() {
            200..=299 => Ok(()),
            404 if error::error_code(response.body()).as_deref() == Some("NoSuchKey") => Ok(()),
            status => Err(Error::from_status(status, response.body())),
        }
    }

    /// Copies `source` to `destination` inside the bucket, server-side
    /// (S3 `CopyObject`, which B2 implements for objects up to 5 GB), with
    /// the source's content type, and only if the source's ETag is still
    /// `source_etag`: what is copied is exactly what the caller checked.
    pub async fn copy_object(
        &self,
        source: &str,
        destination: &str,
        source_etag: &str,
        now: SystemTime,
        timeout: Duration,
    ) -> Result<Copy, Error> {
        check_key(source)?;
        check_key(destination)?;
        http::HeaderValue::from_str(source_etag)
            .map_err(|_| Error::Invalid(format!("ETag {source_etag:?}")))?;
        // `x-amz-copy-source` is `bucket/key`, URL-encoded, as B2 documents
        // it; both headers are signed (S3 refuses `x-amz-*` headers outside
        // the signature).
        let copy_source = format!(
            "{}/{}",
            utf8_percent_encode(self.bucket.name(), COPY_SOURCE),
            utf8_percent_encode(source, COPY_SOURCE)
        );
        let headers = [
            ("x-amz-copy-source", copy_source.as_str()),
            ("x-amz-copy-source-if-match", source_etag),
        ];
        let mut action = PutObject::new(&self.bucket, Some(&self.credentials), destination);
        for (name, value) in headers {
            action.headers_mut().insert(name, value);
        }
        let url = signed(action, OWN_REQUEST_EXPIRY, now)?;
        let response = self
            .send_with(http::Method::PUT, url, &headers, timeout)
            .await?;
        let status = response.status().as_u16();
        let code = error::error_code(response.body());
        match status {
            // S3 may answer 200 and report a failure in the body, once the
            // copy has started.
            200..=299 if code.is_none() && copied(response.body()) => Ok(Copy::Copied),
            404 if code.as_deref() == Some("NoSuchKey") => Ok(Copy::SourceMissing),
            412 => Ok(Copy::SourceChanged),
            200..=299 => Err(Error::Unexpected { status, code }),
            status => Err(Error::from_status(status, response.body())),
        }
    }

    async fn send(
        &self,
        method: http::Method,
        url: url::Url,
        timeout: Duration,
    ) -> Result<outbound::Response, Error> {
        self.send_with(method, url, &[], timeout).await
    }

    /// Sends a request signed in its query with the `headers` that were
    /// signed with it.
    async fn send_with(
        &self,
        method: http::Method,
        url: url::Url,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<outbound::Response, Error> {
        let secrets = [self.credentials.key(), self.credentials.secret()];
        // The signature is in the query (UNSIGNED-PAYLOAD), so the request
        // carries no auth or checksum headers.
        let mut request = http::Request::builder().method(method).uri(url.as_str());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Bytes::new())
            .map_err(|e| Error::Invalid(error::redact(&e.to_string(), &secrets)))?;
        self.fetch
            .fetch(request, timeout)
            .await
            .map_err(|e| Error::from_fetch(e, &secrets))
    }
}

/// SigV4's URI encoding (RFC 3986): every byte but `A-Z a-z 0-9 - . _ ~`
/// as `%XX`.
const SIGV4_QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `x-amz-copy-source`'s encoding: a key's `/` stay, everything else that
/// is not unreserved is `%XX`.
const COPY_SOURCE: &AsciiSet = &SIGV4_QUERY.remove(b'/');

/// Whether a 2xx body is the `CopyObjectResult` of a finished copy: S3
/// may answer 200 before the copy ends and report its failure, or nothing
/// readable, in the body.
fn copied(body: &[u8]) -> bool {
    std::str::from_utf8(body).is_ok_and(|text| text.contains("<CopyObjectResult"))
}

/// Whether two ETags name the same bytes: equal once their quotes are
/// taken off (servers differ on quoting an ETag in XML).
pub fn same_etag(a: &str, b: &str) -> bool {
    a.trim_matches('"') == b.trim_matches('"')
}

/// `action` signed for `expires` from `now`, with its query written the way
/// it was signed. rusty-s3 signs the query SigV4-encoded (`%20`, `%2A`) but
/// writes it into the URL form-encoded (`+` for a space, `*` bare); S3
/// servers that do not read `+` as a space rebuild another canonical query
/// from it and refuse the signature, and every download's
/// `response-content-disposition` has spaces. rusty-s3 0.10 writes the query
/// as signed itself, but needs sha2 0.11 and hmac 0.13, a second copy of
/// SHA-256 in the Worker beside the sha2 0.10 the other crates use; until
/// those move together, the query is rewritten here.
fn signed<'a>(
    action: impl S3Action<'a>,
    expires: Duration,
    now: SystemTime,
) -> Result<url::Url, Error> {
    let mut url = action.sign_with_time(expires, &timestamp(now)?);
    let query = url
        .query_pairs()
        .map(|(name, value)| {
            format!(
                "{}={}",
                utf8_percent_encode(&name, SIGV4_QUERY),
                utf8_percent_encode(&value, SIGV4_QUERY)
            )
        })
        .collect::<Vec<_>>()
        .join("&");
    // `set_query` keeps `%XX` as given and has nothing else to escape.
    url.set_query(Some(&query));
    Ok(url)
}

fn timestamp(now: SystemTime) -> Result<jiff::Timestamp, Error> {
    let seconds = now
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .ok_or_else(|| Error::Invalid("the time given is before 1970".into()))?;
    jiff::Timestamp::from_second(seconds)
        .map_err(|_| Error::Invalid("the time given is out of range".into()))
}

/// Refuses keys that would not name an object inside the bucket: the key
/// is joined to the bucket's URL as a path, so `..` or a leading `/` would
/// address something else.
fn check_key(key: &str) -> Result<(), Error> {
    let bad = key.is_empty()
        || key.len() > 1024
        || key.starts_with('/')
        || key.split('/').any(|s| s == "." || s == "..")
        || key.chars().any(char::is_control);
    if bad {
        return Err(Error::Invalid(format!("object key {key:?}")));
    }
    Ok(())
}

fn check_expiry(expires: Duration) -> Result<(), Error> {
    if expires.as_secs() == 0 || expires > MAX_EXPIRY {
        return Err(Error::Invalid(format!(
            "expiry of {} s (SigV4 allows 1 s to 7 days)",
            expires.as_secs()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
