import { Agent } from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { AdmissionReview } from '../src/api/types.js';
import { ClientNodeReader } from '../src/kube/client-node-reader.js';
import type { RunningServer } from '../src/server/server.js';
import { capturingLogger } from './support/app.js';
import { startGuardServer } from './support/guard-server.js';
import { httpsRequest } from './support/https-client.js';
import { configMap, deployment, secret } from './support/kube-fixtures.js';
import { KubeApiServer } from './support/kube-api-server.js';
import { reviewFor } from './support/review.js';

/**
 * A slow Kubernetes API makes admissions slower, never unstamped: the checksum reads of many
 * concurrent Deployment admissions get a connection each (or wait for one without spending
 * their own timeout), and only the admission's deadline (the API server's `?timeout=`) ends them.
 */

let api: KubeApiServer;
let guard: RunningServer;
let ca: Buffer;
/** Kept-alive connections, as the API server calls webhooks (its timeout then covers no TLS handshake). */
let agent: Agent;

beforeAll(async () => {
  api = await KubeApiServer.start();
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(api.writeKubeconfig());
  ({ server: guard, ca } = await startGuardServer({ kube: new ClientNodeReader(kubeConfig), logger: capturingLogger().logger }));
  for (let i = 0; i < 50; i++) {
    api.put(configMap('slow', `env-${i}`, { LEVEL: `debug-${i}` }));
    api.put(configMap('slow', `files-${i}`, { 'app.yaml': `replicas: ${i}\n` }));
    api.put(secret('slow', `db-${i}`, { password: `pw-${i}` }));
  }
  agent = new Agent({ keepAlive: true, maxSockets: 50, ca, servername: 'gitops-guard.gitops-guard.svc' });
  await Promise.all(Array.from({ length: 50 }, () => httpsRequest({ port: guard.port, ca, path: '/readyz', agent })));
});
afterAll(async () => {
  agent?.destroy();
  await guard?.shutdown();
  await api?.close();
});
beforeEach(() => {
  api.clearFaults();
  api.clearRequests();
});

function workload(i: number) {
  return deployment('slow', `web-${i}`, {
    containers: [{ name: 'web', image: 'web:1', envFrom: [{ configMapRef: { name: `env-${i}` } }, { secretRef: { name: `db-${i}` } }], volumeMounts: [{ name: 'files', mountPath: '/etc/app' }] }],
    volumes: [{ name: 'files', configMap: { name: `files-${i}` } }],
  });
}

async function admitAll(): Promise<{ response: AdmissionReview['response']; ms: number }[]> {
  return Promise.all(
    Array.from({ length: 50 }, async (_, i) => {
      const started = performance.now();
      const answer = await httpsRequest({ port: guard.port, ca, method: 'POST', path: '/mutate?timeout=5s', body: JSON.stringify(reviewFor(workload(i))), agent });
      expect(answer.status).toBe(200);
      return { response: (JSON.parse(answer.body) as AdmissionReview).response, ms: performance.now() - started };
    }),
  );
}

describe('checksum reads against a slow API', () => {
  for (const latencyMs of [600, 1000]) {
    it(`stamps all of 50 concurrent Deployment admissions when every read takes ${latencyMs} ms`, async () => {
      api.fault({ path: /^\/api\/v1\/namespaces\/slow\// }, { latencyMs });
      for (const { response } of await admitAll()) {
        expect(response?.warnings).toBeUndefined();
        expect(response?.patchType).toBe('JSONPatch');
      }
      expect(api.requests.filter((r) => r.method === 'GET')).toHaveLength(150);
      expect(api.requests.some((r) => r.abandoned)).toBe(false);
    }, 30_000);
  }

  it('uses onError only when the API really did not answer within the admission deadline', async () => {
    api.fault({ path: /^\/api\/v1\/namespaces\/slow\/secrets\// }, { latencyMs: 6000 });
    // Answered before the API server's 5 s timeout, each naming the Secret it could not read in time.
    (await admitAll()).forEach(({ response, ms }, i) => {
      expect(ms).toBeLessThan(5000);
      expect(response?.patch).toBeUndefined();
      expect(response?.warnings?.[0]).toBe(
        `gitops-guard rule stamp-config-checksum failed (allowed without changes): cannot read Secret slow/db-${i}: no answer within the admission deadline (4500 ms)`,
      );
    });
  }, 30_000);
});
