import { writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { builtinActions, createRegistry } from '../src/actions/registry.js';
import type { ActionDefinition } from '../src/actions/types.js';
import type { KubeObject } from '../src/api/types.js';
import { ClientNodeReader } from '../src/kube/client-node-reader.js';
import type { RunningServer, ServerOptions } from '../src/server/server.js';
import { capturingLogger } from './support/app.js';
import { corpusObject } from './support/corpus.js';
import { certDir, startGuardServer } from './support/guard-server.js';
import { httpsRequest, type HttpsAnswer } from './support/https-client.js';
import { configMap, deployment, objectPath, secret } from './support/kube-fixtures.js';
import { KubeApiServer } from './support/kube-api-server.js';
import { reviewFor, withMeta } from './support/review.js';

/**
 * The admission path's limits, in process over real HTTPS: bounded metric labels, the connection
 * cap, the deadline taken from the API server's `?timeout=`, and what the logs and metrics say
 * when a call is aborted, refused or fails a rule.
 */

const running: RunningServer[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.shutdown()));
});

interface Guard {
  server: RunningServer;
  ca: Buffer;
  lines: string[];
  post(path: string, body: string, agent?: Agent): Promise<HttpsAnswer>;
  metrics(): Promise<string>;
}

async function guard(options: Partial<ServerOptions> = {}, certs = certDir()): Promise<Guard> {
  const { logger, lines } = capturingLogger();
  const { server, ca } = await startGuardServer({ logger, ...options }, certs);
  running.push(server);
  return {
    server,
    ca,
    lines,
    post: (path, body, agent) => httpsRequest({ port: server.port, ca, method: 'POST', path, body, ...(agent ? { agent } : {}) }),
    metrics: () => server.metrics.registry.metrics(),
  };
}

/** Rules with one custom action on ConfigMaps, ahead of the default ones. */
function rulesWith(certs: string, action: ActionDefinition): Partial<ServerOptions> {
  const rulesPath = join(certs, 'rules.yaml');
  writeFileSync(rulesPath, `apiVersion: gitops-guard.dev/v1alpha1\nkind: RuleSet\nrules:\n  - { name: probe, match: { kinds: [{ kind: ConfigMap }] }, action: { type: ${action.name} }, onError: allow }\n`);
  return { rulesPath, registry: createRegistry([...builtinActions, action]) };
}

const configMapReview = () => JSON.stringify(reviewFor({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 'n' } }));
const tracked = withMeta(corpusObject('argocd-install.yaml', 'ClusterRoleBinding', 'argocd-server'), {
  annotations: { 'argocd.argoproj.io/tracking-id': 'argocd:rbac.authorization.k8s.io/ClusterRoleBinding:argocd/argocd-server' },
});

function entries(lines: string[]): Record<string, any>[] {
  return lines.map((line) => JSON.parse(line) as Record<string, any>);
}

describe('metric labels', () => {
  it('label admissions with the kinds the rules select, everything else as other (5,000 made-up kinds)', async () => {
    const g = await guard();
    const agent = new Agent({ keepAlive: true, maxSockets: 25, ca: g.ca, servername: 'gitops-guard.gitops-guard.svc' });
    let next = 0;
    await Promise.all(
      Array.from({ length: 25 }, async () => {
        while (next < 5000) {
          const i = next++;
          const review = reviewFor({ apiVersion: `x${i}.example.com/v1`, kind: `Kind${i}`, metadata: { name: `o${i}`, namespace: 'n' } });
          expect((await g.post('/mutate?timeout=3s', JSON.stringify(review), agent)).status).toBe(200);
        }
      }),
    );
    agent.destroy();
    expect((await g.post('/mutate', JSON.stringify(reviewFor(tracked)))).status).toBe(200);
    const text = await g.metrics();
    const series = text.split('\n').filter((l) => l.startsWith('gitops_guard_admission_duration_seconds_count'));
    expect(series).toEqual([
      'gitops_guard_admission_duration_seconds_count{webhook="mutate",operation="CREATE",kind="other",verdict="allowed"} 5000',
      'gitops_guard_admission_duration_seconds_count{webhook="mutate",operation="CREATE",kind="ClusterRoleBinding",verdict="patched"} 1',
    ]);
    expect(text).not.toMatch(/Kind\d/);
    expect(text.length).toBeLessThan(64 * 1024);
  }, 60_000);
});

describe('connections', () => {
  it('closes connections beyond --max-connections at once and counts them', async () => {
    const g = await guard({ maxConnections: 5 });
    const open = (): Promise<TLSSocket | Error> =>
      new Promise((resolve) => {
        const socket = tlsConnect({ host: '127.0.0.1', port: g.server.port, ca: g.ca, servername: 'gitops-guard.gitops-guard.svc' }, () => resolve(socket));
        socket.once('error', (error) => resolve(error));
        socket.once('close', () => resolve(new Error('closed')));
      });
    const held = await Promise.all(Array.from({ length: 5 }, open));
    expect(held.every((s) => !(s instanceof Error))).toBe(true);
    expect(await open()).toBeInstanceOf(Error);
    expect(await g.metrics()).toContain('gitops_guard_admission_rejected_total{reason="connection_limit"} 1');
    for (const socket of held) (socket as TLSSocket).destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await g.post('/mutate', configMapReview())).status).toBe(200);
  });
});

describe('the admission deadline', () => {
  it("is the API server's ?timeout= less the answer reserve, capped by the largest webhook timeout", async () => {
    const certs = certDir();
    const seen: number[] = [];
    const probe: ActionDefinition = {
      name: 'probe',
      phase: 'mutate',
      paramsSchema: { type: 'object' },
      run: (_params, { deadline }) => {
        seen.push(deadline! - Date.now());
        return {};
      },
    };
    const g = await guard({ ...rulesWith(certs, probe), maxTimeoutMs: 5000 }, certs);
    for (const path of ['/mutate?timeout=1s', '/mutate?timeout=3s', '/mutate?timeout=30s', '/mutate']) {
      expect((await g.post(path, configMapReview())).status).toBe(200);
    }
    const near = (value: number, expected: number) => value <= expected && value > expected - 250;
    expect(seen.map((ms, i) => near(ms, [900, 2700, 4500, 4500][i]!))).toEqual([true, true, true, true]);
  });

  it('counts an answer written after the API server gave up as late', async () => {
    const certs = certDir();
    const stall: ActionDefinition = {
      name: 'stall',
      phase: 'mutate',
      paramsSchema: { type: 'object' },
      run: () => {
        // A CPU-bound stretch nothing can interrupt (like a huge parse on a busy core).
        const until = Date.now() + 1200;
        while (Date.now() < until);
        return {};
      },
    };
    const g = await guard(rulesWith(certs, stall), certs);
    expect((await g.post('/mutate?timeout=1s', configMapReview())).status).toBe(200);
    expect(await g.metrics()).toContain('gitops_guard_admission_late_total{webhook="mutate"} 1');
  });

  it('refuses a body that does not arrive before the deadline: 503, Connection: close, a warning without a stack', async () => {
    const g = await guard();
    const socket = tlsConnect({ host: '127.0.0.1', port: g.server.port, ca: g.ca, servername: 'gitops-guard.gitops-guard.svc' });
    await new Promise((resolve) => socket.once('secureConnect', resolve));
    let answer = '';
    socket.on('data', (c: Buffer) => (answer += c.toString('utf8')));
    const started = performance.now();
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.write('POST /validate?timeout=1s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"apiVersion":');
    await closed;
    expect(performance.now() - started).toBeLessThan(1500);
    expect(answer).toMatch(/^HTTP\/1\.1 503 /);
    expect(answer).toMatch(/\r\nconnection: close\r\n/i);
    expect(answer).toContain('admission deadline of 900 ms passed before the review could be handled');
    const logged = entries(g.lines).filter((e) => e.level === 'warn' || e.level === 'error');
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ level: 'warn', webhook: 'validate', timeoutMs: 1000, stage: 'waiting for memory or the body' });
    expect(JSON.stringify(logged)).not.toMatch(/stack|internal error/);
    expect(await g.metrics()).toContain('gitops_guard_admission_rejected_total{reason="deadline"} 1');
  });
});

describe('aborted calls', () => {
  it('a client that goes away mid-body is an abort (a warning), not an internal error with a stack', async () => {
    const g = await guard();
    const socket = tlsConnect({ host: '127.0.0.1', port: g.server.port, ca: g.ca, servername: 'gitops-guard.gitops-guard.svc' });
    await new Promise((resolve) => socket.once('secureConnect', resolve));
    socket.write('POST /mutate?timeout=3s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"apiVersion":"admission.k8s.io/v1"');
    await new Promise((resolve) => setTimeout(resolve, 100));
    socket.destroy();
    await waitFor(() => entries(g.lines).some((e) => e.msg === 'admission call aborted by the client'));
    const logged = entries(g.lines).filter((e) => e.level === 'warn' || e.level === 'error');
    expect(logged.map((e) => [e.level, e.msg])).toEqual([['warn', 'admission call aborted by the client']]);
    expect(JSON.stringify(logged)).not.toMatch(/stack|internal error/);
    const metrics = await g.metrics();
    expect(metrics).toContain('gitops_guard_errors_total{type="aborted"} 1');
    expect(metrics).not.toContain('type="internal"');
  });
});

describe('rule errors in the log', () => {
  let api: KubeApiServer;
  beforeAll(async () => {
    api = await KubeApiServer.start();
  });
  afterAll(() => api.close());

  it('name the reason of every failed rule in the admission line, at warn, never Secret data', async () => {
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(api.writeKubeconfig());
    const g = await guard({ kube: new ClientNodeReader(kubeConfig) });
    const password = 'hunter2-never-logged';
    api.put(secret('shop', 'db', { password }));
    api.put(configMap('shop', 'locked', { a: 'b' }));
    api.fault({ path: objectPath('ConfigMap', 'shop', 'locked') }, { status: 403 });
    const web = deployment('shop', 'web', {
      containers: [{ name: 'c', image: 'c:1', envFrom: [{ secretRef: { name: 'db' } }, { configMapRef: { name: 'locked' } }] }],
    });
    const answer = await g.post('/mutate?timeout=5s', JSON.stringify(reviewFor(web)));
    expect(JSON.parse(answer.body).response.warnings[0]).toMatch(/forbidden/);
    // A ClusterRoleBinding whose labels are not a map fails tag-owner.
    const broken = { ...tracked, metadata: { ...tracked.metadata, labels: 'not-a-map' } } as unknown as KubeObject;
    await g.post('/mutate?timeout=3s', JSON.stringify(reviewFor(broken)));
    const lines = entries(g.lines).filter((e) => e.msg === 'admission');
    expect(lines.map((e) => [e.level, e.ruleErrors])).toEqual([
      ['warn', { 'stamp-config-checksum': 'cannot read ConfigMap shop/locked: forbidden (HTTP 403), gitops-guard needs get on configmaps' }],
      ['warn', { 'tag-owner': 'metadata.labels is not a map' }],
    ]);
    expect(g.lines.join('\n')).not.toContain(password);
    expect(g.lines.join('\n')).not.toContain(Buffer.from(password).toString('base64'));
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
