import { describe, expect, it } from 'vitest';
import { createRegistry } from '../actions/registry.js';
import type { KubeObject } from '../api/types.js';
import { DEFAULT_CHECKSUM_ANNOTATION } from '../actions/checksum/stamp-config-checksum.js';
import { parseRuleSet } from '../rules/load.js';
import { WORKLOAD_KINDS } from '../actions/checksum/pod-template.js';
import { annotationPatch, optedOut, stampingParams, syntheticRequest } from './reconcile.js';

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

  it('says why nothing selects it: audit mode, kind, operation, labels', () => {
    expect(stampingParams(rules(`
  - name: audit-only
    match: { kinds: [{ group: apps, kind: Deployment }], operations: [UPDATE] }
    action: { type: stampConfigChecksum }
    mode: audit
`), request, object)).toBe('rule audit-only is in audit mode');
    expect(stampingParams(rules(`
  - name: create-only
    match: { kinds: [{ group: apps, kind: Deployment }], operations: [CREATE] }
    action: { type: stampConfigChecksum }
`), request, object)).toBe('rule create-only: operation UPDATE not selected');
    expect(stampingParams(rules(`
  - name: backs
    match: { kinds: [{ group: apps, kind: Deployment }], operations: [UPDATE], labelSelector: { matchLabels: { tier: back } } }
    action: { type: stampConfigChecksum }
`), request, object)).toBe('rule backs: labels do not match the selector');
    expect(stampingParams(rules(`
  - name: owners
    match: { kinds: [{ group: rbac.authorization.k8s.io, kind: ClusterRole }], operations: [UPDATE] }
    action: { type: tagOwner }
`), request, object)).toBe('no stampConfigChecksum rule');
  });
});

describe('optedOut', () => {
  it('is the workload annotation gitops-guard.dev/rollout: disabled, nothing else', () => {
    expect(optedOut(object)).toBe(false);
    expect(optedOut({ ...object, metadata: { annotations: { 'gitops-guard.dev/rollout': 'disabled' } } })).toBe(true);
    expect(optedOut({ ...object, metadata: { annotations: { 'gitops-guard.dev/rollout': 'enabled' } } })).toBe(false);
  });
});
