import { describe, expect, it } from 'vitest';
import type { KubeObject } from '../api/types.js';
import { admit, evaluate, type EngineDeps } from '../rules/engine.js';
import { loadRuleSetFile } from '../rules/load.js';
import { ruleResults } from '../rules/result.js';
import { capturingLogger, DEFAULT_RULES } from '../../test/support/app.js';
import { FakeKube } from '../../test/support/fake-kube.js';
import { configMap, deployment } from '../../test/support/kube-fixtures.js';
import { requestFor } from '../../test/support/review.js';
import { DEFAULT_CHECKSUM_ANNOTATION as A } from './checksum/stamp-config-checksum.js';
import { createRegistry } from './registry.js';

/**
 * The built-in actions report what they found out on their rule's result (RuleResult.details):
 * what the audit and the cluster scan read instead of working it out again.
 */

const registry = createRegistry();
const rules = loadRuleSetFile(DEFAULT_RULES, registry);
const KEY = Buffer.alloc(32, 7);

function engine(kube = new FakeKube()): { deps: EngineDeps; kube: FakeKube } {
  return { kube, deps: { registry, kube, settings: { checksumKey: KEY }, logger: capturingLogger().logger } };
}

const web = (annotations?: Record<string, string>) =>
  deployment('shop', 'web', { containers: [{ name: 'app', envFrom: [{ configMapRef: { name: 'settings' } }, { secretRef: { name: 'db', optional: false } }] }] }, annotations);

describe('stampConfigChecksum details', () => {
  it('the checksum it stamped, the references it read (names only) and those that do not exist', async () => {
    const { kube, deps } = engine();
    kube.store.put(configMap('shop', 'settings', { mode: 'fast' }));
    const admission = await admit({ ...requestFor(web()), object: web() }, rules, deps);
    const stamp = ruleResults(admission).find((r) => r.rule === 'stamp-config-checksum')!;
    const stamped = (admission.object.spec as { template: { metadata: { annotations: Record<string, string> } } }).template.metadata.annotations[A];
    expect(stamp).toMatchObject({ result: 'mutated', details: { action: 'stampConfigChecksum', annotation: A, decision: 'stamp', checksum: stamped } });
    expect(stamp.details).toMatchObject({
      references: [
        { kind: 'ConfigMap', name: 'settings', optional: false },
        { kind: 'Secret', name: 'db', optional: false },
      ],
      missing: [{ kind: 'Secret', name: 'db' }],
    });
    expect(stamp.details).not.toHaveProperty('stamped');
  });

  it('what the template carried, and that it is in sync, on a re-apply', async () => {
    const { kube, deps } = engine();
    kube.store.put(configMap('shop', 'settings', { mode: 'fast' }));
    const first = await admit({ ...requestFor(web()), object: web() }, rules, deps);
    const again = await evaluate(requestFor(first.object, { operation: 'UPDATE', oldObject: first.object }), 'mutate', rules, deps);
    const checksum = (ruleResults(first).find((r) => r.rule === 'stamp-config-checksum')!.details as { checksum: string }).checksum;
    expect(again.results.find((r) => r.rule === 'stamp-config-checksum')).toMatchObject({ result: 'noop', details: { stamped: checksum, checksum, decision: 'in-sync' } });
  });

  it('a value someone else wrote: foreign, nothing read or computed', async () => {
    const { kube, deps } = engine();
    const result = await evaluate(requestFor(web({ [A]: 'by-hand' })), 'mutate', rules, deps);
    expect(result.results.find((r) => r.rule === 'stamp-config-checksum')!.details).toEqual({ action: 'stampConfigChecksum', annotation: A, stamped: 'by-hand', decision: 'foreign' });
    expect(kube.callsOf('readConfigSource')).toEqual([]);
  });

  it('the object it could not read, when the rule failed (no partial checksum)', async () => {
    const { kube, deps } = engine();
    kube.fail('readConfigSource', 403, 2);
    const result = await evaluate(requestFor(web()), 'mutate', rules, deps);
    const stamp = result.results.find((r) => r.rule === 'stamp-config-checksum')!;
    expect(stamp.result).toBe('error');
    expect(stamp.details).toEqual({ action: 'stampConfigChecksum', annotation: A, unreadable: { kind: 'ConfigMap', name: 'settings', reason: 'forbidden' } });
    expect(result.patch).toEqual([]);
  });
});

describe('owner details', () => {
  const binding = (app: string, extra: Record<string, string> = {}): KubeObject => ({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: 'airflow-pre-checker-binding', annotations: { 'argocd.argoproj.io/tracking-id': `${app}:rbac.authorization.k8s.io/ClusterRoleBinding:${app}/airflow-pre-checker-binding`, ...extra } },
  });

  it('the owner resolved from the tracking fields, and none on record for a new object', async () => {
    const { deps } = engine();
    const admission = await admit({ ...requestFor(binding('pdp-dev-airflow')), object: binding('pdp-dev-airflow') }, rules, deps);
    const owner = { id: 'argocd:pdp-dev-airflow', instance: 'pdp-dev-airflow', source: 'argocdAnnotation' };
    expect(ruleResults(admission).map((r) => [r.rule, r.details])).toEqual([
      ['tag-owner', { action: 'tagOwner', owner, recorded: null, record: 'argocd:pdp-dev-airflow' }],
      ['stamp-config-checksum', undefined],
      // The validating phase sees the mutated object: the record tagOwner added.
      ['deny-duplicate-owner', { action: 'denyDuplicateOwner', owner, recorded: null, record: 'argocd:pdp-dev-airflow' }],
    ]);
  });

  it('the owner on record next to the one resolved now, when a second owner is refused', async () => {
    const { deps } = engine();
    const live = binding('pdp-dev-airflow', { 'gitops-guard.dev/owner': 'argocd:pdp-dev-airflow' });
    const incoming = binding('smartdq-dev-airflow');
    const admission = await admit({ ...requestFor(incoming, { operation: 'UPDATE', oldObject: live }), object: incoming }, rules, deps);
    expect(admission.allowed).toBe(false);
    expect(ruleResults(admission).find((r) => r.rule === 'deny-duplicate-owner')).toMatchObject({
      result: 'denied',
      details: { owner: { id: 'argocd:smartdq-dev-airflow' }, recorded: 'argocd:pdp-dev-airflow', record: 'argocd:pdp-dev-airflow' },
    });
  });
});

describe('actions that read metadata only (readsOnlyMetadata)', () => {
  it('answer exactly the same for an object and its metadata alone (the cluster scan lists such kinds as metadata)', async () => {
    const { corpusObjects } = await import('../../test/support/corpus.js');
    const objects = corpusObjects('argocd-install.yaml').filter((o) => ['ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition'].includes(o.kind ?? ''));
    expect(objects.length).toBeGreaterThan(5);
    const metadataOnly = [...registry.values()].filter((a) => a.readsOnlyMetadata).map((a) => a.name);
    expect(metadataOnly.sort()).toEqual(['denyDuplicateOwner', 'tagOwner']);
    const { deps } = engine();
    for (const object of objects) {
      const live = { ...object, metadata: { ...object.metadata, annotations: { ...object.metadata?.annotations, 'gitops-guard.dev/owner': 'argocd:someone-else', 'argocd.argoproj.io/tracking-id': `argocd:${object.apiVersion!.split('/')[0]}/${object.kind}:argocd/${object.metadata!.name}` } } };
      const bare = { apiVersion: live.apiVersion, kind: live.kind, metadata: live.metadata };
      const run = async (o: KubeObject) => ruleResults(await admit({ ...requestFor(o, { operation: 'UPDATE', oldObject: o }), object: o }, rules, { ...deps, modeOverride: 'audit' })).filter((r) => metadataOnly.includes(r.action));
      const [whole, partial] = [await run(live), await run(bare)];
      expect(whole.some((r) => r.result === 'denied'), object.metadata!.name).toBe(true);
      expect(partial).toEqual(whole);
    }
  });
});
