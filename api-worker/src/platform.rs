//! The `outbound` traits on the Workers runtime: `fetch()`, `connect()`
//! and `setTimeout`, and the Access signature check through WebCrypto.
//! Their futures hold JS values and are not `Send`; the
//! Worker runs on one thread, so wrapping them in `SendFuture` is sound,
//! and it is what lets the `api` crate's axum handlers await them.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use outbound::{
    Arm, BoxFuture, Bytes, Connect, Deadlines, Fetch, FetchError, ReadHeaders, Request, Response,
    Stream, Timer,
};
use slab::Slab;
use worker::js_sys::{Date, Function, Promise, Uint8Array};
use worker::send::SendFuture;
use worker::wasm_bindgen::{self, prelude::wasm_bindgen, prelude::Closure, JsCast};

use crate::bridge::{push_field, SEPARATOR};
use crate::promise::Wait;

#[wasm_bindgen]
extern "C" {
    /// What `sendFetch` in `js/bridge.js` resolves to: `head` and `bytes`,
    /// or `failure` and `message`.
    type FetchOutcome;
    #[wasm_bindgen(method, getter)]
    fn head(this: &FetchOutcome) -> Option<String>;
    #[wasm_bindgen(method, getter)]
    fn bytes(this: &FetchOutcome) -> Option<Uint8Array>;
    #[wasm_bindgen(method, getter)]
    fn failure(this: &FetchOutcome) -> Option<String>;
    #[wasm_bindgen(method, getter)]
    fn message(this: &FetchOutcome) -> Option<String>;
}

#[wasm_bindgen(module = "/js/bridge.js")]
extern "C" {
    #[wasm_bindgen(js_name = sendFetch)]
    fn send_fetch(
        url: &str,
        method: &str,
        headers: &str,
        body: Option<&[u8]>,
        timeout_ms: Option<f64>,
        read_headers: Option<&str>,
        index: u32,
        generation: u32,
    );
}

/// Outbound HTTP through the Worker's `fetch()`, by way of `sendFetch` in
/// `js/bridge.js`, its outcome awaited as a [`Wait`]. workers-rs' `Fetch` was used before: it builds the
/// request with one JS call per header, reads the response body chunk by
/// chunk through a wasm `ReadableStream` reader (a lock, a read and a
/// release per chunk), and the timeout took a wasm timer and an
/// `AbortController`; a CPU profile of an uncached page read had about 8 %
/// of its samples in that body reading alone. Here the request's head
/// crosses as one string, the body is read with one `bytes()`, and of the
/// response's headers only those the request names in [`ReadHeaders`] come
/// back, when it names them.
///
/// The timeout: inside a request (its task being polled, see
/// [`RequestTimer::current`]) it is one more deadline on the request's
/// timer, usually later than one already armed and then free; when it
/// passes, the wait is dropped and the answer, if one ever comes, is left
/// behind (the runtime cancels the `fetch()` with the request). Outside a
/// request (work on `waitUntil`, the cron) no request timer runs, and the
/// runtime's `AbortSignal.timeout` limits the exchange.
pub struct WorkerFetch;

impl Fetch for WorkerFetch {
    fn fetch(
        &self,
        request: Request,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Response, FetchError>> {
        Box::pin(SendFuture::new(send(request, timeout)))
    }
}

async fn send(request: Request, timeout: Duration) -> Result<Response, FetchError> {
    let (parts, body) = request.into_parts();
    let mut headers = String::with_capacity(64 * parts.headers.len());
    for (name, value) in &parts.headers {
        if value.to_str().is_err() {
            return Err(FetchError::InvalidRequest(format!(
                "header {name} is not text"
            )));
        }
        push_field(&mut headers, name.as_str(), value);
    }
    let body = (!body.is_empty()).then_some(&body[..]);
    let read_headers = parts.extensions.get::<ReadHeaders>().map(|read| {
        let mut names = String::with_capacity(32);
        for name in read.0 {
            if !names.is_empty() {
                names.push(SEPARATOR);
            }
            names.push_str(name);
        }
        names
    });
    let timer = RequestTimer::current();
    let wait = Wait::new();
    let (index, generation) = wait.key();
    send_fetch(
        &parts.uri.to_string(),
        parts.method.as_str(),
        &headers,
        body,
        timer.is_none().then_some(timeout.as_millis() as f64),
        read_headers.as_deref(),
        index,
        generation,
    );
    let outcome = match timer {
        Some(timer) => outbound::deadline(&timer, timeout, wait)
            .await
            .map_err(|_| FetchError::Timeout(timeout))?,
        None => wait.await,
    };
    let outcome: FetchOutcome = outcome
        .map_err(|e| FetchError::Network(format!("{e:?}")))?
        .unchecked_into();
    let (Some(head), Some(bytes)) = (outcome.head(), outcome.bytes()) else {
        let message = outcome.message().unwrap_or_default();
        return Err(match outcome.failure().as_deref() {
            Some("timeout") => FetchError::Timeout(timeout),
            Some("invalid") => FetchError::InvalidRequest(message),
            _ => FetchError::Network(message),
        });
    };
    let mut fields = head.split(SEPARATOR);
    let status = fields
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| FetchError::Network(format!("no status in {head:?}")))?;
    let mut out = http::Response::builder().status(status);
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        out = out.header(name, value);
    }
    out.body(Bytes::from(bytes.to_vec()))
        .map_err(|e| FetchError::Network(e.to_string()))
}

#[wasm_bindgen(module = "/js/crypto.js")]
extern "C" {
    #[wasm_bindgen(js_name = importRs256)]
    fn import_rs256(id: u32, modulus: &[u8], exponent: &[u8]);
    #[wasm_bindgen(js_name = verifyRs256)]
    fn verify_rs256(id: u32, message: &[u8], signature: &[u8]) -> Promise;
}

/// Access tokens' RS256 signatures checked by the runtime's WebCrypto
/// (`js/crypto.js`), as a JS Worker would: the same check in Rust took
/// about 4 ms of wasm CPU each.
///
/// Each key crosses to JS once, when first used, under a small id; a check
/// then sends only the id. Sending the key with every check (its modulus
/// turned into base64url in JS to find the imported key by) was 0.5 % of
/// a page write's CPU profile (BENCHMARKS.md, sixteenth pass).
#[derive(Default)]
pub struct WebCrypto {
    /// The keys handed to JS, an id being the index. Access publishes two
    /// at a time and rotates them every six weeks.
    imported: Mutex<Vec<access::RsaPublicKey>>,
}

/// Past this many keys the ids start over (JS replaces a key under a
/// reused id; a check already under way keeps the key it started with).
const MAX_KEYS: usize = 16;

impl WebCrypto {
    /// The id of `key` in JS, handing it over first if it is new.
    fn id(&self, key: &access::RsaPublicKey) -> u32 {
        use access::PublicKeyParts;
        let mut imported = self.imported.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = imported.iter().position(|known| known == key) {
            return id as u32;
        }
        if imported.len() == MAX_KEYS {
            imported.clear();
        }
        let id = imported.len() as u32;
        import_rs256(id, &key.n().to_bytes_be(), &key.e().to_bytes_be());
        imported.push(key.clone());
        id
    }
}

impl access::SignatureCheck for WebCrypto {
    fn rs256<'a>(
        &'a self,
        key: &'a access::RsaPublicKey,
        message: &'a [u8],
        signature: &'a [u8],
    ) -> BoxFuture<'a, bool> {
        let checked = verify_rs256(self.id(key), message, signature);
        let checked = Wait::on(&checked);
        Box::pin(SendFuture::new(async move {
            matches!(checked.await, Ok(valid) if valid.as_bool() == Some(true))
        }))
    }
}

/// The isolate's timer, for what no request's timer covers (readiness
/// checks' deadline, background retries): each sleep on a [`RequestTimer`]
/// of its own, so never shared between requests.
///
/// Not workers-rs' `Delay`: its callback wakes the task and only then
/// marks the sleep over. A request here is polled right inside its wake
/// (see `Task` in lib.rs), so that poll found the sleep still pending,
/// and nothing woke the request again until its deadline.
pub struct WorkerTimer;

impl Timer for WorkerTimer {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        RequestTimer::default().sleep(duration)
    }
}

#[wasm_bindgen]
extern "C" {
    /// `setTimeout(handler, milliseconds, index, generation)`: the handler
    /// gets the two numbers back, which name the timer in [`Timers`].
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &Function, milliseconds: u32, index: u32, generation: u32);
}

/// The deadlines of one request on one `setTimeout` (see
/// `outbound::Deadlines`): a cached page read waits under three (the
/// request's limit and two Redis exchanges), which took a timer and a
/// closure each; now one timer, armed the first time a sleep has to wait,
/// with the isolate's one callback (see [`Timers`]). Never shared between
/// requests: a timer's callback runs in the request that armed it, and
/// waking another request's I/O from there is an error in Workers.
#[derive(Default, Clone)]
pub struct RequestTimer(Rc<RefCell<Clock>>);

thread_local! {
    /// The timer of the request whose task is being polled (see
    /// [`RequestTimer::enter`]).
    static CURRENT: RefCell<Option<RequestTimer>> = const { RefCell::new(None) };
    /// The requests' timers (see [`Timers`]).
    static CLOCKS: RefCell<Timers<Weak<RefCell<Clock>>>> = const { RefCell::new(Timers::new()) };
    /// The callback every timer is armed with, made once per instance.
    static ON_FIRE: Closure<dyn FnMut(u32, u32)> = Closure::new(on_timer);
}

impl RequestTimer {
    /// The timer of the request being polled, if a request is: what its
    /// `fetch()` calls keep their deadlines on.
    pub fn current() -> Option<RequestTimer> {
        CURRENT.with_borrow(Clone::clone)
    }

    /// Runs `poll` (a poll of this timer's request) with this timer as the
    /// current one, and the one before it (a request polling another that
    /// it woke) current again after.
    pub fn enter<R>(&self, poll: impl FnOnce() -> R) -> R {
        let outer = CURRENT.replace(Some(self.clone()));
        let out = poll();
        CURRENT.set(outer);
        out
    }
}

// SAFETY: wasm32 Workers are single-threaded; the timer stays with its
// request, on the thread that made it.
unsafe impl Send for RequestTimer {}
unsafe impl Sync for RequestTimer {}

/// The timers armed and still wanted, each by slot and generation, so
/// that every timer of the isolate is armed with one callback
/// ([`on_timer`]) that finds its clock. Generic in what a slot holds so
/// that it is tested natively.
///
/// No timer is ever cleared. `clearTimeout` was as dear as `setTimeout` in
/// the page write's CPU profile (about 11 us a call), and a write paid it
/// twice: once when the Redis exchange's deadline (1 s) came before the
/// request's (10 s), whose timer was armed while the body was read, and
/// once when its clock went away. A timer no longer wanted (one for a later
/// deadline, or one that outlives its clock) loses its slot instead, and
/// when it fires it finds nothing there, or a slot of a newer generation,
/// and does nothing; the runtime cancels a request's timers when the
/// request is over anyway (its maintainers in cloudflare/workerd#3557). A closure per clock, as before, could not be
/// left armed: it was freed with its clock.
struct Timers<T> {
    slots: Slab<(u32, T)>,
    /// The generation of the timer armed last.
    generation: u32,
}

impl<T> Timers<T> {
    const fn new() -> Self {
        Timers {
            slots: Slab::new(),
            generation: 0,
        }
    }

    /// A slot and generation for a new timer of `owner`.
    fn add(&mut self, owner: T) -> (u32, u32) {
        self.generation = self.generation.wrapping_add(1);
        let index = self.slots.insert((self.generation, owner));
        (index as u32, self.generation)
    }

    /// The timer in `index` is no longer wanted.
    fn forget(&mut self, index: u32) {
        self.slots.try_remove(index as usize);
    }

    /// The owner of timer (`index`, `generation`), which just fired, if it
    /// was still wanted; the timer is gone after.
    fn fired(&mut self, index: u32, generation: u32) -> Option<T> {
        let wanted = self
            .slots
            .get(index as usize)
            .is_some_and(|(armed, _)| *armed == generation);
        wanted.then(|| self.slots.remove(index as usize).1)
    }
}

/// The isolate's one timer callback: the clock of a timer still wanted
/// wakes the sleeps that are over and arms for the next.
fn on_timer(index: u32, generation: u32) {
    let clock = CLOCKS
        .with_borrow_mut(|timers| timers.fired(index, generation))
        .and_then(|clock| clock.upgrade());
    let Some(clock) = clock else {
        return;
    };
    let woken = {
        let mut this = clock.borrow_mut();
        this.armed = None;
        let (woken, arm) = this.deadlines.fire(Date::now());
        this.arm(arm, &clock);
        woken
    };
    woken.into_iter().for_each(Waker::wake);
}

#[derive(Default)]
struct Clock {
    deadlines: Deadlines,
    /// The slot of its armed timer in [`Timers`].
    armed: Option<u32>,
}

impl Clock {
    /// Carries out what `Deadlines` asked for; `clock` is `self`'s cell,
    /// for [`Timers`].
    fn arm(&mut self, arm: Arm, clock: &Rc<RefCell<Clock>>) {
        let Arm::After(milliseconds) = arm else {
            return;
        };
        let later = self.armed.take();
        let (index, generation) = CLOCKS.with_borrow_mut(|timers| {
            if let Some(later) = later {
                // An earlier deadline came: the later timer is not wanted.
                timers.forget(later);
            }
            timers.add(Rc::downgrade(clock))
        });
        ON_FIRE.with(|on_fire| {
            set_timeout(
                on_fire.as_ref().unchecked_ref(),
                milliseconds,
                index,
                generation,
            )
        });
        self.armed = Some(index);
    }
}

impl Drop for Clock {
    /// Its timer, if one is armed, is no longer wanted (see [`Timers`]).
    fn drop(&mut self) {
        if let Some(index) = self.armed {
            // `try_with`: nothing to do if the instance is going away.
            let _ = CLOCKS.try_with(|timers| timers.borrow_mut().forget(index));
        }
    }
}

impl Timer for RequestTimer {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(SendFuture::new(RequestSleep {
            clock: self.0.clone(),
            duration,
            key: None,
        }))
    }
}

/// A sleep on a [`RequestTimer`], from its first poll.
struct RequestSleep {
    clock: Rc<RefCell<Clock>>,
    duration: Duration,
    key: Option<usize>,
}

impl Future for RequestSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut clock = this.clock.borrow_mut();
        if let Some(key) = this.key {
            return clock.deadlines.poll(key, cx.waker());
        }
        let now = Date::now();
        let at = now + this.duration.as_secs_f64() * 1000.0;
        let (key, arm) = clock.deadlines.insert(at, now, cx.waker());
        this.key = Some(key);
        clock.arm(arm, &this.clock);
        clock.deadlines.poll(key, cx.waker())
    }
}

impl Drop for RequestSleep {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.clock.borrow_mut().deadlines.remove(key);
        }
    }
}

/// TCP through `connect()` from `cloudflare:sockets`, TLS when asked (see
/// socket.rs).
pub struct WorkerConnect;

impl Connect for WorkerConnect {
    fn connect(
        &self,
        host: &str,
        port: u16,
        tls: bool,
    ) -> BoxFuture<'_, std::io::Result<Box<dyn Stream>>> {
        let stream = crate::socket::TcpStream::connect(host, port, tls);
        Box::pin(std::future::ready(
            stream.map(|stream| Box::new(stream) as Box<dyn Stream>),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timer_still_wanted_finds_its_owner_once() {
        let mut timers = Timers::new();
        let (index, generation) = timers.add("clock");
        assert_eq!(timers.fired(index, generation), Some("clock"));
        assert_eq!(timers.fired(index, generation), None, "it fires once");
        assert!(timers.slots.is_empty());
    }

    #[test]
    fn a_timer_no_longer_wanted_finds_nothing() {
        let mut timers = Timers::new();
        let (later, later_generation) = timers.add("clock");
        timers.forget(later);
        let (earlier, earlier_generation) = timers.add("clock");
        assert_eq!(earlier, later, "the slot is used again");
        assert_eq!(
            timers.fired(later, later_generation),
            None,
            "the forgotten timer fires into a slot of a newer generation"
        );
        assert_eq!(timers.fired(earlier, earlier_generation), Some("clock"));
        timers.forget(earlier);
        assert_eq!(timers.fired(earlier, earlier_generation), None);
    }
}
