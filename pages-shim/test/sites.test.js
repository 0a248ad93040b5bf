// Each site directory must ship everything it runs (the deploy tool decides
// whether to upload a site by hashing its directory, and wrangler uploads
// that directory), so what the sites share is linked in, not copied: each
// site's `_worker.js/shim.js` is a symbolic link to the one source,
// src/shim.js (followed when hashed and when bundled), and each site's
// `common/` is a symbolic link to sites-common/ (the stylesheet and the
// scripts' shared code, followed when hashed, uploaded and served).

import assert from 'node:assert/strict';
import { lstatSync, readFileSync, readdirSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';

const SOURCE = fileURLToPath(new URL('../src/shim.js', import.meta.url));
const SITES = fileURLToPath(new URL('../sites', import.meta.url));
const COMMON = fileURLToPath(new URL('../sites-common', import.meta.url));

/** Every path under `dir` (relative, not following links), with its lstat. */
function walk(dir, prefix = '') {
  return readdirSync(`${dir}/${prefix}`).flatMap((name) => {
    const relative = prefix ? `${prefix}/${name}` : name;
    const stat = lstatSync(`${dir}/${relative}`);
    return stat.isDirectory() ? walk(dir, relative) : [{ relative, stat }];
  });
}

it('every site runs the one shared shim', () => {
  const sites = readdirSync(SITES).sort();
  assert.deepEqual(sites, ['admin', 'web']);
  for (const site of sites) {
    const path = `${SITES}/${site}/_worker.js/shim.js`;
    assert.ok(lstatSync(path).isSymbolicLink(), `${path} is a link to src/shim.js`);
    assert.equal(realpathSync(path), realpathSync(SOURCE));
  }
});

it('only the admin site forwards the Access identity', async () => {
  for (const site of readdirSync(new URL('../sites', import.meta.url))) {
    const entry = readFileSync(new URL(`../sites/${site}/_worker.js/index.js`, import.meta.url), 'utf8');
    const forwards = /forwardAccessIdentity:\s*true/.test(entry);
    assert.equal(forwards, site === 'admin', `${site}/_worker.js/index.js`);
  }
});

it('every site links the one shared directory, and copies nothing of it', () => {
  const shared = readdirSync(COMMON).sort();
  assert.deepEqual(shared, ['failure.js', 'style.css']);
  for (const site of readdirSync(SITES)) {
    const dir = `${SITES}/${site}`;
    const link = `${dir}/common`;
    assert.ok(lstatSync(link).isSymbolicLink(), `${link} is a link to sites-common/`);
    assert.equal(realpathSync(link), realpathSync(COMMON));
    for (const { relative, stat } of walk(dir)) {
      if (relative === 'common' || relative === '_worker.js/shim.js') continue;
      // `wrangler pages dev` does not serve a static file that is itself a
      // link (only files inside a linked directory), hence `common/`.
      assert.ok(!stat.isSymbolicLink(), `${site}/${relative}: share it through common/`);
      const name = relative.split('/').pop();
      assert.ok(!shared.includes(name), `${site}/${relative} copies sites-common/${name}`);
    }
  }
});

it('every site uses the shared stylesheet and failure message', () => {
  for (const site of readdirSync(SITES)) {
    const dir = `${SITES}/${site}`;
    const html = readFileSync(`${dir}/index.html`, 'utf8');
    assert.match(html, /href="\/common\/style\.css"/, `${site}/index.html`);
    const script = html.match(/<script type="module" src="\/([^"]+)">/)[1];
    const code = readFileSync(`${dir}/${script}`, 'utf8');
    assert.match(code, /import \{ describeFailure \} from '\.\/common\/failure\.js';/, `${site}/${script}`);
    assert.doesNotMatch(code, /function describeFailure/, `${site}/${script}`);
  }
});
