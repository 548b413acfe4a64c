import { createServer } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { configMap, objectPath, secret } from '../../test/support/kube-fixtures.js';
import { KubeApiServer } from '../../test/support/kube-api-server.js';
import { rejectionOf } from '../../test/support/rejection.js';
import { kubeconfigYaml } from '../../test/support/kubeconfig.js';
import { ClientNodeReader } from './client-node-reader.js';
import { configContent } from './config-data.js';
import { KubeReadError } from './errors.js';
import type { ObjectRef } from './reader.js';

let api: KubeApiServer;
let reader: ClientNodeReader;

function kubeConfigFor(server: string, caPem: string, token: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromString(kubeconfigYaml({ server, caPem, token }));
  return kc;
}

const cm: ObjectRef = { kind: 'ConfigMap', namespace: 'apps', name: 'settings' };
const sec: ObjectRef = { kind: 'Secret', namespace: 'apps', name: 'db' };
const options = { timeoutMs: 1000 };

const failure = (promise: Promise<unknown>): Promise<KubeReadError> => rejectionOf(promise, KubeReadError);

beforeAll(async () => {
  api = await KubeApiServer.start();
  const kc = new KubeConfig();
  kc.loadFromFile(api.writeKubeconfig());
  reader = new ClientNodeReader(kc);
});
afterAll(() => api.close());
beforeEach(() => {
  api.clearFaults();
  api.clearRequests();
  api.put(configMap('apps', 'settings', { 'app.yaml': 'level: debug\n', empty: '' }, { 'logo.png': Buffer.from([0, 255, 10, 13]) }));
  api.put(secret('apps', 'db', { password: 'hunter2', cert: Buffer.from([1, 2, 3, 0]) }));
});

describe('ClientNodeReader against the test API server', () => {
  it('reads a ConfigMap: data as UTF-8, binaryData decoded, with one GET', async () => {
    const result = await reader.readConfigSource(cm, options);
    expect(result.found).toBe(true);
    if (!result.found) return;
    expect([...result.content.keys()].sort()).toEqual(['app.yaml', 'empty', 'logo.png']);
    expect(result.content.get('app.yaml')).toEqual(Buffer.from('level: debug\n'));
    expect(result.content.get('empty')).toEqual(Buffer.alloc(0));
    expect(result.content.get('logo.png')).toEqual(Buffer.from([0, 255, 10, 13]));
    // JSON only: the reader parses nothing else (a server that cannot send JSON answers 406).
    expect(api.requests).toEqual([{ method: 'GET', path: objectPath('ConfigMap', 'apps', 'settings'), query: '', authorized: true, accept: 'application/json' }]);
    expect(api.requests[0]?.abandoned).toBeUndefined();
  });

  it('reads a Secret with its data decoded from base64', async () => {
    const result = await reader.readConfigSource(sec, options);
    expect(result.found && result.content.get('password')).toEqual(Buffer.from('hunter2'));
    expect(result.found && result.content.get('cert')).toEqual(Buffer.from([1, 2, 3, 0]));
  });

  it('reads fresh on every call: a changed object is seen at once', async () => {
    await reader.readConfigSource(sec, options);
    api.put(secret('apps', 'db', { password: 'rotated' }));
    const result = await reader.readConfigSource(sec, options);
    expect(result.found && result.content.get('password')).toEqual(Buffer.from('rotated'));
    expect(api.requestsTo(objectPath('Secret', 'apps', 'db'))).toHaveLength(2);
  });

  it('answers a 404 with {found: false}', async () => {
    expect(await reader.readConfigSource({ kind: 'Secret', namespace: 'apps', name: 'nope' }, options)).toEqual({ found: false });
    expect(await reader.readConfigSource({ kind: 'ConfigMap', namespace: 'other', name: 'settings' }, options)).toEqual({ found: false });
  });

  it('maps 403 to forbidden', async () => {
    api.fault({ path: objectPath('Secret', 'apps', 'db') }, { status: 403 });
    const error = await failure(reader.readConfigSource(sec, options));
    expect(error).toMatchObject({ reason: 'forbidden', httpStatus: 403, detail: 'Forbidden', ref: sec });
  });

  it('maps 401 (wrong token) to unauthorized', async () => {
    const wrong = new ClientNodeReader(kubeConfigFor(api.url, api.caPem, 'not-the-token'));
    const error = await failure(wrong.readConfigSource(sec, options));
    expect(error).toMatchObject({ reason: 'unauthorized', httpStatus: 401 });
    expect(api.requests.at(-1)?.authorized).toBe(false);
  });

  it('maps 5xx to server errors and 504 to timeout, naming only the Status reason', async () => {
    api.fault({ path: objectPath('Secret', 'apps', 'db') }, { status: 500, times: 1 });
    expect(await failure(reader.readConfigSource(sec, options))).toMatchObject({ reason: 'server', httpStatus: 500, detail: 'InternalError' });
    api.fault({ path: objectPath('Secret', 'apps', 'db') }, { status: 503, times: 1 });
    expect(await failure(reader.readConfigSource(sec, options))).toMatchObject({ reason: 'server', httpStatus: 503, detail: 'ServiceUnavailable' });
    api.fault({ path: objectPath('Secret', 'apps', 'db') }, { status: 504, times: 1 });
    expect(await failure(reader.readConfigSource(sec, options))).toMatchObject({ reason: 'timeout', httpStatus: 504 });
  });

  it('gives up after timeoutMs and cancels the request', async () => {
    api.fault({ path: objectPath('Secret', 'apps', 'db') }, { latencyMs: 3000 });
    const started = performance.now();
    const error = await failure(reader.readConfigSource(sec, { timeoutMs: 200 }));
    const elapsed = performance.now() - started;
    expect(error).toMatchObject({ reason: 'timeout', detail: 'no answer within 200 ms' });
    expect(elapsed).toBeGreaterThanOrEqual(190);
    expect(elapsed).toBeLessThan(1000);
    await expect.poll(() => api.requestsTo(objectPath('Secret', 'apps', 'db'))[0]?.abandoned).toBe(true);
  });

  it('stops when the caller aborts', async () => {
    api.fault({ path: objectPath('Secret', 'apps', 'db') }, { latencyMs: 3000 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const started = performance.now();
    const error = await failure(reader.readConfigSource(sec, { timeoutMs: 2000, signal: controller.signal }));
    expect(error).toMatchObject({ reason: 'timeout', detail: 'aborted by the caller' });
    expect(performance.now() - started).toBeLessThan(1000);
    const aborted = new AbortController();
    aborted.abort();
    expect(await failure(reader.readConfigSource(sec, { timeoutMs: 2000, signal: aborted.signal }))).toMatchObject({ reason: 'timeout' });
  });

  it('maps a dropped connection to unavailable', async () => {
    api.fault({ path: objectPath('Secret', 'apps', 'db') }, { destroy: true });
    const error = await failure(reader.readConfigSource(sec, options));
    expect(error.reason).toBe('unavailable');
    expect(error.detail).toMatch(/^[A-Z_]+$/);
  });

  it('maps a refused connection to unavailable ECONNREFUSED', async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as { port: number };
        probe.close(() => resolve(port));
      });
    });
    const closed = new ClientNodeReader(kubeConfigFor(`https://127.0.0.1:${port}`, api.caPem, api.token));
    expect(await failure(closed.readConfigSource(sec, options))).toMatchObject({ reason: 'unavailable', detail: 'ECONNREFUSED' });
  });

  it('refuses a server whose certificate the kubeconfig CA did not sign', async () => {
    const { testTls } = await import('../../test/support/tls.js');
    const otherCa = testTls().certPem; // the server certificate is not a CA
    const untrusted = new ClientNodeReader(kubeConfigFor(api.url, otherCa, api.token));
    const error = await failure(untrusted.readConfigSource(sec, options));
    expect(error.reason).toBe('unavailable');
    expect(error.detail).toMatch(/^[A-Z_]+$/);
  });

  it('never repeats response bodies in errors', async () => {
    api.fault({ path: objectPath('Secret', 'apps', 'db') }, { status: 500 });
    const error = await failure(reader.readConfigSource(sec, options));
    expect(error.message).not.toMatch(/etcdserver|Internal error occurred/);
    expect(error.message).toBe('Secret apps/db: server (HTTP 500): InternalError');
  });
});

describe('configContent', () => {
  it('rejects malformed maps and keys in both data and binaryData, without quoting values', () => {
    expect(() => configContent(cm, { data: { a: 1 } })).toThrow(/malformed data/);
    expect(() => configContent(cm, { data: ['x'] })).toThrow(/malformed data/);
    expect(() => configContent(cm, { data: { a: 'secret-ish' }, binaryData: { a: 'AAAA' } })).toThrow(/key in both data and binaryData/);
    try {
      configContent(cm, { data: { a: 'secret-ish' }, binaryData: { a: 'AAAA' } });
    } catch (error) {
      expect(String(error)).not.toContain('secret-ish');
    }
  });

  it('treats absent maps as empty', () => {
    expect(configContent(sec, {}).size).toBe(0);
    expect(configContent(cm, { data: null }).size).toBe(0);
  });
});

describe('ClientNodeReader connections', () => {
  it('times each read from when it is sent: reads queued for a connection do not spend their timeout waiting', async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(api.writeKubeconfig());
    const narrow = new ClientNodeReader(kc, { maxConnections: 3 });
    for (let i = 0; i < 12; i++) api.put(configMap('queue', `cm-${i}`, { k: String(i) }));
    api.fault({ path: /^\/api\/v1\/namespaces\/queue\// }, { latencyMs: 250 });
    let mostWaiting = 0;
    const sampler = setInterval(() => (mostWaiting = Math.max(mostWaiting, narrow.readsWaiting())), 10);
    const started = performance.now();
    // Four waves of three: the last read is sent after ~750 ms, well past its own 400 ms timeout.
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => narrow.readConfigSource({ kind: 'ConfigMap', namespace: 'queue', name: `cm-${i}` }, { timeoutMs: 400 })));
    clearInterval(sampler);
    expect(results.every((r) => r.found)).toBe(true);
    expect(performance.now() - started).toBeGreaterThanOrEqual(1000);
    expect(mostWaiting).toBeGreaterThanOrEqual(6);
    expect(narrow.readsWaiting()).toBe(0);
  });

  it('stops a read waiting for a connection when its caller gives up (the admission deadline)', async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(api.writeKubeconfig());
    const narrow = new ClientNodeReader(kc, { maxConnections: 1 });
    api.put(configMap('queue', 'held', { k: 'v' }));
    api.fault({ path: objectPath('ConfigMap', 'queue', 'held') }, { latencyMs: 500 });
    const first = narrow.readConfigSource({ kind: 'ConfigMap', namespace: 'queue', name: 'held' }, { timeoutMs: 2000 });
    const controller = new AbortController();
    const second = narrow.readConfigSource({ kind: 'ConfigMap', namespace: 'queue', name: 'held' }, { timeoutMs: 2000, signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    const error = await failure(second);
    expect(error.message).toMatch(/aborted while waiting for a connection to the API server/);
    expect((await first).found).toBe(true);
    expect(api.requests.filter((r) => r.path === objectPath('ConfigMap', 'queue', 'held'))).toHaveLength(1);
  });
});
