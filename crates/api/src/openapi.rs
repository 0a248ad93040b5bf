//! The OpenAPI 3.1 document, generated from the code. Every route is added
//! through [`documented_routes!`], which takes the path and methods of
//! each handler from its `#[utoipa::path]`, so a route cannot exist
//! without documentation. A test below also fails on any route added
//! around it with axum's own routing methods.
//!
//! The router is built from those paths and methods alone, and the
//! document (every operation with its parameters, bodies, responses and
//! schemas) only when `/openapi.json` is first asked for. utoipa-axum's
//! `OpenApiRouter` builds both together, which was half of a cold
//! isolate's first request although no other route needs the document.

use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::handler::Handler;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::MethodRouter;
use axum::Extension;
use serde::Serialize;
use utoipa::openapi::OpenApi as Document;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::PathItemExt;

use crate::App;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Edge API",
        description = "Content API for the wiki and the sites. Every error is an RFC 9457 \
            problem document (`application/problem+json`, schema `Problem`) whose `instance` \
            is the request id, also sent as `x-request-id`.",
    ),
    components(schemas(Problem)),
    modifiers(&AccessScheme),
    tags((name = "health", description = "Liveness and readiness"),
         (name = "pages", description = "Wiki pages and their revisions"),
         (name = "admin", description = "Routes for Cloudflare Access identities"),
         (name = "meta", description = "This document")),
)]
struct ApiDoc;

/// Admin routes take the JWT Cloudflare Access attaches to requests it lets
/// through (or the same token in the `CF_Authorization` cookie).
struct AccessScheme;

impl utoipa::Modify for AccessScheme {
    fn modify(&self, openapi: &mut Document) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "cloudflare_access",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                access::JWT_HEADER,
                "The Cloudflare Access application token (RS256 JWT).",
            ))),
        );
    }
}

/// An RFC 9457 problem document, as every error response carries it.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // describes the JSON that `Problem` renders
pub(crate) struct Problem {
    /// Stable URI reference of the problem type: one of
    /// `/problems/bad-request`, `/problems/unauthorized`, `/problems/forbidden`,
    /// `/problems/not-found`, `/problems/method-not-allowed`, `/problems/conflict`,
    /// `/problems/precondition-failed`, `/problems/payload-too-large`,
    /// `/problems/request-timeout`,
    /// `/problems/unsupported-media-type`, `/problems/validation-failed`,
    /// `/problems/rate-limited`, `/problems/internal`, `/problems/unavailable`,
    /// `/problems/timeout`.
    #[serde(rename = "type")]
    kind: String,
    /// Short summary of the problem type.
    title: String,
    /// The HTTP status code.
    status: u16,
    /// What went wrong with this request.
    detail: String,
    /// The request id.
    instance: Option<String>,
}

/// The answers every `/v1/` route can give besides its own: rate limited
/// (429), or a dependency unavailable (503; also the limiter under
/// fail-closed). Routes list it in `responses(...)`.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // describes responses; never constructed
pub(crate) enum V1Problems {
    #[response(
        status = 429,
        description = "Rate limited; see `Retry-After` and `RateLimit-*`",
        content_type = "application/problem+json"
    )]
    RateLimited(Problem),
    #[response(
        status = 503,
        description = "A dependency (or, fail-closed, the rate limiter) is unavailable; see `Retry-After`",
        content_type = "application/problem+json"
    )]
    Unavailable(Problem),
}

/// The answers of a route that needs an Access identity.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // describes responses; never constructed
pub(crate) enum AdminProblems {
    #[response(
        status = 401,
        description = "No valid Access token",
        content_type = "application/problem+json"
    )]
    Unauthorized(Problem),
    #[response(
        status = 403,
        description = "A valid token that is not let in here",
        content_type = "application/problem+json"
    )]
    Forbidden(Problem),
}

/// The answers of a route that takes a JSON body ([`crate::extract::Json`]
/// behind the body limit and the request deadline), besides the 400 and
/// 422 each route words for its own document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // describes responses; never constructed
pub(crate) enum JsonBodyProblems {
    #[response(
        status = 413,
        description = "Request over 1 MiB",
        content_type = "application/problem+json"
    )]
    TooLarge(Problem),
    #[response(
        status = 408,
        description = "The body did not arrive within the request deadline",
        content_type = "application/problem+json"
    )]
    TooSlow(Problem),
    #[response(
        status = 415,
        description = "Not JSON",
        content_type = "application/problem+json"
    )]
    NotJson(Problem),
}

/// Some routes' operations and schemas, to merge into the document. Made
/// with utoipa-axum's `routes!`, the public way to collect a handler's
/// operation, tags and schemas; the method routers it also makes are
/// dropped.
type DocumentPart = fn() -> OpenApiRouter<Arc<App>>;

/// Routes and how to document them: what an area of the API hands to
/// [`with_document`]. Made by [`documented_routes!`].
pub struct DocumentedRoutes {
    router: axum::Router<Arc<App>>,
    /// Each route's path template, for telemetry's labels.
    templates: Vec<String>,
    document: Vec<DocumentPart>,
}

impl DocumentedRoutes {
    #[doc(hidden)] // for documented_routes!
    pub fn new(document: DocumentPart) -> Self {
        Self {
            router: axum::Router::new(),
            templates: Vec::new(),
            document: vec![document],
        }
    }

    /// Routes `handler` at the path and methods of its `#[utoipa::path]`
    /// (`P`, the struct that attribute generates), without building its
    /// operation.
    #[doc(hidden)] // for documented_routes!
    pub fn route<P: utoipa::Path, H: Handler<T, Arc<App>>, T: 'static>(
        mut self,
        handler: H,
    ) -> Self {
        let methods = P::methods()
            .iter()
            .fold(MethodRouter::new(), |methods, method| {
                methods.on(method.to_method_filter(), handler.clone())
            });
        let path = P::path();
        self.router = self.router.route(&path, methods);
        self.templates.push(path);
        self
    }

    pub fn merge(mut self, other: DocumentedRoutes) -> Self {
        self.router = self.router.merge(other.router);
        self.templates.extend(other.templates);
        self.document.extend(other.document);
        self
    }

    /// The routes without their document, for those that must stay out of
    /// it.
    #[cfg(feature = "test-routes")]
    pub fn undocumented(mut self) -> Self {
        self.document.clear();
        self
    }
}

/// `documented_routes![handler, ...]`: [`DocumentedRoutes`] serving each
/// handler at the path and methods its `#[utoipa::path]` declares, and
/// documented by that same attribute. Handlers are named as in scope.
macro_rules! documented_routes {
    ($($handler:ident),+ $(,)?) => {
        utoipa_axum::paste! {
            $crate::openapi::DocumentedRoutes::new(|| {
                utoipa_axum::router::OpenApiRouter::new()
                    $( .routes(utoipa_axum::routes!($handler)) )+
            })
            $( .route::<[<__path_ $handler>], _, _>($handler) )+
        }
    };
}
pub(crate) use documented_routes;

/// The document served at `/openapi.json`, built and rendered the first
/// time it is asked for.
#[derive(Clone)]
struct OpenApiJson(Arc<LazyDocument>);

struct LazyDocument {
    parts: Vec<DocumentPart>,
    json: OnceLock<Bytes>,
}

impl OpenApiJson {
    /// The rendered document; shared, not copied, on every later request.
    fn rendered(&self) -> Bytes {
        let LazyDocument { parts, json } = &*self.0;
        json.get_or_init(|| {
            let document = document(parts);
            document.to_json().expect("the document serializes").into()
        })
        .clone()
    }
}

fn document(parts: &[DocumentPart]) -> Document {
    parts
        .iter()
        .fold(
            OpenApiRouter::with_openapi(ApiDoc::openapi()),
            |all, part| all.merge(part()),
        )
        .into_openapi()
}

/// Every documented route, with the document that describes them served
/// at `/openapi.json`.
///
/// The document reaches its one route through a layer on that route
/// alone. A layer on the whole router would wrap every route, and every
/// request, `/healthz` too, would pay for one more boxed service level and
/// an extension insert for a value only this route reads (natively about
/// 3,000 instructions and 5 allocations of a `/healthz` request).
///
/// Returns the router and every route's path template.
pub fn with_document(areas: DocumentedRoutes) -> (axum::Router<Arc<App>>, Vec<String>) {
    let own = documented_routes![openapi_json];
    let document = OpenApiJson(Arc::new(LazyDocument {
        parts: areas.document.into_iter().chain(own.document).collect(),
        json: OnceLock::new(),
    }));
    let router = own
        .router
        .route_layer(Extension(document))
        .merge(areas.router);
    let templates = areas.templates.into_iter().chain(own.templates).collect();
    (router, templates)
}

/// This OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API",
               content_type = "application/json")))]
async fn openapi_json(Extension(json): Extension<OpenApiJson>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        json.rendered(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::ProblemType;

    #[test]
    fn every_problem_type_is_documented() {
        let document = ApiDoc::openapi().to_json().unwrap();
        for kind in ProblemType::ALL {
            assert!(
                document.contains(kind.uri()),
                "{} is not documented",
                kind.uri()
            );
        }
    }

    /// Routes must go through `documented_routes!` (documented by
    /// construction); a plain `.route(` anywhere else in the crate would
    /// bypass the document.
    #[test]
    fn no_route_bypasses_the_document() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut offenders = Vec::new();
        let mut pending = vec![src];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    // Test-only routes are undocumented on purpose (see
                    // test_routes.rs); they still go through the macro.
                    let text = std::fs::read_to_string(&path).unwrap();
                    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                    for needle in [".route(", ".route_service(", ".nest("] {
                        // `DocumentedRoutes::route` itself, the one place
                        // that routes (what it documents).
                        let allowed =
                            usize::from(needle == ".route(" && path.ends_with("src/openapi.rs"));
                        if code.matches(needle).count() > allowed {
                            offenders.push(format!("{} uses {needle}", path.display()));
                        }
                    }
                }
            }
        }
        assert!(offenders.is_empty(), "undocumented routes: {offenders:?}");
    }
}
