import { describe, expect, it } from 'vitest';
import { createRegistry } from '../actions/registry.js';
import { parseTrackingId } from '../actions/owner/identity.js';
import { parseRuleSet } from '../rules/load.js';
import { DEFAULT_OWNER_RESOLUTION } from '../actions/owner/identity.js';
import { ownerResolutionFor } from '../rules/configured.js';
import { argocdTrackingId, findDuplicates, ownerOf, stampArgocdTracking, type Rendering } from './duplicates.js';
import { identityKey, type ObjectIdentityKey } from './request.js';

const crb: ObjectIdentityKey = { group: 'rbac.authorization.k8s.io', kind: 'ClusterRoleBinding', name: 'airflow-pre-checker-binding' };
const cm: ObjectIdentityKey = { group: '', kind: 'ConfigMap', namespace: 'ns', name: 'settings' };

function rendering(identity: ObjectIdentityKey, owner: string | null, file: string, app?: string): Rendering {
  return {
    key: identityKey(identity),
    identity,
    namespaced: identity.namespace !== undefined,
    source: { file, line: 1 },
    ...(app ? { app } : {}),
    owner,
  };
}

describe('Argo CD tracking for --app', () => {
  it('writes the tracking id Argo CD writes, which the webhook parses back to the same object', () => {
    expect(argocdTrackingId('pdp-dev', crb, 'pdp-dev')).toBe(
      'pdp-dev:rbac.authorization.k8s.io/ClusterRoleBinding:pdp-dev/airflow-pre-checker-binding',
    );
    expect(parseTrackingId(argocdTrackingId('web', cm, 'x'))).toEqual({ app: 'web', group: '', kind: 'ConfigMap', namespace: 'ns', name: 'settings' });
  });

  it('stamps a copy (replacing any tracking id) and the owner resolves to the app', () => {
    const object = {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: crb.name, annotations: { keep: 'me', 'argocd.argoproj.io/tracking-id': 'old:x/Y:z/w' } },
    };
    const stamped = stampArgocdTracking(object, 'smartdq-dev', crb, 'default');
    expect(stamped.metadata?.annotations).toEqual({
      keep: 'me',
      'argocd.argoproj.io/tracking-id': 'smartdq-dev:rbac.authorization.k8s.io/ClusterRoleBinding:default/airflow-pre-checker-binding',
    });
    expect(object.metadata.annotations['argocd.argoproj.io/tracking-id']).toBe('old:x/Y:z/w');
    expect(ownerOf(stamped, crb, DEFAULT_OWNER_RESOLUTION)).toBe('argocd:smartdq-dev');
    expect(ownerOf(object, crb, DEFAULT_OWNER_RESOLUTION)).toBeNull();
  });
});

describe('ownerResolutionFor', () => {
  it("uses the denyDuplicateOwner rule's settings, so the audit resolves owners like the webhook", () => {
    const ruleSet = parseRuleSet(
      [
        'apiVersion: gitops-guard.dev/v1alpha1',
        'kind: RuleSet',
        'rules:',
        '  - name: deny',
        '    match: {kinds: [{kind: "*", group: "*"}]}',
        '    action: {type: denyDuplicateOwner, params: {sources: [helm], argocdLabelKey: team}}',
      ].join('\n'),
      'test',
      createRegistry(),
    );
    expect(ownerResolutionFor(ruleSet)).toEqual({ sources: ['helm'], argocdLabelKey: 'team' });
    expect(ownerResolutionFor({ ...ruleSet, rules: [] })).toEqual(DEFAULT_OWNER_RESOLUTION);
  });
});

describe('findDuplicates', () => {
  it('reports an object two owners render as an error naming both owners and both places', () => {
    const [finding, ...rest] = findDuplicates([
      rendering(crb, 'argocd:pdp-dev', 'pdp/crb.yaml', 'pdp-dev'),
      rendering(cm, 'argocd:pdp-dev', 'pdp/cm.yaml', 'pdp-dev'),
      rendering(crb, 'argocd:smartdq-dev', 'smartdq/crb.yaml', 'smartdq-dev'),
    ]);
    expect(rest).toEqual([]);
    expect(finding).toMatchObject({
      scope: 'Cluster',
      severity: 'error',
      owners: ['argocd:pdp-dev', 'argocd:smartdq-dev'],
      renderings: [
        { source: { file: 'pdp/crb.yaml' }, app: 'pdp-dev', owner: 'argocd:pdp-dev' },
        { source: { file: 'smartdq/crb.yaml' }, app: 'smartdq-dev', owner: 'argocd:smartdq-dev' },
      ],
    });
    expect(finding!.message).toContain('argocd:pdp-dev, argocd:smartdq-dev');
  });

  it('treats namespaced objects with two owners as errors too, but not the same name in two namespaces', () => {
    const other = { ...cm, namespace: 'other' };
    const findings = findDuplicates([rendering(cm, 'helm:a/a', 'a.yaml'), rendering(other, 'helm:b/b', 'b.yaml'), rendering(cm, 'helm:b/b', 'b.yaml')]);
    expect(findings).toHaveLength(1);
    expect(findings[0]).toMatchObject({ scope: 'Namespaced', severity: 'error', owners: ['helm:a/a', 'helm:b/b'] });
  });

  it('warns when one owner, or nobody, renders an object twice', () => {
    const findings = findDuplicates([
      rendering(crb, 'argocd:a', '1.yaml'),
      rendering(crb, 'argocd:a', '2.yaml'),
      rendering(cm, null, '1.yaml'),
      rendering(cm, null, '2.yaml'),
      rendering(cm, null, '3.yaml'),
    ]);
    expect(findings.map((f) => [f.severity, f.owners, f.message])).toEqual([
      ['warning', ['argocd:a'], 'ClusterRoleBinding.rbac.authorization.k8s.io airflow-pre-checker-binding is rendered 2 times by argocd:a; the last apply wins'],
      ['warning', [], 'ConfigMap ns/settings is rendered 3 times without an owner; the last apply wins'],
    ]);
  });

  it('handles many objects in one pass', () => {
    const many: Rendering[] = [];
    for (let i = 0; i < 20000; i++) many.push(rendering({ ...cm, name: `cm-${i}` }, 'argocd:a', 'x.yaml'));
    many.push(rendering({ ...cm, name: 'cm-19999' }, 'argocd:b', 'y.yaml'));
    const started = performance.now();
    const findings = findDuplicates(many);
    expect(findings).toHaveLength(1);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});
