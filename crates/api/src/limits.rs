//! Rate limits per client and route class, counted in Redis (GCRA, one
//! round trip; see the `ratelimit` crate). Classes: `read` (GET and HEAD
//! under `/v1/`) and `write` (every other method there but OPTIONS); health
//! checks, CORS preflights and the OpenAPI document are not limited. A refusal is a 429 problem with
//! `Retry-After`; every limited response carries the `RateLimit-*` fields.
//! While Redis cannot count (unreachable, too slow, or refusing the script,
//! as a full Redis refuses its write), the configured policy decides:
//! fail-open lets requests through uncounted, fail-closed answers 503.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use resp::ScriptCall;

use crate::config::RateLimits;
use crate::problem::{Problem, ProblemType};
use crate::redis::RequestRedis;
use crate::trust::ClientIp;
use crate::App;

/// The class of a request, with its limit; `None` for unlimited routes.
pub fn class(limits: &RateLimits, request: &Request) -> Option<(&'static str, ratelimit::Limit)> {
    if !request.uri().path().starts_with("/v1/") {
        return None;
    }
    Some(match *request.method() {
        // Preflights are answered by the CORS layer and touch no storage.
        Method::OPTIONS => return None,
        Method::GET | Method::HEAD => ("read", limits.read),
        _ => ("write", limits.write),
    })
}

/// Counts a request of `class` ([`class`]). `None`: Redis is down and the
/// policy is fail-open. `Some(Err)`: refused (429), or Redis is down under
/// fail-closed (503).
///
/// `ahead`: a script call the request's handler will make whatever the
/// count says (a page read's cache lookup), sent in the same write and
/// kept in `redis` for the handler ([`RequestRedis::take_ahead`]), so the
/// read makes one round trip to Redis instead of two. It must be one that
/// may run for a request that is then refused.
pub async fn check(
    app: &App,
    redis: &RequestRedis,
    (class, limit): (&'static str, ratelimit::Limit),
    client: &ClientIp,
    ahead: Option<ScriptCall<'static>>,
) -> Option<Result<ratelimit::Decision, Problem>> {
    let key = ratelimit::key(class, client.0.as_deref().unwrap_or(""));
    let counted = match redis.connection().await {
        Ok(mut connection) => match ahead {
            None => ratelimit::check(&mut *connection, &key, &limit).await,
            Some(ahead) => {
                let started = (app.platform.now_millis)();
                let calls = [ratelimit::call(&key, &limit), ahead];
                let answered = connection.invoke_all(&calls).await;
                let millis = (app.platform.now_millis)() - started;
                answered.and_then(|replies| {
                    let [count, read] =
                        <[_; 2]>::try_from(replies).expect("invoke_all answers each call");
                    let [_, ahead] = calls;
                    redis.keep_ahead(ahead, read, millis);
                    ratelimit::decision(&limit, count?)
                })
            }
        }
        .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    Some(match counted {
        Ok(decision) if decision.allowed => Ok(decision),
        Ok(decision) => {
            let mut problem = Problem::new(
                ProblemType::RateLimited,
                format!(
                    "Too many {class} requests from this client; retry after {} s.",
                    decision
                        .retry_after
                        .unwrap_or_default()
                        .as_secs_f64()
                        .ceil()
                ),
            );
            for (name, value) in decision.headers() {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    problem = problem.with_header(HeaderName::from_static(lower(name)), value);
                }
            }
            Err(problem)
        }
        Err(cause) => match ratelimit::decide_on_error(app.config.rate_limits.policy) {
            Ok(()) => {
                (app.platform.log_error)(&format!("rate limit not counted (fail-open): {cause}"));
                return None;
            }
            Err(refusal) => {
                let mut problem = Problem::new(
                    ProblemType::Unavailable,
                    "Requests cannot be counted right now; try again shortly.",
                );
                problem.internal = Some(cause);
                for (name, value) in refusal.headers() {
                    if let Ok(value) = HeaderValue::from_str(&value) {
                        problem = problem.with_header(HeaderName::from_static(lower(name)), value);
                    }
                }
                Err(problem)
            }
        },
    })
}

/// The `RateLimit-*` fields of an allowed request.
pub fn add_headers(headers: &mut HeaderMap, decision: &ratelimit::Decision) {
    for (name, value) in decision.headers() {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(lower(name)), value);
        }
    }
}

/// Header names as `HeaderName::from_static` needs them (lowercase).
fn lower(name: &'static str) -> &'static str {
    match name {
        "RateLimit-Limit" => "ratelimit-limit",
        "RateLimit-Remaining" => "ratelimit-remaining",
        "RateLimit-Reset" => "ratelimit-reset",
        "Retry-After" => "retry-after",
        other => other,
    }
}
