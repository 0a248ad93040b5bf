// The runtime's ceiling: the least a Worker can do for a request. `cargo
// xtask bench` compares the API's `/healthz` with this on the same workerd.
const BODY = '{"ok":true}';

export default {
  fetch() {
    return new Response(BODY, { headers: { "content-type": "application/json" } });
  },
};
