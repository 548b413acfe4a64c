import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { callOrNull } from './api-error.js';
import { withSignal } from './call-options.js';
import { makeKeepAliveApiClient } from './keep-alive.js';

/** The resources one group-version serves, by plural (subresources left out), with their verbs. */
export type ServedResources = ReadonlyMap<string, ReadonlySet<string>>;

/**
 * API discovery for one named group-version at a time: `GET /apis/{group}/{version}` lists the
 * resources it serves. A group-version being served says nothing about a given resource (every
 * cluster with Argo CD serves argoproj.io/v1alpha1, with or without Argo Rollouts), so callers
 * decide per resource. Every authenticated user may read discovery (the default
 * `system:discovery` ClusterRole): no RBAC grant is needed.
 */
export class ApiDiscovery {
  private readonly api: CustomObjectsApi;

  constructor(kubeConfig: KubeConfig) {
    this.api = makeKeepAliveApiClient(kubeConfig, CustomObjectsApi);
  }

  /** The served resources; null when the group-version is not served at all (404). Other failures throw a KubeApiError. */
  async resources(group: string, version: string, signal?: AbortSignal): Promise<ServedResources | null> {
    const list = await callOrNull(() => this.api.getAPIResources({ group, version }, withSignal(signal)), signal);
    if (!list) return null;
    const served = new Map<string, ReadonlySet<string>>();
    for (const resource of list.resources ?? []) {
      if (typeof resource.name !== 'string' || resource.name.includes('/')) continue;
      served.set(resource.name, new Set(Array.isArray(resource.verbs) ? resource.verbs : []));
    }
    return served;
  }
}
