//! The API Worker: a thin shell that turns Worker events into calls on the
//! axum router of the `api` crate, and gives it what only the Workers
//! runtime has (bindings, clock, randomness, `fetch`, timers). Protocol and
//! domain logic belong in the pure crates, not here.

mod entry {
    use std::sync::{Arc, OnceLock};

    use api::{App, Platform};
    use axum::Router;
    use outbound::Background;
    use tower_service::Service;
    use worker::{event, js_sys, web_sys, Context, Env, ScheduleContext, ScheduledEvent};

    use crate::platform::{WorkerConnect, WorkerFetch, WorkerTimer};

    /// The app and its router, built on the first event of each isolate
    /// from its bindings (which do not change while the isolate lives).
    /// The router is cloned per request: a clone shares the routes and
    /// layers behind an `Arc`.
    static APP: OnceLock<(Arc<App>, Router)> = OnceLock::new();

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

    fn app(env: &Env) -> &'static (Arc<App>, Router) {
        APP.get_or_init(|| {
            let app: Arc<App> = App::new(
                |name| {
                    env.var(name)
                        .map(|v| v.to_string())
                        .or_else(|_| env.secret(name).map(|v| v.to_string()))
                        .ok()
                },
                platform(),
            );
            (app.clone(), api::router(app))
        })
    }

    /// The request's `ctx`, for `waitUntil`. A JS object is not `Send`, but
    /// the Worker runs on one thread and never moves it to another (see
    /// platform.rs), which is what axum's extensions ask for.
    struct WaitUntil(Context);
    // SAFETY: wasm32 Workers are single-threaded; the context never leaves
    // the thread that created it.
    unsafe impl Send for WaitUntil {}
    unsafe impl Sync for WaitUntil {}

    /// A request: converted by our own bridge (see bridge.rs), routed by
    /// axum, converted back.
    #[event(fetch)]
    async fn fetch(
        request: web_sys::Request,
        env: Env,
        ctx: Context,
    ) -> worker::Result<web_sys::Response> {
        let mut request = crate::bridge::request_from_js(request).await?;
        let ctx = WaitUntil(ctx);
        request
            .extensions_mut()
            .insert(Background::new(move |work| ctx.0.wait_until(work)));
        // Router::call never fails (its error type is Infallible).
        let response = app(&env).1.clone().call(request).await?;
        Ok(crate::bridge::response_to_js(response).await?)
    }

    /// The cron (wrangler.toml `[triggers]`): sweeps abandoned uploads.
    /// Failures are logged; the next run picks up whatever is left.
    #[event(scheduled)]
    async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
        let (app, _) = app(&env);
        match api::uploads::sweep(app).await {
            Ok(report) => worker::console_log!(
                "upload sweep: {} removed, {} left for the next run",
                report.removed,
                report.failed
            ),
            Err(e) => worker::console_error!("upload sweep failed: {e}"),
        }
    }
}

mod bridge;
mod platform;
