import {
  CoreV1Api,
  CustomObjectsApi,
  ListWatch,
  Watch,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { toKubeApiError } from './api-error.js';
import type { KubeApiError } from './errors.js';
import type { ConfigSourceKind } from './reader.js';
import { resourceName, type ApiResource } from './resources.js';

type WatchCallback = (phase: string, apiObj: any, watchObj?: any) => void;

/**
 * A Watch whose events are transformed before the informer (and its cache) sees them, and that
 * can be closed for good: client-node's informer may open a watch after stop() when stop() came
 * while it was listing; a closed TransformingWatch opens nothing and aborts what it opened.
 */
export class TransformingWatch extends Watch {
  private closed = false;
  private readonly open = new Set<AbortController>();

  constructor(
    kubeConfig: KubeConfig,
    private readonly transform: (object: any) => any,
  ) {
    super(kubeConfig);
  }

  override async watch(path: string, queryParams: Record<string, string | number | boolean | undefined>, callback: WatchCallback, done: (err: any) => void): Promise<AbortController> {
    if (this.closed) {
      const aborted = new AbortController();
      aborted.abort();
      return aborted;
    }
    const controller = await super.watch(
      path,
      queryParams,
      (phase, object) => {
        if (!this.closed) callback(phase, phase === 'ERROR' || phase === 'BOOKMARK' || !object ? object : this.transform(object));
      },
      done,
    );
    if (this.closed) controller.abort();
    else {
      this.open.add(controller);
      controller.signal.addEventListener('abort', () => this.open.delete(controller), { once: true });
    }
    return controller;
  }

  close(): void {
    this.closed = true;
    for (const controller of this.open) controller.abort();
    this.open.clear();
  }
}

export type InformerEvent = 'add' | 'update' | 'delete';

/**
 * A client-node informer (ListWatch: list, then watch from the list's resourceVersion, resuming
 * from the last seen resourceVersion when a watch ends, re-listing on 410 Gone) whose cache holds
 * `transform`ed objects. Its failures reach `onError` as KubeApiErrors; client-node stops an
 * informer whose list or watch failed (other than with 410), so the owner decides whether and
 * when to `start` it again.
 */
export class Informer<T> {
  private readonly informer: ListWatch<KubernetesObject>;
  private readonly watch: TransformingWatch;

  constructor(
    kubeConfig: KubeConfig,
    /** e.g. `configmaps` or `deployments.apps`, for logs and metrics. */
    readonly resource: string,
    /** The one namespace watched; undefined for all namespaces. */
    readonly namespace: string | undefined,
    path: string,
    list: () => Promise<KubernetesListObject<any>>,
    transform: (object: any) => T,
  ) {
    // The cache holds what `transform` makes of each object (T, kept by ListWatch as a KubernetesObject).
    const listFn = async (): Promise<KubernetesListObject<KubernetesObject>> => {
      const result = await list();
      return { ...result, items: (result.items ?? []).map((item) => transform(item) as KubernetesObject) };
    };
    this.watch = new TransformingWatch(kubeConfig, transform);
    this.informer = new ListWatch<KubernetesObject>(path, this.watch, listFn, false);
  }

  on(type: InformerEvent, handler: (object: T) => void): void {
    this.informer.on(type, (object) => handler(object as T));
  }

  /** Every (re)connection of its watch, the first included. */
  onConnect(handler: () => void): void {
    this.informer.on('connect', handler);
  }

  onError(handler: (error: KubeApiError) => void): void {
    this.informer.on('error', (error: unknown) => handler(toKubeApiError(error)));
  }

  /** Lists (unless it can resume) and watches; resolves once the first list request is sent. */
  start(): Promise<void> {
    return this.informer.start();
  }

  /** True once it has listed (it then holds a resourceVersion). */
  get listed(): boolean {
    return this.informer.latestResourceVersion() !== '';
  }

  /** Stops it for good: no watch is opened afterwards. */
  close(): void {
    void this.informer.stop();
    this.watch.close();
  }
}

function collectionPath(prefix: string, plural: string, namespace: string | undefined): string {
  return namespace === undefined ? `${prefix}/${plural}` : `${prefix}/namespaces/${encodeURIComponent(namespace)}/${plural}`;
}

/** Informers on ConfigMaps or Secrets (cluster-wide, or one per namespace), caching `transform`ed objects only. */
export function configSourceInformers<T>(
  kubeConfig: KubeConfig,
  kind: ConfigSourceKind,
  namespaces: readonly string[] | undefined,
  transform: (object: any) => T,
): Informer<T>[] {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const plural = kind === 'Secret' ? 'secrets' : 'configmaps';
  const scopes: readonly (string | undefined)[] = namespaces ?? [undefined];
  return scopes.map((namespace) => {
    const list = (): Promise<KubernetesListObject<any>> =>
      kind === 'Secret'
        ? namespace === undefined
          ? core.listSecretForAllNamespaces()
          : core.listNamespacedSecret({ namespace })
        : namespace === undefined
          ? core.listConfigMapForAllNamespaces()
          : core.listNamespacedConfigMap({ namespace });
    return new Informer(kubeConfig, plural, namespace, collectionPath('/api/v1', plural, namespace), list, transform);
  });
}

/**
 * Informers on one namespaced resource of a named group (raw JSON, as the webhook is sent it),
 * caching `transform`ed objects. List items carry no apiVersion/kind on a real API server; the
 * objects handed to `transform` always have them.
 */
export function resourceInformers<T>(
  kubeConfig: KubeConfig,
  resource: ApiResource,
  namespaces: readonly string[] | undefined,
  transform: (object: any) => T,
): Informer<T>[] {
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  const { group, version, plural } = resource;
  const apiVersion = `${group}/${version}`;
  const scopes: readonly (string | undefined)[] = namespaces ?? [undefined];
  const typed = (object: any): T => transform({ ...object, apiVersion: object.apiVersion ?? apiVersion, kind: object.kind ?? resource.kind });
  return scopes.map((namespace) => {
    const list = async (): Promise<KubernetesListObject<any>> =>
      (namespace === undefined
        ? await custom.listClusterCustomObject({ group, version, plural })
        : await custom.listNamespacedCustomObject({ group, version, namespace, plural })) as KubernetesListObject<any>;
    return new Informer(kubeConfig, resourceName(resource), namespace, collectionPath(`/apis/${group}/${version}`, plural, namespace), list, typed);
  });
}
