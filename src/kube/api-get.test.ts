import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generateClientCertificates } from '../certs/generate.js';
import { configMap, objectPath, secret } from '../../test/support/kube-fixtures.js';
import { KubeApiServer } from '../../test/support/kube-api-server.js';
import { rejectionOf } from '../../test/support/rejection.js';
import { kubeconfigYaml } from '../../test/support/kubeconfig.js';
import { testTls } from '../../test/support/tls.js';
import { ApiGetClient, type ApiAnswer } from './api-get.js';
import { KubeApiError } from './errors.js';

/**
 * ApiGetClient, the webhook's direct GETs, over real HTTPS against the test API server with
 * kubeconfigs loaded by @kubernetes/client-node: answers come back as status and bytes for the
 * caller to classify (ClientNodeReader), failures without an answer as KubeApiErrors.
 */

const client = generateClientCertificates({ service: 'gitops-guard', namespace: 'gitops-guard', days: 1 });
let api: KubeApiServer;
let get: ApiGetClient;
const clients: ApiGetClient[] = [];
const LIMIT = 1024 * 1024;

function clientFor(kubeConfigYaml: string): ApiGetClient {
  const kc = new KubeConfig();
  kc.loadFromString(kubeConfigYaml);
  const made = new ApiGetClient(kc);
  clients.push(made);
  return made;
}

const b64 = (pem: string) => Buffer.from(pem).toString('base64');

/** A kubeconfig whose user is a client certificate and key (no token). */
function certificateKubeconfig(server: string, caPem: string, cert: { certPem: string; keyPem: string }): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c', cluster: { server, 'certificate-authority-data': b64(caPem) } }],
    users: [{ name: 'u', user: { 'client-certificate-data': b64(cert.certPem), 'client-key-data': b64(cert.keyPem) } }],
    contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
    'current-context': 'x',
  });
}

const json = (answer: ApiAnswer) => JSON.parse(answer.body.toString('utf8')) as Record<string, any>;
const never = () => new AbortController().signal;

const rejection = (promise: Promise<unknown>): Promise<KubeApiError> => rejectionOf(promise, KubeApiError);

beforeAll(async () => {
  api = await KubeApiServer.start({ clientCaPem: client.clientCaPem });
  get = clientFor(kubeconfigYaml({ server: api.url, caPem: api.caPem, token: api.token }));
});
afterAll(async () => {
  for (const made of clients) made.destroy();
  await api.close();
});
beforeEach(() => {
  api.clearFaults();
  api.clearRequests();
  api.put(configMap('apps', 'settings', { 'app.yaml': 'level: debug\n' }));
  api.put(secret('apps', 'db', { password: 'hunter2' }));
});

describe('ApiGetClient: answers', () => {
  it('200: the object as sent, one GET with the kubeconfig token', async () => {
    const answer = await get.get(objectPath('ConfigMap', 'apps', 'settings'), never(), LIMIT);
    expect(answer.status).toBe(200);
    expect(json(answer)).toMatchObject({ kind: 'ConfigMap', metadata: { name: 'settings', namespace: 'apps' }, data: { 'app.yaml': 'level: debug\n' } });
    expect(api.requests).toEqual([{ method: 'GET', path: objectPath('ConfigMap', 'apps', 'settings'), query: '', authorized: true, accept: 'application/json' }]);
  });

  it('reads fresh: an object written just before is seen, a change at once', async () => {
    api.put(configMap('apps', 'new', { k: 'v1' }));
    expect(json(await get.get(objectPath('ConfigMap', 'apps', 'new'), never(), LIMIT)).data).toEqual({ k: 'v1' });
    api.put(configMap('apps', 'new', { k: 'v2' }));
    expect(json(await get.get(objectPath('ConfigMap', 'apps', 'new'), never(), LIMIT)).data).toEqual({ k: 'v2' });
    expect(api.requestsTo(objectPath('ConfigMap', 'apps', 'new'))).toHaveLength(2);
  });

  it('404, 403 and 5xx come back as answers with their Status bodies, for the caller to classify', async () => {
    const missing = await get.get(objectPath('Secret', 'apps', 'nope'), never(), LIMIT);
    expect(missing.status).toBe(404);
    expect(json(missing)).toMatchObject({ kind: 'Status', reason: 'NotFound' });
    for (const [status, reason] of [[403, 'Forbidden'], [500, 'InternalError'], [503, 'ServiceUnavailable'], [504, 'Timeout']] as const) {
      api.fault({ path: objectPath('Secret', 'apps', 'db') }, { status, times: 1 });
      const answer = await get.get(objectPath('Secret', 'apps', 'db'), never(), LIMIT);
      expect(answer.status).toBe(status);
      expect(json(answer)).toMatchObject({ kind: 'Status', code: status, reason });
    }
  });

  it('a wrong token is answered 401 (the token is what authenticates)', async () => {
    const wrong = clientFor(kubeconfigYaml({ server: api.url, caPem: api.caPem, token: 'not-the-token' }));
    expect((await wrong.get(objectPath('Secret', 'apps', 'db'), never(), LIMIT)).status).toBe(401);
    expect(api.requests.at(-1)?.authorized).toBe(false);
  });

  it('a 401 drops the reused credentials: the next GET authenticates afresh (a rotated token), within the second they are kept', async () => {
    const kc = new KubeConfig();
    kc.loadFromString(kubeconfigYaml({ server: api.url, caPem: api.caPem, token: 'expired-token' }));
    const rotating = new ApiGetClient(kc);
    clients.push(rotating);
    expect((await rotating.get(objectPath('Secret', 'apps', 'db'), never(), LIMIT)).status).toBe(401);
    // What a token file rotation does to what client-node resolves.
    (kc.getCurrentUser() as { token?: string }).token = api.token;
    expect((await rotating.get(objectPath('Secret', 'apps', 'db'), never(), LIMIT)).status).toBe(200);
    expect(api.requests.map((r) => r.authorized)).toEqual([false, true]);
  });

  it('credentials kept within their second that the server stopped taking (a rotated or expired token) are resolved afresh and the GET sent once more', async () => {
    const tls = testTls();
    let accepted = 'token-a';
    const seen: string[] = [];
    const rotatingApi = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
      const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
      seen.push(`${token} ${token === accepted ? 200 : 401}`);
      res.writeHead(token === accepted ? 200 : 401, { 'content-type': 'application/json' });
      res.end(JSON.stringify(token === accepted ? { kind: 'ConfigMap', data: { k: 'v' } } : { kind: 'Status', code: 401, reason: 'Unauthorized' }));
    });
    await new Promise<void>((resolve) => rotatingApi.listen(0, '127.0.0.1', resolve));
    try {
      const kc = new KubeConfig();
      kc.loadFromString(kubeconfigYaml({ server: `https://127.0.0.1:${(rotatingApi.address() as AddressInfo).port}`, caPem: tls.caPem, token: 'token-a' }));
      const rotating = new ApiGetClient(kc);
      clients.push(rotating);
      expect((await rotating.get('/api/v1/namespaces/ns/configmaps/a', never(), LIMIT)).status).toBe(200);
      // The credential source moves on and the server stops taking the old token, within the second.
      accepted = 'token-b';
      (kc.getCurrentUser() as { token?: string }).token = 'token-b';
      expect((await rotating.get('/api/v1/namespaces/ns/configmaps/a', never(), LIMIT)).status).toBe(200);
      expect(seen).toEqual(['token-a 200', 'token-a 401', 'token-b 200']);
      // A token the server refuses whatever the source says: one retry with credentials resolved
      // afresh, then the 401 is the answer; a GET that resolved its own credentials is not retried.
      accepted = 'token-c';
      expect((await rotating.get('/api/v1/namespaces/ns/configmaps/a', never(), LIMIT)).status).toBe(401);
      expect((await rotating.get('/api/v1/namespaces/ns/configmaps/a', never(), LIMIT)).status).toBe(401);
      expect(seen.slice(3)).toEqual(['token-b 401', 'token-b 401', 'token-b 401']);
    } finally {
      rotatingApi.closeAllConnections();
      await new Promise<void>((resolve) => rotatingApi.close(() => resolve()));
    }
  });

  it('authenticates with the kubeconfig client certificate and key', async () => {
    const byCertificate = clientFor(certificateKubeconfig(api.url, api.caPem, client));
    const answer = await byCertificate.get(objectPath('Secret', 'apps', 'db'), never(), LIMIT);
    expect(answer.status).toBe(200);
    expect(api.requests.at(-1)).toMatchObject({ authorized: true, clientCertificate: 'kube-apiserver:gitops-guard.gitops-guard.svc' });
    // A certificate the server's client CA did not sign authenticates nothing.
    const stranger = generateClientCertificates({ service: 'other', namespace: 'other', days: 1 });
    const refused = clientFor(certificateKubeconfig(api.url, api.caPem, stranger));
    expect((await refused.get(objectPath('Secret', 'apps', 'db'), never(), LIMIT)).status).toBe(401);
    expect(api.requests.at(-1)).toMatchObject({ authorized: false });
    expect(api.requests.at(-1)?.clientCertificate).toBeUndefined();
  });

  it('refuses an answer longer than the limit, declared or streamed', async () => {
    api.put(configMap('apps', 'big', { blob: 'x'.repeat(4096) }));
    const error = await rejection(get.get(objectPath('ConfigMap', 'apps', 'big'), never(), 1024));
    expect(error).toMatchObject({ reason: 'server', detail: 'response larger than 1024 bytes', httpStatus: 200 });
    // The next GET is answered normally (the cut connection is not reused).
    expect((await get.get(objectPath('ConfigMap', 'apps', 'settings'), never(), LIMIT)).status).toBe(200);

    // Streamed (chunked, no Content-Length), as the API server sends larger objects: cut once past the limit.
    const tls = testTls();
    let written = 0;
    const streaming = createServer({ cert: tls.certPem, key: tls.keyPem }, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const more = (): void => {
        if (res.destroyed || written > 64 * 1024 * 1024) return void res.end();
        written += 512;
        res.write('x'.repeat(512), () => setImmediate(more));
      };
      more();
    });
    await new Promise<void>((resolve) => streaming.listen(0, '127.0.0.1', resolve));
    try {
      const url = `https://127.0.0.1:${(streaming.address() as AddressInfo).port}`;
      const streamed = clientFor(kubeconfigYaml({ server: url, caPem: tls.caPem, token: 't' }));
      expect(await rejection(streamed.get('/api/v1/namespaces/apps/configmaps/endless', never(), 4096))).toMatchObject({ reason: 'server', detail: 'response larger than 4096 bytes' });
      expect(written).toBeLessThan(1024 * 1024);
    } finally {
      streaming.closeAllConnections();
      await new Promise<void>((resolve) => streaming.close(() => resolve()));
    }
  });
});

describe('ApiGetClient: no answer', () => {
  it('an aborted signal cancels the request in flight: timeout "request aborted", the server sees it abandoned', async () => {
    api.fault({ path: objectPath('Secret', 'apps', 'db') }, { latencyMs: 3000 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const started = performance.now();
    const error = await rejection(get.get(objectPath('Secret', 'apps', 'db'), controller.signal, LIMIT));
    expect(error).toMatchObject({ reason: 'timeout', detail: 'request aborted' });
    expect(performance.now() - started).toBeLessThan(1000);
    await expect.poll(() => api.requestsTo(objectPath('Secret', 'apps', 'db'))[0]?.abandoned).toBe(true);
  });

  it('a signal aborted before the call sends nothing', async () => {
    const controller = new AbortController();
    controller.abort();
    expect(await rejection(get.get(objectPath('Secret', 'apps', 'db'), controller.signal, LIMIT))).toMatchObject({ reason: 'timeout' });
    expect(api.requests).toEqual([]);
  });

  it('a kept-alive connection closed as it is reused: the GET is sent once more and answered', async () => {
    const path = objectPath('ConfigMap', 'apps', 'settings');
    expect((await get.get(path, never(), LIMIT)).status).toBe(200);
    // The next request goes over the same kept-alive connection, which the server closes unanswered.
    api.fault({ path }, { destroy: true, times: 1 });
    const answer = await get.get(path, never(), LIMIT);
    expect(answer.status).toBe(200);
    expect(json(answer).data).toEqual({ 'app.yaml': 'level: debug\n' });
    expect(api.requestsTo(path)).toHaveLength(3);
  });

  it('retries only once: a second closed connection is unavailable', async () => {
    const path = objectPath('ConfigMap', 'apps', 'settings');
    await get.get(path, never(), LIMIT);
    api.fault({ path }, { destroy: true });
    const error = await rejection(get.get(path, never(), LIMIT));
    expect(error.reason).toBe('unavailable');
    expect(error.detail).toMatch(/^[A-Z_]+$/);
    expect(api.requestsTo(path)).toHaveLength(3);
  });

  it('a connection closed on its first request is not retried: not the kept-alive race, the server failed it', async () => {
    const fresh = clientFor(kubeconfigYaml({ server: api.url, caPem: api.caPem, token: api.token }));
    const path = objectPath('ConfigMap', 'apps', 'settings');
    api.fault({ path }, { destroy: true, times: 1 });
    const error = await rejection(fresh.get(path, never(), LIMIT));
    expect(error).toMatchObject({ reason: 'unavailable', detail: 'ECONNRESET' });
    expect(api.requestsTo(path)).toHaveLength(1);
  });
});
