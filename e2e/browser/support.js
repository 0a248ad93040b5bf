// Helpers of the browser suite: the stack (from the manifest that
// `cargo xtask test` names in E2E_STACK), Access tokens signed with the
// stack's team key, Chromium, and screenshots of failed tests.

import { createPrivateKey, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';

import { chromium } from 'playwright-core';

/** The running stack's manifest (crates/stack-manifest). */
export function stack() {
  const file = process.env.E2E_STACK;
  if (!file) {
    throw new Error(
      'E2E_STACK is not set: run these tests with `cargo xtask test` ' +
        '(or point E2E_STACK at the stack.json of a `cargo xtask dev`)',
    );
  }
  const manifest = JSON.parse(readFileSync(file, 'utf8'));
  if (!manifest.api || !manifest.sites) {
    throw new Error(`${file} has no API Worker or no sites`);
  }
  return manifest;
}

export const unique = (prefix) => `${prefix}${randomBytes(6).toString('hex')}`;

const base64url = (value) =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** An RS256 JWT as Access issues it for a user of the application `aud`,
 * signed with `key` (the team's key unless a test forges one). */
export function accessToken({ email, aud, key, kid }) {
  const access = stack().access;
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: 'RS256', kid: kid ?? access.kid, typ: 'JWT' };
  const claims = {
    aud: [aud],
    email,
    exp: now + 600,
    iat: now,
    nbf: now,
    iss: access.team_domain,
    type: 'app',
    identity_nonce: 'browser-test',
    sub: '1b7c6f0e-3d1a-4f7e-9d55-6f1b0b1f2a44',
    country: 'XX',
  };
  const input = `${base64url(header)}.${base64url(claims)}`;
  const signingKey = key ?? createPrivateKey(readFileSync(access.key_file));
  return `${input}.${sign('sha256', Buffer.from(input), signingKey).toString('base64url')}`;
}

/** What Access adds to each request it lets through to the admin site:
 * a token whose audience is the admin site's application. */
export function adminSiteToken(email) {
  return accessToken({ email, aud: stack().access.binding_aud });
}

/** A key the team never published, for forged tokens. */
export function foreignKey() {
  return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
}

/** Headless Debian Chromium, as ../shared/ENVIRONMENT.md says to run it. */
export async function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** Runs `body`; if it throws, saves a screenshot of every page of
 * `context` into the stack's state directory (kept when a suite fails)
 * before rethrowing. */
export async function screenshotOnFailure(t, context, body) {
  try {
    await body();
  } catch (error) {
    const dir = path.join(stack().state_dir, 'browser-screenshots');
    mkdirSync(dir, { recursive: true });
    const name = t.name.replace(/[^A-Za-z0-9-]+/g, '-').slice(0, 80);
    for (const [i, page] of context.pages().entries()) {
      const file = path.join(dir, `${name}-${i}.png`);
      await page.screenshot({ path: file, fullPage: true }).catch(() => {});
      console.error(`screenshot of the failed test: ${file}`);
    }
    throw error;
  }
}

/** Writes a page straight through the API's public URL, as an admin
 * would with a token for the API's own Access application (test setup). */
export async function putPage(slug, draft, email = 'setup@example.com') {
  const { api, access } = stack();
  const response = await fetch(`${api.url}/v1/pages/${slug}`, {
    method: 'PUT',
    headers: {
      'content-type': 'application/json',
      'cf-access-jwt-assertion': accessToken({ email, aud: access.aud }),
    },
    body: JSON.stringify(draft),
  });
  if (!response.ok) {
    throw new Error(`setting up page ${slug}: ${response.status} ${await response.text()}`);
  }
  return response.json();
}

/** Reads a page straight from the API. */
export async function getPage(slug) {
  const response = await fetch(`${stack().api.url}/v1/pages/${slug}`, { cache: 'no-store' });
  return { status: response.status, body: await response.json() };
}

/** Sends `commands` (each an array of strings) to the stack's Redis after
 * `AUTH`, over a plain RESP connection, and returns their replies. */
export async function redis(...commands) {
  const { host, port, password } = stack().redis;
  const encode = (args) =>
    `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
  const all = [['AUTH', password], ...commands];
  // One reply from `text` at `at`: [value, next] or null when incomplete.
  const parse = (text, at) => {
    const end = text.indexOf('\r\n', at);
    if (end < 0) return null;
    const [kind, line] = [text[at], text.slice(at + 1, end)];
    if (kind === '+') return [line, end + 2];
    if (kind === '-') return [new Error(line), end + 2];
    if (kind === ':') return [Number(line), end + 2];
    if (kind === '$') {
      const length = Number(line);
      if (length < 0) return [null, end + 2];
      if (text.length < end + 2 + length + 2) return null;
      return [text.slice(end + 2, end + 2 + length), end + 2 + length + 2];
    }
    if (kind === '*') {
      const items = [];
      let next = end + 2;
      for (let n = Number(line); n > 0; n -= 1) {
        const item = parse(text, next);
        if (!item) return null;
        [items[items.length], next] = item;
      }
      return [items, next];
    }
    throw new Error(`unexpected RESP reply ${JSON.stringify(text.slice(at, end))}`);
  };
  const replies = await new Promise((resolve, reject) => {
    const socket = net.connect(port, host);
    let text = '';
    socket.setEncoding('latin1');
    socket.setTimeout(5000, () => socket.destroy(new Error('redis did not answer')));
    socket.on('error', reject);
    socket.on('data', (chunk) => {
      text += chunk;
      const values = [];
      let at = 0;
      while (values.length < all.length) {
        const reply = parse(text, at);
        if (!reply) return;
        [values[values.length], at] = reply;
      }
      socket.end();
      resolve(values);
    });
    socket.write(all.map(encode).join(''));
  });
  for (const reply of replies) {
    if (reply instanceof Error) throw reply;
  }
  return replies.slice(1);
}

/** Spends the whole allowance of the rate-limit `key` for the next two
 * minutes, as a client that sent far too much would (the limiter's state is
 * the key's TAT in microseconds, see crates/ratelimit/src/lib.rs). */
export async function spendAllowance(key) {
  const [[secs, micros]] = await redis(['TIME']);
  const tat = Number(secs) * 1_000_000 + Number(micros) + 120_000_000;
  await redis(['SET', key, String(tat), 'PX', '120000']);
}

/** A client address (IPv6, a /64 of its own) that no other test uses, and
 * the API's rate-limit key for it in `class` (crates/ratelimit/src/key.rs). */
export function uniqueClient(klass) {
  const group = () => (0x1000 + Math.floor(Math.random() * 0xefff)).toString(16);
  const [a, b] = [group(), group()];
  return { ip: `2001:db8:${a}:${b}::7`, key: `rl:${klass}:2001:db8:${a}:${b}::/64` };
}

/** A static server on another 127.0.0.1 port: an origin the API's CORS
 * does not allow. */
export async function foreignOrigin() {
  const server = http.createServer((_, response) => {
    response.writeHead(200, { 'content-type': 'text/html' });
    response.end('<!doctype html><title>elsewhere</title><p>another origin</p>');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** A 2x3 PNG (red), small enough to inline. */
export const PNG_2X3 = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAIAAAADCAIAAAA2iEnWAAAAEElEQVR4nGP4z8AARAwoFABE0AX7pM/egAAAAABJRU5ErkJggg==',
  'base64',
);
