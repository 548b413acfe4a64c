import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { ClientNodeReader } from './client-node-reader.js';
import { CREDENTIALS_TTL_MS } from './request-credentials.js';
import { testTls } from '../../test/support/tls.js';
import { kubeconfigYaml } from '../../test/support/kubeconfig.js';

let server: Server | undefined;
afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

/** A minimal API endpoint that counts TLS handshakes and checks the bearer token on every request. */
async function countingApi(): Promise<{ url: string; handshakes: () => number; tokens: string[] }> {
  const tls = testTls();
  let handshakes = 0;
  const tokens: string[] = [];
  server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    tokens.push(req.headers.authorization ?? '');
    const name = req.url!.split('/').pop();
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'ns' }, data: { k: 'v' } }));
  });
  server.on('secureConnection', () => handshakes++);
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return { url: `https://127.0.0.1:${(server!.address() as AddressInfo).port}`, handshakes: () => handshakes, tokens };
}

describe('ClientNodeReader connections', () => {
  it('reuses one TLS connection for sequential reads, with the credentials on every request', async () => {
    const api = await countingApi();
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromString(kubeconfigYaml({ server: api.url, caPem: testTls().caPem, token: 'secret-token' }));
    const reader = new ClientNodeReader(kubeConfig);
    for (let i = 0; i < 5; i++) {
      const result = await reader.readConfigSource({ kind: 'ConfigMap', namespace: 'ns', name: `cm-${i}` }, { timeoutMs: 2000 });
      expect(result.found).toBe(true);
    }
    expect(api.tokens).toEqual(Array(5).fill('Bearer secret-token'));
    expect(api.handshakes()).toBe(1);
  });

  it('reads chunked answers over reused connections without a premature-close error', async () => {
    // The real API server streams larger objects chunked; node-fetch 2 has had false "Premature
    // close" errors on reused keep-alive sockets with chunked bodies. 500 concurrent reads here.
    const tls = testTls();
    server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
      const name = req.url!.split('/').pop();
      const body = JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'ns' }, data: { k: 'v'.repeat(1000 + (name!.length * 997) % 20000) } });
      res.setHeader('content-type', 'application/json');
      res.write(body.slice(0, body.length >> 1));
      setImmediate(() => res.end(body.slice(body.length >> 1)));
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromString(kubeconfigYaml({ server: `https://127.0.0.1:${(server!.address() as AddressInfo).port}`, caPem: tls.caPem, token: 't' }));
    const reader = new ClientNodeReader(kubeConfig);
    for (let round = 0; round < 50; round++) {
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => reader.readConfigSource({ kind: 'ConfigMap', namespace: 'ns', name: `cm-${round}-${i}` }, { timeoutMs: 5000 })),
      );
      for (const result of results) expect(result.found && result.content.get('k')!.length).toBeGreaterThanOrEqual(1000);
    }
  });

  it('opens a new connection when the CA file changes (rotation, picked up within CREDENTIALS_TTL_MS), and reuses it after', async () => {
    const api = await countingApi();
    const dir = mkdtempSync(join(tmpdir(), 'gg-ca-'));
    const caFile = join(dir, 'ca.crt');
    writeFileSync(caFile, testTls().caPem);
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromOptions({
      clusters: [{ name: 'c', server: api.url, caFile, skipTLSVerify: false }],
      users: [{ name: 'u', token: 'secret-token' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    const reader = new ClientNodeReader(kubeConfig);
    const read = () => reader.readConfigSource({ kind: 'ConfigMap', namespace: 'ns', name: 'cm' }, { timeoutMs: 2000 });
    await read();
    await read();
    expect(api.handshakes()).toBe(1);
    // A rotated bundle: same trust anchor plus a second copy, different bytes.
    writeFileSync(caFile, `${testTls().caPem}\n${testTls().caPem}`);
    // Credentials are resolved once a second (as client-go reads its files at most once a minute).
    await new Promise((resolve) => setTimeout(resolve, CREDENTIALS_TTL_MS + 50));
    await read();
    await read();
    expect(api.handshakes()).toBe(2);
  });
});

