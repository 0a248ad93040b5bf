//! The request headers the API reads, and the rule that it sees no others.
//!
//! The Worker brings a request's headers from the runtime into Rust. Reading
//! every header costs one call per header, and a browser sends about twenty.
//! That cost the browser's cached read 4-8 % against a JS Worker that reads
//! the few it needs by name. Reading this list by name brought it level
//! (BENCHMARKS.md, fifteenth pass). So the Worker reads only [`READ`].
//!
//! [`crate::Api`] drops every other header in every build, native tests
//! included. A test therefore sees what the Worker sees. A handler that reads
//! a header not on this list gets nothing in its own tests, not only in
//! production.

use axum::http::{HeaderMap, HeaderName};

/// Every request header the API looks at, lowercase. Adding a header read
/// anywhere (a layer, an extractor, a handler, telemetry) means adding it
/// here; `every_header_the_api_reads_is_listed` checks the names the code
/// reads them by.
pub const READ: [&str; 16] = [
    // CORS: the origin, and a preflight's questions (tower-http's layer).
    "origin",
    "access-control-request-method",
    "access-control-request-headers",
    // The body: whether there is one and how long (the bridge, `read_body`),
    // and what it is (JSON and upload extractors).
    "content-length",
    "transfer-encoding",
    "content-type",
    // Conditional requests on pages.
    "if-match",
    "if-none-match",
    // Cloudflare Access, for the admin routes: the header or the cookie.
    "cf-access-jwt-assertion",
    "cookie",
    // Who is asking: the client's address (rate limits), the service
    // binding's token and the address it forwards (`trust`).
    "cf-connecting-ip",
    "x-api-binding-token",
    "x-api-client-ip",
    // The request id and the data center (`cf-ray`).
    "cf-ray",
    // Request context for Sentry events, scrubbed there: the referer is a
    // URL whose query (a same-origin page's, tokens included) is filtered
    // like the request's (`sentry_report::scrub_headers`).
    "user-agent",
    "referer",
];

/// Whether the API reads header `name`.
pub fn is_read(name: &HeaderName) -> bool {
    READ.contains(&name.as_str())
}

/// Removes every header the API does not read.
///
/// In the Worker the bridge brought only those, and this is a walk over a
/// few names; natively it makes a request look as it would in the Worker.
pub fn keep_only_read(headers: &mut HeaderMap) {
    if headers.keys().all(is_read) {
        return;
    }
    let mut kept = HeaderMap::with_capacity(headers.len());
    let mut name: Option<HeaderName> = None;
    // `into_iter` names a header once, then gives its further values
    // without a name.
    for (next, value) in std::mem::take(headers) {
        if next.is_some() {
            name = next;
        }
        if let Some(name) = name.as_ref().filter(|name| is_read(name)) {
            kept.append(name.clone(), value);
        }
    }
    *headers = kept;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_the_read_headers_stay_with_every_value() {
        let mut headers = HeaderMap::new();
        headers.append("sec-ch-ua", HeaderValue::from_static("\"Chromium\""));
        headers.append("if-none-match", HeaderValue::from_static("\"a\""));
        headers.append("x-custom", HeaderValue::from_static("1"));
        headers.append("if-none-match", HeaderValue::from_static("\"b\""));
        headers.append("x-custom", HeaderValue::from_static("2"));
        headers.append("cf-ray", HeaderValue::from_static("8f1a-LHR"));
        keep_only_read(&mut headers);
        assert_eq!(headers.len(), 3);
        let tags: Vec<_> = headers.get_all("if-none-match").iter().collect();
        assert_eq!(tags, ["\"a\"", "\"b\""]);
        assert_eq!(headers["cf-ray"], "8f1a-LHR");
        assert!(!headers.contains_key("x-custom"));
        assert!(!headers.contains_key("sec-ch-ua"));
    }

    #[test]
    fn a_request_with_only_read_headers_is_unchanged() {
        let mut headers = HeaderMap::new();
        for name in READ {
            headers.append(name, HeaderValue::from_static("v"));
        }
        keep_only_read(&mut headers);
        assert_eq!(headers.len(), READ.len());
        keep_only_read(&mut HeaderMap::new());
    }

    #[test]
    fn the_list_is_lowercase_valid_names_without_repeats() {
        for name in READ {
            let parsed = HeaderName::from_static(name);
            assert_eq!(parsed.as_str(), name);
        }
        let unique: std::collections::BTreeSet<_> = READ.iter().collect();
        assert_eq!(unique.len(), READ.len());
    }

    #[test]
    fn every_header_the_api_reads_is_listed() {
        use axum::http::header;
        let read = [
            header::ORIGIN,
            header::ACCESS_CONTROL_REQUEST_METHOD,
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            header::COOKIE,
            header::USER_AGENT,
            HeaderName::from_static(access::JWT_HEADER),
            crate::trust::BINDING_TOKEN,
            crate::trust::FORWARDED_CLIENT_IP,
            HeaderName::from_static(crate::trust::CF_CONNECTING_IP),
            HeaderName::from_static(crate::layers::CF_RAY),
        ];
        for name in read {
            assert!(is_read(&name), "{name} is read but not listed");
        }
    }
}
