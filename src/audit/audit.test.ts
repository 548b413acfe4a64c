import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { KubeObject } from '../api/types.js';
import { patchFrom } from '../actions/patch.js';
import { builtinActions, createRegistry } from '../actions/registry.js';
import type { ActionDefinition } from '../actions/types.js';
import { KubeReadError } from '../kube/errors.js';
import type { KubeReader } from '../kube/reader.js';
import { parseRuleSet } from '../rules/load.js';
import { createLogger } from '../server/logger.js';
import { runAuditCore, type AuditOptions, type ClusterAccess } from './audit.js';
import { exitCodeFor } from './summary.js';
import type { ObjectReader } from '../kube/objects.js';

/** A mutating test action that marks objects, and a validating one that refuses marked objects. */
const mark: ActionDefinition = {
  name: 'mark',
  phase: 'mutate',
  paramsSchema: { type: 'object' },
  run: (_params, { object, request }) => ({
    patch: patchFrom(object, (draft) => {
      draft.metadata = { ...(draft.metadata ?? {}), annotations: { ...(draft.metadata?.annotations ?? {}), marked: request.operation } };
    }),
  }),
};
const refuseMarked: ActionDefinition = {
  name: 'refuseMarked',
  phase: 'validate',
  paramsSchema: { type: 'object' },
  run: (_params, { object }) => (object.metadata?.annotations?.['marked'] ? { denial: `refused: marked on ${object.metadata.annotations['marked']}` } : {}),
};
const registry = createRegistry([...builtinActions, mark, refuseMarked]);

const OWNER_KINDS = '[{group: rbac.authorization.k8s.io, kind: ClusterRoleBinding}, {group: "", kind: ConfigMap}]';
const RULES = `
apiVersion: gitops-guard.dev/v1alpha1
kind: RuleSet
rules:
  - name: checksum
    match: {kinds: [{group: apps, kind: Deployment}]}
    action: {type: stampConfigChecksum}
  - name: tag-owner
    match: {kinds: ${OWNER_KINDS}}
    action: {type: tagOwner}
  - name: deny-duplicate-owner
    match: {kinds: ${OWNER_KINDS}, operations: [UPDATE]}
    action: {type: denyDuplicateOwner}
`;
const ruleSet = parseRuleSet(RULES, 'rules', registry);

const crb = (subjectNamespace: string): KubeObject => ({
  apiVersion: 'rbac.authorization.k8s.io/v1',
  kind: 'ClusterRoleBinding',
  metadata: { name: 'airflow-pre-checker-binding' },
  roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'pre-checker' },
  subjects: [{ kind: 'ServiceAccount', name: 'airflow-pre-checker', namespace: subjectNamespace }],
});
const configMap = (name: string, data: Record<string, string>, namespace?: string): KubeObject => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, ...(namespace ? { namespace } : {}) },
  data,
});
const deployment = (name: string, configMapName: string, secretName?: string): KubeObject => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name },
  spec: {
    selector: { matchLabels: { app: name } },
    template: {
      metadata: { labels: { app: name } },
      spec: {
        containers: [
          {
            name: 'app',
            image: 'busybox:1.36',
            envFrom: [{ configMapRef: { name: configMapName } }, ...(secretName ? [{ secretRef: { name: secretName } }] : [])],
          },
        ],
      },
    },
  },
});

let dir: string;
let counter = 0;
function file(...objects: KubeObject[]): string {
  const path = join(dir, `input-${counter++}.yaml`);
  writeFileSync(path, objects.map((o) => stringify(o)).join('---\n'));
  return path;
}

function options(overrides: Partial<AuditOptions>): AuditOptions {
  return {
    inputs: [],
    ruleSet,
    registry,
    settings: { checksumKey: Buffer.alloc(32) },
    logger: createLogger('silent'),
    namespace: 'default',
    ...overrides,
  };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gitops-guard-audit-core-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('runAuditCore: two apps render one object', () => {
  it("applies the second app's rendering as an UPDATE over the first and reports the webhook's own denial", async () => {
    const pdp = file(crb('pdp-dev'));
    const smartdq = file(crb('smartdq-dev'));
    const result = await runAuditCore(options({ inputs: [{ path: pdp, app: 'pdp-dev' }, { path: smartdq, app: 'smartdq-dev' }] }));

    expect(result.objects).toHaveLength(1);
    const [first, second] = result.objects[0]!.renderings;
    expect(first).toMatchObject({ operation: 'CREATE', oldObject: 'none', allowed: true, owner: 'argocd:pdp-dev', app: 'pdp-dev' });
    expect(first!.patch).toContainEqual({ op: 'add', path: '/metadata/annotations/gitops-guard.dev~1owner', value: 'argocd:pdp-dev' });
    expect(second).toMatchObject({ operation: 'UPDATE', oldObject: 'input', allowed: false, owner: 'argocd:smartdq-dev' });
    const denial = second!.phases[1]!.denials[0]!;
    expect(denial).toContain('ClusterRoleBinding/airflow-pre-checker-binding is owned by argocd:pdp-dev; argocd:smartdq-dev may not take it over');

    expect(result.duplicates).toHaveLength(1);
    expect(result.duplicates[0]).toMatchObject({ severity: 'error', scope: 'Cluster', owners: ['argocd:pdp-dev', 'argocd:smartdq-dev'] });
    expect(result.summary).toMatchObject({ objects: 2, distinctObjects: 1, denied: 1, duplicates: { error: 1, warning: 0 }, exitCode: 1 });
  });

  it('reports namespaced objects two apps render as duplicates, too', async () => {
    const a = file(configMap('settings', { a: '1' }, 'shared'));
    const b = file(configMap('settings', { b: '2' }, 'shared'));
    const result = await runAuditCore(options({ inputs: [{ path: a, app: 'a' }, { path: b, app: 'b' }] }));
    expect(result.duplicates[0]).toMatchObject({ scope: 'Namespaced', severity: 'error', identity: { namespace: 'shared', name: 'settings' } });
    expect(result.summary.exitCode).toBe(1);
  });

  it('--app owners count even when the rules do not read Argo CD tracking', async () => {
    const helmOnly = parseRuleSet(
      `apiVersion: gitops-guard.dev/v1alpha1
kind: RuleSet
rules:
  - {name: deny, match: {kinds: [{group: "*", kind: "*"}], operations: [UPDATE]}, action: {type: denyDuplicateOwner, params: {sources: [helm]}}}
`,
      'rules',
      registry,
    );
    const result = await runAuditCore(options({ ruleSet: helmOnly, inputs: [{ path: file(crb('a')), app: 'a' }, { path: file(crb('b')), app: 'b' }] }));
    expect(result.duplicates[0]).toMatchObject({ severity: 'error', owners: ['argocd:a', 'argocd:b'] });
    // The webhook configured this way would not deny: the audit reports what the rules would do.
    expect(result.summary.denied).toBe(0);
    expect(result.summary.exitCode).toBe(1);
  });

  it('one app rendering an object twice is a warning, not a failure', async () => {
    const path = file(crb('x'), crb('x'));
    const result = await runAuditCore(options({ inputs: [{ path, app: 'only' }] }));
    expect(result.duplicates[0]).toMatchObject({ severity: 'warning', owners: ['argocd:only'] });
    expect(result.summary.exitCode).toBe(0);
  });
});

describe('runAuditCore: phases', () => {
  it('runs validation on the mutated object, as the API server does', async () => {
    const rules = parseRuleSet(
      `apiVersion: gitops-guard.dev/v1alpha1
kind: RuleSet
rules:
  - {name: mark, match: {kinds: [{kind: ConfigMap}]}, action: {type: mark}}
  - {name: refuse-marked, match: {kinds: [{kind: ConfigMap}]}, action: {type: refuseMarked}}
`,
      'rules',
      registry,
    );
    const path = file(configMap('c', {}));
    const result = await runAuditCore(options({ ruleSet: rules, inputs: [{ path }] }));
    const rendering = result.objects[0]!.renderings[0]!;
    expect(rendering.allowed).toBe(false);
    expect(rendering.phases.map((p) => p.phase)).toEqual(['mutate', 'validate']);
    expect(rendering.phases[1]!.denials).toEqual(['refused: marked on CREATE']);
    expect(result.summary.exitCode).toBe(1);
  });

  it('in audit mode, would-be denials are findings and do not fail the run', async () => {
    const pdp = file(crb('pdp-dev'));
    const smartdq = file(crb('smartdq-dev'));
    const result = await runAuditCore(
      options({ modeOverride: 'audit', inputs: [{ path: pdp, app: 'pdp-dev' }, { path: smartdq, app: 'smartdq-dev' }] }),
    );
    const second = result.objects[0]!.renderings[1]!;
    expect(second.allowed).toBe(true);
    expect(second.phases[1]!.results.find((r) => r.result === 'denied')).toMatchObject({ mode: 'audit' });
    expect(result.summary.denied).toBe(0);
    expect(result.summary.auditFindings).toBeGreaterThan(0);
    // The duplicate itself is still an error: two owners is a finding regardless of rule modes.
    expect(result.summary.exitCode).toBe(1);
  });
});

describe('runAuditCore: config checksums', () => {
  it('computes checksums from ConfigMaps and Secrets in the input, applied in the same bundle', async () => {
    const secret: KubeObject = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'creds' }, stringData: { token: 't' } };
    const run = async (value: string) => {
      const path = file(deployment('web', 'web-config', 'creds'), configMap('web-config', { mode: value }), secret);
      const result = await runAuditCore(options({ inputs: [{ path }] }));
      const web = result.objects.find((o) => o.kind === 'Deployment')!.renderings[0]!;
      return { result, web };
    };
    const { result, web } = await run('fast');
    expect(web.checksums).toEqual([{ rule: 'checksum', mode: 'enforce', annotation: 'gitops-guard.dev/config-checksum', status: 'stamped', value: expect.stringMatching(/^v2:[0-9a-f]{64}$/) }]);
    expect(web.configSources).toEqual([
      { kind: 'ConfigMap', namespace: 'default', name: 'web-config', from: 'input' },
      { kind: 'Secret', namespace: 'default', name: 'creds', from: 'input' },
    ]);
    expect(result.summary.checksums).toEqual({ stamped: 1, current: 0, failed: 0 });
    const again = await run('fast');
    const changed = await run('slow');
    expect(again.web.checksums[0]!.value).toBe(web.checksums[0]!.value);
    expect(changed.web.checksums[0]!.value).not.toBe(web.checksums[0]!.value);
  });

  it('reports a checksum the manifest already carries as current', async () => {
    const first = await runAuditCore(options({ inputs: [{ path: file(deployment('web', 'cfg'), configMap('cfg', { a: '1' })) }] }));
    const value = first.objects[0]!.renderings[0]!.checksums[0]!.value!;
    const stamped = deployment('web', 'cfg');
    (stamped.spec as { template: { metadata: Record<string, unknown> } }).template.metadata.annotations = { 'gitops-guard.dev/config-checksum': value };
    const again = await runAuditCore(options({ inputs: [{ path: file(stamped, configMap('cfg', { a: '1' })) }] }));
    const rendering = again.objects[0]!.renderings[0]!;
    expect(rendering.checksums).toEqual([{ rule: 'checksum', mode: 'enforce', annotation: 'gitops-guard.dev/config-checksum', status: 'current', value }]);
    expect(rendering.patch).toEqual([]);
    expect(again.summary.checksums).toEqual({ stamped: 0, current: 1, failed: 0 });
  });

  it('offline, a source missing from the input is absent: reported, and the action warns', async () => {
    const path = file(deployment('lonely', 'nowhere'));
    const result = await runAuditCore(options({ inputs: [{ path }] }));
    const rendering = result.objects[0]!.renderings[0]!;
    expect(rendering.configSources).toEqual([
      { kind: 'ConfigMap', namespace: 'default', name: 'nowhere', from: 'absent', detail: expect.stringContaining('offline') },
    ]);
    expect(rendering.phases[0]!.warnings).toContain('ConfigMap default/nowhere not found: pods will not start until it exists');
  });

  it('with a cluster, reads what the input lacks; a failed read leaves the checksum uncomputed, not guessed', async () => {
    const configs: KubeReader = {
      async readConfigSource(ref) {
        if (ref.name === 'live-config') return { found: true, content: new Map([['k', Buffer.from('v')]]) };
        throw new KubeReadError(ref, 'forbidden', 'Forbidden', 403);
      },
    };
    const cluster: ClusterAccess = { configs, objects: { read: async () => null }, description: 'https://test' };
    const path = file(deployment('ok', 'live-config'), deployment('blocked', 'locked-config'));
    const result = await runAuditCore(options({ inputs: [{ path }], cluster }));
    const [ok, blocked] = result.objects.map((o) => o.renderings[0]!);
    expect(ok!.configSources[0]).toMatchObject({ from: 'cluster' });
    expect(ok!.checksums[0]).toMatchObject({ status: 'stamped' });
    expect(blocked!.configSources[0]).toMatchObject({ from: 'unresolved', detail: expect.stringContaining('forbidden') });
    expect(blocked!.checksums[0]).toMatchObject({ status: 'failed', reason: expect.stringContaining('locked-config') });
    expect(blocked!.patch).toEqual([]);
    expect(result.summary.checksums.failed).toBe(1);
    expect(result.cluster).toBe('https://test');
  });
});

describe('runAuditCore: live objects', () => {
  it('audits an existing object as an UPDATE against the live object, so the recorded owner counts', async () => {
    const liveCrb: KubeObject = {
      ...crb('other'),
      metadata: { name: 'airflow-pre-checker-binding', uid: 'live-uid', annotations: { 'gitops-guard.dev/owner': 'argocd:other-team' } },
    };
    const reads: unknown[] = [];
    const objects: ObjectReader = {
      async read(ref) {
        reads.push(ref);
        return ref.kind === 'ClusterRoleBinding' ? liveCrb : null;
      },
    };
    const cluster: ClusterAccess = { configs: { readConfigSource: async () => ({ found: false }) }, objects, description: 'https://test' };
    const path = file(crb('pdp-dev'), configMap('fresh', {}));
    const result = await runAuditCore(options({ inputs: [{ path, app: 'pdp-dev' }], cluster }));
    const [binding, fresh] = result.objects.map((o) => o.renderings[0]!);
    expect(binding).toMatchObject({ operation: 'UPDATE', oldObject: 'cluster', allowed: false });
    expect(binding!.phases[1]!.denials[0]).toContain('is owned by argocd:other-team; argocd:pdp-dev may not take it over');
    expect(fresh).toMatchObject({ operation: 'CREATE', oldObject: 'none', allowed: true });
    expect(reads).toEqual([
      { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', plural: 'clusterrolebindings', name: 'airflow-pre-checker-binding' },
      { apiVersion: 'v1', kind: 'ConfigMap', plural: 'configmaps', name: 'fresh', namespace: 'default' },
    ]);
  });

  it('notes a live read that failed and audits the object as a CREATE', async () => {
    const cluster: ClusterAccess = {
      configs: { readConfigSource: async () => ({ found: false }) },
      objects: { read: async () => Promise.reject(new Error('HTTP 403 Forbidden')) },
      description: 'https://test',
    };
    const result = await runAuditCore(options({ inputs: [{ path: file(crb('x')) }], cluster }));
    const rendering = result.objects[0]!.renderings[0]!;
    expect(rendering.operation).toBe('CREATE');
    expect(rendering.notes).toEqual(['live object could not be read (HTTP 403 Forbidden); audited as CREATE']);
  });
});

describe('runAuditCore: input', () => {
  it('gives namespaced objects without a namespace the --namespace, and uses CRDs from the input for scope', async () => {
    const crd: KubeObject = {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: 'widgets.example.com' },
      spec: { group: 'example.com', scope: 'Cluster', names: { kind: 'Widget', plural: 'widgets' }, versions: [] },
    };
    const widget: KubeObject = { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w', namespace: 'ignored' } };
    const gadget: KubeObject = { apiVersion: 'example.com/v1', kind: 'Gadget', metadata: { name: 'g' } };
    const result = await runAuditCore(options({ namespace: 'argocd', inputs: [{ path: file(widget, configMap('c', {}), crd, gadget) }] }));
    const byKind = Object.fromEntries(result.objects.map((o) => [o.kind, o]));
    expect(byKind['Widget']).toMatchObject({ scope: 'Cluster', scopeKnown: true });
    expect(byKind['Widget']!.namespace).toBeUndefined();
    expect(byKind['ConfigMap']).toMatchObject({ scope: 'Namespaced', namespace: 'argocd' });
    expect(byKind['Gadget']).toMatchObject({ scopeKnown: false, namespace: 'argocd' });
    expect(byKind['Gadget']!.renderings[0]!.notes[0]).toContain('assumed namespaced');
  });

  it('exits 2 for input errors when nothing is denied, and when there are no objects at all', async () => {
    const broken = join(dir, 'broken.yaml');
    writeFileSync(broken, 'a: [1,\n');
    const withGood = await runAuditCore(options({ inputs: [{ path: broken }, { path: file(configMap('c', {})) }] }));
    expect(withGood.summary).toMatchObject({ inputErrors: 1, objects: 1, exitCode: 2 });
    const nothing = await runAuditCore(options({ inputs: [{ path: file() }] }));
    expect(nothing.inputErrors).toEqual([{ file: expect.any(String), message: 'no Kubernetes objects found in the input' }]);
    expect(nothing.summary.exitCode).toBe(2);
  });
});

describe('exitCodeFor', () => {
  const base = {
    files: 1, documents: 1, objects: 1, distinctObjects: 1, skipped: { empty: 0, notKubernetes: 0 }, inputErrors: 0, mutated: 0,
    denied: 0, auditFindings: 0, warnings: 0, ruleErrors: 0, duplicates: { error: 0, warning: 0 }, checksums: { stamped: 0, current: 0, failed: 0 },
  };
  // Findings (1) come before input errors (2).
  it.each<[string, Partial<typeof base>, 0 | 1 | 2]>([
    ['nothing to report', {}, 0],
    ['warnings, rule errors and audit-mode findings only', { duplicates: { error: 0, warning: 3 }, ruleErrors: 2, auditFindings: 1 }, 0],
    ['an input error', { inputErrors: 1 }, 2],
    ['an input error and a denial', { inputErrors: 1, denied: 1 }, 1],
    ['two owners of one object', { duplicates: { error: 1, warning: 0 } }, 1],
    ['no objects', { objects: 0 }, 2],
  ])('%s: exit %i', (_, changes, code) => {
    expect(exitCodeFor({ ...base, ...changes })).toBe(code);
  });
});
