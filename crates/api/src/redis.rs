//! Redis for one request: at most one connection, opened the first time
//! the request needs it (the rate limiter or the page cache), never for a
//! request that does not (health checks, preflights). Shared by the
//! request's layers and handler through its extensions, never across
//! requests (in Workers, a request must not wait on another request's
//! I/O). If opening fails, the request does not try again: one request
//! waits for a dead Redis once, not at every use.
//!
//! While a connection to Redis failed lately, requests do not open one at
//! all ([`Skip`], per isolate).
//!
//! A script call the request will make can go out ahead, in the same write
//! as its rate limit count ([`crate::limits::check`]): its reply is kept
//! here ([`RequestRedis::keep_ahead`]) until the code that would have made
//! the call takes it ([`RequestRedis::take_ahead`]), one round trip saved.
//!
//! (This is `resp::LazyConnection`'s idea with the connector as a trait
//! object instead of a closure: rustc cannot yet prove the closure form's
//! futures `Send` inside axum's middleware.)

mod skip;

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use futures_util::lock::{MappedMutexGuard, Mutex, MutexGuard};
use resp::{Reply, ScriptCall};

use crate::config::RedisTarget;
use crate::App;

pub use skip::{Skip, SKIP_FOR};

type Stream = Box<dyn outbound::Stream>;
/// An open connection of the request.
pub type Connection = resp::Connection<Stream>;

/// The request's Redis.
#[derive(Clone)]
pub struct RequestRedis(Option<Arc<Shared>>);

struct Shared {
    /// Where Redis is and how to connect, read from the app when the
    /// connection opens: cloning the target (host, credentials, client
    /// name) for every request, /healthz's and preflights' too, cost four
    /// allocations each.
    app: Arc<App>,
    timer: Arc<dyn outbound::Timer>,
    state: Mutex<State>,
    /// A reply that came ahead of its use (see the module's doc).
    ahead: std::sync::Mutex<Option<Ahead>>,
}

/// A script call answered ahead of its use, and how long the round trip
/// that carried it took (ms).
struct Ahead {
    call: ScriptCall<'static>,
    reply: Result<Reply, resp::Error>,
    millis: f64,
}

/// Where the request's connection stands (opaque to callers).
pub struct State(Inner);

/// One per request, never moved once opened: boxing the connection (a
/// few hundred bytes against the other states' few dozen) would only add
/// an allocation to every request that uses Redis.
#[allow(clippy::large_enum_variant)]
enum Inner {
    NotOpened,
    Open(Connection),
    Failed(resp::Error),
}

impl RequestRedis {
    /// `timer` is the request's (`Platform::request_timer`).
    pub fn new(app: &Arc<App>, timer: Arc<dyn outbound::Timer>) -> Self {
        RequestRedis(app.config.redis.is_some().then(|| {
            Arc::new(Shared {
                app: app.clone(),
                timer,
                state: Mutex::new(State(Inner::NotOpened)),
                ahead: std::sync::Mutex::new(None),
            })
        }))
    }

    /// Keeps `reply`, the answer to `call` sent ahead of its use in a
    /// round trip of `millis`, for [`RequestRedis::take_ahead`].
    pub fn keep_ahead(
        &self,
        call: ScriptCall<'static>,
        reply: Result<Reply, resp::Error>,
        millis: f64,
    ) {
        if let Some(shared) = &self.0 {
            *shared.ahead.lock().unwrap_or_else(|e| e.into_inner()) = Some(Ahead {
                call,
                reply,
                millis,
            });
        }
    }

    /// The reply to `call` and the time of the round trip that carried it,
    /// if it was sent ahead (and not taken yet); otherwise the caller
    /// sends it.
    pub fn take_ahead(&self, call: &ScriptCall<'_>) -> Option<(Result<Reply, resp::Error>, f64)> {
        let mut ahead = self
            .0
            .as_ref()?
            .ahead
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if ahead.as_ref()?.call != *call {
            return None;
        }
        ahead
            .take()
            .map(|Ahead { reply, millis, .. }| (reply, millis))
    }

    /// The connection, opened now if this is the first use, for one
    /// exchange at a time. Fails when Redis is not configured, cannot be
    /// reached, is being skipped ([`Skip`]), or failed earlier in this
    /// request.
    pub async fn connection(&self) -> Result<ConnectionGuard<'_>, resp::Error> {
        let shared = self.0.as_ref().ok_or_else(not_configured)?;
        let mut state = shared.state.lock().await;
        if matches!(state.0, Inner::NotOpened) {
            state.0 = Inner::Failed(resp::Error::Io("opening was cancelled".into()));
            state.0 = match shared.app.redis_skip.admit(shared.now()) {
                Err(skipped) => Inner::Failed(resp::Error::Io(format!(
                    "skipped: a connection failed lately; asking again in {:.0} ms",
                    skipped.for_millis
                ))),
                Ok(()) => match shared.open().await {
                    Ok(connection) => Inner::Open(connection),
                    Err(e) => {
                        shared.failed(&e);
                        Inner::Failed(e)
                    }
                },
            };
        }
        // A connection an earlier exchange lost stays failed for the rest
        // of the request: the isolate heard of it once, when that
        // exchange's guard was let go, and is not told again.
        if let Inner::Open(connection) = &state.0 {
            if let Some(cause) = connection.lost_to() {
                state.0 = Inner::Failed(cause);
            }
        }
        if let Inner::Failed(cause) = &state.0 {
            return Err(resp::Error::Unusable(Box::new(cause.clone())));
        }
        Ok(ConnectionGuard {
            connection: MutexGuard::map(state, |state| match &mut state.0 {
                Inner::Open(connection) => connection,
                _ => unreachable!("open, or returned above"),
            }),
            shared,
        })
    }
}

/// The request's open connection, for one exchange. When it is let go,
/// what became of the connection is the isolate's news: still usable,
/// Redis answered (ask it again if it was being skipped); broken, Redis
/// failed (skip it for a while).
pub struct ConnectionGuard<'a> {
    connection: MappedMutexGuard<'a, State, Connection>,
    shared: &'a Shared,
}

impl Deref for ConnectionGuard<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.connection
    }
}

impl DerefMut for ConnectionGuard<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.connection
    }
}

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        match self.connection.lost_to() {
            Some(cause) => self.shared.failed(&cause),
            None => {
                if self.shared.app.redis_skip.answered() {
                    self.shared.app.missed_drain.redis_is_back();
                    (self.shared.app.platform.log_error)(
                        "Redis answers again; asking it again, and sending the invalidations \
                         it missed after the next request",
                    );
                }
            }
        }
    }
}

fn not_configured() -> resp::Error {
    resp::Error::Io("Redis is not configured (REDIS_URL)".into())
}

impl Shared {
    fn now(&self) -> f64 {
        (self.app.platform.now_millis)()
    }

    /// Tells the isolate that a connection failed (`cause`, for the log).
    fn failed(&self, cause: &resp::Error) {
        if self.app.redis_skip.failed(self.now()) {
            (self.app.platform.log_error)(&format!(
                "Redis failed ({cause}); requests skip it for {} s, then one asks again",
                SKIP_FOR.as_secs()
            ));
        }
    }

    async fn open(&self) -> Result<Connection, resp::Error> {
        let target: &RedisTarget = self.app.config.redis.as_ref().ok_or_else(not_configured)?;
        let connecting = self
            .app
            .platform
            .connect
            .connect(&target.host, target.port, target.tls);
        let stream =
            match outbound::deadline(self.timer.as_ref(), target.options.timeout, connecting).await
            {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return Err(resp::Error::Io(format!("cannot connect: {e}"))),
                Err(outbound::Elapsed(limit)) => return Err(resp::Error::Timeout(limit)),
            };
        // The handshake goes out with the request's first command: one
        // round trip less for a connection that lives one request. In
        // RESP2 (`AUTH`, `CLIENT SETNAME`): the API's scripts answer
        // integers, strings and arrays, which read the same in both
        // protocols, and `HELLO 3`'s answer is a map of the server's
        // details that Redis builds and the Worker decodes per request.
        Ok(resp::Connection::deferred_resp2(
            stream,
            &target.options,
            self.timer.clone(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Platform;

    /// A Redis that accepts connections and never answers (frozen).
    async fn frozen_redis() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "redis://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        url
    }

    #[tokio::test]
    async fn a_lost_connection_is_told_to_the_isolate_once_and_later_requests_skip_redis() {
        let url = frozen_redis().await;
        let app = App::new(
            |name| (name == "REDIS_URL").then(|| url.clone()),
            Platform::native(),
        );
        let request = RequestRedis::new(&app, app.platform.timer.clone());
        let mut connection = request.connection().await.unwrap();
        let lost = connection
            .query::<String>(resp::cmd("PING"))
            .await
            .unwrap_err();
        assert!(matches!(lost, resp::Error::Timeout(_)), "{lost:?}");
        drop(connection);
        let skipped_until = app.redis_skip.until().expect("the isolate was told");

        // The same request's next use fails at once, without telling the
        // isolate again (which would move the end of the skip on).
        let again = request.connection().await.err().expect("failed for good");
        assert!(
            matches!(&again, resp::Error::Unusable(cause) if matches!(**cause, resp::Error::Timeout(_))),
            "{again:?}"
        );
        assert_eq!(app.redis_skip.until(), Some(skipped_until));

        // The next request does not even connect.
        let next = RequestRedis::new(&app, app.platform.timer.clone());
        let skipped = next.connection().await.err().expect("skipped");
        assert!(skipped.to_string().contains("skipped"), "{skipped}");
    }
}
