// The Worker's entry: worker-build's module (api-worker/build/index.js), plus
// the one thing Rust cannot do for itself: answer after it has trapped.
//
// The release build aborts on panic (panic=abort keeps the wasm small; unwinding
// needs a nightly std). A panic, like any wasm trap, kills the instance in the
// middle of a request: the Rust side can no longer respond, and when the trap
// happens inside a promise callback the request's promise never settles.
// worker-build's module re-instantiates the wasm on the next call, so the
// isolate recovers; this wrapper makes the failed request end properly too:
// every request in flight when a trap is reported gets a 500 problem document
// with its request id, exactly as the Rust API formats its own errors.
import Api from "./build/index.js";
import { RELEASE } from "./build/release.js";

/**
 * Failers of the requests in flight, called when the wasm instance traps.
 * One per request, each removed when its request settles, not one promise
 * shared by all: every request waiting on a promise that lives as long as
 * the isolate leaves a reaction on it, and those pile up (the bench once
 * saw workerd grow past 1 GiB that way).
 */
const inFlight = new Set();

/** The trap last handled: each fails the requests in flight once. */
let handled;

/** After a trap: fail every request in flight and re-instantiate next time. */
function onTrap(error) {
  if (error === handled) return;
  handled = error;
  markTrapped();
  for (const fail of inFlight) fail(error);
}

addEventListener("error", (event) => {
  if (event.error instanceof WebAssembly.RuntimeError) onTrap(event.error);
});

/**
 * Tells worker-build's module that its instance trapped, so the next call
 * re-instantiates it (see `callFetch`). Its own listener only sees traps
 * nobody caught, and the ones `fetch` below catches never reach it.
 */
function markTrapped() {
  if (globalThis.__worker_init_state) {
    globalThis.__worker_init_state.criticalError = true;
  }
}

function requestId(request) {
  const ray = request.headers.get("cf-ray");
  if (ray && ray.length <= 64 && /^[\x21-\x7e]+$/.test(ray)) return ray;
  return crypto.randomUUID().replaceAll("-", "");
}

/** The 500 problem document, with the headers the Rust edge layer sends. */
function internalError(request, env, id) {
  const headers = new Headers({
    "content-type": "application/problem+json",
    "x-request-id": id,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "strict-transport-security": "max-age=31536000; includeSubDomains",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "cross-origin-resource-policy": "same-site",
  });
  const origin = request.headers.get("origin");
  const allowed = String(env.ALLOWED_ORIGINS ?? "").split(",").map((o) => o.trim());
  if (origin && allowed.includes(origin)) {
    headers.set("access-control-allow-origin", origin);
    headers.set("access-control-allow-credentials", "true");
    headers.set("access-control-expose-headers", "x-request-id");
    headers.set("vary", "origin");
  }
  const body = {
    type: "/problems/internal",
    title: "Internal error",
    status: 500,
    detail: "The request failed on our side; it has been reported.",
    instance: id,
  };
  return new Response(JSON.stringify(body), { status: 500, headers });
}

/** Headers a trap report may carry: nothing that can hold a credential. */
const REPORTED_HEADERS = ["user-agent", "cf-ray", "content-type", "accept", "origin"];

/**
 * Reports a trap to Sentry (the Rust reporter died with the instance):
 * the same envelope shape, with the URL's path only and allowlisted
 * headers, sent in the background and never retried.
 */
function reportTrap(request, env, ctx, id, error) {
  let dsn;
  try {
    dsn = new URL(String(env.SENTRY_DSN ?? ""));
  } catch {
    return;
  }
  // The project id is the path's last segment and what comes before it a
  // prefix, read as `sentry_types::Dsn` reads them (the Rust reporter's
  // URL): slashes at either end do not count, so `/42/` is project 42.
  const path = dsn.pathname.replace(/^\/+|\/+$/g, "");
  const project = path.slice(path.lastIndexOf("/") + 1);
  if (!dsn.username || !project) return;
  const base = `${dsn.protocol}//${dsn.host}`;
  const prefix = path.includes("/") ? `/${path.slice(0, path.lastIndexOf("/"))}` : "";
  const url = `${base}${prefix}/api/${project}/envelope/`;
  const eventId = crypto.randomUUID().replaceAll("-", "");
  const headers = {};
  for (const name of REPORTED_HEADERS) {
    const value = request.headers.get(name);
    if (value !== null) headers[name] = value;
  }
  const requestUrl = new URL(request.url);
  const event = {
    event_id: eventId,
    timestamp: Date.now() / 1000,
    platform: "javascript",
    level: "fatal",
    logger: "api",
    release: RELEASE,
    environment: String(env.ENVIRONMENT ?? "unknown"),
    tags: { request_id: id, status: "500" },
    exception: {
      values: [
        {
          type: error instanceof WebAssembly.RuntimeError ? "WasmTrap" : String(error?.name ?? "Error"),
          value: String(error),
        },
      ],
    },
    request: { method: request.method, url: `${requestUrl.origin}${requestUrl.pathname}`, headers },
  };
  const payload = JSON.stringify(event);
  const body = [
    JSON.stringify({ event_id: eventId, sent_at: new Date().toISOString(), dsn: dsn.href }),
    JSON.stringify({ type: "event", length: new TextEncoder().encode(payload).length }),
    payload,
  ].join("\n");
  const sent = fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/x-sentry-envelope",
      "x-sentry-auth": `Sentry sentry_version=7, sentry_key=${dsn.username}, sentry_client=edge-api-trap/1`,
    },
    body,
    signal: AbortSignal.timeout(3000),
  }).catch((e) => console.error("telemetry: sentry (trap):", String(e)));
  ctx.waitUntil(sent);
}

/**
 * worker-build's `fetch` method, called without its entry class: the class
 * is a Proxy that, on every request, wraps the method in a new Proxy and
 * routes each property set through a trap (a measurable share of a small
 * request). The method only reads `this.env` and `this.ctx`, so a plain
 * object carries each request's. What the Proxy adds is re-instantiating
 * the wasm after a trap; constructing the class once does that (its
 * construct trap checks worker-build's own flag), so it is constructed
 * only when that flag says the instance trapped.
 */
const apiFetch = Api.prototype.fetch;
function callFetch(request, env, ctx) {
  if (globalThis.__worker_init_state?.criticalError) {
    new Api(ctx, env);
  }
  return apiFetch.call({ env, ctx }, request);
}

/**
 * A request that failed with a trap or an error instead of an answer: the
 * 500 problem document, logged and reported.
 */
function failed(request, env, ctx, error) {
  // A trap thrown straight out of the call never reaches the listener.
  if (error instanceof WebAssembly.RuntimeError) onTrap(error);
  // The id the Rust side would also have picked (cf-ray), or one for the
  // problem document, made only now that it is needed.
  const id = requestId(request);
  const what = error instanceof WebAssembly.RuntimeError ? "a wasm trap" : "an error";
  console.error(`request failed with ${what}`, id, String(error));
  // One event per trap, with the request that met it first: a trap fails
  // every request in flight, and each would otherwise send the same one.
  if (error !== reported) {
    reported = error;
    reportTrap(request, env, ctx, id, error);
  }
  return internalError(request, env, id);
}

/** The trap or error last reported to Sentry (see `failed`). */
let reported;

/**
 * Waits for an answer still on its way, unless the instance traps first:
 * one promise settled by whichever comes first (a `Promise.race` of the
 * answer and a second promise made only to be rejected cost two promises
 * and their reactions more per request).
 */
function settle(request, env, ctx, answer) {
  return new Promise((resolve, reject) => {
    const fail = (error) => {
      inFlight.delete(fail);
      try {
        resolve(failed(request, env, ctx, error));
      } catch (e) {
        reject(e);
      }
    };
    inFlight.add(fail);
    answer.then((response) => {
      inFlight.delete(fail);
      resolve(response);
    }, fail);
  });
}

/**
 * Methods whose request runs to its end even when its caller goes away.
 * The runtime cancels a request whose client disconnects (or whose caller
 * aborts its service-binding call) and with it every `fetch()` and socket
 * read still pending; only work handed to `ctx.waitUntil` goes on. A write
 * cancelled between its locking read and its `COMMIT` would leave its
 * TiDB transaction open, and the page's row locked for every later writer,
 * until TiDB's idle timeout (10 minutes); one cancelled after its `COMMIT`
 * would skip the cache invalidation, and readers would get the old copy
 * for its TTL. So an answer to anything but a read is also a `waitUntil`
 * task: it ends with its commit or rollback and its invalidation whether
 * or not anyone waits for it (the runtime gives such work 30 s after the
 * disconnect; the request's own deadline is shorter). The scenarios
 * `a_write_abandoned_*` in `e2e/tests/outages.rs` show both. Reads are
 * left to be cancelled: they leave nothing behind.
 */
const READS = new Set(["GET", "HEAD", "OPTIONS"]);

function ignore() {}

export default {
  /**
   * Not `async`: the Rust side returns an answer that was ready at once
   * (health checks, preflights, refusals) as the `Response` itself, and it
   * goes back to the runtime as it is, without a promise, a race or a
   * microtask. Only an answer still on its way is raced against a trap.
   */
  fetch(request, env, ctx) {
    let answer;
    try {
      answer = callFetch(request, env, ctx);
    } catch (error) {
      return failed(request, env, ctx, error);
    }
    if (answer instanceof Response) return answer;
    const settled = settle(request, env, ctx, answer);
    if (!READS.has(request.method)) ctx.waitUntil(settled.then(ignore, ignore));
    return settled;
  },

  // The cron (wrangler.toml [triggers]); a trap here only fails this run.
  async scheduled(controller, env, ctx) {
    const api = new Api(ctx, env);
    await api.scheduled(controller);
  },
};
