// Copies src/shim.js into every site's `_worker.js/` directory, so that
// each site directory is complete by itself (see README.md). Run it after
// editing src/shim.js: `node pages-shim/sync.js`.

import { copyFileSync, existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const SOURCE = fileURLToPath(new URL('./src/shim.js', import.meta.url));
const SITES = fileURLToPath(new URL('./sites', import.meta.url));

/** Every site that runs the shim, with the path of its copy. */
export function shimCopies() {
  return readdirSync(SITES)
    .filter((site) => existsSync(`${SITES}/${site}/_worker.js/index.js`))
    .map((site) => ({ site, path: `${SITES}/${site}/_worker.js/shim.js` }));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const { path } of shimCopies()) {
    copyFileSync(SOURCE, path);
    console.log(`wrote ${path}`);
  }
}
