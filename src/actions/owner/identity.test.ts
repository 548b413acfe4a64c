import { describe, expect, it } from 'vitest';
import { argocdOwnerId, DEFAULT_OWNER_SOURCES, parseTrackingId, recordedOwner, resolveOwner, sameOwner, type ObjectIdentity } from './identity.js';
import type { KubeObject } from '../../api/types.js';

const options = { sources: DEFAULT_OWNER_SOURCES, argocdLabelKey: 'app.kubernetes.io/instance' };
const crb: ObjectIdentity = { group: 'rbac.authorization.k8s.io', kind: 'ClusterRoleBinding', name: 'airflow-pre-checker-binding' };
const cm: ObjectIdentity = { group: '', kind: 'ConfigMap', name: 'settings', namespace: 'apps' };

const object = (annotations: Record<string, string> = {}, labels: Record<string, string> = {}): KubeObject => ({
  metadata: { name: 'x', annotations, labels },
});

describe('parseTrackingId', () => {
  it('parses grouped, core-group and namespaced-app ids', () => {
    expect(parseTrackingId('pdp:rbac.authorization.k8s.io/ClusterRoleBinding:airflow/airflow-pre-checker-binding')).toEqual({
      app: 'pdp', group: 'rbac.authorization.k8s.io', kind: 'ClusterRoleBinding', namespace: 'airflow', name: 'airflow-pre-checker-binding',
    });
    expect(parseTrackingId('apps_guestbook:/ConfigMap:apps/settings')).toEqual({
      app: 'apps_guestbook', group: '', kind: 'ConfigMap', namespace: 'apps', name: 'settings',
    });
    expect(parseTrackingId('metallb:rbac.authorization.k8s.io/ClusterRole:/metallb-system:controller')?.name).toBe('metallb-system:controller');
  });

  it('rejects malformed ids', () => {
    for (const bad of ['', 'app', 'app:ConfigMap:ns/name', ':/ConfigMap:ns/name', 'app:/:ns/name']) {
      expect(parseTrackingId(bad), bad).toBeNull();
    }
  });
});

describe('resolveOwner', () => {
  it('takes the Argo CD tracking id only when it names this very object', () => {
    const own = object({ 'argocd.argoproj.io/tracking-id': 'pdp:rbac.authorization.k8s.io/ClusterRoleBinding:airflow/airflow-pre-checker-binding' });
    expect(resolveOwner(own, crb, options)).toEqual({ id: 'argocd:pdp', instance: 'pdp', source: 'argocdAnnotation' });
    const copied = object({ 'argocd.argoproj.io/tracking-id': 'pdp:rbac.authorization.k8s.io/ClusterRoleBinding:airflow/other' });
    expect(resolveOwner(copied, crb, options)).toBeNull();
    const wrongKind = object({ 'argocd.argoproj.io/tracking-id': 'pdp:rbac.authorization.k8s.io/ClusterRole:airflow/airflow-pre-checker-binding' });
    expect(resolveOwner(wrongKind, crb, options)).toBeNull();
  });

  it('compares the namespace for namespaced objects only', () => {
    const ok = object({ 'argocd.argoproj.io/tracking-id': 'shop:/ConfigMap:apps/settings' });
    const otherNs = object({ 'argocd.argoproj.io/tracking-id': 'shop:/ConfigMap:other/settings' });
    expect(resolveOwner(ok, cm, options)?.id).toBe('argocd:shop');
    expect(resolveOwner(otherNs, cm, options)).toBeNull();
  });

  it('resolves Helm, Flux and label tracking, in the configured order', () => {
    const helm = object({ 'meta.helm.sh/release-name': 'airflow', 'meta.helm.sh/release-namespace': 'data' }, { 'app.kubernetes.io/instance': 'airflow' });
    expect(resolveOwner(helm, crb, options)).toEqual({ id: 'helm:data/airflow', instance: 'airflow', source: 'helm' });
    expect(resolveOwner(helm, crb, { ...options, sources: ['argocdLabel', 'helm'] })?.id).toBe('argocd:airflow');
    const ks = object({}, { 'kustomize.toolkit.fluxcd.io/name': 'apps', 'kustomize.toolkit.fluxcd.io/namespace': 'flux-system' });
    expect(resolveOwner(ks, crb, options)?.id).toBe('flux:kustomization:flux-system/apps');
    const hr = object({}, { 'helm.toolkit.fluxcd.io/name': 'podinfo', 'helm.toolkit.fluxcd.io/namespace': 'web' });
    expect(resolveOwner(hr, crb, options)?.id).toBe('flux:helmrelease:web/podinfo');
    const custom = object({}, { 'argocd.argoproj.io/instance': 'pdp' });
    expect(resolveOwner(custom, crb, { ...options, argocdLabelKey: 'argocd.argoproj.io/instance' })?.id).toBe('argocd:pdp');
    expect(resolveOwner(object(), crb, options)).toBeNull();
  });

  it('never resolves through inherited properties', () => {
    const hostile = JSON.parse('{"metadata":{"labels":{"__proto__":{"app.kubernetes.io/instance":"evil"}}}}') as KubeObject;
    expect(resolveOwner(hostile, crb, options)).toBeNull();
    expect(({} as Record<string, unknown>)['app.kubernetes.io/instance']).toBeUndefined();
  });
});

describe('recordedOwner', () => {
  it('prefers the recorded annotation and falls back to tracking for objects that predate gitops-guard', () => {
    expect(recordedOwner(object({ 'gitops-guard.dev/owner': 'argocd:first' }, { 'app.kubernetes.io/instance': 'second' }), crb, options)).toBe('argocd:first');
    expect(recordedOwner(object({}, { 'app.kubernetes.io/instance': 'second' }), crb, options)).toBe('argocd:second');
    expect(recordedOwner(null, crb, options)).toBeNull();
  });
});

describe('Argo CD installations', () => {
  const tracked = (installation?: string) =>
    object({
      'argocd.argoproj.io/tracking-id': 'pdp:rbac.authorization.k8s.io/ClusterRoleBinding:airflow/airflow-pre-checker-binding',
      ...(installation !== undefined ? { 'argocd.argoproj.io/installation-id': installation } : {}),
    });

  it('puts the installation id into the owner, and only when it is there', () => {
    expect(resolveOwner(tracked('hub'), crb, options)).toEqual({ id: 'argocd:hub/pdp', instance: 'pdp', source: 'argocdAnnotation' });
    expect(resolveOwner(tracked(), crb, options)?.id).toBe('argocd:pdp');
    expect(resolveOwner(tracked(''), crb, options)?.id).toBe('argocd:pdp');
    const labelled = object({}, { 'app.kubernetes.io/instance': 'pdp' });
    expect(resolveOwner(labelled, crb, options)?.id).toBe('argocd:pdp');
    expect(resolveOwner(labelled, crb, { ...options, argocdLabelInstallation: 'local' })?.id).toBe('argocd:local/pdp');
    expect(argocdOwnerId('apps_guestbook', 'hub')).toBe('argocd:hub/apps_guestbook');
  });

  it('treats an installation-less record as the configured legacy installation\'s, and nothing else', () => {
    const legacy = { ...options, argocdLegacyInstallation: 'hub' };
    expect(sameOwner('argocd:pdp', 'argocd:hub/pdp', legacy)).toBe(true);
    expect(sameOwner('argocd:pdp', 'argocd:hub/pdp', options)).toBe(false);
    expect(sameOwner('argocd:pdp', 'argocd:local/pdp', legacy)).toBe(false);
    expect(sameOwner('argocd:hub/pdp', 'argocd:pdp', legacy)).toBe(false);
    expect(sameOwner('helm:ns/pdp', 'argocd:hub/pdp', legacy)).toBe(false);
    expect(sameOwner('argocd:x/pdp', 'argocd:x/pdp', options)).toBe(true);
  });
});
