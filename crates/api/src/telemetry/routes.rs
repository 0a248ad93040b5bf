//! The route a request is counted under: the template of the route that
//! serves its path (`/v1/pages/{slug}`), or `unmatched`, so that labels
//! stay bounded whatever paths clients send.
//!
//! Matched here, when a report is made, with the matcher axum routes with
//! (`matchit`, the same version and the same templates), instead of a
//! layer on every route copying axum's `MatchedPath` into the request's
//! notes: a route layer costs every request one more boxed service level
//! and its allocations whether or not a sink is configured, and axum's
//! `MatchedPath` an extension insert more. A test checks the labels
//! against axum's own matching.

/// The templates of every route the router serves.
pub struct RouteTemplates {
    matcher: matchit::Router<usize>,
    templates: Vec<String>,
}

/// The label of a path no route serves.
pub const UNMATCHED: &str = "unmatched";

impl RouteTemplates {
    /// `templates` may repeat (one per method routed at a path). Panics on
    /// a template matchit refuses or on two that conflict, as axum itself
    /// does when the same routes are added to a router.
    pub fn new(mut templates: Vec<String>) -> Self {
        templates.sort_unstable();
        templates.dedup();
        let mut matcher = matchit::Router::new();
        for (index, template) in templates.iter().enumerate() {
            matcher
                .insert(template.as_str(), index)
                .unwrap_or_else(|e| panic!("route {template}: {e}"));
        }
        RouteTemplates { matcher, templates }
    }

    /// The template serving `path`, or [`UNMATCHED`].
    pub fn label(&self, path: &str) -> &str {
        match self.matcher.at(path) {
            Ok(found) => &self.templates[*found.value],
            Err(_) => UNMATCHED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tower::ServiceExt;

    const TEMPLATES: [&str; 6] = [
        "/healthz",
        "/v1/pages",
        "/v1/pages/{slug}",
        "/v1/pages/{slug}/revisions",
        "/v1/files/{id}",
        "/v1/uploads/{id}/complete",
    ];

    /// Which route axum's router sends `path` to: each answers its
    /// template.
    async fn axum_label(path: &str) -> String {
        let mut router = axum::Router::new();
        for template in TEMPLATES {
            router = router.route(template, get(move || async move { template }));
        }
        let router = router.fallback(|| async { UNMATCHED });
        let request = axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn paths_get_the_template_axum_routes_them_by() {
        // The way the router lists them: once per method.
        let listed = TEMPLATES.iter().chain(&TEMPLATES).map(|t| t.to_string());
        let routes = RouteTemplates::new(listed.collect());
        let paths = [
            "/healthz",
            "/healthz/",
            "/HEALTHZ",
            "/v1/pages",
            "/v1/pages/",
            "/v1/pages/a-page",
            "/v1/pages/a-page/",
            "/v1/pages/a%2Fb",
            "/v1/pages/a-page/revisions",
            "/v1/pages/a-page/revisions/2",
            "/v1/pages//revisions",
            "/v1//pages",
            "/v1/files/{id}",
            "/v1/uploads/7/complete",
            "/v1/uploads/7",
            "/",
            "/nowhere",
        ];
        for path in paths {
            assert_eq!(routes.label(path), axum_label(path).await, "{path}");
        }
        assert_eq!(routes.label("/v1/pages/a-page"), "/v1/pages/{slug}");
        assert_eq!(routes.label("/nowhere"), UNMATCHED);
    }
}
