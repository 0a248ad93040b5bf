// The shim against real `Request`/`Response` objects and a recording
// stand-in for the `API` binding (the browser tests in e2e/browser/ run it
// in workerd against the real API Worker).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { pagesShim, PROBLEMS } from '../src/shim.js';

const SECRET = 'binding-secret-0123456789abcdef';
const SITE = 'https://admin.example.com';

/** An `API` binding that records what it was sent and answers `answer`. */
function recordingBinding(answer = () => Response.json({ ok: true })) {
  const calls = [];
  return {
    calls,
    async fetch(request) {
      const body = request.body ? await request.text() : null;
      calls.push({ request, body });
      return answer(request);
    },
  };
}

function env(api, extra = {}) {
  return {
    API: api,
    BINDING_SECRET: SECRET,
    ASSETS: { fetch: async () => new Response('<h1>site</h1>', { headers: { 'content-type': 'text/html' } }) },
    ...extra,
  };
}

const admin = pagesShim({ forwardAccessIdentity: true });
const web = pagesShim({ forwardAccessIdentity: false });

async function problemOf(response) {
  assert.equal(response.headers.get('content-type'), 'application/problem+json');
  const body = await response.json();
  assert.equal(body.status, response.status);
  assert.ok(body.type.startsWith('/problems/'), body.type);
  assert.equal(body.instance, response.headers.get('x-request-id'));
  return body;
}

describe('routing', () => {
  it('maps /api/v1/... to /v1/... with the query and method kept', async () => {
    const api = recordingBinding();
    const response = await web.fetch(
      new Request(`${SITE}/api/v1/pages?limit=5&cursor=abc`, { method: 'GET' }),
      env(api),
    );
    assert.equal(response.status, 200);
    const { request } = api.calls[0];
    const url = new URL(request.url);
    assert.equal(url.pathname, '/v1/pages');
    assert.equal(url.search, '?limit=5&cursor=abc');
    assert.equal(request.method, 'GET');
  });

  it('sends everything else to the static assets, with the site headers', async () => {
    const api = recordingBinding();
    for (const path of ['/', '/index.html', '/apiary', '/app.js']) {
      const response = await web.fetch(new Request(`${SITE}${path}`), env(api));
      assert.equal(await response.text(), '<h1>site</h1>');
      assert.match(response.headers.get('content-security-policy'), /script-src 'self'/);
      assert.equal(response.headers.get('x-frame-options'), 'DENY');
    }
    assert.equal(api.calls.length, 0);
  });

  it('passes bodies and streamed request bodies through unchanged', async () => {
    const api = recordingBinding();
    const body = JSON.stringify({ title: 'T', body: 'x'.repeat(100_000) });
    await admin.fetch(
      new Request(`${SITE}/api/v1/pages/home`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', 'if-match': '"1.2"', origin: SITE },
        body,
      }),
      env(api),
    );
    const streamed = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('part one, '));
        controller.enqueue(new TextEncoder().encode('part two'));
        controller.close();
      },
    });
    await admin.fetch(
      new Request(`${SITE}/api/v1/uploads`, { method: 'POST', body: streamed, duplex: 'half' }),
      env(api),
    );
    assert.equal(api.calls[0].request.method, 'PUT');
    assert.equal(api.calls[0].body, body);
    assert.equal(api.calls[0].request.headers.get('if-match'), '"1.2"');
    assert.equal(api.calls[0].request.headers.get('content-type'), 'application/json');
    assert.equal(api.calls[1].body, 'part one, part two');
  });

  it('hands redirects to the browser instead of following them', async () => {
    const api = recordingBinding(
      () => new Response(null, { status: 302, headers: { location: 'https://s3.example.com/f?sig=1' } }),
    );
    const response = await web.fetch(new Request(`${SITE}/api/v1/files/abc`), env(api));
    assert.equal(response.status, 302);
    assert.equal(response.headers.get('location'), 'https://s3.example.com/f?sig=1');
    assert.equal(api.calls[0].request.redirect, 'manual');
  });

  it('passes the answer through: status, body, headers but hop-by-hop', async () => {
    const api = recordingBinding(
      () =>
        new Response('{"type":"/problems/precondition-failed"}', {
          status: 412,
          headers: {
            'content-type': 'application/problem+json',
            etag: '"7.3"',
            'x-request-id': 'from-the-api',
            'keep-alive': 'timeout=5',
          },
        }),
    );
    const response = await admin.fetch(new Request(`${SITE}/api/v1/pages/a`), env(api));
    assert.equal(response.status, 412);
    assert.equal(response.headers.get('etag'), '"7.3"');
    assert.equal(response.headers.get('x-request-id'), 'from-the-api');
    assert.equal(response.headers.get('keep-alive'), null);
    assert.equal(await response.text(), '{"type":"/problems/precondition-failed"}');
  });
});

describe('trust', () => {
  const forged = {
    'x-api-binding-token': 'guessed',
    'x-api-client-ip': '203.0.113.66',
    'cf-access-authenticated-user-email': 'admin@example.com',
    'cf-access-client-id': 'stolen.access',
    'cf-ipcountry': 'XX',
    'x-forwarded-for': '203.0.113.67',
    forwarded: 'for=203.0.113.68',
    'x-request-id': 'chosen-by-the-browser',
    cookie: 'CF_Authorization=forged.jwt.value; other=1',
    connection: 'x-custom-hop',
    'x-custom-hop': 'per-connection',
    'x-kept': 'yes',
  };

  it('drops every trust header the browser sent and adds its own', async () => {
    const api = recordingBinding();
    await admin.fetch(
      new Request(`${SITE}/api/v1/admin/whoami`, {
        headers: { ...forged, 'cf-connecting-ip': '198.51.100.9' },
      }),
      env(api),
    );
    const sent = api.calls[0].request.headers;
    assert.equal(sent.get('x-api-binding-token'), SECRET);
    // The address the edge saw, not the one the browser claimed.
    assert.equal(sent.get('x-api-client-ip'), '198.51.100.9');
    for (const name of [
      'cf-access-authenticated-user-email',
      'cf-access-client-id',
      'cf-ipcountry',
      'cf-connecting-ip',
      'x-forwarded-for',
      'forwarded',
      'x-request-id',
      'cookie',
      'x-custom-hop',
      'connection',
    ]) {
      assert.equal(sent.get(name), null, name);
    }
    assert.equal(sent.get('x-kept'), 'yes');
  });

  it('without an edge address, sends none rather than the browser claim', async () => {
    const api = recordingBinding();
    await admin.fetch(new Request(`${SITE}/api/v1/pages`, { headers: forged }), env(api));
    assert.equal(api.calls[0].request.headers.get('x-api-client-ip'), null);
  });

  it('forwards the Access token on the admin site only', async () => {
    for (const [site, expected] of [
      [admin, 'header.payload.signature'],
      [web, null],
    ]) {
      const api = recordingBinding();
      await site.fetch(
        new Request(`${SITE}/api/v1/admin/whoami`, {
          headers: { 'cf-access-jwt-assertion': 'header.payload.signature' },
        }),
        env(api),
      );
      assert.equal(api.calls[0].request.headers.get('cf-access-jwt-assertion'), expected);
    }
  });

  it('refuses state changes from another origin before calling the API', async () => {
    const api = recordingBinding();
    for (const headers of [
      { origin: 'https://evil.example.net' },
      { origin: 'https://www.example.com', 'sec-fetch-site': 'same-site' },
      { 'sec-fetch-site': 'cross-site' },
    ]) {
      const response = await admin.fetch(
        new Request(`${SITE}/api/v1/pages/home`, { method: 'DELETE', headers }),
        env(api),
      );
      assert.equal(response.status, 403);
      assert.equal((await problemOf(response)).type, PROBLEMS.forbidden.type);
    }
    assert.equal(api.calls.length, 0);
    const sameOrigin = await admin.fetch(
      new Request(`${SITE}/api/v1/pages/home`, {
        method: 'DELETE',
        headers: { origin: SITE, 'sec-fetch-site': 'same-origin' },
      }),
      env(api),
    );
    assert.equal(sameOrigin.status, 200);
    assert.equal(api.calls.length, 1);
  });

  it('grants no CORS: Origin is not sent on and access-control-* does not come back', async () => {
    // What the API answers an allowed origin with credentials: passed
    // through, www's scripts could read the admin's answers.
    const api = recordingBinding(
      (request) =>
        new Response('{"slug":"secret-draft"}', {
          headers: {
            'content-type': 'application/json',
            'access-control-allow-origin': request.headers.get('origin') ?? 'https://www.example.com',
            'access-control-allow-credentials': 'true',
            'access-control-expose-headers': 'etag, x-request-id',
            'access-control-allow-methods': 'GET, PUT',
            'access-control-max-age': '7200',
            vary: 'origin',
            etag: '"3.1"',
          },
        }),
    );
    const crossOrigin = await admin.fetch(
      new Request(`${SITE}/api/v1/pages/draft`, {
        headers: {
          origin: 'https://www.example.com',
          'sec-fetch-site': 'same-site',
          'sec-fetch-mode': 'cors',
          'access-control-request-method': 'PUT',
          'access-control-request-headers': 'if-match',
        },
      }),
      env(api),
    );
    const sent = api.calls[0].request.headers;
    assert.equal(sent.get('origin'), null);
    assert.equal(sent.get('access-control-request-method'), null);
    assert.equal(sent.get('access-control-request-headers'), null);
    assert.equal(sent.get('sec-fetch-mode'), 'cors', 'other headers still pass');
    for (const [name] of crossOrigin.headers) {
      assert.ok(!name.startsWith('access-control-'), `${name} reached the browser`);
    }
    assert.equal(crossOrigin.headers.get('etag'), '"3.1"');

    // The site's own pages are unaffected.
    const sameOrigin = await admin.fetch(
      new Request(`${SITE}/api/v1/pages/draft`, {
        headers: { origin: SITE, 'sec-fetch-site': 'same-origin' },
      }),
      env(api),
    );
    assert.equal(sameOrigin.status, 200);
    assert.equal(await sameOrigin.text(), '{"slug":"secret-draft"}');
    assert.equal(api.calls[1].request.headers.get('origin'), null);
  });
});

describe('request id', () => {
  it("sends the edge's cf-ray on as the API's request id", async () => {
    const api = recordingBinding();
    await web.fetch(new Request(`${SITE}/api/v1/pages`, { headers: { 'cf-ray': '8a1b2c3d4e5f-AMS' } }), env(api));
    assert.equal(api.calls[0].request.headers.get('cf-ray'), '8a1b2c3d4e5f-AMS');
  });

  it('makes one when there is none, and answers with it', async () => {
    const api = recordingBinding(() => new Response('{}', { headers: { 'content-type': 'application/json' } }));
    const response = await web.fetch(new Request(`${SITE}/api/v1/pages`), env(api));
    const sent = api.calls[0].request.headers.get('cf-ray');
    assert.match(sent, /^[0-9a-f]{32}$/);
    assert.equal(response.headers.get('x-request-id'), sent);
  });
});

describe('failures answer problem documents', () => {
  it('a missing binding is a 503', async () => {
    const response = await web.fetch(new Request(`${SITE}/api/v1/pages`), env(undefined));
    assert.equal(response.status, 503);
    const body = await problemOf(response);
    assert.equal(body.type, PROBLEMS.unavailable.type);
    assert.match(body.detail, /binding/);
  });

  it('a missing secret is a 503 that does not call the API', async () => {
    const api = recordingBinding();
    const response = await web.fetch(
      new Request(`${SITE}/api/v1/pages`),
      env(api, { BINDING_SECRET: undefined }),
    );
    assert.equal(response.status, 503);
    assert.equal((await problemOf(response)).type, PROBLEMS.unavailable.type);
    assert.equal(api.calls.length, 0);
  });

  it('a binding that throws is a 502', async () => {
    const api = {
      fetch: async () => {
        throw new Error('Worker threw exception');
      },
    };
    const response = await web.fetch(new Request(`${SITE}/api/v1/pages`), env(api));
    assert.equal(response.status, 502);
    const body = await problemOf(response);
    assert.equal(body.type, PROBLEMS.badGateway.type);
    assert.doesNotMatch(body.detail, /threw/);
  });

  it('a read whose binding call throws is sent once more, and then succeeds', async () => {
    const api = recordingBinding();
    let calls = 0;
    const flaky = {
      async fetch(request) {
        calls += 1;
        if (calls === 1) throw new Error('Network connection lost.');
        return api.fetch(request);
      },
    };
    const read = await admin.fetch(new Request(`${SITE}/api/v1/pages/a`), env(flaky));
    assert.equal(read.status, 200);
    assert.deepEqual(await read.json(), { ok: true });
    assert.equal(calls, 2);
  });

  it('a read whose binding call keeps throwing is a 502 after the second try', async () => {
    let calls = 0;
    const down = {
      fetch: async () => {
        calls += 1;
        throw new Error('Network connection lost.');
      },
    };
    const response = await web.fetch(new Request(`${SITE}/api/v1/pages`), env(down));
    assert.equal(response.status, 502);
    assert.equal((await problemOf(response)).type, PROBLEMS.badGateway.type);
    assert.equal(calls, 2);
  });

  it('a write whose binding call throws is not sent again', async () => {
    let calls = 0;
    const flaky = {
      fetch: async () => {
        calls += 1;
        throw new Error('Network connection lost.');
      },
    };
    const write = await admin.fetch(
      new Request(`${SITE}/api/v1/pages/a`, { method: 'PUT', body: '{}', headers: { origin: SITE } }),
      env(flaky),
    );
    assert.equal(write.status, 502);
    assert.equal((await problemOf(write)).type, PROBLEMS.badGateway.type);
    assert.equal(calls, 1);
  });

  it('an HTTP answer is never sent again, whatever its status', async () => {
    for (const answer of [
      () => new Response('Worker exceeded resource limits', { status: 503, headers: { 'content-type': 'text/html' } }),
      () =>
        new Response('{"type":"/problems/internal","status":500}', {
          status: 500,
          headers: { 'content-type': 'application/problem+json' },
        }),
    ]) {
      const api = recordingBinding(answer);
      const response = await web.fetch(new Request(`${SITE}/api/v1/pages`), env(api));
      assert.ok(response.status >= 500, String(response.status));
      assert.equal(api.calls.length, 1);
    }
  });

  it("a blank 5xx from the platform is a 502, not retried; the API's own problems pass", async () => {
    const blank = recordingBinding(
      () => new Response('Worker exceeded resource limits', { status: 503, headers: { 'content-type': 'text/html' } }),
    );
    const response = await web.fetch(new Request(`${SITE}/api/v1/pages`), env(blank));
    assert.equal(response.status, 502);
    assert.equal((await problemOf(response)).type, PROBLEMS.badGateway.type);
    assert.equal(blank.calls.length, 1, 'not retried');

    const apiProblem = recordingBinding(
      () =>
        new Response('{"type":"/problems/unavailable","status":503}', {
          status: 503,
          headers: { 'content-type': 'application/problem+json', 'retry-after': '5' },
        }),
    );
    const passed = await web.fetch(new Request(`${SITE}/api/readyz`), env(apiProblem));
    assert.equal(passed.status, 503);
    assert.equal(passed.headers.get('retry-after'), '5');
    assert.equal(new URL(apiProblem.calls[0].request.url).pathname, '/readyz');
  });
});
