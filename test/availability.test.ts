import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildScenarios } from '../bench/scenarios.js';
import { corpusObject } from './support/corpus.js';
import { httpsRequest } from './support/https-client.js';
import { processMemory } from './support/proc.js';
import { reviewFor, withMeta } from './support/review.js';
import { killServers, startServeAsDeployed, type DeployedServe } from './support/serve.js';

/**
 * The webhooks fail open (ADR 0003): a crash, a reset connection or an answer after the API
 * server's timeout silently admits the object unchecked. These tests attack the built server
 * started exactly as the enforce overlay runs it (its flags and NODE_OPTIONS, so its heap limit)
 * and hold it to the Deployment's memory limit.
 */

const MiB = 1024 * 1024;
let guard: DeployedServe;

const binding = corpusObject('argocd-install.yaml', 'ClusterRoleBinding', 'argocd-application-controller');
const tracked = withMeta(binding, { annotations: { 'argocd.argoproj.io/tracking-id': 'argocd:rbac.authorization.k8s.io/ClusterRoleBinding:argocd/argocd-application-controller' } });

beforeAll(async () => {
  guard = await startServeAsDeployed();
}, 30_000);
afterAll(killServers);

/** A normal admission as the API server sends it: answered 200, allowed, with the owner patch. */
async function normalAdmission(timeout = '3s'): Promise<number> {
  const started = performance.now();
  const res = await httpsRequest({ port: guard.port, ca: guard.ca, method: 'POST', path: `/mutate?timeout=${timeout}`, body: JSON.stringify(reviewFor(tracked)) });
  expect(res.status).toBe(200);
  expect(JSON.parse(res.body).response.patch).toEqual(expect.any(String));
  return performance.now() - started;
}

async function metric(name: string): Promise<string> {
  const res = await httpsRequest({ port: guard.port, ca: guard.ca, path: '/metrics' });
  return res.body.split('\n').filter((line) => line.startsWith(name)).join('\n');
}

function tls(): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: guard.port, ca: guard.ca, servername: 'gitops-guard.gitops-guard.svc' }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Resolves with the time from now until the server closes `socket` (and what it answered first, if anything). */
function closedBy(socket: Socket): Promise<{ afterMs: number; answer: string }> {
  const started = performance.now();
  let answer = '';
  socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
  socket.on('error', () => {});
  return new Promise((resolve) => socket.once('close', () => resolve({ afterMs: performance.now() - started, answer: answer.split('\r\n')[0] ?? '' })));
}

describe('availability as deployed: memory', () => {
  it('answers the largest review the API server sends: a 1.5 MiB CRD and its old copy (~3 MiB)', async () => {
    const [mutate, validate] = buildScenarios().find((s) => s.id === 'xlarge')!.requests;
    expect(mutate!.body.length).toBeGreaterThan(2.8 * MiB);
    const patched = await httpsRequest({ port: guard.port, ca: guard.ca, method: 'POST', path: '/mutate?timeout=3s', body: mutate!.body });
    expect(patched.status).toBe(200);
    expect(JSON.parse(patched.body).response).toMatchObject({ allowed: true, patchType: 'JSONPatch' });
    const validated = await httpsRequest({ port: guard.port, ca: guard.ca, method: 'POST', path: '/validate?timeout=3s', body: validate!.body });
    expect(JSON.parse(validated.body).response.allowed).toBe(true);
  }, 30_000);

  it('refuses an 8 MiB body of [{},{},…] (under the body limit) for the memory budget, and keeps serving within the limit', async () => {
    const body = `[${'{},'.repeat(Math.floor((8 * MiB - 16) / 3))}{}]`;
    expect(body.length).toBeLessThan(8 * MiB);
    // Several at once: each would parse into ~180 MB of objects, beyond the whole heap.
    const answers = await Promise.all(
      Array.from({ length: 4 }, () => httpsRequest({ port: guard.port, ca: guard.ca, method: 'POST', path: '/validate?timeout=3s', body })),
    );
    for (const answer of answers) {
      expect(answer.status).toBe(413);
      expect(JSON.parse(answer.body).error).toMatch(/^request too large for the memory budget: needs \d+\.\d MiB/);
    }
    await normalAdmission();
    expect(guard.child.exitCode).toBeNull();
    expect(processMemory(guard.child.pid!).peak).toBeLessThan(guard.profile.memoryLimitBytes);
    expect(await metric('gitops_guard_admission_rejected_total')).toMatch(/reason="too_large"} [4-9]/);
  }, 60_000);

  it('answers ordinary admissions in time while 20 reviews of 7 MiB arrive at once, within the memory limit', async () => {
    // A ClusterRole UPDATE with a 3.5 MiB annotation, in object and oldObject: a 7 MiB review.
    const big = withMeta(corpusObject('argocd-install.yaml', 'ClusterRole', 'argocd-application-controller'), {
      annotations: { 'example.com/blob': 'x'.repeat(3.5 * MiB) },
    });
    const bigBody = JSON.stringify(reviewFor(big, { operation: 'UPDATE', oldObject: big }));
    expect(bigBody.length).toBeGreaterThan(7 * MiB);
    const bigAnswers = Promise.all(
      Array.from({ length: 20 }, () => httpsRequest({ port: guard.port, ca: guard.ca, method: 'POST', path: '/validate?timeout=3s', body: bigBody })),
    );
    const small: number[] = [];
    const deadline = performance.now() + 4000;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (performance.now() < deadline) small.push(await normalAdmission('3s'));
      }),
    );
    // Every ordinary admission was answered before the API server's 3 s timeout.
    expect(small.length).toBeGreaterThan(8);
    expect(Math.max(...small)).toBeLessThan(3000);
    // The big ones were answered, or refused once their deadline passed while they waited: never reset, never a 500.
    for (const answer of await bigAnswers) expect([200, 503]).toContain(answer.status);
    expect(guard.child.exitCode).toBeNull();
    expect(processMemory(guard.child.pid!).peak).toBeLessThan(guard.profile.memoryLimitBytes);
  }, 60_000);
});

describe('availability as deployed: slow and silent clients', () => {
  it('holds bounded memory against 40 stalled 8 MiB bodies, closes them at the deadline and answers others meanwhile', async () => {
    const before = processMemory(guard.child.pid!).rss;
    const length = 8 * MiB - 1;
    const filler = Buffer.alloc(length - 1, 0x20);
    const sockets = await Promise.all(Array.from({ length: 40 }, () => tls()));
    const closes = sockets.map((socket) => {
      const closed = closedBy(socket);
      socket.write(`POST /validate?timeout=5s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`);
      // All but the last byte (as much as the server takes), then nothing.
      socket.write(filler);
      return closed;
    });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    // The budget bounds what the stalled bodies hold (the rest stays unread in the sockets).
    expect(processMemory(guard.child.pid!).rss - before).toBeLessThan(64 * MiB);
    const answered = await normalAdmission('3s');
    expect(answered).toBeLessThan(3000);
    for (const { afterMs, answer } of await Promise.all(closes)) {
      // 5 s timeout: refused at the admission deadline (4.5 s), or by the request timeout.
      expect(afterMs).toBeLessThan(7000);
      expect(answer).toMatch(/^HTTP\/1\.1 (503|408) /);
    }
    expect(await metric('gitops_guard_admission_rejected_total')).toMatch(/reason="deadline"} [1-9]/);
  }, 30_000);

  it('closes silent, slowloris and never-handshaking connections within the webhook timeout', async () => {
    const silent = await tls();
    const slowHeaders = await tls();
    const trickle = setInterval(() => slowHeaders.write('X'), 500);
    slowHeaders.write('POST /mutate?timeout=5s HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    const noHandshake = await new Promise<Socket>((resolve) => {
      const socket = tcpConnect(guard.port, '127.0.0.1', () => resolve(socket));
    });
    const [a, b, c] = await Promise.all([closedBy(silent), closedBy(slowHeaders), closedBy(noHandshake)]);
    clearInterval(trickle);
    // --webhook-timeout-seconds 5 bounds each (the defaults were 89 s and more).
    expect(a.afterMs).toBeLessThan(8000);
    expect(b.afterMs).toBeLessThan(8000);
    expect(b.answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(c.afterMs).toBeLessThan(8000);
    expect(await metric('gitops_guard_admission_rejected_total')).toMatch(/reason="timeout"} [1-9]/);
    await normalAdmission();
  }, 30_000);
});
