import { describe, expect, it } from 'vitest';
import { applyOnto, LAST_APPLIED_ANNOTATION } from './live.js';

describe('applyOnto', () => {
  const live = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: {
      name: 'r',
      uid: 'uid-1',
      resourceVersion: '42',
      creationTimestamp: '2024-01-01T00:00:00Z',
      labels: { 'app.kubernetes.io/instance': 'old', removed: 'yes' },
      annotations: {
        'gitops-guard.dev/owner': 'argocd:first',
        [LAST_APPLIED_ANNOTATION]: JSON.stringify({ metadata: { labels: { removed: 'yes' }, annotations: {} } }),
      },
    },
    rules: [{ verbs: ['get'] }],
  };

  it("keeps what others set on the live object (the owner record), drops what the last apply set and the manifest removed", () => {
    const manifest = {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'r', labels: { 'app.kubernetes.io/instance': 'new' }, annotations: { team: 'b' } },
      rules: [{ verbs: ['list'] }],
    };
    const merged = applyOnto(live, manifest);
    expect(merged.rules).toEqual([{ verbs: ['list'] }]);
    expect(merged.metadata).toEqual({
      name: 'r',
      uid: 'uid-1',
      resourceVersion: '42',
      creationTimestamp: '2024-01-01T00:00:00Z',
      labels: { 'app.kubernetes.io/instance': 'new' },
      annotations: {
        'gitops-guard.dev/owner': 'argocd:first',
        [LAST_APPLIED_ANNOTATION]: live.metadata.annotations[LAST_APPLIED_ANNOTATION],
        team: 'b',
      },
    });
    expect(manifest.metadata).toEqual({ name: 'r', labels: { 'app.kubernetes.io/instance': 'new' }, annotations: { team: 'b' } });
  });

  it('survives garbage in the live object', () => {
    const merged = applyOnto(
      { metadata: { name: 'x', labels: 'nope' as never, annotations: { [LAST_APPLIED_ANNOTATION]: '{not json' } } },
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } },
    );
    expect(merged.metadata).toEqual({ name: 'x', annotations: { [LAST_APPLIED_ANNOTATION]: '{not json' } });
  });
});
