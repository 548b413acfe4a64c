import type { KubeConfig } from '@kubernetes/client-node';
import type { KubeObject } from '../api/types.js';
import { KubeApiError, statusReason } from './errors.js';
import { apiPrefix, parseObject, RawApiClient } from './raw.js';

/** Any object, addressed the way the API's URLs are built: no discovery round trip needed. */
export interface ObjectAddress {
  /** `v1`, `rbac.authorization.k8s.io/v1`. */
  apiVersion: string;
  kind: string;
  /** The resource's plural, for the URL. */
  plural: string;
  name: string;
  /** Absent for cluster-scoped objects. */
  namespace?: string;
}

/** Reads any live object (null when it does not exist). Throws a KubeApiError when the cluster gives no answer. */
export interface ObjectReader {
  read(address: ObjectAddress, signal?: AbortSignal): Promise<KubeObject | null>;
}

/** `/api/v1/namespaces/ns/configmaps/c`, `/apis/rbac.authorization.k8s.io/v1/clusterroles/x`. */
export function objectPath(address: ObjectAddress): string {
  return `${collectionPath(address.apiVersion, address.plural, address.namespace)}/${encodeURIComponent(address.name)}`;
}

/** `/api/v1/namespaces/ns/configmaps`, `/apis/rbac.authorization.k8s.io/v1/clusterroles`: a collection, in one namespace or cluster-wide. */
export function collectionPath(apiVersion: string, plural: string, namespace: string | undefined): string {
  const scope = namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  return `${apiPrefix(apiVersion)}${scope}/${encodeURIComponent(plural)}`;
}

/**
 * ObjectReader over the raw transport (raw.ts) for objects of any kind, by URL. Each read gives
 * up after `timeoutMs`. Failures carry status codes and Status reasons only, never response bodies.
 */
export class ClientNodeObjectReader implements ObjectReader {
  private readonly api: RawApiClient;

  constructor(kubeConfig: KubeConfig, timeoutMs = 10_000) {
    this.api = new RawApiClient(kubeConfig, timeoutMs);
  }

  async read(address: ObjectAddress, signal?: AbortSignal): Promise<KubeObject | null> {
    const { status, text } = await this.api.send({ method: 'GET', path: objectPath(address), ...(signal ? { signal } : {}) });
    if (status === 404) return null;
    if (status !== 200) throw KubeApiError.fromStatus(status, statusReason(text));
    return parseObject(text) as KubeObject;
  }
}
