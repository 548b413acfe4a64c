import { ApisApi, CoreV1Api, CustomObjectsApi, type KubeConfig, type V1APIResourceList } from '@kubernetes/client-node';
import { callOrNull, call } from './api-error.js';
import { withSignal } from './call-options.js';
import { makeKeepAliveApiClient } from './keep-alive.js';
import type { ApiResource } from './resources.js';

/** The resources one group-version serves, by plural (subresources left out), with their verbs. */
export type ServedResources = ReadonlyMap<string, ReadonlySet<string>>;

/** A resource type discovery lists: where it is served, its scope and verbs. */
export interface DiscoveredResource extends ApiResource {
  namespaced: boolean;
  verbs: ReadonlySet<string>;
}

/** The API groups the server serves: each group's versions, the preferred one first. */
export type ServedGroups = ReadonlyMap<string, readonly string[]>;

/**
 * API discovery: `GET /apis` for the groups and their preferred versions, `GET /api/v1` and
 * `GET /apis/{group}/{version}` for the resources a group-version serves. A group-version being
 * served says nothing about a given resource (every cluster with Argo CD serves
 * argoproj.io/v1alpha1, with or without Argo Rollouts), so callers decide per resource. Every
 * authenticated user may read discovery (the default `system:discovery` ClusterRole): no RBAC
 * grant is needed.
 */
export class ApiDiscovery {
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly apis: ApisApi;

  constructor(kubeConfig: KubeConfig) {
    this.custom = makeKeepAliveApiClient(kubeConfig, CustomObjectsApi);
    this.core = makeKeepAliveApiClient(kubeConfig, CoreV1Api);
    this.apis = makeKeepAliveApiClient(kubeConfig, ApisApi);
  }

  /** The served resources; null when the group-version is not served at all (404). Other failures throw a KubeApiError. */
  async resources(group: string, version: string, signal?: AbortSignal): Promise<ServedResources | null> {
    const list = await this.resourceTypes(group, version, signal);
    return list && new Map(list.map((r) => [r.plural, r.verbs]));
  }

  /** The resource types a group-version serves (`''`/`v1` is the core group); null when it is not served. */
  async resourceTypes(group: string, version: string, signal?: AbortSignal): Promise<DiscoveredResource[] | null> {
    const list: V1APIResourceList | null =
      group === '' && version === 'v1'
        ? await call(() => this.core.getAPIResources(withSignal(signal)), signal)
        : group === ''
          ? null
          : await callOrNull(() => this.custom.getAPIResources({ group, version }, withSignal(signal)), signal);
    if (!list) return null;
    const served: DiscoveredResource[] = [];
    for (const resource of list.resources ?? []) {
      if (typeof resource.name !== 'string' || resource.name.includes('/') || typeof resource.kind !== 'string') continue;
      served.push({
        group,
        version,
        kind: resource.kind,
        plural: resource.name,
        namespaced: resource.namespaced === true,
        verbs: new Set(Array.isArray(resource.verbs) ? resource.verbs : []),
      });
    }
    return served;
  }

  /** Every API group with its versions, the preferred version first; the core group is `''` with `v1`. */
  async groups(signal?: AbortSignal): Promise<ServedGroups> {
    const list = await call(() => this.apis.getAPIVersions(withSignal(signal)), signal);
    const groups = new Map<string, string[]>([['', ['v1']]]);
    for (const group of list.groups ?? []) {
      const versions = (group.versions ?? []).map((v) => v.version).filter((v): v is string => typeof v === 'string');
      const preferred = group.preferredVersion?.version;
      if (typeof group.name !== 'string' || versions.length === 0) continue;
      groups.set(group.name, preferred && versions.includes(preferred) ? [preferred, ...versions.filter((v) => v !== preferred)] : versions);
    }
    return groups;
  }
}
