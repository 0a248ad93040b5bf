// A caller that gives up: forwards the request to the API Worker through the
// `API` service binding, as the Pages shim does, and aborts that call after
// `abort_after` milliseconds (a query parameter, stripped before the call).
// An aborted call answers 599 so the test can tell it from the API's own
// statuses. See e2e/src/caller.rs.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const after = Number(url.searchParams.get("abort_after") ?? "0");
    url.searchParams.delete("abort_after");
    const init = after > 0 ? { signal: AbortSignal.timeout(after) } : {};
    try {
      return await env.API.fetch(new Request(url, request), init);
    } catch (e) {
      return new Response(`the caller gave up: ${e}`, { status: 599 });
    }
  },
};
