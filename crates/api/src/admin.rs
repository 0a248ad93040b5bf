//! Admin routes: who is calling, proven by Cloudflare Access. [`Admin`] is
//! the extractor every admin handler takes; it verifies the Access JWT of
//! the request (see the `access` crate) and fails with a 401, 403 or 503
//! problem document. Handlers get the identity and record it as the author
//! of what they change.

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::RETRY_AFTER_SECS;
use crate::layers::Timings;
use crate::openapi::{documented_routes, DocumentedRoutes};
use crate::problem::{Problem, ProblemType};
use crate::telemetry::Notes;
use crate::trust::Caller;
use crate::App;

pub use access::Identity;

/// A request from an identity Cloudflare Access let in.
#[derive(Debug, Clone)]
pub struct Admin(pub Identity);

impl FromRequestParts<Arc<App>> for Admin {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Problem> {
        let verifier = app.access.as_ref().ok_or_else(|| {
            Problem::new(
                ProblemType::Unavailable,
                "Admin routes are unavailable: Cloudflare Access is not configured (see /readyz).",
            )
        })?;
        let token = access::token_from_headers(&parts.headers).unwrap_or_default();
        let through_binding = parts.extensions.get::<Caller>() == Some(&Caller::Binding);
        let started = (app.platform.now_millis)();
        let verified = verifier
            .verify(
                token,
                app.platform.fetch.as_ref(),
                app.platform.now_secs(),
                through_binding,
            )
            .await;
        if let Some(timings) = parts.extensions.get::<Timings>() {
            timings.record("access", (app.platform.now_millis)() - started);
        }
        if let (Ok(identity), Some(notes)) = (&verified, parts.extensions.get::<Notes>()) {
            notes.set_user(&identity.author());
        }
        verified.map(Admin).map_err(|rejection| {
            let kind = match rejection.status() {
                403 => ProblemType::Forbidden,
                503 => ProblemType::Unavailable,
                _ => ProblemType::Unauthorized,
            };
            if kind == ProblemType::Unavailable {
                // Why the keys could not be fetched (the certs URL, what
                // the fetch said) is for the logs: the detail is fixed.
                let mut problem = Problem::new(
                    kind,
                    "Admin routes are unavailable: the Cloudflare Access signing keys \
                     cannot be fetched; try again shortly.",
                )
                .with_header(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECS),
                );
                problem.internal = Some(rejection.to_string());
                return problem;
            }
            let mut problem = Problem::new(kind, rejection.to_string());
            if kind == ProblemType::Unauthorized {
                // RFC 9110 §15.5.2: a 401 names how to authenticate.
                problem = problem.with_header(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("CloudflareAccess realm=\"admin\""),
                );
            }
            problem
        })
    }
}

pub fn routes() -> DocumentedRoutes {
    documented_routes![whoami]
}

/// The caller as Access identified them.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    /// `user` or `service`.
    pub kind: &'static str,
    /// The user's email (users only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The service token's client id (service tokens only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// How changes by this caller are attributed.
    pub author: String,
    /// `binding` (through the Pages shim) or `internet`.
    pub via: &'static str,
}

/// The identity admin routes see for this request: lets the admin site
/// show who is logged in, and health checks prove their service token.
#[utoipa::path(get, path = "/v1/admin/whoami", tag = "admin",
    security(("cloudflare_access" = [])),
    responses(
        (status = 200, description = "The caller's Access identity", body = WhoAmI),
        crate::openapi::AdminProblems,
        crate::openapi::V1Problems,
    ))]
async fn whoami(
    State(_app): State<Arc<App>>,
    Admin(identity): Admin,
    caller: Option<axum::Extension<Caller>>,
) -> Json<WhoAmI> {
    let via = match caller.map(|c| c.0) {
        Some(Caller::Binding) => "binding",
        _ => "internet",
    };
    let author = identity.author();
    let (kind, email, client_id) = match identity {
        Identity::User { email } => ("user", Some(email), None),
        Identity::Service { client_id } => ("service", None, Some(client_id)),
    };
    Json(WhoAmI {
        kind,
        email,
        client_id,
        author,
        via,
    })
}
