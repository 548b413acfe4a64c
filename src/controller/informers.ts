import { createHmac, randomBytes } from 'node:crypto';
import {
  CoreV1Api,
  CustomObjectsApi,
  ListWatch,
  Watch,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import type { KubeObject } from '../admission/types.js';
import { decodeConfigSource } from '../kube/client-node-reader.js';
import type { ConfigSourceKind } from '../kube/reader.js';
import type { KeyDigests } from './consumers.js';
import type { WorkloadResource } from './kube-api.js';

/**
 * What the controller keeps of a ConfigMap or Secret: its name and one digest per key, never a
 * value. The digest is an HMAC under a key that exists only in this process, so it says nothing
 * about a value to anyone who sees it; it is only ever compared with the previous digest.
 */
export interface SourceSummary extends KubernetesObject {
  kind: ConfigSourceKind;
  metadata: { name: string; namespace: string; resourceVersion?: string };
  /** undefined when the object could not be decoded (malformed data): treated as "changed". */
  digests: KeyDigests | undefined;
}

const PROCESS_DIGEST_KEY = randomBytes(32);

/** Reduces a ConfigMap or Secret to per-key digests; the object (and its data) is dropped by the caller. */
export function summarise(kind: ConfigSourceKind, object: KubernetesObject & { data?: unknown; binaryData?: unknown }): SourceSummary {
  const name = object.metadata?.name ?? '';
  const namespace = object.metadata?.namespace ?? '';
  let digests: Record<string, string> | undefined;
  try {
    digests = {};
    for (const [key, value] of decodeConfigSource({ kind, namespace, name }, object)) {
      digests[key] = createHmac('sha256', PROCESS_DIGEST_KEY).update(value).digest('base64url').slice(0, 22);
    }
  } catch {
    digests = undefined;
  }
  return { kind, metadata: { name, namespace, resourceVersion: object.metadata?.resourceVersion }, digests };
}

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/**
 * Keeps workloads small in the cache: status, managedFields and kubectl's last-applied copy of
 * the whole object are never needed (reconcile reads the workload fresh).
 */
export function slimWorkload(object: KubeObject): KubeObject {
  const { status: _status, ...rest } = object;
  if (!rest.metadata) return rest;
  const { managedFields: _managed, ...metadata } = rest.metadata;
  if (metadata.annotations && LAST_APPLIED in metadata.annotations) {
    const { [LAST_APPLIED]: _lastApplied, ...annotations } = metadata.annotations;
    metadata.annotations = annotations;
  }
  return { ...rest, metadata };
}

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

/**
 * A client-node informer (ListWatch: list, then watch from the list's resourceVersion, resuming
 * from the last seen resourceVersion when a watch ends, re-listing on 410 Gone) whose cache holds
 * `transform`ed objects.
 */
export function makeTransformingInformer<T extends KubernetesObject>(
  kubeConfig: KubeConfig,
  path: string,
  list: () => Promise<KubernetesListObject<any>>,
  transform: (object: any) => T,
): { informer: ListWatch<T>; close: () => void } {
  const listFn = async (): Promise<KubernetesListObject<T>> => {
    const result = await list();
    return { ...result, items: (result.items ?? []).map(transform) };
  };
  const watch = new TransformingWatch(kubeConfig, transform);
  const informer = new ListWatch<T>(path, watch, listFn, false);
  return {
    informer,
    close: () => {
      void informer.stop();
      watch.close();
    },
  };
}

export interface InformerSpec<T extends KubernetesObject> {
  /** e.g. `configmaps` or `deployments.apps`, for logs and metrics. */
  resource: string;
  namespace: string | undefined;
  informer: ListWatch<T>;
  /** Stops the informer for good (no watch is opened afterwards). */
  close: () => void;
}

function collectionPath(prefix: string, plural: string, namespace: string | undefined): string {
  return namespace === undefined ? `${prefix}/${plural}` : `${prefix}/namespaces/${encodeURIComponent(namespace)}/${plural}`;
}

/** Informers on ConfigMaps or Secrets (cluster-wide, or one per namespace) holding digests only. */
export function sourceInformers(kubeConfig: KubeConfig, kind: ConfigSourceKind, namespaces: readonly string[] | undefined): InformerSpec<SourceSummary>[] {
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
    const transform = (object: any): SourceSummary => summarise(kind, object);
    return { resource: plural, namespace, ...makeTransformingInformer(kubeConfig, collectionPath('/api/v1', plural, namespace), list, transform) };
  });
}

/** Informers on one workload type, holding the objects without status and managedFields. */
export function workloadInformers(kubeConfig: KubeConfig, resource: WorkloadResource, namespaces: readonly string[] | undefined): InformerSpec<KubeObject & KubernetesObject>[] {
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  const { group, version, plural } = resource;
  const apiVersion = `${group}/${version}`;
  const scopes: readonly (string | undefined)[] = namespaces ?? [undefined];
  return scopes.map((namespace) => {
    const list = async (): Promise<KubernetesListObject<any>> =>
      (namespace === undefined
        ? await custom.listClusterCustomObject({ group, version, plural })
        : await custom.listNamespacedCustomObject({ group, version, namespace, plural })) as KubernetesListObject<any>;
    // List items carry no apiVersion/kind on a real API server; the cache always has them.
    const transform = (object: any) => slimWorkload({ ...object, apiVersion: object.apiVersion ?? apiVersion, kind: object.kind ?? resource.kind }) as KubeObject & KubernetesObject;
    return {
      resource: `${plural}.${group}`,
      namespace,
      ...makeTransformingInformer(kubeConfig, collectionPath(`/apis/${group}/${version}`, plural, namespace), list, transform),
    };
  });
}
