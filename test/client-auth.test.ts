import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { AdmissionReview } from '../src/api/types.js';
import { generateCertificates, generateClientCertificates, webhookKubeconfigUser, writeClientCertificates } from '../src/certs/generate.js';
import { ClientNodeReader } from '../src/kube/client-node-reader.js';
import type { RunningServer } from '../src/server/server.js';
import { runCli } from './support/cli.js';
import { certDir, startGuardServer } from './support/guard-server.js';
import { httpsRequest } from './support/https-client.js';
import { deployment, secret } from './support/kube-fixtures.js';
import { KubeApiServer } from './support/kube-api-server.js';
import { reviewFor } from './support/review.js';
import { killServers, startServe } from './support/serve.js';

/**
 * `serve --client-ca`: the admission endpoints answer only callers that present a client
 * certificate from the configured CA (the API server, through its AdmissionConfiguration's
 * kubeConfigFile). Any other pod that reaches port 8443 gets nothing: no Secret is read, no
 * checksum and no "Secret ... has no key" hint comes back. Probes and metrics need no certificate.
 */

let api: KubeApiServer;
let reader: ClientNodeReader;
const running: RunningServer[] = [];

beforeAll(async () => {
  api = await KubeApiServer.start();
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(api.writeKubeconfig());
  reader = new ClientNodeReader(kubeConfig);
  api.put(secret('payments', 'db', { password: 'hunter2' }));
});
afterEach(async () => {
  killServers();
  await Promise.all(running.splice(0).map((s) => s.shutdown()));
});
afterAll(() => api?.close());

/** What an attacker's pod sends: a review it made up, naming a Secret in someone else's namespace. */
const forged = () =>
  JSON.stringify(
    reviewFor(
      deployment('payments', 'probe', {
        containers: [
          {
            name: 'c',
            image: 'x',
            env: [
              { name: 'A', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } },
              { name: 'B', valueFrom: { secretKeyRef: { name: 'db', key: 'api-token' } } },
            ],
          },
        ],
      }),
    ),
  );

/** The API server's credentials, read back from the kubeconfig `certs --client` writes for it. */
function apiServerCredentials(kubeconfigPath: string): { cert: Buffer; key: Buffer; user: string } {
  const config = parse(readFileSync(kubeconfigPath, 'utf8')) as { users: { name: string; user: Record<string, string> }[] };
  const [entry] = config.users;
  return {
    user: entry!.name,
    cert: Buffer.from(entry!.user['client-certificate-data']!, 'base64'),
    key: Buffer.from(entry!.user['client-key-data']!, 'base64'),
  };
}

async function serveWithClientAuth(): Promise<{ server: RunningServer; ca: Buffer; clientDir: string; certs: string }> {
  const clientDir = mkdtempSync(join(tmpdir(), 'gg-client-'));
  writeClientCertificates(clientDir, 'gitops-guard', 'gitops-guard', generateClientCertificates({ service: 'gitops-guard', namespace: 'gitops-guard', days: 1 }));
  const { server, ca, certs } = await startGuardServer({ kube: reader, clientCaPath: join(clientDir, 'client-ca.crt'), reloadIntervalMs: 50 });
  running.push(server);
  return { server, ca, clientDir, certs };
}

describe('without --client-ca (before)', () => {
  it('any caller can make the webhook read a Secret and learn its checksum and which keys exist', async () => {
    const { server, ca } = await startGuardServer({ kube: reader });
    running.push(server);
    api.clearRequests();
    const answer = await httpsRequest({ port: server.port, ca, method: 'POST', path: '/mutate', body: forged() });
    expect(answer.status).toBe(200);
    const response = (JSON.parse(answer.body) as AdmissionReview).response!;
    expect(response.patch).toBeDefined();
    expect(response.warnings).toEqual(['Secret payments/db has no key api-token: pods will not start until it exists']);
    expect(api.requests.map((r) => r.path)).toEqual(['/api/v1/namespaces/payments/secrets/db']);
  });
});

describe('serve --client-ca', () => {
  it('refuses a caller without a client certificate before reading the body or any Secret', async () => {
    const { server, ca } = await serveWithClientAuth();
    api.clearRequests();
    for (const path of ['/mutate', '/validate', '/mutate?timeout=5s']) {
      const answer = await httpsRequest({ port: server.port, ca, method: 'POST', path, body: forged() });
      expect(answer.status, path).toBe(401);
      expect(JSON.parse(answer.body)).toEqual({ error: 'a client certificate issued by the configured client CA is required' });
      expect(answer.body).not.toContain('payments');
    }
    expect(api.requests).toEqual([]);
    expect(await server.metrics.registry.getSingleMetricAsString('gitops_guard_errors_total')).toMatch(/type="unauthenticated"} 3/);
  });

  it('refuses certificates from any other CA, and the serving certificate', async () => {
    const { server, ca, certs } = await serveWithClientAuth();
    const strangers = mkdtempSync(join(tmpdir(), 'gg-stranger-'));
    writeClientCertificates(strangers, 'gitops-guard', 'gitops-guard', generateClientCertificates({ service: 'gitops-guard', namespace: 'gitops-guard', days: 1 }));
    const stranger = apiServerCredentials(join(strangers, 'apiserver-webhook-kubeconfig.yaml'));
    const serving = { cert: readFileSync(join(certs, 'tls.crt')), key: readFileSync(join(certs, 'tls.key')) };
    api.clearRequests();
    for (const [name, credentials] of [['another client CA', stranger], ['the serving certificate', serving]] as const) {
      const answer = await httpsRequest({ port: server.port, ca, method: 'POST', path: '/mutate', body: forged(), cert: credentials.cert, key: credentials.key });
      expect(answer.status, name).toBe(401);
    }
    expect(api.requests).toEqual([]);
  });

  it('answers the API server, which presents the certificate from its webhook kubeconfig', async () => {
    const { server, ca, clientDir } = await serveWithClientAuth();
    const apiServer = apiServerCredentials(join(clientDir, 'apiserver-webhook-kubeconfig.yaml'));
    expect(apiServer.user).toBe(webhookKubeconfigUser('gitops-guard', 'gitops-guard'));
    expect(apiServer.user).toBe('gitops-guard.gitops-guard.svc');
    const answer = await httpsRequest({ port: server.port, ca, method: 'POST', path: '/mutate', body: forged(), cert: apiServer.cert, key: apiServer.key });
    expect(answer.status).toBe(200);
    expect((JSON.parse(answer.body) as AdmissionReview).response!.allowed).toBe(true);
  });

  it('serves /healthz, /readyz and /metrics without a client certificate (kubelet probes, Prometheus)', async () => {
    const { server, ca } = await serveWithClientAuth();
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      expect((await httpsRequest({ port: server.port, ca, path })).status, path).toBe(200);
    }
  });

  it('re-reads the client CA file: a rotated CA takes effect for new connections', async () => {
    const { server, ca, clientDir } = await serveWithClientAuth();
    const old = apiServerCredentials(join(clientDir, 'apiserver-webhook-kubeconfig.yaml'));
    const nextDir = mkdtempSync(join(tmpdir(), 'gg-client-next-'));
    writeClientCertificates(nextDir, 'gitops-guard', 'gitops-guard', generateClientCertificates({ service: 'gitops-guard', namespace: 'gitops-guard', days: 1 }));
    const next = apiServerCredentials(join(nextDir, 'apiserver-webhook-kubeconfig.yaml'));
    const call = (credentials: { cert: Buffer; key: Buffer }) =>
      httpsRequest({ port: server.port, ca, method: 'POST', path: '/mutate', body: forged(), cert: credentials.cert, key: credentials.key }).then((a) => a.status);
    expect(await call(next)).toBe(401);
    writeFileSync(join(clientDir, 'client-ca.next'), readFileSync(join(nextDir, 'client-ca.crt')));
    renameSync(join(clientDir, 'client-ca.next'), join(clientDir, 'client-ca.crt'));
    const deadline = Date.now() + 3000;
    while ((await call(next)) !== 200) {
      if (Date.now() > deadline) throw new Error('rotated client CA never took effect');
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    expect(await call(old)).toBe(401);
  });

  it('`gitops-guard serve` takes the CA from --client-ca or GITOPS_GUARD_CLIENT_CA and refuses an unusable one', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'gg-serve-client-'));
    const certs = certDir();
    const client = await runCli(['certs', '--client', '--out', join(cwd, 'client')]);
    expect(client.code).toBe(0);
    expect(client.stdout.trim()).toBe(join(cwd, 'client', 'apiserver-webhook-kubeconfig.yaml'));
    writeFileSync(join(cwd, 'checksum.key'), 'k'.repeat(64), { mode: 0o600 });
    const base = ['--port', '0', '--tls-cert', join(certs, 'tls.crt'), '--tls-key', join(certs, 'tls.key'), '--checksum-key', join(cwd, 'checksum.key')];
    const ca = readFileSync(join(certs, 'ca.crt'));
    const apiServer = apiServerCredentials(client.stdout.trim());
    for (const [how, args, env] of [
      ['flag', ['--client-ca', join(cwd, 'client', 'client-ca.crt')], {}],
      ['environment', [], { GITOPS_GUARD_CLIENT_CA: join(cwd, 'client', 'client-ca.crt') }],
    ] as const) {
      const serve = await startServe([...base, ...args], { cwd, env });
      expect(JSON.parse(serve.logs.find((l) => l.includes('gitops-guard serving'))!).clientAuth, how).toBe(true);
      expect((await httpsRequest({ port: serve.port, ca, method: 'POST', path: '/validate', body: forged() })).status, how).toBe(401);
      expect((await httpsRequest({ port: serve.port, ca, method: 'POST', path: '/validate', body: forged(), cert: apiServer.cert, key: apiServer.key })).status, how).toBe(200);
      expect((await httpsRequest({ port: serve.port, ca, path: '/readyz' })).status, how).toBe(200);
      serve.child.kill('SIGTERM');
      await serve.exited;
    }
    const missing = await runCli(['serve', ...base, '--client-ca', 'nope.crt'], { cwd, env: { KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '' } });
    expect(missing).toMatchObject({ code: 1, stderr: 'gitops-guard: cannot read TLS client CA nope.crt: ENOENT\n' });
    writeFileSync(join(cwd, 'leaf.crt'), generateCertificates({ service: 's', namespace: 'n', days: 1 }).certPem);
    const leaf = await runCli(['serve', ...base, '--client-ca', 'leaf.crt'], { cwd, env: { KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '' } });
    expect(leaf.code).toBe(1);
    expect(leaf.stderr).toMatch(/^gitops-guard: client CA leaf\.crt holds a certificate that is not a CA/);
  });
});
