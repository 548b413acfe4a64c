import type { Server } from 'node:https';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { loadChecksumKey } from '../src/actions/checksum/key.js';
import { KubeApiServer } from '../test/support/kube-api-server.js';
import { SCANNED_CLUSTER_RESOURCES } from '../test/support/kube-store.js';
import { checksumApiObjects, controllerScanObjects, controllerWorkloads, reportCrds } from './scenarios.js';
import { summarize } from './stats.js';

/**
 * The test Kubernetes API server (test/support/kube-api-server.ts) in its own process, holding
 * the ConfigMaps and Secrets scenario 2 reads, or (with --controller-workloads N) N stamped
 * workloads with the ConfigMap and the Secret each consumes, for the controller scenario.
 *
 * Prints {"url","kubeconfig","objects"} on stdout once listening. Reads commands on stdin, one
 * per line: `stats` prints {"stats":{requests, connections, unauthorized, serviceMs}} for the
 * requests (and new TLS connections) since the previous `stats` and starts a new window;
 * `change N` changes a key of the first N workloads' ConfigMaps and prints {"changed":N}.
 * Exits 0 on SIGTERM (the kubeconfig is removed).
 */

const { values } = parseArgs({ options: { 'controller-workloads': { type: 'string' }, 'checksum-key': { type: 'string' } } });
const workloads = Number(values['controller-workloads'] ?? 0);

// The controller scenario's change burst and the patches it causes must not expire the watch history.
// The controller scenario's cluster is an Argo CD cluster with the policy report CRDs, so the
// leader's cluster scan and report writes run as they would there.
const api = await KubeApiServer.start({ historyLimit: 100_000, ...(workloads > 0 ? { resources: SCANNED_CLUSTER_RESOURCES } : {}) });
const objects = workloads > 0 ? await controllerWorkloads(workloads, loadChecksumKey(values['checksum-key']!)) : checksumApiObjects();
if (workloads > 0) for (const crd of reportCrds()) api.put(crd);
for (const object of objects) api.put(object);
if (workloads > 0) for (const object of controllerScanObjects(objects)) api.put(object);
const configMaps = new Map(objects.filter((o) => o.kind === 'ConfigMap').map((o) => [o.metadata!.name!, o]));
const kubeconfig = api.writeKubeconfig();

// Service time (request in to response flushed) inside this process, to show the API side
// stays fast while the webhook is measured. The request log is trimmed so a soak does not grow it.
const server = Reflect.get(api, 'server') as Server;
// kube-apiserver keeps idle connections for 90 s (k8s.io/apiserver's secure serving: IdleTimeout
// 90 s) and sends no Keep-Alive hint; Node's default (5 s, announced as `Keep-Alive: timeout=5`)
// would make the webhook's reader drop and re-open connections between bursts as no real API
// server does.
server.keepAliveTimeout = 90_000;
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
  const [command, argument] = line.trim().split(/\s+/);
  if (command === 'change') {
    const count = Number(argument);
    for (let i = 0; i < count; i++) {
      const config = configMaps.get(`app-config-${i}`)!;
      api.put({ ...config, data: { ...(config['data'] as Record<string, string>), LOG_LEVEL: `changed-${Date.now()}` } });
    }
    process.stdout.write(`${JSON.stringify({ changed: count })}\n`);
    return;
  }
  if (command !== 'stats') return;
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
