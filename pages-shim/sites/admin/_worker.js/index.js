// The admin site (behind Cloudflare Access): /api/* to the API through the
// `API` binding, with the Access token that Access put on the request (see
// shim.js, a link to pages-shim/src/shim.js).
import { pagesShim } from './shim.js';

export default pagesShim({ forwardAccessIdentity: true });
