// The reference the API is measured against in `cargo xtask bench`: the
// same routes written the way a JavaScript team would write them on Hono,
// doing the same work per request against the same servers.
//
// - TiDB through the official serverless driver (@tidbcloud/serverless);
//   its fetch is pointed at the local gateway (TIDB_HTTP_ENDPOINT) exactly
//   as the Rust driver's endpoint override is.
// - Redis over `cloudflare:sockets`, one connection per request opened on
//   first use, its greeting (AUTH, CLIENT SETNAME) sent with the first
//   commands as the Rust client sends it, running the same Lua scripts as
//   the Rust crates (GCRA rate limit, versioned cache-aside), so both
//   implementations make the same round trips and leave the same keys.
// - Access JWTs (RS256) against the team's JWKS, cached per isolate, and
//   the tokens let in remembered, as the API does.
//
// It is a benchmark reference, not a second implementation of the API:
// only the routes `cargo xtask bench` loads exist here.
import { Hono } from "hono";
import { connect as tidbConnect } from "@tidbcloud/serverless";
import { verifyWithJwks } from "hono/utils/jwt/jwt";
import { connect as tcpConnect } from "cloudflare:sockets";

// ---- The Lua scripts: copies of crates/ratelimit and crates/cache. ----

const NOW = `
if redis.replicate_commands then redis.replicate_commands() end
local function now()
  local t = redis.call('TIME')
  return t[1] .. string.format('%06d', tonumber(t[2]))
end
`;

const RATE_LIMIT = `
if redis.replicate_commands then redis.replicate_commands() end
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now
if ARGV[3] then
  now = tonumber(ARGV[3])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return {0, 0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat),
  'PX', string.format('%.0f', math.ceil((new_tat - now) / 1000)))
return {1, math.floor((now - allow_at) / interval), new_tat - now, 0}
`;

const LOOKUP = `${NOW}
local v = redis.call('GET', KEYS[1])
if not v then
  v = now()
  redis.call('SET', KEYS[1], v, 'PX', ARGV[1])
end
local data = redis.call('GET', KEYS[2] .. v)
if data then return {v, data} end
return {v}
`;

const FILL = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
`;

const INVALIDATE = `${NOW}
local v = redis.pcall('INCR', KEYS[1])
local t = now()
if type(v) == 'table' and v.err then
  redis.call('DEL', KEYS[1])
  return tonumber(t)
end
if v < tonumber(t) then
  redis.call('SET', KEYS[1], t, 'PX', ARGV[1])
  return tonumber(t)
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return v
`;

const VERSION_TTL_MS = 30 * 24 * 60 * 60 * 1000;

// ---- A small RESP2 client over a Workers socket. ----

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function encodeCommand(args) {
  let out = `*${args.length}\r\n`;
  const parts = [];
  for (const arg of args) {
    const bytes = typeof arg === "string" ? encoder.encode(arg) : encoder.encode(String(arg));
    parts.push(encoder.encode(`${out}$${bytes.length}\r\n`), bytes);
    out = "\r\n";
  }
  parts.push(encoder.encode("\r\n"));
  const total = parts.reduce((n, p) => n + p.length, 0);
  const buffer = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    buffer.set(p, offset);
    offset += p.length;
  }
  return buffer;
}

class RedisError extends Error {}

class Redis {
  constructor(url) {
    const parsed = new URL(url);
    this.hostname = parsed.hostname;
    this.port = Number(parsed.port || 6379);
    this.password = decodeURIComponent(parsed.password || "");
    this.username = decodeURIComponent(parsed.username || "");
    this.db = parsed.pathname.replace("/", "");
    this.socket = null;
    this.buffer = new Uint8Array(0);
  }

  /** Connects; the greeting waits to go out with the first commands. */
  open() {
    this.socket = tcpConnect({ hostname: this.hostname, port: this.port });
    this.writer = this.socket.writable.getWriter();
    this.reader = this.socket.readable.getReader();
    // As the Rust client does: AUTH, the client's name and SELECT go in
    // the same write as the first commands, and their replies are read
    // (and checked) before those commands' replies.
    this.greeting = [];
    if (this.password) {
      this.greeting.push(
        this.username ? ["AUTH", this.username, this.password] : ["AUTH", this.password],
      );
    }
    this.greeting.push(["CLIENT", "SETNAME", "edge-api-reference"]);
    if (this.db && this.db !== "0") this.greeting.push(["SELECT", this.db]);
  }

  /** Sends every command in one write and reads the replies in order. */
  async pipeline(commands) {
    if (!this.socket) this.open();
    const greeting = this.greeting;
    this.greeting = [];
    const all = greeting.concat(commands);
    const encoded = all.map(encodeCommand);
    const total = encoded.reduce((n, p) => n + p.length, 0);
    const buffer = new Uint8Array(total);
    let offset = 0;
    for (const p of encoded) {
      buffer.set(p, offset);
      offset += p.length;
    }
    await this.writer.write(buffer);
    const replies = [];
    for (let i = 0; i < all.length; i++) replies.push(await this.reply());
    for (const reply of replies.slice(0, greeting.length)) {
      if (reply instanceof RedisError) throw reply;
    }
    return replies.slice(greeting.length);
  }

  async command(...args) {
    const [reply] = await this.pipeline([args]);
    if (reply instanceof RedisError) throw reply;
    return reply;
  }

  /** EVALSHA, and EVAL once if the server does not know the script yet. */
  async script(script, keys, args) {
    const sha = await sha1(script);
    const reply = (await this.pipeline([["EVALSHA", sha, keys.length, ...keys, ...args]]))[0];
    if (reply instanceof RedisError && reply.message.startsWith("NOSCRIPT")) {
      return this.command("EVAL", script, keys.length, ...keys, ...args);
    }
    if (reply instanceof RedisError) throw reply;
    return reply;
  }

  async fill(n) {
    while (this.buffer.length < n) {
      const { value, done } = await this.reader.read();
      if (done) throw new Error("redis closed the connection");
      const joined = new Uint8Array(this.buffer.length + value.length);
      joined.set(this.buffer);
      joined.set(value, this.buffer.length);
      this.buffer = joined;
    }
  }

  async line() {
    for (;;) {
      const end = this.buffer.indexOf(10);
      if (end > 0 && this.buffer[end - 1] === 13) {
        const text = decoder.decode(this.buffer.subarray(0, end - 1));
        this.buffer = this.buffer.subarray(end + 1);
        return text;
      }
      await this.fill(this.buffer.length + 1);
    }
  }

  async reply() {
    const line = await this.line();
    const rest = line.slice(1);
    switch (line[0]) {
      case "+":
        return rest;
      case "-":
        return new RedisError(rest);
      case ":":
        return Number(rest);
      case "$": {
        const n = Number(rest);
        if (n < 0) return null;
        await this.fill(n + 2);
        const text = decoder.decode(this.buffer.subarray(0, n));
        this.buffer = this.buffer.subarray(n + 2);
        return text;
      }
      case "*": {
        const n = Number(rest);
        if (n < 0) return null;
        const items = [];
        for (let i = 0; i < n; i++) items.push(await this.reply());
        return items;
      }
      default:
        throw new Error(`unexpected RESP reply ${JSON.stringify(line)}`);
    }
  }

  close() {
    if (this.socket) this.socket.close().catch(() => {});
  }
}

const shaCache = new Map();
async function sha1(text) {
  let sha = shaCache.get(text);
  if (!sha) {
    const digest = await crypto.subtle.digest("SHA-1", encoder.encode(text));
    sha = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
    shaCache.set(text, sha);
  }
  return sha;
}

// ---- Keys, as crates/cache and crates/ratelimit name them. ----

function rateLimitKey(cls, ip) {
  return `rl:${cls}:${ip || "unknown"}`;
}

function cacheKeys(slug) {
  const tag = `c:i:{page:${slug}}`;
  return { version: `${tag}:v`, data: `${tag}:d:` };
}

// ---- Problems (RFC 9457), security headers and CORS. ----

const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "strict-transport-security": "max-age=31536000; includeSubDomains",
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
  "cross-origin-resource-policy": "same-site",
};

const TITLES = {
  400: ["/problems/bad-request", "Bad request"],
  401: ["/problems/unauthorized", "Unauthorized"],
  404: ["/problems/not-found", "Not found"],
  412: ["/problems/precondition-failed", "Precondition failed"],
  415: ["/problems/unsupported-media-type", "Unsupported media type"],
  422: ["/problems/validation-failed", "Validation failed"],
  429: ["/problems/rate-limited", "Too many requests"],
  503: ["/problems/unavailable", "Service unavailable"],
};

function problem(c, status, detail, headers = {}) {
  const [type, title] = TITLES[status];
  const body = { type, title, status, detail, instance: c.get("requestId") };
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/problem+json", ...headers },
  });
}

function allowedOrigins(env) {
  return String(env.ALLOWED_ORIGINS ?? "")
    .split(",")
    .map((o) => o.trim())
    .filter(Boolean);
}

// ---- Per-isolate state. ----

let jwks = null;
let jwksFetchedAt = 0;
async function accessKeys(env, refresh) {
  const now = Date.now();
  if (!jwks || now - jwksFetchedAt > 3600_000 || refresh) {
    const response = await fetch(`${env.ACCESS_TEAM_DOMAIN}/cdn-cgi/access/certs`);
    jwks = (await response.json()).keys;
    jwksFetchedAt = now;
    // No token let in under the old set counts under the new one.
    admitted.clear();
  }
  return jwks;
}

// Tokens let in before, as the API keeps them (crates/access/src/checked.rs):
// the same token again skips the signature check; its times are still
// checked. Only tokens let in are kept, at most MAX_ADMITTED.
const admitted = new Map();
const MAX_ADMITTED = 256;

function admittedBefore(token) {
  const claims = admitted.get(token);
  if (!claims) return null;
  const now = Math.floor(Date.now() / 1000);
  if ((claims.exp !== undefined && claims.exp <= now) || (claims.nbf !== undefined && claims.nbf > now)) {
    admitted.delete(token);
    return null;
  }
  return claims;
}

function admit(token, claims) {
  if (token.length > 4096) return claims;
  if (admitted.size >= MAX_ADMITTED) admitted.clear();
  admitted.set(token, claims);
  return claims;
}

function database(env) {
  const url = new URL(env.TIDB_DATABASE_URL);
  const endpoint = String(env.TIDB_HTTP_ENDPOINT ?? "").replace(/\/$/, "");
  return tidbConnect({
    // The driver builds https://http-<host>/v1beta/sql, which is not a
    // valid URL for an IP address host; with a local endpoint the fetch
    // below goes there instead, so the host is only a placeholder.
    host: endpoint ? "gateway.localhost" : url.hostname,
    username: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
    database: decodeURIComponent(url.pathname.slice(1)),
    fetch: (target, init) =>
      fetch(endpoint ? `${endpoint}${new URL(target).pathname}` : target, init),
  });
}

function parseLimit(text, fallback) {
  const match = /^(\d+)\/(\d+)s$/.exec(String(text ?? "").trim());
  const [rate, secs] = match ? [Number(match[1]), Number(match[2])] : fallback;
  const interval = Math.max(1, Math.floor((secs * 1e6) / rate));
  return { interval, burst: rate };
}

function rfc3339(stamp) {
  return `${String(stamp).replace(" ", "T")}Z`;
}

const SLUG = /^[a-z0-9](?:[a-z0-9-]{0,126}[a-z0-9])?$/;

/**
 * What every answer varies by, as the API sends it (tower-http's CORS
 * layer's default), CORS request or not: a cache must not hand one
 * origin's answer to another. `cargo xtask bench` checks that both send
 * the same headers on every case.
 */
const VARY = "origin, access-control-request-method, access-control-request-headers";

// ---- The app. ----

const app = new Hono();

app.use("*", async (c, next) => {
  const started = Date.now();
  const ray = c.req.header("cf-ray");
  const id = ray && ray.length <= 64 && /^[\x21-\x7e]+$/.test(ray)
    ? ray
    : crypto.randomUUID().replaceAll("-", "");
  c.set("requestId", id);
  const origin = c.req.header("origin");
  const allowed = origin && allowedOrigins(c.env).includes(origin);
  if (c.req.method === "OPTIONS" && origin) {
    const headers = new Headers(SECURITY_HEADERS);
    headers.set("x-request-id", id);
    headers.set("vary", VARY);
    if (allowed) {
      headers.set("access-control-allow-origin", origin);
      headers.set("access-control-allow-credentials", "true");
      headers.set("access-control-allow-methods", "GET,HEAD,PUT,POST,DELETE");
      headers.set("access-control-allow-headers", "content-type,if-match,if-none-match,authorization");
      headers.set("access-control-max-age", "7200");
    }
    headers.set("server-timing", `total;dur=${Date.now() - started}`);
    return new Response(null, { status: 200, headers });
  }
  const redis = new Redis(c.env.REDIS_URL);
  c.set("redis", redis);
  try {
    await next();
  } finally {
    redis.close();
  }
  const headers = c.res.headers;
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) headers.set(name, value);
  headers.set("x-request-id", id);
  headers.append("server-timing", `total;dur=${Date.now() - started}`);
  if (allowed) {
    headers.set("access-control-allow-origin", origin);
    headers.set("access-control-allow-credentials", "true");
    headers.set(
      "access-control-expose-headers",
      "etag,retry-after,x-request-id,server-timing,ratelimit-limit,ratelimit-remaining,ratelimit-reset",
    );
  }
  headers.append("vary", VARY);
});

app.get("/healthz", (c) =>
  c.json({ status: "ok", version: "reference", commit: "reference" }),
);

// Rate limits for /v1, one script run per request.
app.use("/v1/*", async (c, next) => {
  const read = c.req.method === "GET" || c.req.method === "HEAD";
  const cls = read ? "read" : "write";
  const limit = read
    ? parseLimit(c.env.RATE_LIMIT_READ, [600, 60])
    : parseLimit(c.env.RATE_LIMIT_WRITE, [60, 60]);
  const ip = c.req.header("cf-connecting-ip");
  let decision;
  try {
    decision = await c.get("redis").script(RATE_LIMIT, [rateLimitKey(cls, ip)], [limit.interval, limit.burst]);
  } catch (e) {
    console.error("rate limit not counted (fail-open)", String(e));
    return next();
  }
  const [allowed, remaining, resetUs, retryUs] = decision;
  const headers = {
    "ratelimit-limit": String(limit.burst),
    "ratelimit-remaining": String(remaining),
    "ratelimit-reset": String(Math.ceil(resetUs / 1e6)),
  };
  if (!allowed) {
    const retry = Math.ceil(retryUs / 1e6);
    return problem(c, 429, `Too many ${cls} requests from this client; retry after ${retry} s.`, {
      ...headers,
      "retry-after": String(retry),
    });
  }
  await next();
  for (const [name, value] of Object.entries(headers)) c.res.headers.set(name, value);
});

app.get("/v1/pages/:slug", async (c) => {
  const slug = c.req.param("slug");
  if (!SLUG.test(slug)) return problem(c, 400, "A slug is 1 to 128 lowercase letters, digits and inner hyphens.");
  const redis = c.get("redis");
  const keys = cacheKeys(slug);
  const ttl = Number(c.env.CACHE_TTL_SECS ?? 300);
  let lookup = null;
  if (ttl > 0) {
    try {
      lookup = await redis.script(LOOKUP, [keys.version, keys.data], [VERSION_TTL_MS]);
    } catch (e) {
      console.error("page cache lookup", String(e));
    }
  }
  // As the API's does, the answer says whether the cache served it, so
  // the bench can check that the reference's cached reads hit as well.
  const cached = ttl === 0 ? "off" : !lookup ? "unavailable" : lookup.length === 2 ? "hit" : "miss";
  c.header("server-timing", `cache;desc="${cached}"`, { append: true });
  let id;
  let page;
  if (lookup && lookup.length === 2) {
    [id, page] = JSON.parse(lookup[1]);
  } else {
    const rows = await database(c.env).execute(
      "SELECT p.id, p.slug, p.title, p.revision, r.body, r.author, p.updated_at " +
        "FROM pages p JOIN revisions r ON r.page_id = p.id AND r.number = p.revision " +
        "WHERE p.slug = ? AND p.deleted_at IS NULL",
      [slug],
    );
    if (rows.length === 0) return problem(c, 404, `There is no page \`${slug}\`.`);
    const row = rows[0];
    id = Number(row.id);
    page = {
      slug: row.slug,
      title: row.title,
      body: row.body,
      revision: Number(row.revision),
      author: row.author,
      updated_at: rfc3339(row.updated_at),
    };
    if (lookup) {
      const ms = Math.round(ttl * 1000 * (0.9 + 0.2 * Math.random()));
      try {
        await redis.script(FILL, [keys.version, keys.data + lookup[0]], [lookup[0], JSON.stringify([id, page]), ms]);
      } catch (e) {
        console.error("page cache fill", String(e));
      }
    }
  }
  const etag = `"${id}.${page.revision}"`;
  const headers = { etag, "cache-control": "no-cache" };
  const inm = c.req.header("if-none-match");
  if (inm && inm.split(",").some((t) => t.trim().replace(/^W\//, "") === etag || t.trim() === "*")) {
    return new Response(null, { status: 304, headers });
  }
  return c.json(page, 200, headers);
});

async function adminIdentity(c) {
  const token =
    c.req.header("cf-access-jwt-assertion") ||
    /(?:^|;\s*)CF_Authorization=([^;]+)/.exec(c.req.header("cookie") ?? "")?.[1];
  if (!token) return null;
  const known = admittedBefore(token);
  if (known) return known;
  const options = (keys) => ({
    keys,
    allowedAlgorithms: ["RS256"],
    verification: { aud: c.env.ACCESS_AUD, iss: c.env.ACCESS_TEAM_DOMAIN },
  });
  try {
    return admit(token, await verifyWithJwks(token, options(await accessKeys(c.env, false))));
  } catch {
    // An unknown kid may be a rotated key: fetch the keys once more.
    try {
      return admit(token, await verifyWithJwks(token, options(await accessKeys(c.env, true))));
    } catch {
      return null;
    }
  }
}

/** Duplicate key, deadlock, and TiDB's conflicts safe to run again. */
const RETRIED_ERRORS = new Set([1062, 1213, 8002, 8005, 8022, 8028, 9007]);

/**
 * One page write as one transaction: the same statements as the API's
 * (crates/api/src/pages/store.rs), the database's time read once, with the
 * lock, and stored everywhere. `null` when `ifMatch` does not hold.
 */
async function writePage(db, slug, title, body, author, ifMatch) {
  const tx = await db.begin({ isolation: "READ COMMITTED" });
  try {
    const [locked] = await tx.execute(
      // WAIT 5: what the API waits for a row with the bench's 10 s deadline.
      "SELECT id, revision, deleted_at IS NOT NULL AS deleted, UTC_TIMESTAMP(3) AS now FROM pages WHERE slug = ? FOR UPDATE WAIT 5",
      [slug],
    );
    const current = locked && Number(locked.deleted) === 0 ? `"${locked.id}.${locked.revision}"` : null;
    if (ifMatch && ifMatch !== "*" && !ifMatch.split(",").some((t) => t.trim() === current)) {
      await tx.rollback();
      return null;
    }
    let id;
    let number;
    let now;
    if (locked) {
      id = Number(locked.id);
      number = Number(locked.revision) + 1;
      now = locked.now;
      await tx.execute(
        "UPDATE pages SET title = ?, revision = ?, updated_at = ?, deleted_at = NULL WHERE id = ?",
        [title, number, now, id],
      );
    } else {
      // No row to lock: the insert may wait on another writer's instead,
      // for no longer than the read would have.
      await tx.execute("SET SESSION innodb_lock_wait_timeout = 5");
      [{ now }] = await tx.execute("SELECT UTC_TIMESTAMP(3) AS now");
      const inserted = await tx.execute(
        "INSERT INTO pages (slug, title, revision, created_at, updated_at) VALUES (?, ?, 1, ?, ?)",
        [slug, title, now, now],
        { fullResult: true },
      );
      id = Number(inserted.lastInsertId);
      number = 1;
    }
    await tx.execute(
      "INSERT INTO revisions (page_id, number, title, body, author, created_at) VALUES (?, ?, ?, ?, ?, ?)",
      [id, number, title, body, author, now],
    );
    await tx.commit();
    return {
      created: !locked,
      id,
      page: { slug, title, body, revision: number, author, updated_at: rfc3339(now) },
    };
  } catch (e) {
    await tx.rollback().catch(() => {});
    throw e;
  }
}

app.put("/v1/pages/:slug", async (c) => {
  const claims = await adminIdentity(c);
  if (!claims) return problem(c, 401, "A valid Cloudflare Access token is required.");
  const slug = c.req.param("slug");
  if (!SLUG.test(slug)) return problem(c, 400, "A slug is 1 to 128 lowercase letters, digits and inner hyphens.");
  if (!(c.req.header("content-type") ?? "").startsWith("application/json")) {
    return problem(c, 415, "Send the page as application/json.");
  }
  let draft;
  try {
    draft = await c.req.json();
  } catch {
    return problem(c, 400, "The body is not valid JSON.");
  }
  const title = draft?.title;
  const body = draft?.body;
  if (typeof title !== "string" || typeof body !== "string") {
    return problem(c, 422, "title and body must be strings.");
  }
  if ([...body].length > 131072) return problem(c, 422, "body is too long.");
  if (!title.trim() || [...title].length > 200 || /[\u0000-\u001f\u007f-\u009f]/.test(title)) {
    return problem(c, 422, "title must be 1 to 200 characters without control characters.");
  }
  const ifMatch = c.req.header("if-match");
  const author = claims.email ?? claims.common_name ?? "unknown";
  const db = database(c.env);
  const write = () => writePage(db, slug, title, body, author, ifMatch);
  let written;
  try {
    // Once more, as the API does (crates/api/src/pages/store.rs `save`),
    // when two writers created the same new page at once or the database
    // rolled the transaction back for a conflict.
    try {
      written = await write();
    } catch (e) {
      if (!RETRIED_ERRORS.has(e?.details?.code)) throw e;
      written = await write();
    }
  } catch (e) {
    console.error("page write", String(e));
    return problem(c, 503, "The database is unavailable; try again shortly.", { "retry-after": "5" });
  }
  if (written === null) return problem(c, 412, "The page changed since that ETag.");
  const keys = cacheKeys(slug);
  try {
    await c.get("redis").script(INVALIDATE, [keys.version], [VERSION_TTL_MS]);
  } catch (e) {
    console.error("page cache invalidation", String(e));
  }
  return c.json(written.page, written.created ? 201 : 200, {
    etag: `"${written.id}.${written.page.revision}"`,
    location: `/v1/pages/${slug}`,
  });
});

app.notFound((c) => problem(c, 404, `There is no route ${c.req.method} ${new URL(c.req.url).pathname}.`));

// A write runs to its end even if its caller goes away, as the API's entry
// (api-worker/entry.mjs, `READS`) makes sure: its answer is also handed to
// `waitUntil`, so the runtime does not cancel it with the request.
const READS = new Set(["GET", "HEAD", "OPTIONS"]);

function ignore() {}

export default {
  fetch(request, env, ctx) {
    const answer = app.fetch(request, env, ctx);
    if (!READS.has(request.method) && answer instanceof Promise) {
      ctx.waitUntil(answer.then(ignore, ignore));
    }
    return answer;
  },
};
