// Each site directory must contain everything it ships (the deploy tool
// decides whether to upload a site by hashing its directory), so each has
// a copy of src/shim.js. This fails when a copy drifts from the source;
// `node pages-shim/sync.js` rewrites the copies.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { it } from 'node:test';

import { shimCopies, SOURCE } from '../sync.js';

it('every site ships exactly the shared shim', () => {
  const source = readFileSync(SOURCE, 'utf8');
  const copies = shimCopies();
  assert.deepEqual(
    copies.map((c) => c.site).sort(),
    ['admin', 'web'],
  );
  for (const { site, path } of copies) {
    assert.equal(
      readFileSync(path, 'utf8'),
      source,
      `${path} differs from pages-shim/src/shim.js: run \`node pages-shim/sync.js\``,
    );
  }
});

it('only the admin site forwards the Access identity', async () => {
  for (const site of readdirSync(new URL('../sites', import.meta.url))) {
    const entry = readFileSync(new URL(`../sites/${site}/_worker.js/index.js`, import.meta.url), 'utf8');
    const forwards = /forwardAccessIdentity:\s*true/.test(entry);
    assert.equal(forwards, site === 'admin', `${site}/_worker.js/index.js`);
  }
});
