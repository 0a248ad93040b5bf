// The web site (public): /api/* to the API through the `API` binding,
// without any identity (see shim.js, a link to pages-shim/src/shim.js).
import { pagesShim } from './shim.js';

export default pagesShim({ forwardAccessIdentity: false });
