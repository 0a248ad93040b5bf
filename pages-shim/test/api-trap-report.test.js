// The API Worker's trap reporter (api-worker/entry.mjs), here because this
// is the suite that runs node's tests: a request whose wasm call traps is
// reported to the Sentry envelope URL the Rust reporter would use for the
// same DSN (`sentry_types::Dsn::envelope_api_url`).
//
// entry.mjs imports worker-build's output; the test runs a copy of it next
// to a stand-in whose `fetch` traps, with the global `fetch` recording.

import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';

const ENTRY = new URL('../../api-worker/entry.mjs', import.meta.url);

describe('the API Worker trap report', () => {
  let dir;
  let worker;
  let trapListener;
  const sent = [];
  const saved = {};

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'api-entry-'));
    mkdirSync(join(dir, 'build'));
    writeFileSync(join(dir, 'package.json'), '{"type": "module"}');
    writeFileSync(
      join(dir, 'build/index.js'),
      'export default class Api {\n' +
        '  fetch() {\n' +
        '    if (globalThis.__hang) return new Promise(() => {});\n' +
        '    throw new WebAssembly.RuntimeError("unreachable");\n' +
        '  }\n' +
        '}\n',
    );
    writeFileSync(join(dir, 'build/release.js'), 'export const RELEASE = "test";\n');
    copyFileSync(ENTRY, join(dir, 'entry.mjs'));
    for (const name of ['fetch', 'addEventListener']) saved[name] = globalThis[name];
    saved.consoleError = console.error;
    // The Workers global the entry listens on; node has none. Kept, to
    // report a trap the way the runtime does.
    globalThis.addEventListener = (type, listener) => {
      if (type === 'error') trapListener = listener;
    };
    globalThis.fetch = async (url, init) => {
      sent.push({ url: String(url), init });
      return new Response(null, { status: 200 });
    };
    console.error = () => {};
    worker = (await import(pathToFileURL(join(dir, 'entry.mjs')).href)).default;
  });

  after(() => {
    globalThis.fetch = saved.fetch;
    if (saved.addEventListener === undefined) delete globalThis.addEventListener;
    else globalThis.addEventListener = saved.addEventListener;
    console.error = saved.consoleError;
    rmSync(dir, { recursive: true, force: true });
  });

  /** Where a trapped request's report goes with `dsn`, or null if none. */
  async function envelopeUrl(dsn) {
    sent.length = 0;
    const waited = [];
    const ctx = { waitUntil: (promise) => waited.push(promise) };
    const response = worker.fetch(
      new Request('https://api.example.com/v1/pages'),
      { SENTRY_DSN: dsn, ENVIRONMENT: 'test' },
      ctx,
    );
    assert.equal(response.status, 500);
    await Promise.all(waited);
    assert.ok(sent.length <= 1, JSON.stringify(sent));
    return sent[0]?.url ?? null;
  }

  it('posts to the envelope URL the Rust reporter uses, trailing slash or not', async () => {
    const cases = [
      ['https://key@o1.ingest.sentry.io/42', 'https://o1.ingest.sentry.io/api/42/envelope/'],
      ['https://key@o1.ingest.sentry.io/42/', 'https://o1.ingest.sentry.io/api/42/envelope/'],
      ['https://key@o1.ingest.sentry.io/42//', 'https://o1.ingest.sentry.io/api/42/envelope/'],
      [
        'http://key@sentry.example:9000/relay/sub/7/',
        'http://sentry.example:9000/relay/sub/api/7/envelope/',
      ],
    ];
    for (const [dsn, expected] of cases) {
      assert.equal(await envelopeUrl(dsn), expected, dsn);
    }
  });

  it('reports a trap that fails every request in flight once', async () => {
    sent.length = 0;
    const waited = [];
    const ctx = { waitUntil: (promise) => waited.push(promise) };
    const env = { SENTRY_DSN: 'https://key@o1.ingest.sentry.io/42', ENVIRONMENT: 'test' };
    globalThis.__hang = true;
    try {
      const answers = [1, 2, 3].map((n) =>
        worker.fetch(new Request(`https://api.example.com/v1/pages/p${n}`), env, ctx),
      );
      trapListener({ error: new WebAssembly.RuntimeError('unreachable') });
      for (const answer of await Promise.all(answers)) assert.equal(answer.status, 500);
    } finally {
      delete globalThis.__hang;
    }
    await Promise.all(waited);
    assert.equal(sent.length, 1, JSON.stringify(sent.map((s) => s.url)));
    const event = JSON.parse(sent[0].init.body.split('\n')[2]);
    assert.equal(event.exception.values[0].type, 'WasmTrap');
  });

  it('sends nothing without a project or a key', async () => {
    assert.equal(await envelopeUrl('https://key@o1.ingest.sentry.io/'), null);
    assert.equal(await envelopeUrl('https://o1.ingest.sentry.io/42'), null);
    assert.equal(await envelopeUrl('not a dsn'), null);
  });
});
