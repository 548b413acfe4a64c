import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { configMap } from '../../test/support/kube-fixtures.js';
import { KubeApiServer } from '../../test/support/kube-api-server.js';
import { SCANNED_CLUSTER_RESOURCES } from '../../test/support/kube-store.js';
import type { KubeObject } from '../api/types.js';
import { ClientNodeObjectApplier } from './apply.js';
import { ApiDiscovery } from './discovery.js';
import { KubeApiError } from './errors.js';
import { ClientNodeObjectLister, type ListableResource, type ListOptions } from './list.js';

const CONFIGMAPS: ListableResource = { group: '', version: 'v1', kind: 'ConfigMap', plural: 'configmaps', namespaced: true };
const CLUSTER_ROLES: ListableResource = { group: 'rbac.authorization.k8s.io', version: 'v1', kind: 'ClusterRole', plural: 'clusterroles', namespaced: false };

let api: KubeApiServer;
let kubeConfig: KubeConfig;
let lister: ClientNodeObjectLister;

beforeAll(async () => {
  api = await KubeApiServer.start({ resources: SCANNED_CLUSTER_RESOURCES });
  kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(api.writeKubeconfig());
  lister = new ClientNodeObjectLister(kubeConfig);
  for (const ns of ['a', 'b']) for (let i = 0; i < 7; i++) api.put({ ...configMap(ns, `cm-${i}`, { i: String(i) }), metadata: { name: `cm-${i}`, namespace: ns, labels: { parity: i % 2 ? 'odd' : 'even' } } });
  for (const name of ['admin', 'edit', 'view']) api.put({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name, annotations: { note: name } }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }] });
});
afterAll(() => api.close());
beforeEach(() => {
  api.clearRequests();
  api.clearFaults();
});

const names = (objects: KubeObject[]) => objects.map((o) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name}`);

/** Every page, with a hook between pages. */
async function collect(resource: ListableResource, options: ListOptions, between?: (page: number) => void): Promise<{ pages: KubeObject[][]; remaining: (number | undefined)[] }> {
  const pages: KubeObject[][] = [];
  const remaining: (number | undefined)[] = [];
  for await (const page of lister.pages(resource, options)) {
    pages.push(page.items);
    remaining.push(page.remaining);
    between?.(pages.length);
  }
  return { pages, remaining };
}

describe('paged lists', () => {
  it('reads a collection page by page with limit and continue, items carrying apiVersion and kind', async () => {
    const { pages, remaining } = await collect(CONFIGMAPS, { limit: 5 });
    expect(pages.map((p) => p.length)).toEqual([5, 5, 4]);
    expect(remaining).toEqual([9, 4, undefined]);
    expect(names(pages.flat())).toEqual(api.list('v1', 'ConfigMap').map((o) => `${o.metadata!.namespace}/${o.metadata!.name}`));
    expect(pages.flat().every((o) => o.apiVersion === 'v1' && o.kind === 'ConfigMap')).toBe(true);
    const lists = api.requests.filter((r) => r.path === '/api/v1/configmaps');
    expect(lists).toHaveLength(3);
    expect(lists[0]!.query).toBe('?limit=5');
    expect(lists[1]!.query).toMatch(/^\?limit=5&continue=[\w-]+$/);
  });

  it('lists one namespace, by label, or cluster-scoped resources', async () => {
    expect(names((await collect(CONFIGMAPS, { namespace: 'b', limit: 100 })).pages.flat())).toHaveLength(7);
    expect(api.requests.at(-1)!.path).toBe('/api/v1/namespaces/b/configmaps');
    expect(names((await collect(CONFIGMAPS, { labelSelector: 'parity=odd' })).pages.flat())).toEqual(['a/cm-1', 'a/cm-3', 'a/cm-5', 'b/cm-1', 'b/cm-3', 'b/cm-5']);
    const roles = (await collect(CLUSTER_ROLES, { namespace: 'ignored-for-cluster-scope' })).pages.flat();
    expect(names(roles)).toEqual(['/admin', '/edit', '/view']);
    expect(api.requests.at(-1)!.path).toBe('/apis/rbac.authorization.k8s.io/v1/clusterroles');
  });

  it('metadata only: asks for PartialObjectMetadataList and hands out objects of the listed kind with their metadata', async () => {
    const roles = (await collect(CLUSTER_ROLES, { metadataOnly: true })).pages.flat();
    expect(roles[0]).toEqual({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: expect.objectContaining({ name: 'admin', annotations: { note: 'admin' } }) });
    expect(roles[0]).not.toHaveProperty('rules');
  });

  it('an expired continue token: carries on with the token the 410 offers, seeing every object once', async () => {
    const { pages } = await collect(CONFIGMAPS, { limit: 4 }, (page) => {
      if (page === 1) {
        api.store.expireContinueTokens(true);
        api.put(configMap('a', 'cm-0-late', {})); // before the continuation point: not seen
        api.put(configMap('b', 'zz-late', {})); // after it: seen
      }
    });
    const seen = names(pages.flat());
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toContain('b/zz-late');
    expect(seen).not.toContain('a/cm-0-late');
    expect(seen).toHaveLength(15);
    expect(api.requests.filter((r) => r.path === '/api/v1/configmaps').length).toBe(5); // 4 pages and the refused continuation
    api.delete('v1', 'ConfigMap', 'a', 'cm-0-late');
    api.delete('v1', 'ConfigMap', 'b', 'zz-late');
  });

  it('an expired continue token without an offered one: lists again from the start and skips what it handed out', async () => {
    const { pages } = await collect(CONFIGMAPS, { limit: 4 }, (page) => {
      if (page === 2) api.store.expireContinueTokens(false);
    });
    const seen = names(pages.flat());
    expect(seen).toEqual(api.list('v1', 'ConfigMap').map((o) => `${o.metadata!.namespace}/${o.metadata!.name}`));
    const queries = api.requests.filter((r) => r.path === '/api/v1/configmaps').map((r) => r.query);
    expect(queries.filter((q) => q === '?limit=4')).toHaveLength(2);
    api.store.expireContinueTokens(true);
  });

  it('fails with the status and reason of a refused page, never the body', async () => {
    api.fault({ path: '/apis/rbac.authorization.k8s.io/v1/clusterroles' }, { status: 403 });
    const error = await collect(CLUSTER_ROLES, {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KubeApiError);
    expect(error).toMatchObject({ reason: 'forbidden', httpStatus: 403, message: 'HTTP 403 Forbidden' });
  });

  it('refuses a page size outside 1..10000', async () => {
    await expect(collect(CONFIGMAPS, { limit: 0 })).rejects.toThrow(RangeError);
  });
});

describe('server-side apply', () => {
  const applier = () => new ClientNodeObjectApplier(kubeConfig);
  const address = { apiVersion: 'v1', kind: 'ConfigMap', plural: 'configmaps', namespace: 'a', name: 'applied' };

  it('creates, updates (dropping what it no longer applies), writes nothing for an unchanged object, as its field manager with force', async () => {
    const created = await applier().apply(address, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'applied', namespace: 'a', labels: { x: '1' } }, data: { a: '1', b: '2' } }, { fieldManager: 'gitops-guard-test', force: true });
    expect(created).toMatchObject({ data: { a: '1', b: '2' }, metadata: { labels: { x: '1' } } });
    const patch = api.patches.at(-1)!;
    expect(patch).toMatchObject({ path: '/api/v1/namespaces/a/configmaps/applied', contentType: 'application/apply-patch+yaml', fieldManager: 'gitops-guard-test', force: true, status: 201 });
    const updated = await applier().apply(address, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'applied', namespace: 'a' }, data: { a: '3' } }, { fieldManager: 'gitops-guard-test', force: true });
    expect(updated.data).toEqual({ a: '3' });
    expect(updated.metadata?.labels).toBeUndefined();
    const again = await applier().apply(address, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'applied', namespace: 'a' }, data: { a: '3' } }, { fieldManager: 'gitops-guard-test', force: true });
    expect(again.metadata?.resourceVersion).toBe(updated.metadata?.resourceVersion);
  });

  it('fails with the status and reason only', async () => {
    api.fault({ method: 'PATCH', path: '/api/v1/namespaces/a/configmaps/applied' }, { status: 403 });
    await expect(applier().apply(address, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'applied', namespace: 'a' } }, { fieldManager: 'm', force: false })).rejects.toMatchObject({ reason: 'forbidden', message: 'HTTP 403 Forbidden' });
  });
});

describe('discovery of groups and resource types', () => {
  it('lists groups with the preferred version first, and each group-version\'s kinds with scope and verbs', async () => {
    const discovery = new ApiDiscovery(kubeConfig);
    const groups = await discovery.groups();
    expect(groups.get('')).toEqual(['v1']);
    expect(groups.get('rbac.authorization.k8s.io')).toEqual(['v1']);
    expect(groups.has('wgpolicyk8s.io')).toBe(false);
    const rbac = await discovery.resourceTypes('rbac.authorization.k8s.io', 'v1');
    expect(rbac?.find((r) => r.kind === 'ClusterRoleBinding')).toMatchObject({ plural: 'clusterrolebindings', namespaced: false, group: 'rbac.authorization.k8s.io', version: 'v1' });
    const core = await discovery.resourceTypes('', 'v1');
    expect(core?.find((r) => r.kind === 'Secret')).toMatchObject({ plural: 'secrets', namespaced: true });
    expect(core?.find((r) => r.kind === 'Secret')?.verbs.has('list')).toBe(true);
    expect(await discovery.resourceTypes('wgpolicyk8s.io', 'v1alpha2')).toBeNull();
  });
});
