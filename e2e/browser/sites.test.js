// The web and admin sites in headless Chromium, against the stack that
// `cargo xtask test` runs: the sites under `wrangler pages dev` (the shim
// as their `_worker.js`), their `API` service binding to the wasm Worker
// under `wrangler dev`, and MariaDB, Redis and the S3 server behind it.
// Nothing here calls a mock: the browser talks to the sites, and the
// tests check what it shows and what the API then holds.
//
// Locally there is no Access in front of the admin site; the tests add
// what Access adds to each request it lets through (a
// `Cf-Access-Jwt-Assertion` for the admin site's application) with
// Playwright's extraHTTPHeaders.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  PNG_2X3,
  accessToken,
  adminSiteToken,
  foreignKey,
  foreignOrigin,
  getPage,
  launchChromium,
  putPage,
  redis,
  screenshotOnFailure,
  spendAllowance,
  stack,
  unique,
  uniqueClient,
} from './support.js';

const { sites, api } = stack();
let browser;

before(async () => {
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
});

/** A browser context for the admin site as `email`, signed in through
 * Access (or with whatever `headers` a test sends instead). Like Access,
 * which guards the admin hostname only, the headers go on requests to the
 * admin site, not on those to storage. */
async function adminContext({ email, headers } = {}) {
  const added = headers ?? { 'cf-access-jwt-assertion': adminSiteToken(email) };
  const context = await browser.newContext();
  await context.route(`${sites.admin.url}/**`, (route) =>
    route.continue({ headers: { ...route.request().headers(), ...added } }),
  );
  return context;
}

/** Opens the admin editor for `slug` in a new tab of `context`. */
async function openEditor(context, slug) {
  const page = await context.newPage();
  await page.goto(sites.admin.url);
  await page.fill('#slug', slug);
  await page.click('#load');
  await page.waitForSelector('#edit-form:not([hidden])');
  return page;
}

describe('web', () => {
  it('lists pages and opens one, fetched through the binding', async (t) => {
    const slug = unique('browser-web-');
    const title = `Browser page ${slug}`;
    await putPage(slug, { title, body: 'First paragraph.\n\nSecond paragraph.' });
    const context = await browser.newContext();
    await screenshotOnFailure(t, context, async () => {
      const page = await context.newPage();
      const apiCalls = [];
      page.on('response', (response) => {
        if (response.url().includes('/v1/')) apiCalls.push(response);
      });
      await page.goto(sites.web.url);
      const link = page.locator(`a[data-slug="${slug}"]`);
      // Other suites leave pages behind: page through the listing.
      await page.waitForSelector('#pages li');
      while ((await link.count()) === 0) {
        const shown = await page.locator('#pages li').count();
        assert.ok(await page.isVisible('#more'), `${slug} is not listed`);
        await page.click('#more');
        await page.waitForFunction((n) => document.querySelectorAll('#pages li').length > n, shown);
      }
      assert.equal(await link.textContent(), title);
      await link.click();
      await page.waitForSelector('#page:not([hidden])');
      assert.equal(await page.textContent('#page-title'), title);
      assert.deepEqual(await page.locator('#page-body p').allTextContents(), [
        'First paragraph.',
        'Second paragraph.',
      ]);
      assert.match(await page.textContent('#page-meta'), /revision 1 by setup@example.com/);
      // Both came from the site's own origin, answered by the API (its
      // request id and server-timing), not from the API's public URL.
      assert.ok(apiCalls.length >= 2, `API calls: ${apiCalls.map((r) => r.url())}`);
      for (const response of apiCalls) {
        assert.ok(response.url().startsWith(`${sites.web.url}/api/v1/pages`), response.url());
        assert.equal(response.status(), 200);
        const headers = await response.allHeaders();
        assert.match(headers['x-request-id'] ?? '', /^\S+$/);
        assert.match(headers['server-timing'] ?? '', /total;dur=/);
      }
    });
    await context.close();
  });

  it('shows the API problem for a page that does not exist, with its request id', async (t) => {
    const context = await browser.newContext();
    await screenshotOnFailure(t, context, async () => {
      const page = await context.newPage();
      const slug = unique('missing-');
      const [missing] = await Promise.all([
        page.waitForResponse((r) => r.url().endsWith(`/api/v1/pages/${slug}`)),
        page.goto(`${sites.web.url}/#/pages/${slug}`),
      ]);
      assert.equal(missing.status(), 404);
      const id = await missing.headerValue('x-request-id');
      assert.match(id ?? '', /^\S+$/);
      await page.waitForSelector('#status.error');
      const shown = await page.textContent('#status');
      assert.match(shown, /^Not found: /);
      assert.ok(shown.endsWith(`(request ${id})`), shown);
    });
    await context.close();
  });
});

describe('admin', () => {
  it('saves an edit, then refuses a save over a newer revision (412) and says so', async (t) => {
    const slug = unique('browser-admin-');
    await putPage(slug, { title: 'Original', body: 'original body' });
    const context = await adminContext({ email: 'editor@example.com' });
    await screenshotOnFailure(t, context, async () => {
      const first = await openEditor(context, slug);
      const second = await openEditor(context, slug);
      assert.match(await first.textContent('#whoami'), /signed in as editor@example.com/);

      // The second tab saves first ...
      await second.fill('#body', 'saved by the second tab');
      await second.click('#save');
      await second.waitForSelector('#edit-status:has-text("Saved revision 2.")');

      // ... so the first tab's save, based on revision 1, is refused.
      await first.fill('#body', 'saved by the first tab');
      const [refused] = await Promise.all([
        first.waitForResponse((r) => r.url().endsWith(`/api/v1/pages/${slug}`) && r.request().method() === 'PUT'),
        first.click('#save'),
      ]);
      assert.equal(refused.status(), 412);
      await first.waitForSelector('#edit-status.error');
      assert.match(await first.textContent('#edit-status'), /someone else saved this page after you loaded it/);

      const stored = await getPage(slug);
      assert.equal(stored.body.revision, 2);
      assert.equal(stored.body.body, 'saved by the second tab');
      // The API recorded the Access identity that came through the shim.
      assert.equal(stored.body.author, 'editor@example.com');

      // Loading again picks up revision 2, and then the save goes through.
      await first.click('#load');
      await first.waitForSelector('#revision:has-text("revision 2")');
      await first.fill('#body', 'merged by the first tab');
      await first.click('#save');
      await first.waitForSelector('#edit-status:has-text("Saved revision 3.")');
      assert.equal((await getPage(slug)).body.body, 'merged by the first tab');
    });
    await context.close();
  });

  it('uploads a file with the presigned URL into the S3 server and downloads it', async (t) => {
    const context = await adminContext({ email: 'uploader@example.com' });
    await screenshotOnFailure(t, context, async () => {
      const page = await context.newPage();
      const storage = [];
      page.on('response', (response) => {
        if (response.url().startsWith(stack().s3.endpoint)) storage.push(response);
      });
      await page.goto(sites.admin.url);
      const name = `${unique('pixel-')}.png`;
      await page.setInputFiles('#file', { name, mimeType: 'image/png', buffer: PNG_2X3 });
      await page.click('#upload');
      await page.waitForSelector('#uploaded:not([hidden])');
      assert.equal(await page.textContent('#upload-status'), `Uploaded ${name}.`);

      // The file went from the browser straight to the S3 server.
      const put = storage.find((r) => r.request().method() === 'PUT');
      assert.ok(put, `no PUT to ${stack().s3.endpoint}`);
      assert.equal(put.status(), 200);

      // The preview is the file itself, fetched by the browser through
      // the API's redirect to a presigned GET.
      await page.waitForFunction(() => document.getElementById('preview').naturalWidth > 0);
      const size = await page.evaluate(() => {
        const img = document.getElementById('preview');
        return [img.naturalWidth, img.naturalHeight];
      });
      assert.deepEqual(size, [2, 3]);

      const href = await page.getAttribute('#download', 'href');
      assert.match(href, /^\/api\/v1\/files\/[0-9a-f]{32}$/);
      const download = await context.newPage();
      const response = await download.goto(`${sites.admin.url}${href}`);
      assert.ok(response.url().startsWith(stack().s3.endpoint), response.url());
      assert.deepEqual(Buffer.from(await response.body()), PNG_2X3);
    });
    await context.close();
  });
});

describe('trust', () => {
  it('an Access token signed with a key the team never published is refused, and changes nothing', async (t) => {
    const slug = unique('browser-forged-');
    await putPage(slug, { title: 'Guarded', body: 'unchanged' });
    const context = await adminContext({
      headers: {
        // Right team key id, wrong key: a token anyone could make.
        'cf-access-jwt-assertion': accessToken({
          email: 'admin@example.com',
          aud: stack().access.binding_aud,
          key: foreignKey(),
        }),
      },
    });
    await screenshotOnFailure(t, context, async () => {
      const page = await openEditor(context, slug);
      await page.waitForSelector('#whoami.error');
      assert.match(await page.textContent('#whoami'), /^Authentication is required/);
      await page.fill('#body', 'forged change');
      const [refused] = await Promise.all([
        page.waitForResponse((r) => r.request().method() === 'PUT'),
        page.click('#save'),
      ]);
      assert.equal(refused.status(), 401);
      assert.equal((await refused.json()).type, '/problems/unauthorized');
      await page.waitForSelector('#edit-status.error');
      assert.equal((await getPage(slug)).body.body, 'unchanged');
    });
    await context.close();
  });

  it("the browser's binding token is replaced by the shim's secret", async (t) => {
    const context = await adminContext({
      headers: {
        'cf-access-jwt-assertion': adminSiteToken('real-user@example.com'),
        'x-api-binding-token': 'not-the-secret',
      },
    });
    await screenshotOnFailure(t, context, async () => {
      const page = await context.newPage();
      await page.goto(sites.admin.url);
      const me = await page.evaluate(async () => (await fetch('/api/v1/admin/whoami')).json());
      assert.equal(me.email, 'real-user@example.com');
      // Proven by the shim's secret, not the browser's bogus one (which
      // the API would have refused with 403).
      assert.equal(me.via, 'binding');
    });
    await context.close();
  });

  it("the public site does not pass an admin's token on", async (t) => {
    const context = await browser.newContext({
      extraHTTPHeaders: { 'cf-access-jwt-assertion': adminSiteToken('admin@example.com') },
    });
    await screenshotOnFailure(t, context, async () => {
      const page = await context.newPage();
      await page.goto(sites.web.url);
      const status = await page.evaluate(async () => (await fetch('/api/v1/admin/whoami')).status);
      assert.equal(status, 401);
    });
    await context.close();
  });

  it('neither site passes the CF_Authorization cookie on, even with a valid token in it', async (t) => {
    const token = adminSiteToken('cookie-user@example.com');
    const slug = unique('browser-cookie-');
    // The token is one the API accepts from its cookie through the
    // binding: if a site passed the cookie on, the calls below would be
    // let in.
    const direct = await fetch(`${api.url}/v1/admin/whoami`, {
      headers: { 'x-api-binding-token': api.binding_secret, cookie: `CF_Authorization=${token}` },
    });
    const body = await direct.text();
    assert.equal(direct.status, 200, body);
    assert.equal(JSON.parse(body).email, 'cookie-user@example.com');

    // No Access header on either site: only the cookie, as a browser
    // that once went through Access carries it.
    const context = await browser.newContext();
    await context.addCookies(
      [sites.web.url, sites.admin.url].map((url) => ({ name: 'CF_Authorization', value: token, url })),
    );
    await screenshotOnFailure(t, context, async () => {
      for (const site of [sites.web, sites.admin]) {
        const page = await context.newPage();
        await page.goto(site.url);
        const answer = await page.evaluate(async (slug) => {
          const whoami = await fetch('/api/v1/admin/whoami');
          const write = await fetch(`/api/v1/pages/${slug}`, {
            method: 'PUT',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ title: 'via a cookie', body: 'must not be saved' }),
          });
          return { cookie: document.cookie.includes('CF_Authorization='), whoami: whoami.status, write: write.status };
        }, slug);
        assert.deepEqual(answer, { cookie: true, whoami: 401, write: 401 }, site.url);
      }
    });
    await context.close();
    assert.equal((await getPage(slug)).status, 404);
  });

  it('a client address the browser claims is not the one the API counts its requests by', async (t) => {
    // The API keys its rate limits by the address the shim forwards. Two
    // addresses that have spent their allowance: a request counted against
    // either is refused (429).
    const claimed = uniqueClient('read');
    const control = uniqueClient('read');
    await spendAllowance(claimed.key);
    await spendAllowance(control.key);
    const context = await browser.newContext({ extraHTTPHeaders: { 'x-api-client-ip': claimed.ip } });
    try {
      // What the shim forwards is what the API counts by ...
      const direct = await fetch(`${api.url}/v1/pages?limit=1`, {
        headers: { 'x-api-binding-token': api.binding_secret, 'x-api-client-ip': control.ip },
      });
      assert.equal(direct.status, 429);
      // ... and the address the browser claims is not forwarded.
      await screenshotOnFailure(t, context, async () => {
        for (const site of [sites.web, sites.admin]) {
          const page = await context.newPage();
          await page.goto(site.url);
          const status = await page.evaluate(async () => (await fetch('/api/v1/pages?limit=1')).status);
          assert.equal(status, 200, site.url);
        }
      });
    } finally {
      await context.close();
      await redis(['DEL', claimed.key, control.key]);
    }
  });
});

describe('cors', () => {
  it('a foreign origin cannot call the API directly; the same request through the shim works', async (t) => {
    const elsewhere = await foreignOrigin();
    assert.ok(!api.allowed_origins.includes(elsewhere.url));
    const context = await browser.newContext();
    await screenshotOnFailure(t, context, async () => {
      const page = await context.newPage();
      await page.goto(elsewhere.url);
      const direct = await page.evaluate(async (url) => {
        try {
          const response = await fetch(url);
          return `answered ${response.status}`;
        } catch (error) {
          return `${error.name}: ${error.message}`;
        }
      }, `${api.url}/v1/pages`);
      assert.equal(direct, 'TypeError: Failed to fetch');

      // The API did answer (CORS is the browser's refusal to hand the
      // answer to this page): a request without the Origin shows it.
      assert.equal((await fetch(`${api.url}/v1/pages`)).status, 200);

      const site = await context.newPage();
      await site.goto(sites.web.url);
      const throughShim = await site.evaluate(async () => {
        const response = await fetch('/api/v1/pages');
        return { status: response.status, items: Array.isArray((await response.json()).items) };
      });
      assert.deepEqual(throughShim, { status: 200, items: true });

      // And the site's own origin, which the API allows, may call the
      // API's URL directly: the refusal above is about the origin.
      const allowed = await site.evaluate(async (url) => (await fetch(url)).status, `${api.url}/v1/pages`);
      assert.equal(allowed, 200);
    });
    await context.close();
    await elsewhere.close();
  });
});
