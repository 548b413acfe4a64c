import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';

/**
 * The floor for any Node.js webhook: a bare node:https server with the same certificate and
 * keep-alive settings as gitops-guard, which reads each request body in full and answers a fixed
 * allowed AdmissionReview. No JSON parsing, no framework, no logging.
 *
 * Usage: node baseline-server.js --tls-cert FILE --tls-key FILE [--port N]
 * Prints {"port":N} on stdout once listening; exits 0 on SIGTERM.
 */

const { values } = parseArgs({
  options: { 'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' }, port: { type: 'string', default: '0' } },
});
if (!values['tls-cert'] || !values['tls-key']) {
  process.stderr.write('baseline-server: --tls-cert and --tls-key are required\n');
  process.exit(2);
}

const ANSWER = Buffer.from(
  JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: '00000000-0000-4000-8000-000000000000', allowed: true } }),
);
const HEADERS = { 'content-type': 'application/json', 'content-length': String(ANSWER.length) };

const server = createServer({ cert: readFileSync(values['tls-cert']), key: readFileSync(values['tls-key']), minVersion: 'TLSv1.2' }, (req, res) => {
  let bytes = 0;
  req.on('data', (chunk: Buffer) => (bytes += chunk.length));
  req.on('end', () => {
    if (req.method !== 'POST' || bytes === 0) {
      res.writeHead(400).end();
      return;
    }
    res.writeHead(200, HEADERS).end(ANSWER);
  });
});
server.keepAliveTimeout = 60_000;
server.headersTimeout = 65_000;

server.listen(Number(values.port), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});

process.once('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
