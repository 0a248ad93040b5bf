//! The API Worker: a thin shell that turns Worker events into calls on the
//! axum router of the `api` crate, and gives it what only the Workers
//! runtime has (bindings, clock, randomness, `fetch`, timers). Protocol and
//! domain logic belong in the pure crates, not here.

mod entry {
    use std::cell::{Cell, RefCell};
    use std::pin::Pin;
    use std::sync::{Arc, OnceLock};

    use api::{App, Platform};
    use outbound::Background;
    use std::future::Future;
    use std::task::{Poll, Wake, Waker};

    use worker::wasm_bindgen::{self, prelude::wasm_bindgen, JsValue};
    use worker::{event, js_sys, web_sys, Context, Env, ScheduleContext, ScheduledEvent};

    use crate::platform::{RequestTimer, WebCrypto, WorkerConnect, WorkerFetch, WorkerTimer};

    /// The app and its router, built on the first event of each isolate
    /// from its bindings (which do not change while the isolate lives).
    /// Requests share it ([`api::Api::handle`]).
    static APP: OnceLock<(Arc<App>, api::Api)> = OnceLock::new();

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
            // The timer of the request being polled: the one its own
            // `fetch()` calls keep their deadlines on (see WorkerFetch).
            request_timer: || Arc::new(RequestTimer::current().unwrap_or_default()),
            signatures: Arc::new(WebCrypto::default()),
        }
    }

    fn app(env: &Env) -> &'static (Arc<App>, api::Api) {
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
    /// because that macro hands every request to `future_to_promise`,
    /// whose executor queues a microtask on every wake-up and polls the
    /// request from there. Here the request is its own task (see
    /// [`Task`]): polled once on the spot, and an answer ready at once
    /// (health checks, preflights, refusals) is returned as the `Response`
    /// itself, no promise at all (`entry.mjs` hands it straight to the
    /// runtime); only a request that waits gets a promise.
    #[wasm_bindgen]
    pub fn fetch(request: web_sys::Request, env: Env, ctx: worker::worker_sys::Context) -> JsValue {
        Task::start(Box::pin(handle(request, env, Context::new(ctx))))
    }

    type Answer = Pin<Box<dyn Future<Output = Result<web_sys::Response, JsValue>>>>;

    /// One request's future, polled right where it is woken: in the
    /// callback of whatever it waited for (a `fetch()` settling, a socket
    /// read, a timer), which already runs on the runtime's microtask queue.
    /// wasm-bindgen's executor queues one more microtask per wake-up
    /// (`queueMicrotask` and its glue were 3.5 % of the page write's CPU
    /// profile; a write wakes up about ten times by the code's count). A wake-up during a
    /// poll (a future waking itself) polls once more after it. So a
    /// future must be ready by the time it wakes its waker; workers-rs'
    /// `Delay` is not (see `WorkerTimer`).
    struct Task {
        future: RefCell<Option<Answer>>,
        /// `resolve` and `reject` of the promise handed to JS, once the
        /// request had to wait.
        settle: RefCell<Option<(js_sys::Function, js_sys::Function)>>,
        polling: Cell<bool>,
        woken: Cell<bool>,
        /// The request's one timer, current while it is polled.
        timer: RequestTimer,
    }

    // SAFETY: wasm32 Workers are single-threaded; a task and its wakers
    // never leave the thread that made them.
    unsafe impl Send for Task {}
    unsafe impl Sync for Task {}

    impl Task {
        /// Polls `answer` once; the `Response` when it is ready, else a
        /// promise of it.
        fn start(answer: Answer) -> JsValue {
            let task = Arc::new(Task {
                future: RefCell::new(Some(answer)),
                settle: RefCell::new(None),
                polling: Cell::new(false),
                woken: Cell::new(false),
                timer: RequestTimer::default(),
            });
            match task.poll() {
                Some(Ok(response)) => response.into(),
                Some(Err(error)) => js_sys::Promise::reject(&error).into(),
                None => js_sys::Promise::new(&mut |resolve, reject| {
                    *task.settle.borrow_mut() = Some((resolve, reject));
                })
                .into(),
            }
        }

        /// Polls until the future is pending with no wake-up in between;
        /// its outcome when it finished (only ever once). A call while
        /// polling only asks for one more poll.
        fn poll(self: &Arc<Self>) -> Option<Result<web_sys::Response, JsValue>> {
            if self.polling.replace(true) {
                self.woken.set(true);
                return None;
            }
            let waker = Waker::from(self.clone());
            let mut cx = std::task::Context::from_waker(&waker);
            let outcome = self.timer.enter(|| loop {
                self.woken.set(false);
                let mut future = self.future.borrow_mut();
                let Some(pending) = future.as_mut() else {
                    break None;
                };
                if let Poll::Ready(outcome) = pending.as_mut().poll(&mut cx) {
                    *future = None;
                    break Some(outcome);
                }
                if !self.woken.get() {
                    break None;
                }
            });
            self.polling.set(false);
            outcome
        }
    }

    impl Wake for Task {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            let Some(outcome) = self.poll() else {
                return;
            };
            // Taken before settling: settling runs no Rust, but nothing
            // here stays borrowed across a call into JS.
            let settle = self.settle.borrow_mut().take();
            if let Some((resolve, reject)) = settle {
                let settled = match outcome {
                    Ok(response) => resolve.call1(&JsValue::UNDEFINED, &response),
                    Err(error) => reject.call1(&JsValue::UNDEFINED, &error),
                };
                if let Err(error) = settled {
                    worker::console_error!("settling a request failed: {error:?}");
                }
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
        let response = app(&env).1.handle(request).await;
        crate::bridge::response_to_js(response).await
    }

    /// The cron (wrangler.toml `[triggers]`): see `api::cron`.
    #[event(scheduled)]
    async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
        for outcome in api::cron::run(&app(&env).0).await {
            match outcome {
                Ok(done) => worker::console_log!("{done}"),
                Err(e) => worker::console_error!("{e}"),
            }
        }
    }
}

mod bridge;
mod platform;
mod promise;
mod socket;
