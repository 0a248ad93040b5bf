// The CORS rules of the local "B2" bucket. Backblaze B2 applies per-bucket
// CORS rules to its S3 API, which is what lets the admin site PUT a file
// to a presigned URL and show it afterwards; s3s-fs, the local S3 server,
// has no CORS at all. This front answers preflights and adds the CORS
// response headers as B2 does for a bucket whose rules allow the given
// origins, and passes every request and answer through unchanged
// otherwise: the same method, path, query, headers (Host included, so
// SigV4 signatures still verify at s3s-fs) and streamed bodies.
//
// node b2-cors-front.mjs --listen PORT --upstream PORT --origins a,b

import http from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    listen: { type: 'string' },
    upstream: { type: 'string' },
    origins: { type: 'string', default: '' },
  },
});
const listenPort = Number(values.listen);
const upstreamPort = Number(values.upstream);
const allowedOrigins = new Set(values.origins.split(',').filter(Boolean));

/** What the bucket's rule allows, as B2's `corsRules` would say it. */
const ALLOWED_METHODS = ['GET', 'HEAD', 'PUT'];
const ALLOWED_HEADERS = ['content-type', 'content-length', 'content-md5', 'content-disposition'];
const EXPOSED_HEADERS = ['etag', 'x-amz-request-id'];
const MAX_AGE_SECS = '3600';

function corsHeaders(origin) {
  return {
    'access-control-allow-origin': origin,
    'access-control-expose-headers': EXPOSED_HEADERS.join(', '),
    vary: 'Origin',
  };
}

function preflight(request, response) {
  const origin = request.headers.origin;
  const method = request.headers['access-control-request-method'];
  const asked = (request.headers['access-control-request-headers'] ?? '')
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter(Boolean);
  const allowed =
    allowedOrigins.has(origin) &&
    ALLOWED_METHODS.includes(method) &&
    asked.every((h) => ALLOWED_HEADERS.includes(h) || h.startsWith('x-amz-meta-'));
  if (!allowed) {
    // S3's answer to a preflight no rule matches.
    response.writeHead(403, { 'content-type': 'application/xml' });
    response.end(
      '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessForbidden</Code>' +
        '<Message>CORSResponse: This CORS request is not allowed.</Message></Error>',
    );
    return;
  }
  response.writeHead(200, {
    ...corsHeaders(origin),
    'access-control-allow-methods': ALLOWED_METHODS.join(', '),
    'access-control-allow-headers': asked.join(', '),
    'access-control-max-age': MAX_AGE_SECS,
  });
  response.end();
}

const server = http.createServer((request, response) => {
  if (request.method === 'OPTIONS' && request.headers['access-control-request-method']) {
    preflight(request, response);
    return;
  }
  // S3 servers answer a bad signature before reading the body and then
  // close the connection; a client that is still sending sees the
  // connection reset before it reads the answer. Asking for
  // `100 Continue` (hop-by-hop, outside the signature) lets the S3 server
  // refuse before the body is sent, as it would to a client that streams.
  const hasBody =
    Number(request.headers['content-length'] ?? 0) > 0 || 'transfer-encoding' in request.headers;
  const headers = { ...request.headers };
  if (hasBody) {
    headers.expect = '100-continue';
  }
  let bodySent = false;
  const upstream = http.request({
    host: '127.0.0.1',
    port: upstreamPort,
    method: request.method,
    path: request.url,
    headers,
  });
  upstream.on('continue', () => {
    bodySent = true;
    request.pipe(upstream);
  });
  upstream.on('response', (answer) => {
    const headers = { ...answer.headers };
    const origin = request.headers.origin;
    if (origin && allowedOrigins.has(origin)) {
      Object.assign(headers, corsHeaders(origin));
    }
    response.writeHead(answer.statusCode, answer.statusMessage, headers);
    answer.pipe(response);
    if (hasBody && !bodySent) {
      // Refused before the body: this connection cannot carry another
      // request; the client's unsent body is drained by the server.
      answer.on('end', () => upstream.destroy());
    }
  });
  upstream.on('error', (error) => {
    if (!response.headersSent) {
      response.writeHead(502, { 'content-type': 'text/plain' });
      response.end(`the S3 server did not answer: ${error.message}`);
    } else {
      response.destroy(error);
    }
  });
  if (!hasBody) {
    upstream.end();
  }
});

server.keepAliveTimeout = 5000;
server.listen(listenPort, '127.0.0.1', () => {
  console.log(`b2 CORS front on 127.0.0.1:${listenPort} -> 127.0.0.1:${upstreamPort}`);
});
// Open keep-alive connections would hold a graceful close up; nothing
// here needs draining.
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
