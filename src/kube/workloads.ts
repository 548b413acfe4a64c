import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type CoreV1Event, type KubeConfig } from '@kubernetes/client-node';
import type { KubeObject } from '../api/types.js';
import { call, callOrNull } from './api-error.js';
import { withSignal } from './call-options.js';
import { makeKeepAliveApiClient } from './keep-alive.js';
import type { ApiResource, NamespacedRef } from './resources.js';

/** The field manager of every write gitops-guard makes. */
export const FIELD_MANAGER = 'gitops-guard';

export type WorkloadRef<R extends ApiResource = ApiResource> = NamespacedRef<R>;

/**
 * What the rollout controller does to workloads over the API: read one fresh, patch its pod
 * template annotation, record an Event. Every failure is a KubeApiError (`conflict` when the
 * merge patch's resourceVersion precondition fails). The controller depends on this interface
 * only: ClientNodeWorkloadClient below in a cluster, an in-memory fake in unit tests.
 */
export interface WorkloadClient {
  /** The object as the API serves it (raw JSON, exactly what the webhook is sent); null on 404. */
  get(ref: WorkloadRef, signal?: AbortSignal): Promise<KubeObject | null>;
  /** A JSON merge patch (RFC 7386) as field manager `gitops-guard`; returns the patched object. */
  mergePatch(ref: WorkloadRef, body: Record<string, unknown>, signal?: AbortSignal): Promise<KubeObject>;
  /** Creates a core/v1 Event in `namespace`. */
  createEvent(namespace: string, event: KubeObject, signal?: AbortSignal): Promise<void>;
}

/** WorkloadClient over @kubernetes/client-node: the generic group API, so every workload kind is one code path. */
export class ClientNodeWorkloadClient implements WorkloadClient {
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;

  constructor(kubeConfig: KubeConfig) {
    this.custom = makeKeepAliveApiClient(kubeConfig, CustomObjectsApi);
    this.core = makeKeepAliveApiClient(kubeConfig, CoreV1Api);
  }

  async get(ref: WorkloadRef, signal?: AbortSignal): Promise<KubeObject | null> {
    const { group, version, plural } = ref.resource;
    return (await callOrNull(() => this.custom.getNamespacedCustomObject({ group, version, plural, namespace: ref.namespace, name: ref.name }, withSignal(signal)), signal)) as KubeObject | null;
  }

  async mergePatch(ref: WorkloadRef, body: Record<string, unknown>, signal?: AbortSignal): Promise<KubeObject> {
    const { group, version, plural } = ref.resource;
    const options = setHeaderOptions('Content-Type', PatchStrategy.MergePatch, withSignal(signal));
    return (await call(
      () => this.custom.patchNamespacedCustomObject({ group, version, plural, namespace: ref.namespace, name: ref.name, body, fieldManager: FIELD_MANAGER }, options),
      signal,
    )) as KubeObject;
  }

  async createEvent(namespace: string, event: KubeObject, signal?: AbortSignal): Promise<void> {
    await call(() => this.core.createNamespacedEvent({ namespace, body: event as unknown as CoreV1Event }, withSignal(signal)), signal);
  }
}
