import type { IncomingMessage } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientNodeObjectReader, objectPath } from './objects.js';
import { testTls } from '../../test/support/tls.js';

describe('objectPath', () => {
  it('builds core, group, namespaced and cluster-scoped paths', () => {
    expect(objectPath({ apiVersion: 'v1', kind: 'ConfigMap', plural: 'configmaps', namespace: 'ns', name: 'c' })).toBe('/api/v1/namespaces/ns/configmaps/c');
    expect(objectPath({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', plural: 'clusterroles', name: 'system:x' })).toBe(
      '/apis/rbac.authorization.k8s.io/v1/clusterroles/system%3Ax',
    );
  });
});

describe('ClientNodeObjectReader', () => {
  let server: Server;
  const seen: { url: string; auth: string | undefined }[] = [];
  let reader: ClientNodeObjectReader;

  beforeAll(async () => {
    const tls = testTls();
    server = createServer({ cert: tls.certPem, key: tls.keyPem }, (request: IncomingMessage, response) => {
      seen.push({ url: request.url ?? '', auth: request.headers.authorization });
      const send = (status: number, body: unknown) => {
        response.writeHead(status, { 'content-type': 'application/json' });
        response.end(JSON.stringify(body));
      };
      switch (request.url) {
        case '/prefix/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/present':
          return send(200, { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'present', uid: 'u1' } });
        case '/prefix/api/v1/namespaces/ns/secrets/locked':
          return send(403, { kind: 'Status', reason: 'Forbidden', message: 'secrets "locked" is forbidden: top-secret-detail' });
        case '/prefix/api/v1/namespaces/ns/configmaps/slow':
          return void setTimeout(() => send(200, {}), 2000);
        default:
          return send(404, { kind: 'Status', reason: 'NotFound' });
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromOptions({
      clusters: [{ name: 'test', server: `https://127.0.0.1:${port}/prefix`, caData: Buffer.from(tls.caPem).toString('base64'), skipTLSVerify: false }],
      users: [{ name: 'test', token: 'test-token' }],
      contexts: [{ name: 'test', cluster: 'test', user: 'test' }],
      currentContext: 'test',
    });
    reader = new ClientNodeObjectReader(kubeConfig, 300);
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('reads a live object with the kubeconfig credentials', async () => {
    const object = await reader.read({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', plural: 'clusterrolebindings', name: 'present' });
    expect(object).toMatchObject({ metadata: { name: 'present', uid: 'u1' } });
    expect(seen.at(-1)).toEqual({ url: '/prefix/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/present', auth: 'Bearer test-token' });
  });

  it('answers null for 404', async () => {
    await expect(reader.read({ apiVersion: 'v1', kind: 'ConfigMap', plural: 'configmaps', namespace: 'ns', name: 'absent' })).resolves.toBeNull();
  });

  it('fails with the status and reason only, never the response body', async () => {
    const error = await reader.read({ apiVersion: 'v1', kind: 'Secret', plural: 'secrets', namespace: 'ns', name: 'locked' }).catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toBe('HTTP 403 Forbidden');
  });

  it('gives up after its timeout', async () => {
    await expect(reader.read({ apiVersion: 'v1', kind: 'ConfigMap', plural: 'configmaps', namespace: 'ns', name: 'slow' })).rejects.toThrow('no answer within 300 ms');
  });
});
