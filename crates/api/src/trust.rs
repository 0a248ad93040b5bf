//! Service-binding trust: which requests come from the Pages shim through
//! the `API` service binding, and which from the internet.
//!
//! The shim sends the secret it shares with this Worker (`BINDING_SECRET`)
//! in [`BINDING_TOKEN`]; a browser cannot know it, so it cannot forge the
//! distinction. What a proven binding request may add is deliberately
//! small: the browser's address in [`FORWARDED_CLIENT_IP`] (for rate
//! limits), and the admin site's Access audience (see
//! `access::AccessPolicy::binding_audiences`). Identity is never forwarded
//! as a header: admin routes always verify the Access JWT themselves.
//!
//! Both headers are removed from every request before routing, so no
//! handler, log line or error report ever sees the secret, and a forwarded
//! address without the secret is simply dropped.

use axum::http::{HeaderMap, HeaderName};
use subtle::ConstantTimeEq;

use crate::problem::{Problem, ProblemType};

/// The shared secret, as the shim sends it.
pub const BINDING_TOKEN: HeaderName = HeaderName::from_static("x-api-binding-token");
/// The browser's address as the shim saw it (its `CF-Connecting-IP`).
pub const FORWARDED_CLIENT_IP: HeaderName = HeaderName::from_static("x-api-client-ip");
/// Set by Cloudflare on every request from the internet; a client cannot
/// set it (Cloudflare overwrites it).
pub(crate) const CF_CONNECTING_IP: &str = "cf-connecting-ip";

/// Where a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// Straight from the internet to the API's hostname.
    Internet,
    /// From the Pages shim, proven by the shared secret.
    Binding,
}

/// A request presented a binding token that is not the shared secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidBindingToken;

impl From<InvalidBindingToken> for Problem {
    fn from(_: InvalidBindingToken) -> Problem {
        Problem::new(
            ProblemType::Forbidden,
            "The service-binding token is not valid.",
        )
    }
}

/// The address of the browser behind the request, when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIp(pub Option<String>);

/// Classifies the request and removes the trust headers from it. A request
/// that presents a wrong token is refused (403) rather than downgraded, so
/// a shim with a stale secret fails loudly instead of silently losing its
/// privileges.
pub fn classify(
    headers: &mut HeaderMap,
    secret: Option<&str>,
) -> Result<(Caller, ClientIp), InvalidBindingToken> {
    let presented = headers.remove(BINDING_TOKEN);
    let forwarded = headers.remove(FORWARDED_CLIENT_IP);
    let caller = match presented {
        None => Caller::Internet,
        Some(token) => match secret {
            Some(secret) if bool::from(token.as_bytes().ct_eq(secret.as_bytes())) => {
                Caller::Binding
            }
            _ => return Err(InvalidBindingToken),
        },
    };
    let header_text = |value: &axum::http::HeaderValue| value.to_str().ok().map(str::to_owned);
    let connecting = headers.get(CF_CONNECTING_IP).and_then(header_text);
    let ip = match caller {
        Caller::Binding => forwarded.as_ref().and_then(header_text).or(connecting),
        Caller::Internet => connecting,
    };
    Ok((caller, ClientIp(ip)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn the_shared_secret_marks_a_binding_request_and_is_removed() {
        let mut h = headers(&[
            ("x-api-binding-token", SECRET),
            ("x-api-client-ip", "203.0.113.7"),
            ("cf-connecting-ip", "198.51.100.1"),
        ]);
        let (caller, ip) = classify(&mut h, Some(SECRET)).unwrap();
        assert_eq!(caller, Caller::Binding);
        assert_eq!(ip, ClientIp(Some("203.0.113.7".into())));
        assert!(h.get(BINDING_TOKEN).is_none());
        assert!(h.get(FORWARDED_CLIENT_IP).is_none());
    }

    #[test]
    fn without_the_secret_a_forwarded_address_is_ignored() {
        let mut h = headers(&[
            ("x-api-client-ip", "203.0.113.7"),
            ("cf-connecting-ip", "198.51.100.1"),
        ]);
        let (caller, ip) = classify(&mut h, Some(SECRET)).unwrap();
        assert_eq!(caller, Caller::Internet);
        assert_eq!(ip, ClientIp(Some("198.51.100.1".into())));
        assert!(h.get(FORWARDED_CLIENT_IP).is_none());
    }

    #[test]
    fn a_wrong_or_unconfigured_secret_is_refused() {
        for (presented, configured) in [
            ("0123456789abcdef0123456789abcdeX", Some(SECRET)),
            ("short", Some(SECRET)),
            (SECRET, None),
        ] {
            let mut h = headers(&[("x-api-binding-token", presented)]);
            let problem = Problem::from(classify(&mut h, configured).unwrap_err());
            assert_eq!(problem.kind, ProblemType::Forbidden);
            assert!(!problem.to_string().contains(presented));
        }
    }
}
