//! The API Worker: a thin shell that turns Worker events into calls on the
//! axum router of the `api` crate, and gives it what only the Workers
//! runtime has (bindings, clock, randomness, `fetch`, timers). Protocol and
//! domain logic belong in the pure crates, not here.

mod entry {
    use std::sync::{Arc, OnceLock};

    use api::{App, Platform};
    use axum::Router;
    use tower_service::Service;
    use worker::{event, js_sys, Context, Env, HttpRequest};

    use crate::platform::{WorkerConnect, WorkerFetch, WorkerTimer};

    /// The router, built on the first request of each isolate from its
    /// bindings (which do not change while the isolate lives) and cloned
    /// per request: a clone shares the routes and layers behind an `Arc`.
    static ROUTER: OnceLock<Router> = OnceLock::new();

    fn platform() -> Platform {
        fn now_millis() -> f64 {
            js_sys::Date::now()
        }
        fn random_u64() -> u64 {
            // Math.random gives 52 usable bits; two draws fill a u64. Request
            // ids need uniqueness, not unpredictability.
            let high = (js_sys::Math::random() * 4_294_967_296.0) as u64;
            let low = (js_sys::Math::random() * 4_294_967_296.0) as u64;
            (high << 32) | low
        }
        fn log_error(line: &str) {
            worker::console_error!("{line}");
        }
        Platform {
            now_millis,
            random_u64,
            log_error,
            fetch: Arc::new(WorkerFetch),
            connect: Arc::new(WorkerConnect),
            timer: Arc::new(WorkerTimer),
        }
    }

    fn router(env: &Env) -> Router {
        ROUTER
            .get_or_init(|| {
                let app: Arc<App> = App::new(
                    |name| {
                        env.var(name)
                            .map(|v| v.to_string())
                            .or_else(|_| env.secret(name).map(|v| v.to_string()))
                            .ok()
                    },
                    platform(),
                );
                api::router(app)
            })
            .clone()
    }

    #[event(fetch)]
    async fn fetch(
        req: HttpRequest,
        env: Env,
        _ctx: Context,
    ) -> worker::Result<axum::http::Response<axum::body::Body>> {
        // Router::call never fails (its error type is Infallible).
        Ok(router(&env).call(req).await?)
    }
}

mod platform;
