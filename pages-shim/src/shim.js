// The Pages side of the service binding: every Pages project that calls the
// API (web, admin) runs this as its `_worker.js` (Pages advanced mode).
// Same-origin `/api/*` requests go to the API Worker through the `API`
// service binding, everything else to the site's static assets.
//
// This file is the one source; each site links it as
// `sites/<site>/_worker.js/shim.js` (see ../README.md for why, and
// ../test/sites.test.js, which checks the links).
//
// What the API may believe about a request is decided here, so the rules
// are strict (the API's side is crates/api/src/trust.rs):
// - the binding is proven by the shared secret BINDING_SECRET in
//   `x-api-binding-token`, and the browser's address travels in
//   `x-api-client-ip`; whatever the browser sent under those names, or
//   under any other header the edge or Access set (`cf-*`,
//   `x-forwarded-*`, ...), is dropped before the shim adds its own;
// - identity is never asserted by the shim: on a site behind Access
//   (admin) the `Cf-Access-Jwt-Assertion` that Access put on the request
//   is passed on, and the API verifies it (signature, audience, expiry);
//   on a public site (web) it is dropped;
// - state-changing requests from another origin are refused, so that a
//   page elsewhere cannot ride on the admin's Access session (CSRF);
// - the request id is the edge's `cf-ray` (or a new one), sent on to the
//   API as its `cf-ray`, which the API uses as its request id, so one id
//   names the request in the browser, the shim and the API's logs.
// - `/api` is for the site's own pages only, so CORS ends here: the
//   browser's `Origin` and CORS request headers are not sent on, and no
//   `access-control-*` header of the API's answer is passed back. The API
//   allows the sites' origins with credentials for calls to its own
//   hostname; passed through, that grant would let a script on another
//   allowed origin (www) read what the admin site's `/api` answers with
//   the admin's Access session.

/** Prefix of the paths that go to the API; it is removed on the way. */
export const API_PREFIX = '/api';

/** The API's problem types (crates/api/src/problem.rs), plus the one
 * only the shim reports: the API could not be reached at all. */
export const PROBLEMS = {
  forbidden: { type: '/problems/forbidden', title: 'Not allowed', status: 403 },
  unavailable: { type: '/problems/unavailable', title: 'Temporarily unavailable', status: 503 },
  badGateway: { type: '/problems/bad-gateway', title: 'The API could not be reached', status: 502 },
};

/** Hop-by-hop headers (RFC 9110 §7.6.1): meaningful for one connection only. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Headers that carry trust between the shim and the API, or that the edge
 * sets about the client: never taken from the browser. Every `cf-*` header
 * is treated the same way (see `isSpoofable`). */
const SPOOFABLE = new Set([
  'x-api-binding-token',
  'x-api-client-ip',
  'x-request-id',
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-real-ip',
  'true-client-ip',
  'host',
  // The API reads the Access token from this cookie when the header is
  // absent; the shim forwards identity only as the header Access set.
  'cookie',
]);

/** CORS ends at the shim (see the top of this file): request headers that
 * start a CORS exchange with the API, and answer headers that would grant
 * one to the browser. */
function isCors(name) {
  return name === 'origin' || name.startsWith('access-control-');
}

const ACCESS_JWT = 'cf-access-jwt-assertion';
const CONNECTING_IP = 'cf-connecting-ip';
const RAY = 'cf-ray';

/** Methods that change state: refused from a foreign origin. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Sent with the site's own documents and assets (not with API answers,
 * which carry the API's stricter headers). Images may come from the file
 * store after a redirect, and uploads go to it, hence `img-src` and
 * `connect-src` beyond 'self'. */
export const SITE_SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: http:; " +
    "connect-src 'self' https: http:; object-src 'none'; base-uri 'none'; " +
    "frame-ancestors 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'same-origin',
};

function isSpoofable(name) {
  return SPOOFABLE.has(name) || name.startsWith('cf-');
}

/**
 * The shim as a Pages advanced-mode Worker.
 *
 * @param {object} options
 * @param {boolean} options.forwardAccessIdentity pass Access's
 *   `Cf-Access-Jwt-Assertion` on to the API (only for a site that Access
 *   guards, where Access itself sets that header on every request it lets
 *   through)
 */
export function pagesShim({ forwardAccessIdentity }) {
  return {
    async fetch(request, env) {
      const url = new URL(request.url);
      if (url.pathname === API_PREFIX || url.pathname.startsWith(`${API_PREFIX}/`)) {
        return toApi(request, url, env, { forwardAccessIdentity });
      }
      if (!env.ASSETS) {
        return new Response('Not found', { status: 404 });
      }
      return withHeaders(await env.ASSETS.fetch(request), SITE_SECURITY_HEADERS);
    },
  };
}

/**
 * Sends `request` (an `/api/*` request from the browser, whose parsed URL
 * is `url`) to the API through `env.API` and returns its answer, or a
 * problem document when the API cannot be reached.
 */
export async function toApi(request, url, env, { forwardAccessIdentity }) {
  const requestId = requestIdOf(request);

  if (!SAFE_METHODS.has(request.method) && isCrossSite(request, url)) {
    return problem(
      PROBLEMS.forbidden,
      'Changes are accepted only from pages of this site.',
      requestId,
    );
  }
  if (!env.API || typeof env.API.fetch !== 'function') {
    return problem(
      PROBLEMS.unavailable,
      'The API is not bound to this site (service binding `API` missing).',
      requestId,
    );
  }
  if (!env.BINDING_SECRET) {
    return problem(
      PROBLEMS.unavailable,
      'The API cannot be called: this site has no BINDING_SECRET.',
      requestId,
    );
  }

  const target = new URL(url);
  target.pathname = url.pathname.slice(API_PREFIX.length) || '/';
  const headers = forwardedHeaders(request.headers, { forwardAccessIdentity });
  headers.set('x-api-binding-token', env.BINDING_SECRET);
  const clientIp = request.headers.get(CONNECTING_IP);
  if (clientIp) {
    headers.set('x-api-client-ip', clientIp);
  }
  headers.set(RAY, requestId);

  const hasBody = request.body !== null && !['GET', 'HEAD'].includes(request.method);
  const send = () =>
    env.API.fetch(
      new Request(target, {
        method: request.method,
        headers,
        body: hasBody ? request.body : undefined,
        // Streamed, not buffered (Node's fetch needs this said; workerd
        // streams either way).
        ...(hasBody ? { duplex: 'half' } : {}),
        // Redirects (a file download's presigned URL) are the browser's
        // to follow.
        redirect: 'manual',
      }),
    );
  // Only a read that the platform could not deliver (the binding call
  // itself threw) is sent once more: it changes nothing. An HTTP answer,
  // whatever its status, is never retried: the API answered it (after a
  // wasm trap, api-worker/entry.mjs answers a 500 problem document), or the
  // platform refused it (resource limits, overload), where a second try
  // only adds load. A write is never sent twice, and a body, once
  // streamed, cannot be sent again.
  const attempts = SAFE_METHODS.has(request.method) && !hasBody ? 2 : 1;
  let answer;
  for (let attempt = 1; ; attempt += 1) {
    try {
      answer = await send();
      break;
    } catch (error) {
      const again = attempt < attempts;
      console.error(
        `request ${requestId}: the API binding failed${again ? ' (sending the read once more)' : ''}: ${error}`,
      );
      if (!again) {
        return problem(
          PROBLEMS.badGateway,
          'The API could not be reached; nothing was changed unless a later read shows it.',
          requestId,
        );
      }
    }
  }
  if (answer.status >= 500 && !isProblem(answer)) {
    // The platform answered in the API's place (a Worker that is missing,
    // crashed before it could answer, or over its limits).
    const text = (await answer.text().catch(() => '')).slice(0, 200);
    console.error(
      `request ${requestId}: the API binding answered ${answer.status} without a problem document: ${text}`,
    );
    return problem(
      PROBLEMS.badGateway,
      'The API failed before it could answer; nothing was changed unless a later read shows it.',
      requestId,
    );
  }
  const responseHeaders = new Headers();
  for (const [name, value] of answer.headers) {
    if (!HOP_BY_HOP.has(name) && !isCors(name)) {
      responseHeaders.append(name, value);
    }
  }
  if (!responseHeaders.has('x-request-id')) {
    responseHeaders.set('x-request-id', requestId);
  }
  return new Response(answer.body, {
    status: answer.status,
    statusText: answer.statusText,
    headers: responseHeaders,
  });
}

/** The browser's headers minus hop-by-hop, spoofable, CORS and (unless
 * asked) identity headers. */
export function forwardedHeaders(incoming, { forwardAccessIdentity }) {
  const named = new Set(
    (incoming.get('connection') ?? '')
      .split(',')
      .map((name) => name.trim().toLowerCase())
      .filter(Boolean),
  );
  const headers = new Headers();
  for (const [name, value] of incoming) {
    if (HOP_BY_HOP.has(name) || named.has(name)) {
      continue;
    }
    if (name === ACCESS_JWT) {
      if (forwardAccessIdentity) {
        headers.set(name, value);
      }
      continue;
    }
    if (isSpoofable(name) || isCors(name)) {
      continue;
    }
    headers.append(name, value);
  }
  return headers;
}

/** The edge's id for this request, or a new one when there is none (local
 * runs, where no edge sets `cf-ray`). Same rules as the API's. */
export function requestIdOf(request) {
  const ray = request.headers.get(RAY);
  if (ray && ray.length <= 64 && /^[\x21-\x7e]+$/.test(ray)) {
    return ray;
  }
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Whether the browser says this request comes from another site's page. */
function isCrossSite(request, url) {
  const fetchSite = request.headers.get('sec-fetch-site');
  if (fetchSite && fetchSite !== 'same-origin' && fetchSite !== 'none') {
    return true;
  }
  const origin = request.headers.get('origin');
  return origin !== null && origin !== url.origin;
}

function isProblem(response) {
  const type = response.headers.get('content-type') ?? '';
  return type.split(';')[0].trim().toLowerCase() === 'application/problem+json';
}

/** An RFC 9457 problem document in the shape the API answers with. */
export function problem(kind, detail, requestId) {
  const body = JSON.stringify({
    type: kind.type,
    title: kind.title,
    status: kind.status,
    detail,
    instance: requestId,
  });
  return new Response(body, {
    status: kind.status,
    headers: {
      'content-type': 'application/problem+json',
      'x-request-id': requestId,
      'cache-control': 'no-store',
    },
  });
}

function withHeaders(response, extra) {
  const headers = new Headers(response.headers);
  for (const [name, value] of Object.entries(extra)) {
    if (!headers.has(name)) {
      headers.set(name, value);
    }
  }
  return new Response(response.body, {
    status: response.status,
    statusText: response.statusText,
    headers,
  });
}
