//! RFC 9457 problem details: the one error type of the whole API.
//!
//! Every error a client can see is a [`Problem`] with a stable `type` URI
//! (documented in the OpenAPI document), a title per type, the status, a
//! `detail` written for the client, and `instance` = the request id, so a
//! support request can be matched with the logs. Internal errors keep their
//! detail for the logs only ([`Problem::internal`]).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Media type of problem documents.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// The kinds of problem the API reports. Each has a stable `type` URI
/// (relative to the API's origin) that clients may match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ProblemType {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PreconditionFailed,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
    ValidationFailed,
    RateLimited,
    Internal,
    Unavailable,
    Timeout,
}

impl ProblemType {
    pub const ALL: [ProblemType; 15] = [
        ProblemType::BadRequest,
        ProblemType::Unauthorized,
        ProblemType::Forbidden,
        ProblemType::NotFound,
        ProblemType::MethodNotAllowed,
        ProblemType::Conflict,
        ProblemType::PreconditionFailed,
        ProblemType::PayloadTooLarge,
        ProblemType::RequestTimeout,
        ProblemType::UnsupportedMediaType,
        ProblemType::ValidationFailed,
        ProblemType::RateLimited,
        ProblemType::Internal,
        ProblemType::Unavailable,
        ProblemType::Timeout,
    ];

    /// The `type` member: a URI reference that never changes meaning.
    pub fn uri(self) -> &'static str {
        match self {
            ProblemType::BadRequest => "/problems/bad-request",
            ProblemType::Unauthorized => "/problems/unauthorized",
            ProblemType::Forbidden => "/problems/forbidden",
            ProblemType::NotFound => "/problems/not-found",
            ProblemType::MethodNotAllowed => "/problems/method-not-allowed",
            ProblemType::Conflict => "/problems/conflict",
            ProblemType::PreconditionFailed => "/problems/precondition-failed",
            ProblemType::PayloadTooLarge => "/problems/payload-too-large",
            ProblemType::RequestTimeout => "/problems/request-timeout",
            ProblemType::UnsupportedMediaType => "/problems/unsupported-media-type",
            ProblemType::ValidationFailed => "/problems/validation-failed",
            ProblemType::RateLimited => "/problems/rate-limited",
            ProblemType::Internal => "/problems/internal",
            ProblemType::Unavailable => "/problems/unavailable",
            ProblemType::Timeout => "/problems/timeout",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            ProblemType::BadRequest => "The request is malformed",
            ProblemType::Unauthorized => "Authentication is required",
            ProblemType::Forbidden => "Not allowed",
            ProblemType::NotFound => "Not found",
            ProblemType::MethodNotAllowed => "Method not allowed",
            ProblemType::Conflict => "The resource is not in a state that allows this",
            ProblemType::PreconditionFailed => "The resource changed",
            ProblemType::PayloadTooLarge => "The request body is too large",
            ProblemType::RequestTimeout => "The request body did not arrive in time",
            ProblemType::UnsupportedMediaType => "Unsupported media type",
            ProblemType::ValidationFailed => "The request is not valid",
            ProblemType::RateLimited => "Too many requests",
            ProblemType::Internal => "Internal error",
            ProblemType::Unavailable => "Temporarily unavailable",
            ProblemType::Timeout => "A dependency did not answer in time",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ProblemType::BadRequest => StatusCode::BAD_REQUEST,
            ProblemType::Unauthorized => StatusCode::UNAUTHORIZED,
            ProblemType::Forbidden => StatusCode::FORBIDDEN,
            ProblemType::NotFound => StatusCode::NOT_FOUND,
            ProblemType::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProblemType::Conflict => StatusCode::CONFLICT,
            ProblemType::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ProblemType::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProblemType::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ProblemType::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ProblemType::ValidationFailed => StatusCode::UNPROCESSABLE_ENTITY,
            ProblemType::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ProblemType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ProblemType::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ProblemType::Timeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

/// A problem as the client sees it, plus what only the logs may see.
#[derive(Debug, Clone)]
pub struct Problem {
    pub kind: ProblemType,
    /// For the client: what went wrong with *their* request.
    pub detail: String,
    /// The request id; filled in by the request-id layer.
    pub instance: Option<String>,
    /// Extra response headers (`Allow`, `Retry-After`, ...). A list, not a
    /// `HeaderMap`, to keep `Result<_, Problem>` small: it is every
    /// handler's error type.
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
    /// For the logs only: the internal cause of a 5xx.
    pub internal: Option<String>,
}

/// The JSON body, exactly the members RFC 9457 defines that we use.
#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance: Option<&'a str>,
}

impl Problem {
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Self {
        Problem {
            kind,
            detail: detail.into(),
            instance: None,
            headers: Vec::new(),
            internal: None,
        }
    }

    /// A 500 whose `cause` goes to the logs, never to the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let mut problem = Problem::new(
            ProblemType::Internal,
            "The server failed to handle the request; quote the instance when reporting it.",
        );
        problem.internal = Some(cause.to_string());
        problem
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value));
        self
    }

    /// The problem document as JSON bytes.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&Body {
            kind: self.kind.uri(),
            title: self.kind.title(),
            status: self.kind.status().as_u16(),
            detail: &self.detail,
            instance: self.instance.as_deref(),
        })
        .expect("a problem document serializes")
    }
}

/// The longest piece of a request a problem repeats.
pub const MAX_EXCERPT_CHARS: usize = 200;

/// `text` from the request as a problem repeats it: cut to
/// [`MAX_EXCERPT_CHARS`], with `…` where it was cut. A refusal names what
/// it refuses; it does not echo kilobytes back (found by the request
/// fuzzing: a 404 repeating a long path whole).
pub fn excerpt(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(MAX_EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]).into(),
        None => text.into(),
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.kind.title(),
            self.kind.status().as_u16(),
            self.detail
        )?;
        if let Some(internal) = &self.internal {
            write!(f, "; cause: {internal}")?;
        }
        Ok(())
    }
}

impl IntoResponse for Problem {
    /// Renders the document and keeps the [`Problem`] in the response's
    /// extensions, so that the request-id layer can add `instance` (and
    /// logging can see the internal cause) without parsing the body.
    fn into_response(self) -> Response {
        let mut response = (
            self.kind.status(),
            [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
            self.body(),
        )
            .into_response();
        for (name, value) in &self.headers {
            response.headers_mut().insert(name, value.clone());
        }
        response.extensions_mut().insert(self);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_excerpt_is_cut_at_a_character_and_says_so() {
        assert_eq!(excerpt("/v1/x"), "/v1/x");
        let exact = "é".repeat(MAX_EXCERPT_CHARS);
        assert_eq!(excerpt(&exact), exact);
        let long = "é".repeat(MAX_EXCERPT_CHARS + 1);
        assert_eq!(excerpt(&long), format!("{exact}…"));
    }

    #[test]
    fn every_type_has_a_distinct_uri_and_an_error_status() {
        let mut uris: Vec<_> = ProblemType::ALL.iter().map(|t| t.uri()).collect();
        uris.sort();
        uris.dedup();
        assert_eq!(uris.len(), ProblemType::ALL.len());
        for kind in ProblemType::ALL {
            assert!(kind.status().is_client_error() || kind.status().is_server_error());
            assert!(kind.uri().starts_with("/problems/"));
        }
    }

    #[test]
    fn the_document_has_the_rfc_9457_members() {
        let mut problem = Problem::new(ProblemType::NotFound, "No page 'x'.");
        problem.instance = Some("req-1".into());
        let body: serde_json::Value = serde_json::from_slice(&problem.body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "type": "/problems/not-found",
                "title": "Not found",
                "status": 404,
                "detail": "No page 'x'.",
                "instance": "req-1",
            })
        );
    }

    #[test]
    fn internal_causes_stay_out_of_the_document() {
        let problem = Problem::internal("connection to 10.0.0.3 refused: password=hunter2");
        let body = String::from_utf8(problem.body()).unwrap();
        assert!(
            !body.contains("hunter2") && !body.contains("10.0.0.3"),
            "{body}"
        );
        assert!(
            problem.to_string().contains("hunter2"),
            "the logs keep the cause"
        );
    }

    #[test]
    fn responses_carry_status_type_and_headers() {
        let response = Problem::new(ProblemType::RateLimited, "slow down")
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("3"))
            .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        assert!(response.extensions().get::<Problem>().is_some());
    }
}
