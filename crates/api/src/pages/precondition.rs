//! Entity tags and conditional requests (RFC 9110 §8.8.3, §13): `ETag` on
//! reads, `If-None-Match` for 304s, and `If-Match` / `If-None-Match: *` on
//! writes so that a client editing an old revision gets a 412 instead of
//! silently overwriting someone else's change.

use axum::http::{header, HeaderMap, HeaderValue};

use crate::problem::{Problem, ProblemType};

/// An entity tag: opaque text, strong or weak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityTag {
    weak: bool,
    opaque: String,
}

impl EntityTag {
    pub fn strong(opaque: impl Into<String>) -> Self {
        EntityTag {
            weak: false,
            opaque: opaque.into(),
        }
    }

    /// The `ETag` header value.
    pub fn header_value(&self) -> HeaderValue {
        let text = if self.weak {
            format!("W/\"{}\"", self.opaque)
        } else {
            format!("\"{}\"", self.opaque)
        };
        HeaderValue::from_str(&text).expect("entity tags are visible ASCII")
    }

    fn strong_eq(&self, other: &EntityTag) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    fn weak_eq(&self, other: &EntityTag) -> bool {
        self.opaque == other.opaque
    }
}

/// `*` or a list of entity tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tags {
    Any,
    List(Vec<EntityTag>),
}

/// The conditions a write carries: `If-Match` and `If-None-Match`, each
/// optional. Both are evaluated when both are sent (RFC 9110 §13.2.2: a
/// true `If-Match` does not make `If-None-Match` irrelevant).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Precondition {
    /// Only if the current representation has one of these tags (strong
    /// comparison), or exists at all (`*`).
    pub if_match: Option<Tags>,
    /// Only if it has none of these tags (weak comparison), or does not
    /// exist (`*`: create only).
    pub if_none_match: Option<Tags>,
}

/// As an extractor: the request's preconditions, or the 400 problem of a
/// malformed one.
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Precondition {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Problem> {
        Precondition::from_headers(&parts.headers)
    }
}

impl Precondition {
    /// Reads `If-Match` and `If-None-Match`; a malformed one is a 400
    /// problem, whichever would decide.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, Problem> {
        Ok(Precondition {
            if_match: parse_header(headers, header::IF_MATCH)?,
            if_none_match: parse_header(headers, header::IF_NONE_MATCH)?,
        })
    }

    /// Whether the write may go ahead, given the current tag (`None` when
    /// there is no current representation): every condition sent holds.
    pub fn holds(&self, current: Option<&EntityTag>) -> bool {
        let if_match = match (&self.if_match, current) {
            (None, _) => true,
            (Some(Tags::Any), current) => current.is_some(),
            (Some(Tags::List(tags)), Some(current)) => tags.iter().any(|t| t.strong_eq(current)),
            (Some(Tags::List(_)), None) => false,
        };
        let if_none_match = match (&self.if_none_match, current) {
            (None, _) => true,
            (Some(Tags::Any), current) => current.is_none(),
            (Some(Tags::List(tags)), Some(current)) => !tags.iter().any(|t| t.weak_eq(current)),
            (Some(Tags::List(_)), None) => true,
        };
        if_match && if_none_match
    }
}

/// Whether a GET with these headers may be answered 304 for `current`
/// (`If-None-Match`, weak comparison). A malformed header is ignored, as
/// caches do, and the full response is sent.
pub fn not_modified(headers: &HeaderMap, current: &EntityTag) -> bool {
    match parse_header(headers, header::IF_NONE_MATCH) {
        Ok(Some(Tags::Any)) => true,
        Ok(Some(Tags::List(tags))) => tags.iter().any(|t| t.weak_eq(current)),
        _ => false,
    }
}

fn parse_header(headers: &HeaderMap, name: header::HeaderName) -> Result<Option<Tags>, Problem> {
    let mut values = headers.get_all(&name).iter().peekable();
    if values.peek().is_none() {
        return Ok(None);
    }
    let malformed = || {
        Problem::new(
            ProblemType::BadRequest,
            format!("{name} must be `*` or a list of entity tags such as \"12.3\"."),
        )
    };
    let mut tags = Vec::new();
    let mut any = false;
    for value in values {
        let text = value.to_str().map_err(|_| malformed())?;
        if text.trim().is_empty() {
            continue;
        }
        // `*` stands alone (RFC 9110: `"*" / #entity-tag`).
        if text.trim() == "*" && tags.is_empty() {
            any = true;
            continue;
        }
        for item in text.split(',').map(str::trim) {
            let (weak, quoted) = match item.strip_prefix("W/") {
                Some(rest) => (true, rest),
                None => (false, item),
            };
            let opaque = quoted
                .strip_prefix('"')
                .and_then(|q| q.strip_suffix('"'))
                .filter(|o| !o.contains('"'))
                .ok_or_else(malformed)?;
            tags.push(EntityTag {
                weak,
                opaque: opaque.to_owned(),
            });
        }
    }
    if any {
        return if tags.is_empty() {
            Ok(Some(Tags::Any))
        } else {
            Err(malformed())
        };
    }
    if tags.is_empty() {
        // Only empty values: as if the header were not sent (some proxies
        // drop empty headers, some pass them on; both must mean the same).
        return Ok(None);
    }
    Ok(Some(Tags::List(tags)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    fn tag(s: &str) -> EntityTag {
        EntityTag::strong(s)
    }

    #[test]
    fn if_match_compares_strongly() {
        let p = Precondition::from_headers(&headers("if-match", "\"1.2\", \"1.3\"")).unwrap();
        assert!(p.holds(Some(&tag("1.3"))));
        assert!(!p.holds(Some(&tag("1.4"))));
        assert!(!p.holds(None), "no page: a lost update, not a create");
        let weak = Precondition::from_headers(&headers("if-match", "W/\"1.3\"")).unwrap();
        assert!(!weak.holds(Some(&tag("1.3"))));
    }

    #[test]
    fn star_means_exists_or_does_not() {
        let exists = Precondition::from_headers(&headers("if-match", "*")).unwrap();
        assert!(exists.holds(Some(&tag("x"))) && !exists.holds(None));
        let create = Precondition::from_headers(&headers("if-none-match", "*")).unwrap();
        assert!(create.holds(None) && !create.holds(Some(&tag("x"))));
    }

    #[test]
    fn malformed_tags_are_400_problems() {
        for bad in [
            "1.2",
            "\"unterminated",
            "W/",
            ",",
            "\"a\",,\"b\"",
            "\"a\"b\"",
            "*, \"a\"",
        ] {
            let mut h = HeaderMap::new();
            h.insert("if-match", HeaderValue::from_str(bad).unwrap());
            let problem = Precondition::from_headers(&h).unwrap_err();
            assert_eq!(problem.kind, ProblemType::BadRequest, "{bad}");
        }
    }

    #[test]
    fn a_malformed_if_none_match_is_refused_beside_if_match() {
        let mut h = headers("if-match", "*");
        h.insert("if-none-match", HeaderValue::from_static("X_O"));
        let problem = Precondition::from_headers(&h).unwrap_err();
        assert_eq!(problem.kind, ProblemType::BadRequest);
    }

    #[test]
    fn both_conditions_must_hold_when_both_are_sent() {
        // `*` / `*`: the page exists, so If-Match holds and If-None-Match
        // does not; no representation can satisfy both.
        let mut h = headers("if-match", "*");
        h.insert("if-none-match", HeaderValue::from_static("*"));
        let both = Precondition::from_headers(&h).unwrap();
        assert!(!both.holds(Some(&tag("1.3"))));
        assert!(!both.holds(None));
        // The current revision, but not one the client says it has seen.
        let mut h = headers("if-match", "\"1.3\"");
        h.insert("if-none-match", HeaderValue::from_static("\"1.2\""));
        let p = Precondition::from_headers(&h).unwrap();
        assert!(p.holds(Some(&tag("1.3"))));
        let mut h = headers("if-match", "\"1.3\"");
        h.insert("if-none-match", HeaderValue::from_static("W/\"1.3\""));
        let p = Precondition::from_headers(&h).unwrap();
        assert!(!p.holds(Some(&tag("1.3"))), "If-None-Match compares weakly");
    }

    #[test]
    fn an_empty_header_counts_as_absent() {
        for empty in ["", " "] {
            let mut h = HeaderMap::new();
            h.insert("if-match", HeaderValue::from_str(empty).unwrap());
            assert_eq!(
                Precondition::from_headers(&h).unwrap(),
                Precondition::default()
            );
        }
    }

    #[test]
    fn not_modified_uses_weak_comparison() {
        assert!(not_modified(
            &headers("if-none-match", "W/\"1.2\""),
            &tag("1.2")
        ));
        assert!(not_modified(
            &headers("if-none-match", "\"0.1\", \"1.2\""),
            &tag("1.2")
        ));
        assert!(!not_modified(
            &headers("if-none-match", "\"1.1\""),
            &tag("1.2")
        ));
        assert!(!not_modified(
            &headers("if-none-match", "garbage"),
            &tag("1.2")
        ));
        assert!(!not_modified(&HeaderMap::new(), &tag("1.2")));
    }

    #[test]
    fn the_etag_header_is_quoted() {
        assert_eq!(tag("7.3").header_value(), "\"7.3\"");
    }
}
