import { createConfiguration, HttpMethod, ServerConfiguration, type Configuration, type KubeConfig } from '@kubernetes/client-node';
import type { KubeObject } from '../api/types.js';
import { toKubeApiError } from './api-error.js';
import { KubeApiError, statusReason } from './errors.js';
import { KeepAliveAuthentication } from './keep-alive.js';

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
  const slash = address.apiVersion.indexOf('/');
  const prefix = slash === -1 ? `/api/${address.apiVersion}` : `/apis/${address.apiVersion}`;
  const scope = address.namespace ? `/namespaces/${encodeURIComponent(address.namespace)}` : '';
  return `${prefix}${scope}/${encodeURIComponent(address.plural)}/${encodeURIComponent(address.name)}`;
}

/**
 * An object as large as etcd stores (1.5 MiB) is far below this; a larger answer is refused
 * rather than held in memory (when the server says how large it is).
 */
export const MAX_OBJECT_BYTES = 64 * 1024 * 1024;

/**
 * ObjectReader over @kubernetes/client-node's transport (the kubeconfig's credentials, TLS and
 * proxy, kept-alive connections) for objects of any kind, by URL: the generated API classes have
 * one method per kind, or need a discovery round trip per group-version. Each read gives up after
 * `timeoutMs`. Failures carry status codes and Status reasons only, never response bodies.
 */
export class ClientNodeObjectReader implements ObjectReader {
  private readonly configuration: Configuration;

  constructor(
    kubeConfig: KubeConfig,
    private readonly timeoutMs = 10_000,
  ) {
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new KubeApiError('unavailable', 'kubeconfig has no current cluster');
    this.configuration = createConfiguration({ baseServer: new ServerConfiguration(cluster.server, {}), authMethods: { default: new KeepAliveAuthentication(kubeConfig) } });
  }

  async read(address: ObjectAddress, signal?: AbortSignal): Promise<KubeObject | null> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    const context = this.configuration.baseServer.makeRequestContext(objectPath(address), HttpMethod.GET);
    context.setHeaderParam('Accept', 'application/json');
    let text: string;
    let status: number;
    try {
      await this.configuration.authMethods.default?.applySecurityAuthentication(context);
      context.setSignal(combined);
      const response = await this.configuration.httpApi.send(context).toPromise();
      status = response.httpStatusCode;
      const length = Number(response.headers['content-length']);
      if (length > MAX_OBJECT_BYTES) throw new KubeApiError('server', `response larger than ${MAX_OBJECT_BYTES} bytes`);
      text = await response.body.text();
    } catch (error) {
      if (timeout.aborted) throw new KubeApiError('timeout', `no answer within ${this.timeoutMs} ms`);
      throw toKubeApiError(error, combined);
    }
    if (status === 404) return null;
    if (status !== 200) throw KubeApiError.fromStatus(status, statusReason(text));
    let object: unknown;
    try {
      object = JSON.parse(text);
    } catch {
      throw new KubeApiError('server', 'response is not JSON');
    }
    if (typeof object !== 'object' || object === null || Array.isArray(object)) throw new KubeApiError('server', 'response is not an object');
    return object as KubeObject;
  }
}
