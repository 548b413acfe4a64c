import { describe, expect, it } from 'vitest';
import { decodeAdmissionReview } from '../admission/decode.js';
import { ADMISSION_API_VERSION, ADMISSION_KIND } from '../api/types.js';
import { parseApiVersion } from '../util/objects.js';
import {
  auditUid,
  buildRequest,
  DEFAULT_USER,
  describeIdentity,
  guessPlural,
  identityKey,
  KindCatalog,
  place,
} from './request.js';

describe('kinds', () => {
  it('splits apiVersion into group and version', () => {
    expect(parseApiVersion('v1')).toEqual({ group: '', version: 'v1' });
    expect(parseApiVersion('rbac.authorization.k8s.io/v1')).toEqual({ group: 'rbac.authorization.k8s.io', version: 'v1' });
  });

  it('guesses plurals like kubectl, with vowel+y fixed', () => {
    expect(guessPlural('Kustomization')).toBe('kustomizations');
    expect(guessPlural('HelmRepository')).toBe('helmrepositories');
    expect(guessPlural('Ingress')).toBe('ingresses');
    expect(guessPlural('Gateway')).toBe('gateways');
    expect(guessPlural('Mailbox')).toBe('mailboxes');
  });

  it('knows built-in scopes and plurals, and learns custom kinds from CRDs', () => {
    const catalog = new KindCatalog();
    expect(catalog.lookup('', 'Endpoints')).toEqual({ plural: 'endpoints', namespaced: true, known: true });
    expect(catalog.lookup('rbac.authorization.k8s.io', 'ClusterRole')).toEqual({ plural: 'clusterroles', namespaced: false, known: true });
    expect(catalog.lookup('argoproj.io', 'AppProject')).toEqual({ plural: 'appprojects', namespaced: true, known: false });
    catalog.addCrd({
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: 'clusterwidgets.example.com' },
      spec: { group: 'example.com', scope: 'Cluster', names: { kind: 'ClusterWidget', plural: 'clusterwidgets' } },
    });
    expect(catalog.lookup('example.com', 'ClusterWidget')).toEqual({ plural: 'clusterwidgets', namespaced: false, known: true });
    catalog.addCrd({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', spec: 'garbage' });
  });

  it('identity keys separate namespaces and ignore versions', () => {
    const a = identityKey({ group: 'apps', kind: 'Deployment', namespace: 'a', name: 'x' });
    const b = identityKey({ group: 'apps', kind: 'Deployment', namespace: 'b', name: 'x' });
    expect(a).not.toBe(b);
    expect(identityKey({ group: '', kind: 'Namespace', name: 'x' })).toBe('/Namespace//x');
    expect(describeIdentity({ group: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'x' })).toBe('ClusterRole.rbac.authorization.k8s.io x');
  });
});

describe('place', () => {
  const catalog = new KindCatalog();

  it('puts namespaced objects without a namespace into the default namespace, without touching the input', () => {
    const input = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' } };
    const placed = place(input, catalog, 'argocd');
    expect(placed.namespace).toBe('argocd');
    expect(placed.object.metadata?.namespace).toBe('argocd');
    expect(input.metadata).toEqual({ name: 'c' });
    expect(place({ ...input, metadata: { name: 'c', namespace: 'mine' } }, catalog, 'argocd').namespace).toBe('mine');
  });

  it('clears a namespace from cluster-scoped objects, as the API server does', () => {
    const placed = place({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'r', namespace: 'oops' } }, catalog, 'default');
    expect(placed.namespace).toBeUndefined();
    expect(placed.object.metadata).toEqual({ name: 'r' });
    expect(placed.gvr).toEqual({ group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'clusterroles' });
  });

  it('marks unknown kinds as assumed namespaced', () => {
    const placed = place({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } }, catalog, 'default');
    expect(placed).toMatchObject({ namespace: 'default', scopeKnown: false, gvr: { resource: 'widgets' } });
  });
});

describe('buildRequest', () => {
  const catalog = new KindCatalog();

  it('builds the request the API server would send, which the webhook decoder accepts', () => {
    const placement = place({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' } }, catalog, 'shop');
    const request = buildRequest(placement, { index: 7, operation: 'CREATE' });
    expect(request).toMatchObject({
      uid: '00000000-0000-4000-8000-000000000007',
      kind: { group: 'apps', version: 'v1', kind: 'Deployment' },
      resource: { group: 'apps', version: 'v1', resource: 'deployments' },
      name: 'web',
      namespace: 'shop',
      operation: 'CREATE',
      userInfo: DEFAULT_USER,
      oldObject: null,
      dryRun: true,
    });
    const review = { apiVersion: ADMISSION_API_VERSION, kind: ADMISSION_KIND, request: JSON.parse(JSON.stringify(request)) };
    expect(decodeAdmissionReview(review)).toEqual(request);
  });

  it('carries oldObject only on UPDATE and sets the namespace of Namespace objects to their name', () => {
    const placement = place({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team-a' } }, catalog, 'default');
    const old = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team-a', uid: 'u' } };
    expect(buildRequest(placement, { index: 0, operation: 'UPDATE', oldObject: old })).toMatchObject({ namespace: 'team-a', oldObject: old });
    expect(buildRequest(placement, { index: 0, operation: 'CREATE', oldObject: old }).oldObject).toBeNull();
  });

  it('derives stable, distinct uids', () => {
    expect(auditUid(0)).not.toBe(auditUid(1));
    expect(auditUid(255)).toBe('00000000-0000-4000-8000-0000000000ff');
  });
});
