import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { AdmissionReview, KubeObject } from '../src/api/types.js';
import { DEFAULT_CHECKSUM_ANNOTATION as A } from '../src/actions/checksum/stamp-config-checksum.js';
import { loadChecksumKey } from '../src/actions/checksum/key.js';
import { ClientNodeReader } from '../src/kube/client-node-reader.js';
import { loadKubeConfig } from '../src/kube/kubeconfig.js';
import type { RunningServer } from '../src/server/server.js';
import { capturingLogger } from './support/app.js';
import { certDir, startGuardServer } from './support/guard-server.js';
import { httpsRequest } from './support/https-client.js';
import { configMap, deployment, objectPath, secret } from './support/kube-fixtures.js';
import { KubeApiServer } from './support/kube-api-server.js';
import { applyResponsePatch, decodePatch, reviewFor } from './support/review.js';

/**
 * The whole path as in a cluster: the API server sends an AdmissionReview over HTTPS to
 * gitops-guard (default rules), which reads ConfigMaps and Secrets with @kubernetes/client-node
 * from the (test) Kubernetes API and answers with a JSONPatch.
 */

let api: KubeApiServer;
let guard: RunningServer;
let ca: Buffer;
let lines: string[];

beforeAll(async () => {
  api = await KubeApiServer.start();
  const certs = certDir();
  writeFileSync(join(certs, 'checksum.key'), '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n', { mode: 0o600 });
  const kubeConfig = loadKubeConfig(api.writeKubeconfig());
  const captured = capturingLogger('debug');
  lines = captured.lines;
  ({ server: guard, ca } = await startGuardServer(
    { kube: new ClientNodeReader(kubeConfig!), settings: { checksumKey: loadChecksumKey(join(certs, 'checksum.key')) }, logger: captured.logger },
    certs,
  ));
});
afterAll(async () => {
  await guard?.shutdown();
  await api?.close();
});
beforeEach(() => {
  api.clearFaults();
  api.clearRequests();
});

async function mutate(object: KubeObject, options: Parameters<typeof reviewFor>[1] = {}, path = '/mutate?timeout=5s') {
  const res = await httpsRequest({ port: guard.port, ca, method: 'POST', path, body: JSON.stringify(reviewFor(object, options)) });
  expect(res.status).toBe(200);
  return (JSON.parse(res.body) as AdmissionReview).response!;
}

const annotationOf = (object: KubeObject) => (object as any).spec.template.metadata.annotations?.[A] as string | undefined;

describe('config checksums over HTTPS against the test API server', () => {
  it('stamps on CREATE, answers UPDATE of the admitted object without a patch, and re-stamps when config changes', async () => {
    api.put(configMap('shop', 'web-config', { 'app.yaml': 'color: blue\n', unused: '1' }));
    api.put(secret('shop', 'web-secret', { token: 'abc' }));
    const web = deployment('shop', 'web', {
      containers: [
        {
          name: 'web',
          image: 'web:1',
          env: [{ name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'web-secret', key: 'token' } } }],
          volumeMounts: [{ name: 'config', mountPath: '/etc/web' }],
        },
      ],
      volumes: [{ name: 'config', configMap: { name: 'web-config', items: [{ key: 'app.yaml', path: 'app.yaml' }] } }],
    }, { 'checksum/config': 'from-the-chart' });

    const created = await mutate(web);
    expect(created.allowed).toBe(true);
    expect(created.patchType).toBe('JSONPatch');
    const admitted = applyResponsePatch(web, created.patch);
    expect(annotationOf(admitted)).toMatch(/^v2:[0-9a-f]{64}$/);
    expect((admitted as any).spec.template.metadata.annotations['checksum/config']).toBe('from-the-chart');
    expect(api.requestsTo(objectPath('ConfigMap', 'shop', 'web-config'))).toHaveLength(1);
    expect(api.requestsTo(objectPath('Secret', 'shop', 'web-secret'))).toHaveLength(1);

    const again = await mutate(admitted, { operation: 'UPDATE', oldObject: admitted });
    expect(again.patch).toBeUndefined();
    expect(again.warnings).toBeUndefined();

    api.put(configMap('shop', 'web-config', { 'app.yaml': 'color: blue\n', unused: '2' }));
    expect((await mutate(admitted, { operation: 'UPDATE', oldObject: admitted })).patch).toBeUndefined();

    api.put(configMap('shop', 'web-config', { 'app.yaml': 'color: green\n', unused: '2' }));
    const changed = await mutate(admitted, { operation: 'UPDATE', oldObject: admitted });
    expect(decodePatch(changed.patch)).toEqual([
      { op: 'replace', path: '/spec/template/metadata/annotations/gitops-guard.dev~1config-checksum', value: expect.stringMatching(/^v2:/) },
    ]);
    expect(annotationOf(applyResponsePatch(admitted, changed.patch))).not.toBe(annotationOf(admitted));
  });

  it('answers with warnings when a required Secret is missing or the API refuses', async () => {
    api.delete('v1', 'Secret', 'shop', 'nowhere');
    const web = deployment('shop', 'needs-secret', { containers: [{ name: 'c', image: 'c:1', envFrom: [{ secretRef: { name: 'nowhere' } }] }] });
    const missing = await mutate(web);
    expect(missing.warnings).toEqual(['Secret shop/nowhere not found: pods will not start until it exists']);
    expect(annotationOf(applyResponsePatch(web, missing.patch))).toMatch(/^v2:/);

    api.put(secret('shop', 'nowhere', { a: 'b' }));
    api.fault({ path: objectPath('Secret', 'shop', 'nowhere') }, { status: 403 });
    const forbidden = await mutate(web);
    expect(forbidden.allowed).toBe(true);
    expect(forbidden.patch).toBeUndefined();
    expect(forbidden.warnings?.[0]).toContain('cannot read Secret shop/nowhere: forbidden (HTTP 403)');
  });

  it("answers within the API server's ?timeout= when the Kubernetes API hangs", async () => {
    api.put(secret('shop', 'slow', { a: 'b' }));
    api.fault({ path: objectPath('Secret', 'shop', 'slow') }, { latencyMs: 8000 });
    const web = deployment('shop', 'slow-web', { containers: [{ name: 'c', image: 'c:1', envFrom: [{ secretRef: { name: 'slow' } }] }] });
    const started = performance.now();
    // The API server waits 3 s for this call: the reads get 3 s less the answer reserve (300 ms),
    // and the answer arrives before the API server gives up.
    const response = await mutate(web, {}, '/mutate?timeout=3s');
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(2700);
    expect(elapsed).toBeLessThan(3000);
    expect(response.allowed).toBe(true);
    expect(response.patch).toBeUndefined();
    expect(response.warnings?.[0]).toMatch(/cannot read Secret shop\/slow: no answer within the admission deadline \(2700 ms\)/);
  });

  it('logs the admissions', () => {
    expect(lines.some((l) => l.includes('"rules":["stamp-config-checksum:enforce:mutated"]'))).toBe(true);
  });
});
