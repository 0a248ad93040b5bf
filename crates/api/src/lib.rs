//! The HTTP API as one axum [`Router`]: routes by area, the RFC 9457 error
//! type, and the layers every request goes through. Nothing here depends on
//! the Workers runtime: what the runtime provides (clock, randomness,
//! configuration source) comes in through [`Platform`] and [`Config`], so
//! the whole API runs in native tests exactly as in the Worker.

pub mod config;
pub mod extract;
mod health;
pub mod layers;
pub mod openapi;
pub mod problem;

use std::sync::Arc;

use axum::Router;

pub use config::{Config, ConfigIssue};
pub use health::BuildInfo;
pub use problem::{Problem, ProblemType};

/// What the runtime provides. Plain function pointers, so the state stays
/// `Send + Sync` even though the Worker's implementations call into JS.
#[derive(Debug, Clone, Copy)]
pub struct Platform {
    /// Milliseconds since the Unix epoch (`Date.now()` in the Worker).
    pub now_millis: fn() -> f64,
    /// Random bits for request ids (not for secrets).
    pub random_u64: fn() -> u64,
}

impl Platform {
    /// The platform of native tests and tools.
    pub fn native() -> Self {
        fn now_millis() -> f64 {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64() * 1000.0)
                .unwrap_or(0.0)
        }
        fn random_u64() -> u64 {
            use std::hash::{BuildHasher, RandomState};
            RandomState::new().hash_one(now_millis().to_bits())
        }
        Platform {
            now_millis,
            random_u64,
        }
    }
}

/// Everything the routes share, built once per isolate.
pub struct App {
    pub config: Config,
    /// What is wrong with the configuration; `/readyz` reports it.
    pub config_issues: Vec<ConfigIssue>,
    pub platform: Platform,
}

impl App {
    pub fn new(get_var: impl Fn(&str) -> Option<String>, platform: Platform) -> Arc<App> {
        let (config, config_issues) = Config::load(get_var);
        Arc::new(App {
            config,
            config_issues,
            platform,
        })
    }
}

/// The whole API. Area modules add their (documented) routes;
/// [`layers::apply`] adds the cross-cutting behaviour; anything unmatched
/// is a 404 problem document.
pub fn router(app: Arc<App>) -> Router {
    let (routes, _document) = openapi::routes(health::routes());
    layers::apply(routes.fallback(not_found), &app).with_state(app)
}

async fn not_found(uri: axum::http::Uri) -> Problem {
    Problem::new(
        ProblemType::NotFound,
        format!("There is nothing at {}.", uri.path()),
    )
}
