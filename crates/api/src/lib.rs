//! The HTTP API as one axum [`Router`]: routes by area, the RFC 9457 error
//! type, and the layers every request goes through. Nothing here depends on
//! the Workers runtime: what the runtime provides (clock, randomness,
//! configuration source) comes in through [`Platform`] and [`Config`], so
//! the whole API runs in native tests exactly as in the Worker.

mod admin;
pub mod config;
pub mod cron;
mod db;
pub mod extract;
mod health;
pub mod layers;
pub use layers::Edge as Api;
mod limits;
pub mod openapi;
pub mod pages;
pub mod problem;
mod redis;
pub mod request_headers;
pub mod telemetry;
#[cfg(feature = "test-routes")]
mod test_routes;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trust;
pub mod uploads;

use std::sync::Arc;

pub use admin::Admin;
pub use config::{Config, ConfigIssue};
pub use health::BuildInfo;
pub use problem::{Problem, ProblemType};

/// What the runtime provides: clock, randomness, outbound HTTP and timers.
/// The Worker binds these to JS (`Date.now`, `fetch`, `setTimeout`); native
/// tests to std, reqwest and tokio. Everything is `Send + Sync` so axum can
/// share it, even though the Worker's implementations call into JS.
#[derive(Clone)]
pub struct Platform {
    /// Milliseconds since the Unix epoch (`Date.now()` in the Worker).
    pub now_millis: fn() -> f64,
    /// Random bits for request ids (not for secrets).
    pub random_u64: fn() -> u64,
    /// Writes one line to the runtime's error log (`console.error` in the
    /// Worker). Structured request logs go to Grafana separately.
    pub log_error: fn(&str),
    /// HTTP to other services (the Access certs endpoint, TiDB, ...).
    pub fetch: Arc<dyn outbound::Fetch>,
    /// TCP connections (Redis).
    pub connect: Arc<dyn outbound::Connect>,
    /// Sleeping, for deadlines.
    pub timer: Arc<dyn outbound::Timer>,
    /// A timer for the deadlines of one request (its own limit, Redis'
    /// connect and exchanges). The Worker's arms one `setTimeout` for all
    /// of them (see `outbound::Deadlines`); natively it is `timer`'s kind.
    pub request_timer: fn() -> Arc<dyn outbound::Timer>,
    /// RS256 signature checks of Access tokens (WebCrypto in the Worker).
    pub signatures: Arc<dyn access::SignatureCheck>,
}

impl Platform {
    /// Seconds since the Unix epoch.
    pub fn now_secs(&self) -> u64 {
        ((self.now_millis)() / 1000.0) as u64
    }

    /// The current time, for signing (B2).
    pub fn now(&self) -> std::time::SystemTime {
        std::time::UNIX_EPOCH + std::time::Duration::from_millis((self.now_millis)() as u64)
    }

    /// The platform of native tests and tools.
    #[cfg(feature = "native")]
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
        fn log_error(line: &str) {
            eprintln!("{line}");
        }
        Platform {
            now_millis,
            random_u64,
            log_error,
            fetch: Arc::new(outbound::ReqwestFetch::default()),
            connect: Arc::new(outbound::TokioConnect),
            timer: Arc::new(outbound::TokioTimer),
            request_timer: || Arc::new(outbound::TokioTimer),
            signatures: Arc::new(access::RustCrypto),
        }
    }
}

/// Everything the routes share, built once per isolate.
pub struct App {
    pub config: Config,
    /// What is wrong with the configuration; `/readyz` reports it.
    pub config_issues: Vec<ConfigIssue>,
    pub platform: Platform,
    /// Checks Access tokens of admin routes, with the team's keys cached
    /// for the life of the isolate; `None` when Access is not configured.
    pub access: Option<access::Verifier>,
    /// TiDB over its HTTP API; `None` when not configured.
    pub tidb: Option<tidb_http::Client>,
    /// Backblaze B2 over its S3 API; `None` when not configured.
    pub b2: Option<b2::Client>,
    /// Sentry, metrics and logs sinks (each optional).
    pub telemetry: telemetry::Telemetry,
    /// Whether requests skip Redis for now, after a connection to it
    /// failed (see [`redis::Skip`]).
    pub(crate) redis_skip: redis::Skip,
    /// Pages written in this isolate whose cache invalidation has not
    /// landed yet (see `pages::cached`).
    pub(crate) pending_invalidations: pages::cached::Pending,
    /// Whether the invalidations Redis missed are to be sent after the
    /// next request (see `pages::missed`).
    pub(crate) missed_drain: pages::missed::DrainDue,
}

impl App {
    pub fn new(get_var: impl Fn(&str) -> Option<String>, platform: Platform) -> Arc<App> {
        let (config, config_issues) = Config::load(get_var);
        let access = config.access.as_ref().map(|a| {
            access::Verifier::new(a.policy.clone(), a.cache)
                .with_signature_check(platform.signatures.clone())
        });
        let tidb = config
            .tidb
            .clone()
            .map(|c| tidb_http::Client::new(c, platform.fetch.clone()));
        let mut config_issues = config_issues;
        let b2 = config.b2.clone().and_then(|c| {
            b2::Client::new(c, platform.fetch.clone())
                .map_err(|e| {
                    // The error quotes the endpoint: for the log only
                    // (`/readyz` shows issues, and it is public in `prd`).
                    (platform.log_error)(&format!("B2 client not built: {e}"));
                    config_issues.push(ConfigIssue {
                        name: "B2_ENDPOINT",
                        problem: "is not accepted by the B2 client (see the log)".into(),
                    })
                })
                .ok()
        });
        let telemetry = telemetry::Telemetry::new(
            &config.telemetry,
            &config.environment,
            BuildInfo::CURRENT.commit,
        );
        Arc::new(App {
            config,
            config_issues,
            platform,
            access,
            tidb,
            b2,
            telemetry,
            redis_skip: redis::Skip::default(),
            pending_invalidations: Default::default(),
            missed_drain: Default::default(),
        })
    }
}

/// The whole API, as one tower service that the Worker (and the native
/// tests) call. Area modules add their (documented) routes;
/// [`layers::apply`] adds the cross-cutting behaviour; anything unmatched
/// is a 404 problem document.
pub fn router(app: Arc<App>) -> Api {
    let areas = health::routes()
        .merge(pages::routes())
        .merge(uploads::routes())
        .merge(admin::routes());
    #[cfg(feature = "test-routes")]
    let areas = areas.merge(test_routes::routes());
    let (routes, templates) = openapi::with_document(areas);
    layers::apply(routes.fallback(not_found), templates, &app)
}

async fn not_found(uri: axum::http::Uri) -> Problem {
    Problem::new(
        ProblemType::NotFound,
        format!("There is nothing at {}.", problem::excerpt(uri.path())),
    )
}
