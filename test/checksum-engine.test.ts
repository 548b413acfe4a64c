import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createRegistry } from '../src/actions/registry.js';
import { applyPatch } from '../src/actions/patch.js';
import type { KubeObject } from '../src/api/types.js';
import { checksumV2 } from '../src/actions/checksum/encoding.js';
import { DEFAULT_CHECKSUM_ANNOTATION as A } from '../src/actions/checksum/stamp-config-checksum.js';
import { ClientNodeReader } from '../src/kube/client-node-reader.js';
import { evaluate, type EngineDeps } from '../src/rules/engine.js';
import { loadRuleSetFile, parseRuleSet } from '../src/rules/load.js';
import type { RuleSet } from '../src/rules/types.js';
import { capturingLogger, DEFAULT_RULES } from './support/app.js';
import { corpusObjects } from './support/corpus.js';
import { configMap, deployment, objectPath, secret } from './support/kube-fixtures.js';
import { KubeApiServer } from './support/kube-api-server.js';
import { requestFor } from './support/review.js';

/** Checked-in results for fixed inputs: any process, any machine, any release must compute these. */
const KEY = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'ascii');
const GOLDEN = {
  calicoNode: 'v2:d57bf045a37371320bb3e19708fcab1cdeea5ce4fe9bdadc91e62a8bcb4b2a67',
  calicoKubeControllers: 'v2:b51850cb659db5c5d8e95ed9dba652da6e98bc254748ab6f75b7d9380ef0e0c5',
  argocdServer: 'v2:2b6a5bdffa70394c296ce965211e31238cd8177bce14460c6481343a5b0418f2',
};

let api: KubeApiServer;
let deps: EngineDeps;
let lines: string[];
const registry = createRegistry();
const defaultRules: RuleSet = loadRuleSetFile(DEFAULT_RULES, registry);

beforeAll(async () => {
  api = await KubeApiServer.start();
  const kc = new KubeConfig();
  kc.loadFromFile(api.writeKubeconfig());
  const captured = capturingLogger('debug');
  lines = captured.lines;
  deps = { registry, kube: new ClientNodeReader(kc), settings: { checksumKey: KEY }, logger: captured.logger };
});
afterAll(() => api.close());
beforeEach(() => {
  api.clearFaults();
  api.clearRequests();
});

/** Stores every ConfigMap and Secret of a manifest, as a sync would before the workloads. */
function sync(objects: KubeObject[], namespace: string): void {
  for (const o of objects) {
    if (o.kind === 'ConfigMap' || o.kind === 'Secret') api.put({ ...o, metadata: { ...o.metadata, namespace: o.metadata?.namespace ?? namespace } });
  }
}

function find(objects: KubeObject[], kind: string, name: string): KubeObject {
  const found = objects.find((o) => o.kind === kind && o.metadata?.name === name);
  if (!found) throw new Error(`${kind}/${name} missing`);
  return structuredClone(found);
}

function templateAnnotation(object: KubeObject): string | undefined {
  return (object as any).spec?.template?.metadata?.annotations?.[A];
}

const calico = corpusObjects('calico-etcd.yaml');
const argocd = corpusObjects('argocd-install.yaml');
const metallb = corpusObjects('metallb-native.yaml');

describe('default rules stamp config checksums through the engine and the real client', () => {
  it('calico: DaemonSet and Deployment of the manifest, stamped with golden values', async () => {
    sync(calico, 'kube-system');
    const node = find(calico, 'DaemonSet', 'calico-node');
    const evaluation = await evaluate(requestFor(node), 'mutate', defaultRules, deps);
    expect(evaluation.warnings).toEqual([]);
    expect(evaluation.results.find((r) => r.rule === 'stamp-config-checksum')?.result).toBe('mutated');
    expect(templateAnnotation(applyPatch(node, evaluation.patch))).toBe(GOLDEN.calicoNode);

    const controllers = find(calico, 'Deployment', 'calico-kube-controllers');
    const second = await evaluate(requestFor(controllers), 'mutate', defaultRules, deps);
    expect(templateAnnotation(applyPatch(controllers, second.patch))).toBe(GOLDEN.calicoKubeControllers);

    // Independently: calico-kube-controllers consumes four calico-config keys and the (empty) etcd Secret.
    const data = find(calico, 'ConfigMap', 'calico-config')['data'] as Record<string, string>;
    const keys = ['etcd_ca', 'etcd_cert', 'etcd_endpoints', 'etcd_key'];
    expect(
      checksumV2(KEY, 'kube-system', [
        { kind: 'ConfigMap', name: 'calico-config', keys: new Set(keys), content: new Map(keys.map((k) => [k, Buffer.from(data[k]!)])) },
        { kind: 'Secret', name: 'calico-etcd-secrets', keys: 'all', content: new Map() },
      ]),
    ).toBe(GOLDEN.calicoKubeControllers);
  });

  it('argocd-server: dozens of optional key refs to one ConfigMap, a required Secret the manifest does not contain', async () => {
    sync(argocd, 'argocd');
    api.delete('v1', 'Secret', 'argocd', 'argocd-redis');
    const server = find(argocd, 'Deployment', 'argocd-server');
    const evaluation = await evaluate(requestFor(server, { namespace: 'argocd' }), 'mutate', defaultRules, deps);
    expect(evaluation.warnings).toEqual(['Secret argocd/argocd-redis not found: pods will not start until it exists']);
    expect(templateAnnotation(applyPatch(server, evaluation.patch))).toBe(GOLDEN.argocdServer);
    // each referenced object read once, despite dozens of references to argocd-cmd-params-cm
    expect(api.requestsTo(objectPath('ConfigMap', 'argocd', 'argocd-cmd-params-cm'))).toHaveLength(1);
    expect(new Set(api.requests.map((r) => r.path)).size).toBe(api.requests.length);

    // The redis-secret-init job creates the Secret: the checksum changes, the warning goes away.
    api.put(secret('argocd', 'argocd-redis', { auth: 'generated' }));
    const after = await evaluate(requestFor(server, { namespace: 'argocd' }), 'mutate', defaultRules, deps);
    expect(after.warnings).toEqual([]);
    expect(templateAnnotation(applyPatch(server, after.patch))).not.toBe(GOLDEN.argocdServer);
  });

  it('every workload of the Argo CD install manifest is stamped, each referenced object read once per request', async () => {
    sync(argocd, 'argocd');
    api.put(secret('argocd', 'argocd-redis', { auth: 'x' }));
    const workloads = argocd.filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet');
    expect(workloads.length).toBeGreaterThanOrEqual(7);
    const values = new Set<string>();
    for (const workload of workloads) {
      api.clearRequests();
      const evaluation = await evaluate(requestFor(workload, { namespace: 'argocd' }), 'mutate', defaultRules, deps);
      expect(evaluation.warnings, workload.metadata?.name).toEqual([]);
      const value = templateAnnotation(applyPatch(workload, evaluation.patch));
      if (api.requests.length === 0) {
        expect(value, `${workload.metadata?.name} consumes nothing`).toBeUndefined();
        continue;
      }
      expect(value).toMatch(/^v2:[0-9a-f]{64}$/);
      values.add(value!);
      expect(new Set(api.requests.map((r) => r.path)).size).toBe(api.requests.length);
    }
    expect(values.size).toBeGreaterThanOrEqual(6);
  });

  it('metallb speaker: warns about its missing memberlist Secret and stamps', async () => {
    const speaker = find(metallb, 'DaemonSet', 'speaker');
    const evaluation = await evaluate(requestFor(speaker), 'mutate', defaultRules, deps);
    expect(evaluation.warnings).toEqual(['Secret metallb-system/memberlist not found: pods will not start until it exists']);
    expect(templateAnnotation(applyPatch(speaker, evaluation.patch))).toMatch(/^v2:[0-9a-f]{64}$/);
  });

  it('idempotent through the engine: the admitted object, sent again as an UPDATE, gets no patch', async () => {
    sync(calico, 'kube-system');
    const node = find(calico, 'DaemonSet', 'calico-node');
    const first = await evaluate(requestFor(node), 'mutate', defaultRules, deps);
    const admitted = applyPatch(node, first.patch);
    const again = await evaluate(requestFor(admitted, { operation: 'UPDATE', oldObject: admitted }), 'mutate', defaultRules, deps);
    expect(again.patch).toEqual([]);
    expect(again.results.find((r) => r.rule === 'stamp-config-checksum')?.result).toBe('noop');
  });

  it('an unused key of a shared ConfigMap changes nothing; a consumed one rolls the pods', async () => {
    sync(calico, 'kube-system');
    const node = find(calico, 'DaemonSet', 'calico-node');
    const live = applyPatch(node, (await evaluate(requestFor(node), 'mutate', defaultRules, deps)).patch);
    const calicoConfig = find(calico, 'ConfigMap', 'calico-config');
    api.put({ ...calicoConfig, data: { ...(calicoConfig['data'] as object), unused_by_calico_node: 'x' } });
    const unchanged = await evaluate(requestFor(live, { operation: 'UPDATE', oldObject: live }), 'mutate', defaultRules, deps);
    expect(unchanged.patch).toEqual([]);
    api.put({ ...calicoConfig, data: { ...(calicoConfig['data'] as object), veth_mtu: '1400' } });
    const changed = await evaluate(requestFor(live, { operation: 'UPDATE', oldObject: live }), 'mutate', defaultRules, deps);
    expect(changed.patch).toHaveLength(1);
    expect(changed.patch[0]).toMatchObject({ op: 'replace', path: '/spec/template/metadata/annotations/gitops-guard.dev~1config-checksum' });
  });

  it('does not touch kinds outside the rule (Pod, Job) or the validating phase', async () => {
    api.put(configMap('apps', 'cfg', { a: '1' }));
    const pod: KubeObject = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'apps' }, spec: { containers: [{ name: 'c', envFrom: [{ configMapRef: { name: 'cfg' } }] }] } };
    expect((await evaluate(requestFor(pod), 'mutate', defaultRules, deps)).patch).toEqual([]);
    const job: KubeObject = { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'j', namespace: 'apps' }, spec: { template: { spec: pod['spec'] } } };
    expect((await evaluate(requestFor(job), 'mutate', defaultRules, deps)).patch).toEqual([]);
    const web = deployment('apps', 'web', pod['spec'] as Record<string, unknown>);
    expect((await evaluate(requestFor(web), 'validate', defaultRules, deps)).patch).toEqual([]);
    expect(api.requests).toHaveLength(0);
  });

  it('a 403 follows onError allow: admitted unchanged, with a warning naming the object and the reason', async () => {
    api.put(secret('apps', 'locked', { k: 'v' }));
    api.fault({ path: objectPath('Secret', 'apps', 'locked') }, { status: 403 });
    const web = deployment('apps', 'web', { containers: [{ name: 'c', envFrom: [{ secretRef: { name: 'locked' } }] }] });
    const evaluation = await evaluate(requestFor(web), 'mutate', defaultRules, deps);
    expect(evaluation.allowed).toBe(true);
    expect(evaluation.patch).toEqual([]);
    expect(evaluation.warnings).toEqual([
      'gitops-guard rule stamp-config-checksum failed (allowed without changes): cannot read Secret apps/locked: forbidden (HTTP 403), gitops-guard needs get on secrets',
    ]);
    expect(evaluation.auditAnnotations['stamp-config-checksum.error']).toBe(
      'cannot read Secret apps/locked: forbidden (HTTP 403), gitops-guard needs get on secrets',
    );
  });

  it('onError deny rejects instead, and 404 vs 403 vs timeout read differently', async () => {
    const denyRules = parseRuleSet(
      `apiVersion: gitops-guard.dev/v1alpha1
kind: RuleSet
rules:
  - name: stamp-config-checksum
    match: { kinds: [{ group: apps, kind: Deployment }] }
    action: { type: stampConfigChecksum, params: { timeoutMs: 300 } }
    onError: deny
`,
      'deny-rules',
      registry,
    );
    api.put(secret('apps', 'guarded', { k: 'v' }));
    const web = deployment('apps', 'web', { containers: [{ name: 'c', envFrom: [{ secretRef: { name: 'guarded' } }] }] });

    api.fault({ path: objectPath('Secret', 'apps', 'guarded') }, { status: 403, times: 1 });
    const forbidden = await evaluate(requestFor(web), 'mutate', denyRules, deps);
    expect(forbidden.allowed).toBe(false);
    expect(forbidden.denials[0]).toMatch(/failed and is configured to deny on error: cannot read Secret apps\/guarded: forbidden \(HTTP 403\)/);

    api.fault({ path: objectPath('Secret', 'apps', 'guarded') }, { latencyMs: 3000, times: 1 });
    const started = performance.now();
    const slow = await evaluate(requestFor(web), 'mutate', denyRules, deps);
    expect(performance.now() - started).toBeLessThan(900);
    expect(slow.denials[0]).toMatch(/cannot read Secret apps\/guarded: (no answer within the 300 ms checksum deadline|timed out after 300 ms)/);

    api.delete('v1', 'Secret', 'apps', 'guarded');
    const missing = await evaluate(requestFor(web), 'mutate', denyRules, deps);
    expect(missing.allowed).toBe(true);
    expect(missing.warnings).toEqual(['Secret apps/guarded not found: pods will not start until it exists']);
    expect(missing.patch).toHaveLength(1);
  });

  it('audit mode reports the patch it would make and changes nothing', async () => {
    api.put(configMap('apps', 'cfg', { a: '1' }));
    const web = deployment('apps', 'web', { containers: [{ name: 'c', envFrom: [{ configMapRef: { name: 'cfg' } }] }] });
    const evaluation = await evaluate(requestFor(web), 'mutate', defaultRules, { ...deps, modeOverride: 'audit' });
    expect(evaluation.patch).toEqual([]);
    expect(evaluation.warnings).toEqual([
      '[audit] rule stamp-config-checksum would patch: add /spec/template/metadata/annotations',
    ]);
  });

  it('logs no object content', () => {
    expect(lines.some((l) => l.includes('config checksum computed'))).toBe(true);
    expect(lines.join('\n')).not.toContain('generated');
  });
});
