//! What of a request may leave the Worker in a report. Headers are kept
//! unless they carry credentials or session state; URLs (the request's and
//! the `referer`'s) keep their path and query names, but only the values of
//! the API's own query parameters: any other value may be a credential
//! (a presigned URL, a token, an OAuth code on an admin page) and is
//! replaced.

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

/// Headers whose value is a URL, scrubbed by [`scrub_url`]: a same-origin
/// `referer` carries the page's whole query string.
const URL_HEADERS: [&str; 1] = ["referer"];

/// Query parameters whose values are kept: the API's own, none of which
/// carries a secret (names as the API's extractors match them, so
/// case-sensitive). `cursor` and `limit` page lists (`api::pages`);
/// `marker` and `ms` belong to the `/_test` routes. Every other value is
/// replaced, since a denylist of secret-looking names always misses one
/// (`jwt`, `sig`, `code`, `pw`, ...).
const KEPT_PARAMS: [&str; 4] = ["cursor", "limit", "marker", "ms"];

/// `headers` without those that carry credentials, and with URL values
/// (`referer`) passed through [`scrub_url`]; names lowercased.
pub fn scrub_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .filter(|(name, _)| {
            !SECRET_HEADERS.contains(&name.as_str())
                && !SECRET_HEADER_PREFIXES.iter().any(|p| name.starts_with(p))
        })
        .map(|(name, value)| {
            let value = if URL_HEADERS.contains(&name.as_str()) {
                scrub_url(value)
            } else {
                value.clone()
            };
            (name, value)
        })
        .collect()
}

/// `url` with every query value but those of [`KEPT_PARAMS`] replaced by
/// [`FILTERED`] and any user info removed. Text that is not a URL is dropped entirely.
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
                let value = if KEPT_PARAMS.contains(&name.as_ref()) {
                    value.into_owned()
                } else {
                    FILTERED.to_owned()
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
             &access_token=t&apiKey=k&limit=2#frag",
        );
        assert_eq!(
            url,
            "https://api.example.com/v1/files/1?X-Amz-Signature=%5BFiltered%5D\
             &X-Amz-Credential=%5BFiltered%5D&access_token=%5BFiltered%5D\
             &apiKey=%5BFiltered%5D&limit=2"
        );
        assert_eq!(scrub_url("not a url with s3cret"), FILTERED);
        assert_eq!(scrub_url("https://a.example/x"), "https://a.example/x");
    }

    #[test]
    fn only_the_apis_own_query_values_are_kept() {
        let url = scrub_url(
            "https://api.example.com/v1/pages?cursor=abc_-1&limit=20&jwt=eyJ.x.y&sig=s\
             &code=c0de&pw=hunter2&page=2&Limit=5&flag",
        );
        assert_eq!(
            url,
            "https://api.example.com/v1/pages?cursor=abc_-1&limit=20&jwt=%5BFiltered%5D\
             &sig=%5BFiltered%5D&code=%5BFiltered%5D&pw=%5BFiltered%5D&page=%5BFiltered%5D\
             &Limit=%5BFiltered%5D&flag=%5BFiltered%5D"
        );
    }

    #[test]
    fn the_referer_is_scrubbed_like_the_request_url() {
        let headers: Vec<(String, String)> = [
            (
                "Referer",
                "https://u:pw@admin.example.com/edit?token=S3CRET&code=c0de&limit=5#top",
            ),
            ("referer", "not a url S3CRET"),
            (
                "User-Agent",
                "https://agent.example/?token=kept-not-a-url-header",
            ),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        let kept = scrub_headers(&headers);
        assert_eq!(
            kept,
            [
                (
                    "referer".to_string(),
                    "https://admin.example.com/edit?token=%5BFiltered%5D\
                     &code=%5BFiltered%5D&limit=5"
                        .to_string()
                ),
                ("referer".to_string(), FILTERED.to_string()),
                (
                    "user-agent".to_string(),
                    "https://agent.example/?token=kept-not-a-url-header".to_string()
                ),
            ]
        );
    }
}
