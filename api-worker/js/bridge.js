// The JS halves of the bridges between the runtime's HTTP objects and Rust's:
// requests to the Worker and its answers (src/bridge.rs), and the Worker's
// own fetch() calls (src/platform.rs). Every call between wasm and JS costs a
// glue wrapper, and every string crossing it a UTF-8 decode or encode; a
// request's head and a response's headers cross here as one string each
// instead of one call per header and per part. Fields are separated by NUL,
// which neither a method, a URL, a header name nor a header value can hold
// (the Fetch standard's Headers refuse it, the URL parser escapes it).

const SEPARATOR = "\0";

/**
 * The request headers the API reads (`api::request_headers::READ`), set by
 * each wasm instance before its first request: the only ones `requestHead`
 * brings across.
 */
let readHeaders = [];

/** Takes the names of the request headers the API reads (`name\0name...`). */
export function setReadHeaders(names) {
  readHeaders = names.split(SEPARATOR);
}

/**
 * The request's method, URL and the headers the API reads:
 * `method\0url\0name\0value...`. Each is read with one `get`: going over
 * all of them instead (`forEach`, a call from the runtime per header) cost
 * a browser's cached read, with its twenty headers, 4-8 % against a JS
 * Worker reading the four it needs by name (BENCHMARKS.md, fifteenth pass).
 */
export function requestHead(request) {
  const headers = request.headers;
  let head = request.method + SEPARATOR + request.url;
  for (const name of readHeaders) {
    const value = headers.get(name);
    if (value !== null) head += SEPARATOR + name + SEPARATOR + value;
  }
  return head;
}

/**
 * Header templates by index, each a `Headers` built once: the headers most
 * responses share (security headers, content types, CORS; the Rust side
 * picks them). The Response constructor copies a `Headers` inside the
 * runtime, which measured about twice as fast as appending the same
 * headers one by one from JS.
 */
const templates = [];

/** Appends `name\0value\0...` (empty for none) to `headers`. */
function appendFields(headers, fields) {
  if (fields.length > 0) {
    const parts = fields.split(SEPARATOR);
    for (let i = 0; i + 1 < parts.length; i += 2) {
      headers.append(parts[i], parts[i + 1]);
    }
  }
  return headers;
}

/** `name\0value\0...` (empty for none) as a new `Headers`. */
function headersOf(fields) {
  return appendFields(new Headers(), fields);
}

/**
 * A Response with `status`, the headers of template `template` (defined
 * anew when `templateFields` is given; no template for an index never
 * defined), then the response's `own` headers (`name\0value\0...`), and
 * `body` (bytes copied by the constructor, or undefined for no body).
 */
export function makeResponse(status, template, templateFields, own, body) {
  if (templateFields !== undefined) {
    templates[template] = headersOf(templateFields);
  }
  const response = new Response(body, { status, headers: templates[template] });
  if (own.length > 0) appendFields(response.headers, own);
  return response;
}

/**
 * `name\0value\0...` as a plain record of header names to values, which
 * `fetch()` takes in its init; `undefined` when a name repeats (a record
 * would keep only one of them).
 */
function recordOf(fields) {
  // No prototype: a name such as `__proto__` stays a header.
  const record = Object.create(null);
  if (fields.length > 0) {
    const parts = fields.split(SEPARATOR);
    for (let i = 0; i + 1 < parts.length; i += 2) {
      if (Object.hasOwn(record, parts[i])) return undefined;
      record[parts[i]] = parts[i + 1];
    }
  }
  return record;
}

/**
 * The wasm instance's callback for settled promises (src/promise.rs):
 * `(index, generation, fulfilled, value)`, `index` and `generation` naming
 * the wait. Set by each instance before its first wait.
 */
let settle;

/** Takes the wasm instance's callback for settled promises. */
export function setSettle(callback) {
  settle = callback;
}

/**
 * Reports `promise`'s outcome to the callback under the wait's key. The
 * callback is taken now: an answer arriving after the instance was
 * replaced goes to the instance that waited.
 */
export function watch(promise, index, generation) {
  const report = settle;
  promise.then(
    (value) => report(index, generation, true, value),
    (error) => report(index, generation, false, error),
  );
}

/**
 * The Worker's own `fetch()`: `headers` as `name\0value\0...`, `body` a
 * view of wasm memory (copied here, before anything can move it) or
 * undefined. With `timeoutMs` the whole exchange (connect, send, read the
 * body) is limited by the runtime's own `AbortSignal.timeout`; without, the
 * caller keeps the deadline on its request's timer and leaves a late answer
 * behind (a signal cost about 16 us per call in a JS micro-benchmark).
 * Reports to the wasm callback under `index` and `generation` (see
 * `watch`), never a failure: `{ head, bytes }` (`head` is
 * `status\0name\0value...`, `bytes` the whole body, read with one
 * `bytes()` instead of chunk by chunk from wasm; with `readHeaders`
 * (`name\0name...`) only those headers, each read with one `get`: iterating
 * six, about what the local TiDB gateway stand-in sends, cost about 16 us
 * per call more than getting the one the driver reads, in a JS
 * micro-benchmark) or `{ failure, message }` with `failure` one of
 * `invalid` (the URL cannot be parsed), `timeout` or `network`.
 *
 * The URL and init go to `fetch()` as they are, with the headers as a
 * record, where a `Request` and a `Headers` were built first: in CPU
 * profiles of the page write (six calls), `fetch()` and the `Request`
 * constructor together went from 13.5 to 12.6 samples per write.
 */
export async function sendFetch(url, method, headers, body, timeoutMs, readHeaders, index, generation) {
  // Everything before the first await runs in the call, while `body` still
  // views the bytes wasm handed over; nothing may throw past the report, or
  // the wait would never end.
  const report = settle;
  let outcome;
  try {
    const init = {
      method,
      headers: recordOf(headers) ?? headersOf(headers),
      body: body === undefined ? undefined : body.slice(),
      signal: timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs),
    };
    const response = await fetch(url, init);
    const bytes = await response.bytes();
    let head = String(response.status);
    if (readHeaders === undefined) {
      for (const [name, value] of response.headers) {
        head += SEPARATOR + name + SEPARATOR + value;
      }
    } else {
      for (const name of readHeaders.split(SEPARATOR)) {
        const value = response.headers.get(name);
        if (value !== null) head += SEPARATOR + name + SEPARATOR + value;
      }
    }
    outcome = { head, bytes };
  } catch (error) {
    let failure = "network";
    if (error?.name === "TimeoutError") failure = "timeout";
    else if (!URL.canParse(url)) failure = "invalid";
    outcome = { failure, message: String(error) };
  }
  report(index, generation, true, outcome);
}
