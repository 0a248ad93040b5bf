//! What of a request may leave the Worker in a report. Headers are kept
//! unless they carry credentials or session state; URLs keep their path
//! and query names, but the values of parameters that look like
//! credentials (presigned URLs, tokens) are replaced.

/// What replaces a removed value.
pub const FILTERED: &str = "[Filtered]";

/// Headers never sent (lowercase); `cf-access-` and `x-amz-` headers are
/// dropped by prefix as well.
const SECRET_HEADERS: [&str; 7] = [
    "authorization",
    "cookie",
    "set-cookie",
    "proxy-authorization",
    "x-api-binding-token",
    "x-api-key",
    "x-sentry-auth",
];
const SECRET_HEADER_PREFIXES: [&str; 2] = ["cf-access-", "x-amz-"];

/// Query parameter names (lowercase) containing any of these have their
/// values filtered.
const SECRET_PARAM_WORDS: [&str; 9] = [
    "token",
    "key",
    "secret",
    "password",
    "passwd",
    "signature",
    "credential",
    "auth",
    "session",
];

/// `headers` without those that carry credentials; names lowercased.
pub fn scrub_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .filter(|(name, _)| {
            !SECRET_HEADERS.contains(&name.as_str())
                && !SECRET_HEADER_PREFIXES.iter().any(|p| name.starts_with(p))
        })
        .map(|(name, value)| (name, value.clone()))
        .collect()
}

/// `url` with credential-like query values replaced by [`FILTERED`] and
/// any user info removed. Text that is not a URL is dropped entirely.
pub fn scrub_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return FILTERED.to_owned();
    };
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(name, value)| {
                let lower = name.to_ascii_lowercase();
                let secret = SECRET_PARAM_WORDS.iter().any(|w| lower.contains(w))
                    || lower.starts_with("x-amz-");
                let value = if secret {
                    FILTERED.to_owned()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), value)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.set_fragment(None);
    parsed.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_dropped_from_headers() {
        let headers: Vec<(String, String)> = [
            ("Authorization", "Bearer s3cret"),
            ("Cookie", "CF_Authorization=s3cret"),
            ("cf-access-jwt-assertion", "s3cret"),
            ("CF-Access-Client-Secret", "s3cret"),
            ("x-api-binding-token", "s3cret"),
            ("X-Amz-Security-Token", "s3cret"),
            ("User-Agent", "curl/8"),
            ("cf-ray", "abc"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        let kept = scrub_headers(&headers);
        assert_eq!(
            kept,
            [
                ("user-agent".to_string(), "curl/8".to_string()),
                ("cf-ray".to_string(), "abc".to_string())
            ]
        );
    }

    #[test]
    fn credential_query_values_and_user_info_are_filtered() {
        let url = scrub_url(
            "https://u:pw@api.example.com/v1/files/1?X-Amz-Signature=abc&X-Amz-Credential=k%2F1\
             &access_token=t&apiKey=k&page=2#frag",
        );
        assert_eq!(
            url,
            "https://api.example.com/v1/files/1?X-Amz-Signature=%5BFiltered%5D\
             &X-Amz-Credential=%5BFiltered%5D&access_token=%5BFiltered%5D\
             &apiKey=%5BFiltered%5D&page=2"
        );
        assert_eq!(scrub_url("not a url with s3cret"), FILTERED);
        assert_eq!(scrub_url("https://a.example/x"), "https://a.example/x");
    }
}
