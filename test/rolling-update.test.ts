import { Agent, type AgentOptions } from 'node:https';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AdmissionReview } from '../src/api/types.js';
import { ClientNodeReader } from '../src/kube/client-node-reader.js';
import type { RunningServer } from '../src/server/server.js';
import { DEFAULT_RULES, capturingLogger } from './support/app.js';
import { corpusObject } from './support/corpus.js';
import { certDir, startGuardServer } from './support/guard-server.js';
import { httpsRequest } from './support/https-client.js';
import { configMap, deployment, objectPath } from './support/kube-fixtures.js';
import { KubeApiServer } from './support/kube-api-server.js';
import { reviewFor, withMeta } from './support/review.js';
import { killServers, startServe, startServeAsDeployed, type ServeProcess } from './support/serve.js';

/**
 * A rolling update as Kubernetes runs it, against the built CLI: 50 kept-alive connections (the
 * API server's webhook client) send admissions back to back through a "Service" that sends new
 * connections to the old pod until its endpoint is removed (1 s after SIGTERM, as kube-proxy
 * would), then to the new pod. No admission may be lost: no reset, no refused connection, no
 * error answer.
 */

afterEach(killServers);

const tracked = withMeta(corpusObject('argocd-install.yaml', 'ClusterRoleBinding', 'argocd-application-controller'), {
  annotations: { 'argocd.argoproj.io/tracking-id': 'argocd:rbac.authorization.k8s.io/ClusterRoleBinding:argocd/argocd-application-controller' },
});
const ENDPOINT_REMOVAL_MS = 1000;

/** A keep-alive agent whose new connections go wherever the "Service" routes them now. */
class ServiceAgent extends Agent {
  constructor(
    private readonly route: () => number,
    options: AgentOptions,
  ) {
    super({ keepAlive: true, maxSockets: 1, ...options });
  }

  override createConnection(options: ConnectionOptions): ReturnType<typeof tlsConnect> {
    return tlsConnect({ ...options, host: '127.0.0.1', port: this.route() });
  }
}

interface Outcome {
  answered: number;
  failures: string[];
  closeAnswers: number;
  readiness: (number | 'refused')[];
  exitCode: number | null;
  shutdownMs: number;
}

/**
 * Steady load on `old` through the Service; SIGTERM at 1 s; the Service drops the old endpoint
 * ENDPOINT_REMOVAL_MS later; the load goes on until the old pod has exited.
 */
async function rollingUpdate(old: ServeProcess, next: { port: number }, ca: Buffer, body: () => string, path: string): Promise<Outcome> {
  let target = old.port;
  const agents = Array.from({ length: 50 }, () => new ServiceAgent(() => target, { ca, servername: 'gitops-guard.gitops-guard.svc' }));
  const outcome: Outcome = { answered: 0, failures: [], closeAnswers: 0, readiness: [], exitCode: null, shutdownMs: 0 };
  let exited = false;
  let sigterm = 0;
  const load = agents.map(async (agent) => {
    while (!exited) {
      try {
        const answer = await httpsRequest({ port: old.port, ca, method: 'POST', path, body: body(), agent });
        const response = answer.status === 200 ? (JSON.parse(answer.body) as AdmissionReview).response : undefined;
        if (!response?.allowed || response.warnings) outcome.failures.push(`HTTP ${answer.status}: ${answer.body.slice(0, 200)}`);
        else outcome.answered++;
        if (answer.headers['connection'] === 'close') outcome.closeAnswers++;
      } catch (error) {
        outcome.failures.push(`${(error as NodeJS.ErrnoException).code ?? ''} ${(error as Error).message}`);
      }
    }
  });
  const probe = (async () => {
    for (;;) {
      if (sigterm) {
        try {
          outcome.readiness.push((await httpsRequest({ port: old.port, ca, path: '/readyz' })).status);
        } catch {
          outcome.readiness.push('refused');
          return;
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
      if (exited) return;
    }
  })();
  await new Promise((resolve) => setTimeout(resolve, 1000));
  sigterm = performance.now();
  old.child.kill('SIGTERM');
  setTimeout(() => (target = next.port), ENDPOINT_REMOVAL_MS);
  outcome.exitCode = await old.exited;
  outcome.shutdownMs = performance.now() - sigterm;
  await new Promise((resolve) => setTimeout(resolve, 300));
  exited = true;
  await Promise.all([...load, probe]);
  for (const agent of agents) agent.destroy();
  return outcome;
}

function expectNoLoss(outcome: Outcome, old: ServeProcess): void {
  expect(outcome.failures).toEqual([]);
  expect(outcome.answered).toBeGreaterThan(100);
  // Every client left the old pod after an answer that told it to.
  expect(outcome.closeAnswers).toBeGreaterThanOrEqual(50);
  // Readiness turned false (503) before the listener closed.
  expect(outcome.readiness).toContain(503);
  expect(outcome.readiness.at(-1)).toBe('refused');
  expect(outcome.readiness.slice(0, outcome.readiness.indexOf('refused'))).not.toContain(200);
  expect(outcome.exitCode).toBe(0);
  const shutDown = old.logs.map((l) => JSON.parse(l) as { msg: string; cut?: number }).find((e) => e.msg === 'shut down');
  expect(shutDown?.cut).toBe(0);
}

describe('rolling update: no admission lost', () => {
  it('with the CLI defaults', async () => {
    const certs = certDir();
    writeFileSync(join(certs, 'checksum.key'), `${'cd'.repeat(32)}\n`, { mode: 0o600 });
    const old = await startServe(['--port', '0', '--host', '127.0.0.1', '--tls-cert', join(certs, 'tls.crt'), '--tls-key', join(certs, 'tls.key'), '--checksum-key', join(certs, 'checksum.key')], { cwd: certs });
    const { server: next, ca } = await startGuardServer({ logger: capturingLogger().logger }, certs);
    try {
      const outcome = await rollingUpdate(old, next, ca, () => JSON.stringify(reviewFor(tracked, { operation: 'UPDATE', oldObject: tracked })), '/mutate?timeout=3s');
      expectNoLoss(outcome, old);
    } finally {
      await next.shutdown();
    }
  }, 40_000);

  it('as the manifests deploy it, within terminationGracePeriodSeconds', async () => {
    const old = await startServeAsDeployed();
    const { server: next } = await startGuardServer({ logger: capturingLogger().logger }, old.dir);
    try {
      const outcome = await rollingUpdate(old, next, old.ca, () => JSON.stringify(reviewFor(tracked, { operation: 'UPDATE', oldObject: tracked })), '/mutate?timeout=3s');
      expectNoLoss(outcome, old);
      expect(outcome.shutdownMs).toBeLessThan(old.profile.terminationGracePeriodSeconds * 1000);
    } finally {
      await next.shutdown();
    }
  }, 60_000);
});

describe('rolling update while checksum reads are slow', () => {
  let api: KubeApiServer;
  let next: RunningServer;
  beforeAll(async () => {
    api = await KubeApiServer.start();
    for (let i = 0; i < 3; i++) api.put(configMap('apps', `config-${i}`, { key: `value-${i}` }));
  });
  afterAll(async () => {
    await api?.close();
  });

  const workload = () =>
    JSON.stringify(reviewFor(deployment('apps', 'web', { containers: [{ name: 'web', image: 'web:1', envFrom: [0, 1, 2].map((i) => ({ configMapRef: { name: `config-${i}` } })) }] })));

  it('finishes every in-flight admission (2 s reads) and exits 0, as deployed', async () => {
    api.clearFaults();
    api.fault({ path: /^\/api\/v1\/namespaces\/apps\/configmaps\// }, { latencyMs: 2000 });
    const kubeconfig = api.writeKubeconfig();
    const old = await startServeAsDeployed({ kubeconfig });
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(kubeconfig);
    ({ server: next } = await startGuardServer({ logger: capturingLogger().logger, kube: new ClientNodeReader(kubeConfig), settings: { checksumKey: Buffer.from('ab'.repeat(32), 'hex') } }, old.dir));
    try {
      const outcome = await rollingUpdate(old, next, old.ca, workload, '/mutate?timeout=5s');
      expectNoLoss(outcome, old);
      expect(outcome.shutdownMs).toBeLessThan(old.profile.terminationGracePeriodSeconds * 1000);
    } finally {
      await next.shutdown();
    }
  }, 60_000);

  it('exits 1 when the drain timeout cuts requests in flight', async () => {
    api.clearFaults();
    api.fault({ path: objectPath('ConfigMap', 'apps', 'config-0') }, { latencyMs: 3000 });
    const certs = certDir();
    writeFileSync(join(certs, 'checksum.key'), `${'cd'.repeat(32)}\n`, { mode: 0o600 });
    const old = await startServe(
      ['--port', '0', '--host', '127.0.0.1', '--tls-cert', join(certs, 'tls.crt'), '--tls-key', join(certs, 'tls.key'), '--checksum-key', join(certs, 'checksum.key'), '--rules', DEFAULT_RULES, '--kubeconfig', api.writeKubeconfig(), '--shutdown-delay-ms', '0', '--drain-timeout-ms', '300'],
      { cwd: certs },
    );
    const ca = readFileSync(join(certs, 'ca.crt'));
    const inFlight = httpsRequest({ port: old.port, ca, method: 'POST', path: '/mutate?timeout=5s', body: workload() }).catch((error: Error) => error);
    await new Promise((resolve) => setTimeout(resolve, 300));
    old.child.kill('SIGTERM');
    expect(await old.exited).toBe(1);
    expect(await inFlight).toBeInstanceOf(Error);
    const entries = old.logs.map((l) => JSON.parse(l) as { msg: string; cut?: number; level: string });
    expect(entries.find((e) => e.msg === 'in-flight requests did not finish in time; cutting their connections')).toMatchObject({ level: 'warn', cut: 1 });
  }, 30_000);
});
