import { describe, expect, it } from 'vitest';
import { createRegistry } from '../actions/registry.js';
import type { KubeObject } from '../api/types.js';
import { DEFAULT_CHECKSUM_ANNOTATION } from '../actions/checksum/stamp-config-checksum.js';
import { applyPatch } from '../actions/patch.js';
import { ConfigReadError } from '../actions/checksum/read.js';
import { evaluate } from '../rules/engine.js';
import { loadRuleSetFile, parseRuleSet } from '../rules/load.js';
import { WORKLOAD_KINDS } from '../actions/checksum/pod-template.js';
import { capturingLogger, DEFAULT_RULES } from '../../test/support/app.js';
import { FakeKube } from '../../test/support/fake-kube.js';
import { configMap, deployment as kubeDeployment, secret } from '../../test/support/kube-fixtures.js';
import { requestFor } from '../../test/support/review.js';
import {
  annotationPatch,
  EVENT_REASON,
  LeadershipLostError,
  optedOut,
  reconcileWorkload,
  ROLLOUT_OPT_OUT_ANNOTATION,
  ROLLOUT_OPT_OUT_VALUE,
  stampingParams,
  syntheticRequest,
  type ReconcileDeps,
} from './reconcile.js';

const deployment = WORKLOAD_KINDS.find((r) => r.kind === 'Deployment')!;
const object: KubeObject = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web', namespace: 'shop', labels: { tier: 'front' } },
  spec: { template: { spec: { containers: [] } } },
};

function rules(yaml: string) {
  return parseRuleSet(`apiVersion: gitops-guard.dev/v1alpha1\nkind: RuleSet\nrules:\n${yaml}`, 'test', createRegistry());
}

describe('annotationPatch', () => {
  it('sets only the one annotation, at the kind\'s template path, with a resourceVersion precondition', () => {
    expect(annotationPatch(['spec', 'template'], '42', 'a/b', 'v1:x')).toEqual({
      metadata: { resourceVersion: '42' },
      spec: { template: { metadata: { annotations: { 'a/b': 'v1:x' } } } },
    });
    expect(annotationPatch(['spec', 'jobTemplate', 'spec', 'template'], undefined, 'a/b', null)).toEqual({
      spec: { jobTemplate: { spec: { template: { metadata: { annotations: { 'a/b': null } } } } } },
    });
  });
});

describe('stampingParams', () => {
  const request = syntheticRequest(deployment, object, 'system:serviceaccount:gitops-guard:gitops-guard-controller');

  it('is a synthetic UPDATE of the workload by the controller', () => {
    expect(request).toMatchObject({
      kind: { group: 'apps', version: 'v1', kind: 'Deployment' },
      resource: { group: 'apps', version: 'v1', resource: 'deployments' },
      namespace: 'shop',
      name: 'web',
      operation: 'UPDATE',
      userInfo: { username: 'system:serviceaccount:gitops-guard:gitops-guard-controller' },
    });
  });

  it('takes the parameters of the first enforce rule that selects the workload', () => {
    const set = rules(`
  - name: other-namespaces
    match: { kinds: [{ group: apps, kind: Deployment }], operations: [UPDATE], namespaces: { include: [prod-*] } }
    action: { type: stampConfigChecksum, params: { annotation: example.com/other } }
  - name: fronts
    match: { kinds: [{ group: apps, kind: Deployment }], operations: [CREATE, UPDATE], labelSelector: { matchLabels: { tier: front } } }
    action: { type: stampConfigChecksum, params: { includeImagePullSecrets: true } }
`);
    expect(stampingParams(set, request, object)).toEqual({
      annotation: DEFAULT_CHECKSUM_ANNOTATION,
      timeoutMs: 2000,
      readTimeoutMs: 1500,
      includeImagePullSecrets: true,
    });
  });

  it.each([
    [
      'audit mode',
      `
  - name: audit-only
    match: { kinds: [{ group: apps, kind: Deployment }], operations: [UPDATE] }
    action: { type: stampConfigChecksum }
    mode: audit
`,
      'rule audit-only is in audit mode',
    ],
    [
      'operation',
      `
  - name: create-only
    match: { kinds: [{ group: apps, kind: Deployment }], operations: [CREATE] }
    action: { type: stampConfigChecksum }
`,
      'rule create-only: operation UPDATE not selected',
    ],
    [
      'labels',
      `
  - name: backs
    match: { kinds: [{ group: apps, kind: Deployment }], operations: [UPDATE], labelSelector: { matchLabels: { tier: back } } }
    action: { type: stampConfigChecksum }
`,
      'rule backs: labels do not match the selector',
    ],
    [
      'no stamping rule',
      `
  - name: owners
    match: { kinds: [{ group: rbac.authorization.k8s.io, kind: ClusterRole }], operations: [UPDATE] }
    action: { type: tagOwner }
`,
      'no stampConfigChecksum rule',
    ],
  ])('says why nothing selects it: %s', (_, yaml, why) => {
    expect(stampingParams(rules(yaml), request, object)).toBe(why);
  });
});

describe('optedOut', () => {
  // The workload annotation gitops-guard.dev/rollout: disabled, nothing else.
  it.each<[string, Record<string, string> | undefined, boolean]>([
    ['no annotation', undefined, false],
    ['gitops-guard.dev/rollout: disabled', { 'gitops-guard.dev/rollout': 'disabled' }, true],
    ['gitops-guard.dev/rollout: enabled', { 'gitops-guard.dev/rollout': 'enabled' }, false],
  ])('%s: opted out %s', (_, annotations, opted) => {
    expect(optedOut(annotations ? { ...object, metadata: { annotations } } : object)).toBe(opted);
  });
});

/**
 * reconcileWorkload against the in-memory fake of the workload API and ConfigMap/Secret reads (no
 * HTTP), like controller-runtime's reconciler tests on its fake client. The checksum it writes is
 * compared with what the webhook's own action stamps through the engine.
 */
describe('reconcileWorkload', () => {
  const NS = 'shop';
  const KEY = Buffer.from('reconcile-unit-test-key-0123456789abcdef', 'ascii');
  const defaultRules = loadRuleSetFile(DEFAULT_RULES, createRegistry());
  const ref = { resource: deployment, namespace: NS, name: 'web' };
  const consuming = (annotations?: Record<string, string>) =>
    kubeDeployment(NS, 'web', { containers: [{ name: 'app', image: 'app:1', envFrom: [{ configMapRef: { name: 'settings' } }, { secretRef: { name: 'db' } }] }] }, annotations);

  function setup(overrides: Partial<ReconcileDeps> = {}) {
    const kube = new FakeKube();
    kube.store.put(configMap(NS, 'settings', { mode: 'fast' }));
    kube.store.put(secret(NS, 'db', { password: 'hunter2' }));
    const { logger, lines } = capturingLogger('debug');
    const deps: ReconcileDeps = {
      kube,
      workloads: kube,
      rules: () => defaultRules,
      checksumKey: KEY,
      username: 'system:serviceaccount:gitops-guard:gitops-guard-controller',
      isLeader: () => true,
      identity: 'gitops-guard-controller-0',
      logger,
      conflictRequeueMs: 250,
      ...overrides,
    };
    return { kube, deps, lines, run: (sources: string[] = ['ConfigMap settings']) => reconcileWorkload(ref, sources, deps, new AbortController().signal) };
  }

  /** What the webhook stamps on `object` now: the engine, the default rules, the same reads. */
  async function webhookStamp(kube: FakeKube, object: KubeObject): Promise<string | undefined> {
    const evaluation = await evaluate(requestFor(object), 'mutate', defaultRules, { registry: createRegistry(), kube, settings: { checksumKey: KEY }, logger: capturingLogger().logger });
    const template = (applyPatch(object, evaluation.patch).spec as { template: { metadata?: { annotations?: Record<string, string> } } }).template;
    return template.metadata?.annotations?.[DEFAULT_CHECKSUM_ANNOTATION];
  }

  const stale = `v2:${'0'.repeat(64)}`;

  it("patches a stale checksum to the webhook's value, with a resourceVersion precondition, and records an Event", async () => {
    const { kube, run } = setup();
    const stored = kube.store.put(consuming({ [DEFAULT_CHECKSUM_ANNOTATION]: stale }));
    const expected = await webhookStamp(kube, consuming());
    const result = await run(['ConfigMap settings', 'Secret db']);
    expect(result).toEqual({ result: 'patched', checksum: expected, previous: stale, sources: ['ConfigMap settings', 'Secret db'] });
    const patched = kube.store.get('apps/v1', 'Deployment', NS, 'web')!;
    expect((patched.spec as any).template.metadata.annotations[DEFAULT_CHECKSUM_ANNOTATION]).toBe(expected);
    expect(Number(patched.metadata!.resourceVersion)).toBeGreaterThan(Number(stored.metadata!.resourceVersion));
    const [event] = kube.events(NS);
    expect(event).toMatchObject({ reason: EVENT_REASON, type: 'Normal', involvedObject: { kind: 'Deployment', name: 'web', uid: stored.metadata!.uid } });
    expect(event!['message']).toMatch(/^ConfigMap settings, Secret db changed: pod template annotation updated to v2:/);
    expect(JSON.stringify(event)).not.toContain('hunter2');
  });

  it('leaves a workload alone that carries the right checksum: no patch, no Event', async () => {
    const { kube, run } = setup();
    const current = await webhookStamp(kube, consuming());
    kube.store.put(consuming({ [DEFAULT_CHECKSUM_ANNOTATION]: current! }));
    expect(await run()).toEqual({ result: 'in-sync', checksum: current });
    expect(kube.callsOf('mergePatch')).toEqual([]);
    expect(kube.events(NS)).toEqual([]);
  });

  it('removes its own value from a workload that consumes nothing any more', async () => {
    const { kube, run } = setup();
    kube.store.put(kubeDeployment(NS, 'web', { containers: [{ name: 'app', image: 'app:1' }] }, { [DEFAULT_CHECKSUM_ANNOTATION]: stale, other: 'kept' }));
    expect(await run()).toMatchObject({ result: 'patched', checksum: null, previous: stale });
    expect((kube.store.get('apps/v1', 'Deployment', NS, 'web')!.spec as any).template.metadata.annotations).toEqual({ other: 'kept' });
  });

  it.each<[string, Record<string, string> | undefined, Record<string, unknown>, string]>([
    ['a value it did not write', { [DEFAULT_CHECKSUM_ANNOTATION]: 'set-by-hand' }, {}, `annotation ${DEFAULT_CHECKSUM_ANNOTATION} was not written by gitops-guard`],
    ['no value yet (the webhook stamps it at the next admission)', undefined, {}, 'not stamped by the webhook yet (it stamps at the next admission)'],
    ['an opt-out', { [DEFAULT_CHECKSUM_ANNOTATION]: stale }, { annotations: { [ROLLOUT_OPT_OUT_ANNOTATION]: ROLLOUT_OPT_OUT_VALUE } }, `opted out (${ROLLOUT_OPT_OUT_ANNOTATION}: ${ROLLOUT_OPT_OUT_VALUE})`],
    ['a deletion in progress', { [DEFAULT_CHECKSUM_ANNOTATION]: stale }, { deletionTimestamp: '2024-01-01T00:00:00Z' }, 'workload is being deleted'],
  ])('skips a workload with %s, reading no ConfigMap or Secret and writing nothing', async (_, templateAnnotations, metadata, reason) => {
    const { kube, run } = setup();
    const object = consuming(templateAnnotations);
    kube.store.put({ ...object, metadata: { ...object.metadata, ...metadata } });
    expect(await run()).toEqual({ result: 'skipped', reason });
    expect(kube.callsOf('readConfigSource')).toEqual([]);
    expect(kube.callsOf('mergePatch')).toEqual([]);
  });

  it('skips a workload that no longer exists, and one no enforce rule selects', async () => {
    const gone = setup();
    expect(await gone.run()).toEqual({ result: 'skipped', reason: 'workload no longer exists' });
    const audited = setup({ rules: () => rules(`
  - name: audit-only
    match: { kinds: [{ group: apps, kind: Deployment }], operations: [UPDATE] }
    action: { type: stampConfigChecksum }
    mode: audit
`) });
    audited.kube.store.put(consuming({ [DEFAULT_CHECKSUM_ANNOTATION]: stale }));
    expect(await audited.run()).toEqual({ result: 'skipped', reason: 'not selected for stamping (rule audit-only is in audit mode)' });
  });

  it('stamps a workload without a value when asked to (--stamp-unstamped)', async () => {
    const { kube, run } = setup({ stampUnstamped: true });
    kube.store.put(consuming());
    expect(await run()).toMatchObject({ result: 'patched', checksum: await webhookStamp(kube, consuming()), previous: undefined });
  });

  it('in a dry run, reports what it would patch and writes nothing', async () => {
    const { kube, run } = setup({ dryRun: true });
    kube.store.put(consuming({ [DEFAULT_CHECKSUM_ANNOTATION]: stale }));
    expect(await run()).toMatchObject({ result: 'would-patch', previous: stale });
    expect(kube.callsOf('mergePatch')).toEqual([]);
    expect(kube.events(NS)).toEqual([]);
  });

  it('asks to be requeued when the workload changed between read and patch (409), recording no Event', async () => {
    const { kube, run } = setup();
    kube.store.put(consuming({ [DEFAULT_CHECKSUM_ANNOTATION]: stale }));
    kube.fail('mergePatch', 409);
    expect(await run()).toEqual({ result: 'conflict', reason: 'workload changed while it was being reconciled (HTTP 409 Conflict)', requeueAfterMs: 250 });
    expect(kube.events(NS)).toEqual([]);
  });

  it('sends no patch once it is not the leader any more', async () => {
    const { kube, run } = setup({ isLeader: () => false });
    kube.store.put(consuming({ [DEFAULT_CHECKSUM_ANNOTATION]: stale }));
    await expect(run()).rejects.toBeInstanceOf(LeadershipLostError);
    expect(kube.callsOf('mergePatch')).toEqual([]);
  });

  it('fails (for the queue to retry) when a ConfigMap or Secret cannot be read or the patch is refused, never patching a partial checksum', async () => {
    const read = setup();
    read.kube.store.put(consuming({ [DEFAULT_CHECKSUM_ANNOTATION]: stale }));
    read.kube.fail('readConfigSource', 403);
    const error = await read.run().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigReadError);
    expect((error as ConfigReadError).reason).toBe('forbidden');
    expect(read.kube.callsOf('mergePatch')).toEqual([]);

    const refused = setup();
    refused.kube.store.put(consuming({ [DEFAULT_CHECKSUM_ANNOTATION]: stale }));
    refused.kube.fail('mergePatch', 403);
    await expect(refused.run()).rejects.toMatchObject({ reason: 'forbidden', httpStatus: 403, message: 'HTTP 403 Forbidden' });
  });

  it('still counts as rolled when the Event cannot be recorded (a warning, no Secret data)', async () => {
    const { kube, run, lines } = setup();
    kube.store.put(consuming({ [DEFAULT_CHECKSUM_ANNOTATION]: stale }));
    kube.fail('createEvent', 403);
    expect(await run()).toMatchObject({ result: 'patched' });
    expect(lines.some((l) => l.includes('could not record the rollout Event') && l.includes('HTTP 403 Forbidden'))).toBe(true);
    expect(lines.join('\n')).not.toContain('hunter2');
  });
});
