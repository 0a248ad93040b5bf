// The JS half of the request bridge (src/bridge.rs). Every call between wasm
// and JS costs a glue wrapper, and every string crossing it a UTF-8 decode or
// encode; a request's head and a response's headers cross here as one string
// each instead of one call per header and per part. Fields are separated by
// NUL, which neither a method, a URL, a header name nor a header value can
// hold (the Fetch standard's Headers refuse it, the URL parser escapes it).

const SEPARATOR = "\0";

/** The request's method, URL and headers: `method\0url\0name\0value...`. */
export function requestHead(request) {
  let head = request.method + SEPARATOR + request.url;
  for (const [name, value] of request.headers) {
    head += SEPARATOR + name + SEPARATOR + value;
  }
  return head;
}

/**
 * A Response with `status`, the headers in `headers` (`name\0value\0...`,
 * empty for none) and `body` (bytes copied by the constructor, or
 * undefined for no body). The headers go in through `append`: handing the
 * constructor an array of pairs or a record instead measured 15-20 %
 * slower per request on workerd.
 */
export function makeResponse(status, headers, body) {
  const init = new Headers();
  if (headers.length > 0) {
    const fields = headers.split(SEPARATOR);
    for (let i = 0; i + 1 < fields.length; i += 2) {
      init.append(fields[i], fields[i + 1]);
    }
  }
  return new Response(body, { status, headers: init });
}
