// The runtime's ceiling: the least a Worker can do for a request. `cargo
// xtask bench` compares the API's `/healthz` with this on the same workerd.
//
// With the binding `ANSWER = "api-healthz"` it is the second ceiling: the
// least a Worker can do to send what the API's `/healthz` sends (the same
// status, body length and headers; the bench checks the header names
// against the API's before it loads either). It builds the answer the way
// the API's bridge does, which measured the cheapest on workerd: the shared
// headers as one `Headers` copied by the `Response` constructor, the
// request id (`cf-ray` when the request has one, as the API takes it) and
// `server-timing` made and appended per request.
//
// With `ANSWER = "api-healthz-fixed"` it sends the same headers with fixed
// values, all ten in the one copied `Headers`: what sending those headers
// costs at all, before any of them carries a value of its own. The three
// apart say where the second ceiling's cost goes: the headers themselves,
// and making and appending the two values each answer has of its own.
//
// With `ANSWER = "api-healthz-required"` it sends only what DESIGN.md asks
// of every response, the request id and `server-timing`, made as the
// second ceiling makes them, beside the body's `content-type`: the ceiling
// for any Worker true to the design, without the headers the API adds by
// its own choice (CORS' `vary`, the security headers).
const BODY = '{"ok":true}';

const SHARED = new Headers([
  ["content-type", "application/json"],
  ["vary", "origin, access-control-request-method, access-control-request-headers"],
  ["x-content-type-options", "nosniff"],
  ["x-frame-options", "DENY"],
  ["referrer-policy", "no-referrer"],
  ["strict-transport-security", "max-age=31536000; includeSubDomains"],
  ["content-security-policy", "default-src 'none'; frame-ancestors 'none'"],
  ["cross-origin-resource-policy", "same-site"],
]);

/** What the fourth ceiling sends before its two per-request headers. */
const TYPE_ONLY = new Headers([["content-type", "application/json"]]);

/** `SHARED` and the two per-request headers, with fixed values. */
const FIXED = new Headers([
  ...SHARED,
  ["x-request-id", "0".repeat(32)],
  ["server-timing", "total;dur=0.0"],
]);

// As long as the API's answer: `{"status":"ok","version":...,"commit":...}`.
const API_BODY = new TextEncoder().encode(
  JSON.stringify({ status: "ok", version: "0.0.0", commit: "0".repeat(40) }),
);

function hex32() {
  let id = "";
  for (let i = 0; i < 4; i++) {
    id += Math.floor(Math.random() * 4294967296).toString(16).padStart(8, "0");
  }
  return id;
}

export default {
  fetch(request, env) {
    const answer = env.ANSWER;
    if (answer === undefined) {
      return new Response(BODY, { headers: { "content-type": "application/json" } });
    }
    if (answer === "api-healthz-fixed") {
      return new Response(API_BODY, { status: 200, headers: FIXED });
    }
    const started = Date.now();
    const shared = answer === "api-healthz-required" ? TYPE_ONLY : SHARED;
    const response = new Response(API_BODY, { status: 200, headers: shared });
    response.headers.append("x-request-id", request.headers.get("cf-ray") ?? hex32());
    response.headers.append("server-timing", `total;dur=${(Date.now() - started).toFixed(1)}`);
    return response;
  },
};
