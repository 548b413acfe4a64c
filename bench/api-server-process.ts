import type { Server } from 'node:https';
import { createInterface } from 'node:readline';
import { KubeApiServer } from '../test/support/kube-api-server.js';
import { checksumApiObjects } from './scenarios.js';
import { summarize } from './stats.js';

/**
 * The test Kubernetes API server (test/support/kube-api-server.ts) in its own process, holding
 * the ConfigMaps and Secrets scenario 2 reads.
 *
 * Prints {"url","kubeconfig","objects"} on stdout once listening. Reads commands on stdin, one
 * per line: `stats` prints {"stats":{requests, connections, unauthorized, serviceMs}} for the
 * requests (and new TLS connections) since the previous `stats` and starts a new window. Exits 0 on SIGTERM (the
 * kubeconfig is removed).
 */

const api = await KubeApiServer.start();
const objects = checksumApiObjects();
for (const object of objects) api.put(object);
const kubeconfig = api.writeKubeconfig();

// Service time (request in to response flushed) inside this process, to show the API side
// stays fast while the webhook is measured. The request log is trimmed so a soak does not grow it.
const server = Reflect.get(api, 'server') as Server;
let serviceMs: number[] = [];
let unauthorized = 0;
let connections = 0;
server.on('secureConnection', () => connections++);
server.prependListener('request', (req, res) => {
  const started = process.hrtime.bigint();
  if (req.headers.authorization === undefined) unauthorized++;
  res.once('finish', () => serviceMs.push(Number(process.hrtime.bigint() - started) / 1e6));
});
setInterval(() => api.clearRequests(), 1000).unref();

process.stdout.write(`${JSON.stringify({ url: api.url, kubeconfig, objects: objects.length })}\n`);

createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() !== 'stats') return;
  const window = serviceMs;
  serviceMs = [];
  const summary = summarize(window);
  process.stdout.write(`${JSON.stringify({ stats: { requests: window.length, connections, unauthorized, serviceMs: summary } })}\n`);
  unauthorized = 0;
  connections = 0;
});

process.once('SIGTERM', () => {
  void api.close().then(() => process.exit(0));
});
