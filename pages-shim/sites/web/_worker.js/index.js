// The web site (public): /api/* to the API through the `API` binding,
// without any identity (see shim.js, a copy of pages-shim/src/shim.js).
import { pagesShim } from './shim.js';

export default pagesShim({ forwardAccessIdentity: false });
