//! Liveness: answers without touching any dependency, and says exactly which
//! build is running so a deploy can be checked against the commit it shipped.

use axum::Json;
use serde::Serialize;

/// Which build of the Worker is answering.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BuildInfo {
    pub status: &'static str,
    pub version: &'static str,
    /// The git commit the Worker was built from (`-dirty` when the tree had
    /// uncommitted changes), set by `cargo xtask build` through `GIT_COMMIT`.
    pub commit: &'static str,
}

impl BuildInfo {
    pub const CURRENT: BuildInfo = BuildInfo {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        commit: match option_env!("GIT_COMMIT") {
            Some(commit) => commit,
            None => "unknown",
        },
    };
}

pub async fn healthz() -> Json<BuildInfo> {
    Json(BuildInfo::CURRENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[tokio::test]
    async fn healthz_reports_the_build() {
        let response = crate::router()
            .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "health must be JSON"
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["status"], "ok");
        assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(json["commit"], BuildInfo::CURRENT.commit);
    }

    #[tokio::test]
    async fn unknown_route_is_not_found() {
        let response = crate::router()
            .oneshot(Request::get("/nope").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}
