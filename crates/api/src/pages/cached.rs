//! Cache-aside for page reads, in Redis (see the `cache` crate for why a
//! write never leaves a stale entry: readers fill under the version they
//! saw before reading TiDB, writers move the version on after committing).
//!
//! The cache is an optimisation only: when Redis is down or slow, lookups
//! miss, fills and invalidations are skipped (and logged), and reads are
//! answered from TiDB. A full Redis still answers: current entries are
//! hit, nothing new is filled, and invalidations still land (the `cache`
//! crate drops the version where Redis will not count it up).
//!
//! If Redis cannot be reached when a write commits, an entry filled before
//! the write would outlive it once Redis is back. So:
//! - the invalidation is tried again after the response ([`RETRY_WINDOW`],
//!   on the request's `waitUntil`);
//! - until it lands, the isolate that took the write reads that page past
//!   the cache ([`Pending`]), so its readers, the writer among them, never
//!   get the old copy, not even between Redis' return and the next try;
//! - the page is noted in TiDB ([`super::missed`]) until an invalidation
//!   lands, for every other isolate's sake: each that finds Redis back
//!   after failing sends the noted invalidations after its next request,
//!   and the cron sends them every minute (when the write's tries ran
//!   out, or its isolate is gone).
//!
//! What is left open: another isolate (another location) may serve the old
//! copy between Redis' return and the invalidation that lands: seconds
//! while the write's tries go on or once an isolate that saw the outage
//! takes a request, at most a minute (the cron's period) otherwise.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::Method;
use outbound::{Background, BoxFuture};

use crate::layers::Timings;
use crate::redis::RequestRedis;
use crate::App;

use super::missed;
use super::store::Page;

const NAMESPACE: &str = "page";
/// Entries live `CACHE_TTL_SECS` ± 10 %, so entries filled together do not
/// expire together.
const JITTER: f64 = 0.1;

/// How long after a write a failed invalidation is tried again: inside
/// the 30 s that Workers give `waitUntil` after the response.
pub const RETRY_WINDOW: Duration = Duration::from_secs(20);
/// The first wait before trying again, doubled after each failure up to
/// [`MAX_RETRY_WAIT`]: a blip is over in well under a second, and a Redis
/// that is down is not asked more than every few seconds.
const FIRST_RETRY_WAIT: Duration = Duration::from_millis(250);
const MAX_RETRY_WAIT: Duration = Duration::from_secs(4);

/// How long after an owed invalidation landed ([`Owed`]: a write cut off,
/// or whose `COMMIT` failed, its outcome never heard) it is sent once more.
/// The first goes out once the write's transaction ended as this client
/// saw it, its `ROLLBACK` answered. A service that answered that while the
/// `COMMIT` still ran could land the commit after the invalidation, and a
/// read in between would fill the old page under the new version; the
/// second invalidation ends that copy's life. Well inside the 30 s the
/// runtime gives `waitUntil` after the response.
#[cfg(not(test))]
const LATE_COMMIT_WINDOW: Duration = Duration::from_secs(5);
#[cfg(test)]
const LATE_COMMIT_WINDOW: Duration = Duration::from_millis(300);

/// The pages whose invalidation has not landed yet, in this isolate: for
/// each, when its failed invalidation was noted and until when an entry
/// filled before it may still be cached (ms since the epoch: the write,
/// plus the longest TTL an entry can have). Their reads go past the cache.
#[derive(Debug, Default)]
pub struct Pending(Mutex<HashMap<String, (f64, f64)>>);

impl Pending {
    /// A write's invalidation failed at `now`.
    fn add(&self, slug: &str, now: f64, until: f64) {
        let mut pending = self.0.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|_, (_, until)| *until > now);
        pending.insert(slug.to_owned(), (now, until));
    }

    /// An invalidation of `slug` sent at `sent` landed. It covers a failure
    /// noted before it was sent (that write had committed by then), not
    /// one noted since: that one waits for its own.
    pub(super) fn landed(&self, slug: &str, sent: f64) {
        let mut pending = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if pending.get(slug).is_some_and(|(noted, _)| *noted < sent) {
            pending.remove(slug);
        }
    }

    fn contains(&self, slug: &str, now: f64) -> bool {
        let pending = self.0.lock().unwrap_or_else(|e| e.into_inner());
        !pending.is_empty() && pending.get(slug).is_some_and(|(_, until)| *until > now)
    }
}

/// The cache lookup a page read's handler ([`PageCache::lookup`]) will
/// make, to go out ahead with the request's rate limit count
/// ([`crate::limits::check`]): for `GET` and `HEAD` of `/v1/pages/{slug}`
/// with a valid slug, while the cache is on and the page is not waiting
/// for an invalidation. A lookup only ever writes a version for a page
/// that has none, so it may run for a request that is then refused.
pub fn lookup_ahead(
    app: &App,
    request: &axum::extract::Request,
) -> Option<resp::ScriptCall<'static>> {
    if !matches!(*request.method(), Method::GET | Method::HEAD) || app.config.cache_ttl_secs == 0 {
        return None;
    }
    let slug = request.uri().path().strip_prefix("/v1/pages/")?;
    if !super::valid_slug(slug)
        || app
            .pending_invalidations
            .contains(slug, (app.platform.now_millis)())
    {
        return None;
    }
    Some(cache::Lookup::call(&key(slug)))
}

pub struct PageCache<'a> {
    app: &'a Arc<App>,
    redis: &'a RequestRedis,
    timings: &'a Timings,
}

impl<'a> PageCache<'a> {
    pub fn new(app: &'a Arc<App>, redis: &'a RequestRedis, timings: &'a Timings) -> Self {
        PageCache {
            app,
            redis,
            timings,
        }
    }

    /// The entry's version and, on a hit, its bytes; `None` when Redis
    /// cannot be asked, the cache is off, or the page's invalidation has
    /// not landed yet ([`Pending`]); then nothing is filled either.
    pub async fn lookup(&self, slug: &str) -> Option<cache::Lookup> {
        if self.app.config.cache_ttl_secs == 0 {
            self.timings.record_described("cache", Some("off"), 0.0);
            return None;
        }
        let started = (self.app.platform.now_millis)();
        if self.app.pending_invalidations.contains(slug, started) {
            self.timings.record_described("cache", Some("pending"), 0.0);
            return None;
        }
        let call = cache::Lookup::call(&key(slug));
        let (looked_up, millis) = match self.redis.take_ahead(&call) {
            // Its round trip was the rate limit count's too.
            Some((reply, millis)) => (reply.and_then(cache::Lookup::from_reply), millis),
            None => {
                let looked_up = match self.redis.connection().await {
                    Ok(mut connection) => connection
                        .invoke(call)
                        .await
                        .and_then(cache::Lookup::from_reply),
                    Err(e) => Err(e),
                };
                (looked_up, (self.app.platform.now_millis)() - started)
            }
        };
        let outcome = match &looked_up {
            Ok(cache::Lookup { value: Some(_), .. }) => "hit",
            Ok(_) => "miss",
            Err(_) => "unavailable",
        };
        self.timings
            .record_described("cache", Some(outcome), millis);
        looked_up
            .map_err(|e| (self.app.platform.log_error)(&format!("page cache lookup: {e}")))
            .ok()
    }

    /// Stores `page` under `version` (from [`PageCache::lookup`]).
    pub async fn fill(&self, slug: &str, version: u64, page: &Page) {
        let Ok(bytes) = serde_json::to_vec(&(page.id, page)) else {
            return;
        };
        let ttl = cache::Ttl {
            base: std::time::Duration::from_secs(self.app.config.cache_ttl_secs),
            jitter: JITTER,
        };
        let random = (self.app.platform.random_u64)();
        let filled = match self.redis.connection().await {
            Ok(mut connection) => {
                cache::fill(&mut *connection, &key(slug), version, &bytes, ttl, random).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = filled {
            (self.app.platform.log_error)(&format!("page cache fill: {e}"));
        }
    }

    /// Makes every cached copy of the page unreachable; call after commit.
    /// If Redis cannot take it now, tries again on `background` after the
    /// response (see the module's doc); without one (a bare test harness)
    /// it only logs. Whether it landed now (so with no cache, too).
    pub async fn invalidate(&self, slug: &str, background: Option<&Background>) -> bool {
        if self.app.config.redis.is_none() {
            return true;
        }
        let started = (self.app.platform.now_millis)();
        let invalidated = invalidate_on(self.redis, slug).await;
        let now = (self.app.platform.now_millis)();
        self.timings.record("cache", now - started);
        let Err(e) = invalidated else {
            self.app.pending_invalidations.landed(slug, started);
            return true;
        };
        let longest_ttl = self.app.config.cache_ttl_secs as f64 * 1000.0 * (1.0 + JITTER);
        self.app
            .pending_invalidations
            .add(slug, now, now + longest_ttl);
        match background {
            Some(background) => {
                (self.app.platform.log_error)(&format!(
                    "page cache invalidation of {slug:?} failed; trying again after the response: {e}"
                ));
                background.spawn(Box::pin(invalidate_later(
                    self.app.clone(),
                    slug.to_owned(),
                )));
            }
            None => (self.app.platform.log_error)(&format!(
                "page cache invalidation of {slug:?} failed; a cached copy may live until its TTL: {e}"
            )),
        }
        false
    }
}

/// A page's invalidation, owed from before its write starts (taken with
/// [`Owed::new`]) until it is sent ([`Owed::send`]) or nothing was written
/// ([`Owed::release`]). A handler cut off by the request's deadline is
/// dropped where it stands, during its `COMMIT` or between the commit and
/// its invalidation; and a `COMMIT` that failed here may have landed all
/// the same ([`tidb_http::Error::may_have_committed`]). Either way the
/// write may be in TiDB with its old copy still in Redis, until its TTL.
///
/// Dropped while still owed, this sends the invalidation on the request's
/// `waitUntil`, once the write's transaction has ended ([`Owed::after`]):
/// sent while its `COMMIT` is still on its way, a reader could fill the
/// old page under the new version before the commit lands. Until it lands,
/// reads of the page in this isolate go past the cache, as after a failed
/// one ([`Pending`]); once it landed, it is sent again
/// [`LATE_COMMIT_WINDOW`] later, for a commit that landed later still. One
/// sent for a write that did not land costs the page's next read a cache
/// miss, nothing more.
pub struct Owed {
    app: Arc<App>,
    slug: String,
    background: Option<Background>,
    /// What must be over before the invalidation is sent.
    after: Option<BoxFuture<'static, ()>>,
    owed: bool,
}

impl Owed {
    pub fn new(app: &Arc<App>, slug: &str, background: Option<&Background>) -> Owed {
        Owed {
            app: app.clone(),
            slug: slug.to_owned(),
            background: background.cloned(),
            after: None,
            owed: true,
        }
    }

    /// Sends the invalidation, if it comes to that, only once `ended` has
    /// resolved (the end of the write's transaction, [`tidb_http::Tx::ended`];
    /// the last one given counts).
    pub fn after(&mut self, ended: impl Future<Output = ()> + Send + 'static) {
        self.after = Some(Box::pin(ended));
    }

    /// Nothing was written: no invalidation is owed.
    pub fn release(mut self) {
        self.owed = false;
    }

    /// Sends the invalidation now, within the response (see
    /// [`PageCache::invalidate`]). Still owed if this is dropped before it
    /// is done.
    pub async fn send(mut self, cache: &PageCache<'_>) {
        cache.invalidate(&self.slug, self.background.as_ref()).await;
        self.owed = false;
    }
}

impl Drop for Owed {
    fn drop(&mut self) {
        if !self.owed || self.app.config.redis.is_none() {
            return;
        }
        let now = (self.app.platform.now_millis)();
        let longest_ttl = self.app.config.cache_ttl_secs as f64 * 1000.0 * (1.0 + JITTER);
        self.app
            .pending_invalidations
            .add(&self.slug, now, now + longest_ttl);
        let Some(background) = self.background.clone() else {
            (self.app.platform.log_error)(&format!(
                "page cache invalidation of {:?} was cut off; a cached copy may live until its TTL",
                self.slug
            ));
            return;
        };
        let (app, slug) = (self.app.clone(), std::mem::take(&mut self.slug));
        let after = self.after.take();
        background.clone().spawn(Box::pin(async move {
            if let Some(after) = after {
                after.await;
            }
            let invalidate = || async {
                let redis = RequestRedis::new(&app, app.platform.timer.clone());
                let timings = Timings::default();
                PageCache::new(&app, &redis, &timings)
                    .invalidate(&slug, Some(&background))
                    .await
            };
            if !invalidate().await {
                // Its tries after the response go on, each later.
                return;
            }
            // Read past the cache here until the second one lands.
            let now = (app.platform.now_millis)();
            let window = LATE_COMMIT_WINDOW.as_secs_f64() * 1000.0;
            app.pending_invalidations
                .add(&slug, now, now + window + longest_ttl);
            app.platform.timer.sleep(LATE_COMMIT_WINDOW).await;
            invalidate().await;
        }));
    }
}

pub(super) async fn invalidate_on(redis: &RequestRedis, slug: &str) -> Result<u64, resp::Error> {
    match redis.connection().await {
        Ok(mut connection) => cache::invalidate(&mut *connection, &key(slug)).await,
        Err(e) => Err(e),
    }
}

/// Notes `slug` in TiDB ([`super::missed`]), then tries its invalidation
/// again, each time on a connection of its own (the request's failed for
/// good), until it lands (and removes the note) or [`RETRY_WINDOW`] has
/// passed since the first failure (and leaves the note to the cron).
async fn invalidate_later(app: Arc<App>, slug: String) {
    let noted = note_missed(&app, &slug).await;
    let timer = app.platform.timer.clone();
    let window = RETRY_WINDOW.as_secs_f64() * 1000.0;
    let started = (app.platform.now_millis)();
    let mut wait = FIRST_RETRY_WAIT;
    for attempt in 1.. {
        timer.sleep(wait).await;
        let redis = RequestRedis::new(&app, timer.clone());
        let sent = (app.platform.now_millis)();
        let error = match invalidate_on(&redis, &slug).await {
            Ok(_) => {
                app.pending_invalidations.landed(&slug, sent);
                (app.platform.log_error)(&format!(
                    "page cache invalidation of {slug:?} landed on try {attempt} after the response"
                ));
                if let (Some(db), Some(missed)) = (app.tidb.as_ref(), noted.as_ref()) {
                    if let Err(e) = missed::forget(db, missed).await {
                        (app.platform.log_error)(&format!(
                            "page cache invalidation of {slug:?} landed but its note stays \
                             (the cron sends it once more): {e}"
                        ));
                    }
                }
                return;
            }
            Err(e) => e,
        };
        wait = (wait * 2).min(MAX_RETRY_WAIT);
        let elapsed = (app.platform.now_millis)() - started;
        if elapsed + wait.as_secs_f64() * 1000.0 > window {
            let then = if noted.is_some() {
                "the cron sends it once Redis is back"
            } else {
                "a cached copy may live until its TTL"
            };
            (app.platform.log_error)(&format!(
                "page cache invalidation of {slug:?} still failing after {attempt} tries \
                 over {:.0} s; {then}: {error}",
                elapsed / 1000.0
            ));
            return;
        }
    }
}

/// Notes in TiDB that `slug`'s invalidation failed; `None` (logged) if
/// that failed too.
async fn note_missed(app: &App, slug: &str) -> Option<missed::Missed> {
    let db = app.tidb.as_ref()?;
    let noted = missed::Missed {
        slug: slug.to_owned(),
        note: missed::token(app),
    };
    match missed::note(db, &noted).await {
        Ok(()) => Some(noted),
        Err(e) => {
            (app.platform.log_error)(&format!(
                "noting the missed invalidation of {slug:?} failed; \
                 only this isolate's tries will send it: {e}"
            ));
            None
        }
    }
}

fn key(slug: &str) -> cache::Key {
    cache::Key::new(NAMESPACE, slug)
}

/// A cached page; `None` (treated as a miss) if it does not decode.
pub fn decode(bytes: &[u8]) -> Option<Page> {
    let (id, mut page): (i64, Page) = serde_json::from_slice(bytes).ok()?;
    page.id = id;
    Some(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An app whose Redis is a listener of the test's, and a background
    /// that keeps the work it is given, to run when the test says.
    async fn app_with_listening_redis() -> (
        Arc<App>,
        tokio::net::TcpListener,
        Background,
        Arc<Mutex<Vec<BoxFuture<'static, ()>>>>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "redis://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        let app = App::new(
            move |name| (name == "REDIS_URL").then(|| url.clone()),
            crate::Platform::native(),
        );
        let kept = Arc::new(Mutex::new(Vec::new()));
        let keep = kept.clone();
        let background = Background::new(move |work| keep.lock().unwrap().push(work));
        (app, listener, background, kept)
    }

    #[tokio::test]
    async fn only_a_page_read_that_will_look_up_the_cache_sends_its_lookup_ahead() {
        let (app, _listener, _, _) = app_with_listening_redis().await;
        let ahead = |app: &App, method: &str, path: &str| {
            let request = axum::http::Request::builder()
                .method(method)
                .uri(path)
                .body(axum::body::Body::empty())
                .unwrap();
            lookup_ahead(app, &request)
        };
        let intro = cache::Lookup::call(&key("intro"));
        assert_eq!(ahead(&app, "GET", "/v1/pages/intro"), Some(intro.clone()));
        assert_eq!(ahead(&app, "HEAD", "/v1/pages/intro?x=1"), Some(intro));
        for (method, path) in [
            ("PUT", "/v1/pages/intro"),
            ("DELETE", "/v1/pages/intro"),
            ("GET", "/v1/pages"),
            ("GET", "/v1/pages/"),
            ("GET", "/v1/pages/intro/revisions"),
            ("GET", "/v1/pages/Intro"),
            ("GET", "/v1/pages/%69ntro"),
            ("GET", "/v1/uploads/intro"),
        ] {
            assert_eq!(ahead(&app, method, path), None, "{method} {path}");
        }
        let now = (app.platform.now_millis)();
        app.pending_invalidations.add("intro", now, now + 60_000.0);
        assert_eq!(
            ahead(&app, "GET", "/v1/pages/intro"),
            None,
            "read past the cache"
        );

        let off = App::new(
            |name| match name {
                "REDIS_URL" => Some("redis://127.0.0.1:1".to_owned()),
                "CACHE_TTL_SECS" => Some("0".to_owned()),
                _ => None,
            },
            crate::Platform::native(),
        );
        assert_eq!(ahead(&off, "GET", "/v1/pages/intro"), None, "cache off");
    }

    /// The RESP commands in `bytes` while they are all whole, or `None`.
    fn commands(mut bytes: &[u8]) -> Option<Vec<Vec<String>>> {
        fn line(bytes: &mut &[u8], mark: u8) -> Option<usize> {
            let end = bytes.windows(2).position(|w| w == b"\r\n")?;
            assert_eq!(bytes[0], mark, "{:?}", String::from_utf8_lossy(bytes));
            let n = std::str::from_utf8(&bytes[1..end]).ok()?.parse().ok()?;
            *bytes = &bytes[end + 2..];
            Some(n)
        }
        let mut all = Vec::new();
        while !bytes.is_empty() {
            let mut command = Vec::new();
            for _ in 0..line(&mut bytes, b'*')? {
                let len = line(&mut bytes, b'$')?;
                let arg = bytes.get(..len)?;
                command.push(String::from_utf8_lossy(arg).into_owned());
                bytes = bytes.get(len + 2..)?;
            }
            all.push(command);
        }
        Some(all)
    }

    /// A page read's cache lookup goes out in the same write as its rate
    /// limit count: the Redis below answers nothing until it has both, so
    /// a read that waited for the count's answer before it looked up
    /// would time out. The page is then served from that one round trip,
    /// without a database (none is configured: a miss would be a 503).
    #[tokio::test]
    async fn a_page_read_sends_its_lookup_with_its_count_and_is_served_from_that_round_trip() {
        use axum::body::Body;
        use http_body_util::BodyExt;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tower::ServiceExt;

        let (app, listener, _, _) = app_with_listening_redis().await;
        let page = Page {
            slug: "intro".into(),
            title: "Intro".into(),
            body: "cached body".into(),
            revision: 3,
            author: "a@example.com".into(),
            updated_at: "2026-12-07T00:00:00Z".into(),
            id: 41,
        };
        let entry = serde_json::to_string(&(page.id, &page)).unwrap();
        let redis = tokio::spawn(async move {
            let (mut redis, _) = listener.accept().await.unwrap();
            let mut sent = Vec::new();
            let request = loop {
                let mut chunk = [0; 4096];
                let n = redis.read(&mut chunk).await.unwrap();
                assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&sent));
                sent.extend_from_slice(&chunk[..n]);
                match commands(&sent) {
                    Some(all) if all.iter().filter(|c| c[0] == "EVALSHA").count() == 2 => {
                        break all;
                    }
                    _ => continue,
                }
            };
            let mut answer = String::new();
            for command in &request {
                answer.push_str(&match (command[0].as_str(), command.get(3)) {
                    ("EVALSHA", Some(key)) if key.starts_with(ratelimit::PREFIX) => {
                        "*4\r\n:1\r\n:59\r\n:1000000\r\n:0\r\n".to_owned()
                    }
                    ("EVALSHA", Some(key)) if key.contains("page") => {
                        format!("*2\r\n$2\r\n77\r\n${}\r\n{entry}\r\n", entry.len())
                    }
                    _ => "+OK\r\n".to_owned(),
                });
            }
            redis.write_all(answer.as_bytes()).await.unwrap();
            let mut rest = Vec::new();
            let _ = redis.read_to_end(&mut rest).await;
            (request, rest)
        });

        let request = axum::http::Request::get("/v1/pages/intro")
            .body(Body::empty())
            .unwrap();
        let response = crate::router(app).oneshot(request).await.unwrap();
        assert_eq!(response.status(), axum::http::StatusCode::OK);
        let headers = response.headers().clone();
        assert_eq!(headers["ratelimit-remaining"], "59");
        let timing = headers["server-timing"].to_str().unwrap().to_owned();
        assert!(timing.contains("cache;desc=\"hit\""), "{timing}");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let served: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(served["body"], "cached body");
        assert_eq!(served["revision"], 3);

        let (request, rest) = redis.await.unwrap();
        let scripts: Vec<&str> = request
            .iter()
            .filter(|c| c[0] == "EVALSHA")
            .map(|c| c[3].as_str())
            .collect();
        assert!(
            scripts[0].starts_with(ratelimit::PREFIX),
            "counted first: {scripts:?}"
        );
        assert_eq!(scripts[1], key("intro").version_key());
        assert!(
            rest.is_empty(),
            "nothing more was asked: {:?}",
            String::from_utf8_lossy(&rest)
        );
    }

    #[tokio::test]
    async fn an_invalidation_cut_off_goes_out_after_the_response_once_its_write_has_ended() {
        use std::time::Duration;
        use tokio::time::timeout;

        let (app, listener, background, kept) = app_with_listening_redis().await;
        let (end, ended) = tokio::sync::oneshot::channel::<()>();
        let mut owed = Owed::new(&app, "intro", Some(&background));
        owed.after(async move {
            let _ = ended.await;
        });
        // The handler is dropped (its deadline passed) with it still owed.
        drop(owed);
        let now = (app.platform.now_millis)();
        assert!(
            app.pending_invalidations.contains("intro", now),
            "this isolate reads the page past the cache until it lands"
        );
        let work = kept.lock().unwrap().pop().expect("left on the background");
        let sending = tokio::spawn(work);
        assert!(
            timeout(Duration::from_millis(300), listener.accept())
                .await
                .is_err(),
            "nothing sent while the write's COMMIT may still be on its way"
        );
        end.send(()).unwrap();
        let (mut redis, _) = timeout(Duration::from_secs(5), listener.accept())
            .await
            .expect("sent once the write has ended")
            .unwrap();
        let sent = read_until(&mut redis, "EVAL").await;
        assert!(sent.contains("page:intro"));
        sending.abort();
    }

    /// What a connection sends, read until it holds `needle`.
    async fn read_until(redis: &mut tokio::net::TcpStream, needle: &str) -> String {
        use std::time::Duration;
        use tokio::io::AsyncReadExt;
        use tokio::time::timeout;

        let mut sent = Vec::new();
        while !String::from_utf8_lossy(&sent).contains(needle) {
            let mut chunk = [0; 1024];
            let n = timeout(Duration::from_secs(5), redis.read(&mut chunk))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&sent));
            sent.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&sent).into_owned()
    }

    /// Reads one connection's commands until the page's invalidation
    /// (`EVALSHA`), and answers them.
    async fn answer_invalidation(redis: &mut tokio::net::TcpStream) -> String {
        use tokio::io::AsyncWriteExt;

        let sent = read_until(redis, "page:intro").await;
        // The connection's greeting (`CLIENT SETNAME`) comes in the same
        // write.
        if sent.contains("CLIENT") {
            redis.write_all(b"+OK\r\n").await.unwrap();
        }
        redis.write_all(b":1\r\n").await.unwrap();
        sent
    }

    #[tokio::test]
    async fn an_owed_invalidation_goes_out_again_after_a_late_commit_could_have_landed() {
        use std::time::{Duration, Instant};
        use tokio::time::timeout;

        let (app, listener, background, kept) = app_with_listening_redis().await;
        // Cut off with the write's transaction already over.
        drop(Owed::new(&app, "intro", Some(&background)));
        let work = kept.lock().unwrap().pop().expect("left on the background");
        let sending = tokio::spawn(work);
        let (mut first, _) = timeout(Duration::from_secs(5), listener.accept())
            .await
            .expect("sent at once")
            .unwrap();
        let landed = Instant::now();
        assert!(answer_invalidation(&mut first).await.contains("EVAL"));
        // Landed; this isolate still reads past the cache until the second.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = (app.platform.now_millis)();
        assert!(app.pending_invalidations.contains("intro", now));
        let (mut second, _) = timeout(Duration::from_secs(5), listener.accept())
            .await
            .expect("sent again")
            .unwrap();
        assert!(
            landed.elapsed() >= LATE_COMMIT_WINDOW,
            "not before the window: {:?}",
            landed.elapsed()
        );
        assert!(answer_invalidation(&mut second).await.contains("EVAL"));
        timeout(Duration::from_secs(5), sending)
            .await
            .expect("done after the second")
            .unwrap();
        let now = (app.platform.now_millis)();
        assert!(!app.pending_invalidations.contains("intro", now));
        assert!(
            timeout(Duration::from_millis(400), listener.accept())
                .await
                .is_err(),
            "twice, not more"
        );
    }

    #[tokio::test]
    async fn nothing_is_owed_for_a_write_that_wrote_nothing() {
        let (app, _listener, background, kept) = app_with_listening_redis().await;
        Owed::new(&app, "intro", Some(&background)).release();
        assert!(kept.lock().unwrap().is_empty());
        let now = (app.platform.now_millis)();
        assert!(!app.pending_invalidations.contains("intro", now));
    }

    #[test]
    fn a_pending_page_is_read_past_the_cache_until_it_lands_or_its_entry_expires() {
        let pending = Pending::default();
        assert!(!pending.contains("intro", 0.0));
        pending.add("intro", 0.0, 1_000.0);
        assert!(pending.contains("intro", 999.0));
        assert!(!pending.contains("other", 999.0), "only that page");
        assert!(
            !pending.contains("intro", 1_000.0),
            "no entry filled before the write lives past its TTL"
        );
        pending.add("intro", 10.0, 5_000.0);
        pending.landed("intro", 11.0);
        assert!(!pending.contains("intro", 12.0), "its invalidation landed");
    }

    #[test]
    fn an_invalidation_sent_before_a_failure_was_noted_does_not_cover_it() {
        let pending = Pending::default();
        // A retry's invalidation goes out at 100; another write to the page
        // commits and fails to invalidate at 150; the retry's lands at 200.
        pending.add("intro", 150.0, 5_000.0);
        pending.landed("intro", 100.0);
        assert!(pending.contains("intro", 200.0), "still pending");
        pending.landed("intro", 150.0);
        assert!(pending.contains("intro", 200.0), "the same millisecond");
        pending.landed("intro", 151.0);
        assert!(!pending.contains("intro", 200.0));
    }

    #[test]
    fn pages_whose_entries_expired_are_forgotten_at_the_next_write() {
        let pending = Pending::default();
        pending.add("old", 0.0, 100.0);
        pending.add("new", 1_000.0, 2_000.0);
        let kept = pending.0.lock().unwrap();
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["new"]);
    }
}
