//! The API Worker: a thin shell that turns Worker events into calls on the
//! axum router of the `api` crate, and gives it what only the Workers
//! runtime has (bindings, clock, randomness, `fetch`, timers). Protocol and
//! domain logic belong in the pure crates, not here.

mod entry {
    use std::sync::{Arc, Mutex, OnceLock};

    use api::{App, Platform};
    use axum::Router;
    use outbound::Background;
    use std::future::Future;
    use std::task::{Poll, Wake, Waker};
    use tower_service::Service;

    use worker::wasm_bindgen::{self, prelude::wasm_bindgen, JsValue};
    use worker::wasm_bindgen_futures::future_to_promise;
    use worker::{event, js_sys, web_sys, Context, Env, ScheduleContext, ScheduledEvent};

    use crate::platform::{RequestTimer, WebCrypto, WorkerConnect, WorkerFetch, WorkerTimer};

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
            request_timer: || Arc::new(RequestTimer::default()),
            signatures: Arc::new(WebCrypto),
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

    /// The Worker's `fetch` export, written out instead of `#[event(fetch)]`
    /// for one reason: that macro hands every request to
    /// `future_to_promise`, whose task queue costs a microtask and a few
    /// closures even when the answer is ready at once (health checks,
    /// preflights, refusals). Here the request is polled once on the spot:
    /// an answer ready at once is returned as the `Response` itself (no
    /// promise at all, which `entry.mjs` hands straight to the runtime);
    /// only a request that waits goes to `future_to_promise`.
    ///
    /// The first poll's waker forwards to the task's: some futures keep
    /// the waker of their first poll only (`worker::Delay` does), so a
    /// wake-up they send must still reach the task that now owns them.
    #[wasm_bindgen]
    pub fn fetch(request: web_sys::Request, env: Env, ctx: worker::worker_sys::Context) -> JsValue {
        let mut answer = Box::pin(handle(request, env, Context::new(ctx)));
        let forward = Arc::new(Forward::default());
        let waker = Waker::from(forward.clone());
        match answer
            .as_mut()
            .poll(&mut std::task::Context::from_waker(&waker))
        {
            Poll::Ready(Ok(response)) => response.into(),
            Poll::Ready(Err(error)) => js_sys::Promise::reject(&error).into(),
            Poll::Pending => future_to_promise(async move {
                std::future::poll_fn(|cx| {
                    forward.set(cx.waker());
                    answer.as_mut().poll(cx)
                })
                .await
                .map(JsValue::from)
            })
            .into(),
        }
    }

    /// Wakes whichever waker was last set (none before the task took over:
    /// the task polls the request first thing anyway).
    #[derive(Default)]
    struct Forward(Mutex<Option<Waker>>);

    impl Forward {
        fn set(&self, waker: &Waker) {
            let mut target = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if !target.as_ref().is_some_and(|t| t.will_wake(waker)) {
                *target = Some(waker.clone());
            }
        }
    }

    impl Wake for Forward {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            let target = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(waker) = target.as_ref() {
                waker.wake_by_ref();
            }
        }
    }

    /// A request: converted by our own bridge (see bridge.rs), routed by
    /// axum, converted back.
    async fn handle(
        request: web_sys::Request,
        env: Env,
        ctx: Context,
    ) -> Result<web_sys::Response, JsValue> {
        let mut request = crate::bridge::request_from_js(request).await?;
        let ctx = WaitUntil(ctx);
        request
            .extensions_mut()
            .insert(Background::new(move |work| ctx.0.wait_until(work)));
        // Router::call never fails (its error type is Infallible).
        let Ok(response) = app(&env).1.clone().call(request).await;
        crate::bridge::response_to_js(response).await
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
mod socket;
