//! Extractors whose rejections are problem documents. Handlers use these
//! instead of axum's own, so a malformed body or query never produces
//! axum's plain-text errors.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::problem::{excerpt, Problem, ProblemType};

/// `axum::Json`, rejecting with 400/413/415/422 problem documents. The
/// body must be a JSON object (every request document of the API is one):
/// serde would otherwise read a struct from an array of its fields, so an
/// array is a 422 — this extractor is not for `Vec` bodies.
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<Object<T>>::from_request(req, state).await {
            Ok(axum::Json(Object(value))) => Ok(Json(value)),
            Err(rejection) => Err(json_problem(rejection)),
        }
    }
}

/// `T` from a JSON object only. serde's derived structs also take an
/// array of the fields in order (`["title", "body"]`), which the schema
/// does not allow and no client should rely on; found by the request
/// fuzzing in `tests/fuzz.rs`.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(ObjectVisitor(PhantomData))
            .map(Object)
    }
}

fn json_problem(rejection: JsonRejection) -> Problem {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            ProblemType::UnsupportedMediaType,
            "The body must be JSON, sent with `Content-Type: application/json`.",
        ),
        JsonRejection::JsonSyntaxError(e) => Problem::new(
            ProblemType::BadRequest,
            format!("The body is not valid JSON: {}", excerpt(&e.body_text())),
        ),
        JsonRejection::JsonDataError(e) => Problem::new(
            ProblemType::ValidationFailed,
            format!(
                "The JSON does not have the expected shape: {}",
                excerpt(&e.body_text())
            ),
        ),
        JsonRejection::BytesRejection(e) if e.status() == http::StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::new(
                ProblemType::PayloadTooLarge,
                "The body is larger than this route accepts.",
            )
        }
        other => Problem::new(
            ProblemType::BadRequest,
            format!(
                "The body could not be read: {}",
                excerpt(&other.body_text())
            ),
        ),
    }
}

/// `axum::extract::Query`, rejecting with a 400 problem document.
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(Problem::new(
                ProblemType::BadRequest,
                format!("The query string is not valid: {}", excerpt(&e.body_text())),
            )),
            Err(other) => Err(Problem::new(
                ProblemType::BadRequest,
                excerpt(&other.body_text()).into_owned(),
            )),
        }
    }
}

/// `axum::extract::Path`, rejecting with a 400 problem document: a
/// segment whose percent-encoding is not UTF-8 (`/v1/files/%AA`) got
/// axum's plain-text 400 (found by the request fuzzing in `tests/fuzz.rs`).
/// The message does not repeat the segment, which can be kilobytes long.
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            // axum tells the caller's segment that does not decode (4xx)
            // from a handler reading parameters its route does not have
            // (5xx: the API's bug, not the caller's).
            Err(rejection) if rejection.status().is_client_error() => Err(Problem::new(
                ProblemType::BadRequest,
                "A path segment is not valid: it must be percent-encoded UTF-8 of the documented form.",
            )),
            Err(rejection) => Err(Problem::internal(rejection.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::extract::DefaultBodyLimit;
    use axum::http::{header, Request, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::{get, post};
    use axum::Router;
    use tower::ServiceExt;

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Page {
        title: String,
    }

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Paging {
        limit: u32,
    }

    fn router() -> Router {
        Router::new()
            .route("/json", post(|Json(_): Json<Page>| async { "ok" }))
            .route("/query", get(|Query(_): Query<Paging>| async { "ok" }))
            .route("/path/{id}", get(|Path(_): Path<String>| async { "ok" }))
            // A handler reading a parameter its route does not have.
            .route(
                "/unparameterised",
                get(|Path(_): Path<String>| async { "ok" }),
            )
            .layer(DefaultBodyLimit::max(64))
    }

    async fn status_and_type(request: Request<Body>) -> (StatusCode, Option<Problem>) {
        let response = router().oneshot(request).await.unwrap().into_response();
        (
            response.status(),
            response.extensions().get::<Problem>().cloned(),
        )
    }

    fn json(content_type: Option<&str>, body: &str) -> Request<Body> {
        let mut builder = Request::post("/json");
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        builder.body(Body::from(body.to_owned())).unwrap()
    }

    #[tokio::test]
    async fn json_rejections_are_problems_with_the_right_status() {
        let cases = [
            (
                json(Some("application/json"), r#"{"title":"x"}"#),
                StatusCode::OK,
                None,
            ),
            (
                json(None, r#"{"title":"x"}"#),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Some(ProblemType::UnsupportedMediaType),
            ),
            (
                json(Some("text/plain"), r#"{"title":"x"}"#),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Some(ProblemType::UnsupportedMediaType),
            ),
            (
                json(Some("application/json"), r#"{"title":"#),
                StatusCode::BAD_REQUEST,
                Some(ProblemType::BadRequest),
            ),
            (
                json(Some("application/json"), r#"{"title":7}"#),
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(ProblemType::ValidationFailed),
            ),
            // serde would take a struct's fields as an array; the schema
            // says object (regression test for a fuzzing find).
            (
                json(Some("application/json"), r#"["x"]"#),
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(ProblemType::ValidationFailed),
            ),
            (
                json(Some("application/json"), r#""x""#),
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(ProblemType::ValidationFailed),
            ),
            (
                json(
                    Some("application/json"),
                    &format!(r#"{{"title":"{}"}}"#, "x".repeat(100)),
                ),
                StatusCode::PAYLOAD_TOO_LARGE,
                Some(ProblemType::PayloadTooLarge),
            ),
        ];
        for (request, status, kind) in cases {
            let (got, problem) = status_and_type(request).await;
            assert_eq!(got, status);
            assert_eq!(problem.map(|p| p.kind), kind);
        }
    }

    #[tokio::test]
    async fn query_rejections_are_400_problems() {
        let request = Request::get("/query?limit=many")
            .body(Body::empty())
            .unwrap();
        let (status, problem) = status_and_type(request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(problem.unwrap().kind, ProblemType::BadRequest);
    }

    /// The caller's malformed segment is a 400; a route that lacks the
    /// parameter its handler reads is the API's own fault, a 500.
    #[tokio::test]
    async fn path_rejections_tell_the_callers_fault_from_the_apis() {
        let get = |uri: &str| Request::get(uri).body(Body::empty()).unwrap();
        let (status, _) = status_and_type(get("/path/abc")).await;
        assert_eq!(status, StatusCode::OK);
        let (status, problem) = status_and_type(get("/path/%AA")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(problem.unwrap().kind, ProblemType::BadRequest);
        let (status, problem) = status_and_type(get("/unparameterised")).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(problem.unwrap().kind, ProblemType::Internal);
    }
}
