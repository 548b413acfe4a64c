import { randomBytes } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRegistry } from '../src/actions/registry.js';
import { computeWorkloadChecksum } from '../src/actions/checksum/compute.js';
import type { KubeObject } from '../src/api/types.js';
import { ClientNodeReader } from '../src/kube/client-node-reader.js';
import { evaluate } from '../src/rules/engine.js';
import { loadRuleSetFile, parseRuleSet } from '../src/rules/load.js';
import type { RunningServer } from '../src/server/server.js';
import { capturingLogger, DEFAULT_RULES } from './support/app.js';
import { startGuardServer } from './support/guard-server.js';
import { httpsRequest } from './support/https-client.js';
import { deployment, objectPath, secret } from './support/kube-fixtures.js';
import { KubeApiServer } from './support/kube-api-server.js';
import { requestFor, reviewFor } from './support/review.js';

/**
 * Plants a unique Secret value and runs every checksum path (stamped, missing key, missing
 * object, 403, 500 with the Secret in the error body, malformed answer, timeout, dropped
 * connection, audit mode, onError deny, over HTTPS with debug logging) collecting everything
 * gitops-guard emits: patches, warnings, denials, audit annotations, thrown errors, log lines,
 * HTTP response bodies and metrics. The value must appear in none of them, in any encoding.
 */

const CANARY = `canary-${randomBytes(16).toString('hex')}`;
const FORMS = [CANARY, Buffer.from(CANARY).toString('base64'), Buffer.from(CANARY).toString('base64url'), Buffer.from(CANARY).toString('hex')];
const NS = 'vault';
const KEY = Buffer.from('fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210');

const outputs: string[] = [];
const collect = (label: string, value: unknown) => outputs.push(`${label}: ${typeof value === 'string' ? value : JSON.stringify(value)}`);
const errorText = (error: unknown) => (error instanceof Error ? `${error.name}: ${error.message}\n${error.stack ?? ''}\n${JSON.stringify(error)}` : String(error));

let api: KubeApiServer;
let kube: ClientNodeReader;
let guard: RunningServer;
let ca: Buffer;
const engineLog = capturingLogger('debug');
const serverLog = capturingLogger('debug');
const registry = createRegistry();

/** One Deployment per path, each in a way that reaches a different code path. */
const workloads: Record<string, KubeObject> = {
  stamped: deployment(NS, 'stamped', { containers: [{ name: 'c', env: [{ name: 'P', valueFrom: { secretKeyRef: { name: 'planted', key: 'password' } } }] }] }),
  allKeys: deployment(NS, 'all-keys', { containers: [{ name: 'c', envFrom: [{ secretRef: { name: 'planted' } }] }], volumes: [{ name: 'v', secret: { secretName: 'planted' } }] }),
  missingKey: deployment(NS, 'missing-key', { containers: [{ name: 'c', env: [{ name: 'X', valueFrom: { secretKeyRef: { name: 'planted', key: 'no-such-key' } } }] }] }),
  missingObject: deployment(NS, 'missing-object', { containers: [{ name: 'c', envFrom: [{ secretRef: { name: 'does-not-exist' } }, { secretRef: { name: 'planted' } }] }] }),
  forbidden: deployment(NS, 'forbidden', { containers: [{ name: 'c', envFrom: [{ secretRef: { name: 'forbidden' } }, { secretRef: { name: 'planted' } }] }] }),
  serverError: deployment(NS, 'server-error', { containers: [{ name: 'c', envFrom: [{ secretRef: { name: 'leaky-500' } }] }] }),
  malformed: deployment(NS, 'malformed', { containers: [{ name: 'c', envFrom: [{ secretRef: { name: 'malformed' } }] }] }),
  statusLeak: deployment(NS, 'status-leak', { containers: [{ name: 'c', envFrom: [{ secretRef: { name: 'status-leak' } }] }] }),
  slow: deployment(NS, 'slow', { containers: [{ name: 'c', envFrom: [{ secretRef: { name: 'slow' } }, { secretRef: { name: 'planted' } }] }] }),
  dropped: deployment(NS, 'dropped', { containers: [{ name: 'c', envFrom: [{ secretRef: { name: 'dropped' } }] }] }),
};

beforeAll(async () => {
  api = await KubeApiServer.start();
  const plantedData = { password: CANARY, [`key-${CANARY}`.slice(0, 60)]: 'v', other: `${CANARY}\n` };
  api.put(secret(NS, 'planted', plantedData));
  api.put(secret(NS, 'forbidden', { password: CANARY }));
  api.fault({ path: objectPath('Secret', NS, 'forbidden') }, { status: 403 });
  // A misbehaving proxy answering 500 with the Secret itself as the body.
  api.fault({ path: objectPath('Secret', NS, 'leaky-500') }, { status: 500, body: secret(NS, 'leaky-500', { password: CANARY }) });
  // A 200 whose data is not a string map.
  api.fault({ path: objectPath('Secret', NS, 'malformed') }, { body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'malformed' }, data: { password: { nested: CANARY } } } });
  // A Status whose message quotes the value.
  api.fault({ path: objectPath('Secret', NS, 'status-leak') }, { status: 500, body: { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: `bad value ${CANARY}`, reason: 'InternalError', code: 500 } });
  api.put(secret(NS, 'slow', { password: CANARY }));
  api.fault({ path: objectPath('Secret', NS, 'slow') }, { latencyMs: 5000 });
  api.put(secret(NS, 'dropped', { password: CANARY }));
  api.fault({ path: objectPath('Secret', NS, 'dropped') }, { destroy: true });

  const kc = new KubeConfig();
  kc.loadFromFile(api.writeKubeconfig());
  kube = new ClientNodeReader(kc);

  ({ server: guard, ca } = await startGuardServer({ kube, settings: { checksumKey: KEY }, logger: serverLog.logger }));
});
afterAll(async () => {
  await guard?.shutdown();
  await api?.close();
});

const fastRules = (onError: 'allow' | 'deny') =>
  parseRuleSet(
    `apiVersion: gitops-guard.dev/v1alpha1
kind: RuleSet
rules:
  - name: stamp-config-checksum
    match: { kinds: [{ group: apps, kind: Deployment }] }
    action: { type: stampConfigChecksum, params: { timeoutMs: 400, readTimeoutMs: 300 } }
    onError: ${onError}
`,
    'canary-rules',
    registry,
  );

describe('no Secret value in any output', () => {
  it('the canary is really read: it moves the checksum', async () => {
    const before = await computeWorkloadChecksum(workloads['stamped']!, NS, kube, KEY, { timeoutMs: 2000, readTimeoutMs: 1500, includeImagePullSecrets: false });
    api.put(secret(NS, 'planted', { password: `${CANARY}-changed` }));
    const after = await computeWorkloadChecksum(workloads['stamped']!, NS, kube, KEY, { timeoutMs: 2000, readTimeoutMs: 1500, includeImagePullSecrets: false });
    api.put(secret(NS, 'planted', { password: CANARY, other: `${CANARY}\n` }));
    expect(before.value).not.toBe(after.value);
    collect('compute', before);
    collect('compute', after);
    // and the test API server does hand it out (so the checks below can fail)
    expect(JSON.stringify(api.get('v1', 'Secret', NS, 'planted'))).toContain(FORMS[1]);
  });

  it('through the engine: enforce, audit and deny, every path', async () => {
    const deps = { registry, kube, settings: { checksumKey: KEY }, logger: engineLog.logger };
    const defaults = loadRuleSetFile(DEFAULT_RULES, registry);
    for (const [name, object] of Object.entries(workloads)) {
      for (const [label, ruleSet, extra] of [
        ['enforce', fastRules('allow'), {}],
        ['deny', fastRules('deny'), {}],
        ['audit', defaults, { modeOverride: 'audit' as const }],
      ] as const) {
        if (label === 'audit' && name === 'slow') continue; // the default 2 s deadline; covered over HTTPS
        try {
          collect(`${name}/${label}`, await evaluate(requestFor(object), 'mutate', ruleSet, { ...deps, ...extra }));
        } catch (error) {
          collect(`${name}/${label}/thrown`, errorText(error));
        }
      }
    }
    const all = outputs.join('\n');
    expect(all).toContain('Secret vault/does-not-exist not found');
    expect(all).toContain('has no key no-such-key');
    expect(all).toContain('cannot read Secret vault/forbidden: forbidden (HTTP 403)');
    expect(all).toContain('cannot read Secret vault/leaky-500: API server error (HTTP 500)');
    expect(all).toContain('cannot read Secret vault/malformed: API server error: malformed data');
    expect(all).toContain('cannot read Secret vault/status-leak: API server error (HTTP 500): InternalError');
    expect(all).toMatch(/cannot read Secret vault\/slow: (timed out after 300 ms|no answer within the 400 ms)/);
    expect(all).toMatch(/cannot read Secret vault\/dropped: API server unreachable/);
    expect(all).toContain('[audit] rule stamp-config-checksum would patch');
    expect(all).toContain('configured to deny on error');
  });

  it('directly: errors thrown by the shared checksum function', async () => {
    for (const [name, object] of Object.entries(workloads)) {
      try {
        collect(`direct/${name}`, await computeWorkloadChecksum(object, NS, kube, KEY, { timeoutMs: 400, readTimeoutMs: 300, includeImagePullSecrets: true }));
      } catch (error) {
        collect(`direct/${name}/thrown`, errorText(error));
      }
    }
  });

  it('over HTTPS with debug logging, and in the metrics', async () => {
    for (const [name, object] of Object.entries(workloads)) {
      if (name === 'slow') continue; // the default rules wait 1.5 s; the timeout path is covered through the engine
      for (const phase of ['/mutate', '/validate']) {
        const res = await httpsRequest({ port: guard.port, ca, method: 'POST', path: phase, body: JSON.stringify(reviewFor(object)) });
        expect(res.status).toBe(200);
        collect(`https${phase}/${name}`, Buffer.from(res.body).toString('utf8'));
        const patch = JSON.parse(res.body).response?.patch;
        if (patch) collect(`https${phase}/${name}/patch`, Buffer.from(patch, 'base64').toString('utf8'));
      }
    }
    const metrics = await httpsRequest({ port: guard.port, ca, path: '/metrics' });
    collect('metrics', metrics.body);
    expect(metrics.body).toContain('stamp-config-checksum');
  });

  it('finds the canary nowhere', () => {
    outputs.push(...engineLog.lines.map((l) => `engine-log: ${l}`), ...serverLog.lines.map((l) => `server-log: ${l}`));
    expect(engineLog.lines.length).toBeGreaterThan(0);
    expect(serverLog.lines.some((l) => l.includes('admission body'))).toBe(true);
    expect(outputs.length).toBeGreaterThan(50);
    for (const form of FORMS) {
      const leaks = outputs.filter((o) => o.includes(form));
      expect(leaks, `found ${form === CANARY ? 'the canary' : 'an encoded canary'} in:\n${leaks.join('\n').slice(0, 2000)}`).toEqual([]);
    }
  });
});
