// Each site directory must ship everything it runs (the deploy tool decides
// whether to upload a site by hashing its directory, and wrangler uploads
// that directory), so each site's `_worker.js/shim.js` is a symbolic link
// to the one source, src/shim.js: followed when hashed and when bundled.

import assert from 'node:assert/strict';
import { lstatSync, readFileSync, readdirSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';

const SOURCE = fileURLToPath(new URL('../src/shim.js', import.meta.url));
const SITES = fileURLToPath(new URL('../sites', import.meta.url));

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
