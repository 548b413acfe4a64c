import {
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type CoreV1Event,
  type KubeConfig,
  type V1Lease,
} from '@kubernetes/client-node';
import { httpStatus } from '../kube/api-error.js';
import { withSignal } from '../kube/call-options.js';
import { makeKeepAliveApiClient } from '../kube/keep-alive.js';
import type { KubeObject } from '../admission/types.js';
import { LeaseConflictError, type LeaseClient, type LeaseRecord, type LeaseSpec } from './leader.js';

/** The field manager of every write the controller makes. */
export const FIELD_MANAGER = 'gitops-guard';

/** A workload type the controller watches, and how to reach it over the API. */
export interface WorkloadResource {
  group: string;
  version: string;
  kind: string;
  plural: string;
  /**
   * Part of Kubernetes itself: a failing list keeps the controller unready (RBAC is missing). The
   * others are custom resources a cluster may or may not have; they never hold readiness back.
   */
  builtIn: boolean;
}

export const WORKLOAD_RESOURCES: readonly WorkloadResource[] = [
  { group: 'apps', version: 'v1', kind: 'Deployment', plural: 'deployments', builtIn: true },
  { group: 'apps', version: 'v1', kind: 'StatefulSet', plural: 'statefulsets', builtIn: true },
  { group: 'apps', version: 'v1', kind: 'DaemonSet', plural: 'daemonsets', builtIn: true },
  { group: 'batch', version: 'v1', kind: 'CronJob', plural: 'cronjobs', builtIn: true },
  { group: 'argoproj.io', version: 'v1alpha1', kind: 'Rollout', plural: 'rollouts', builtIn: false },
];

/** `deployments.apps`: how logs, metrics and /readyz name a resource. */
export function resourceName(resource: Pick<WorkloadResource, 'group' | 'plural'>): string {
  return resource.group ? `${resource.plural}.${resource.group}` : resource.plural;
}

export interface WorkloadRef {
  resource: WorkloadResource;
  namespace: string;
  name: string;
}

/** Reads and patches workloads as raw JSON (exactly what the webhook is sent), through the generic group API. */
export class WorkloadApi {
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;

  constructor(kubeConfig: KubeConfig) {
    this.custom = makeKeepAliveApiClient(kubeConfig, CustomObjectsApi);
    this.core = makeKeepAliveApiClient(kubeConfig, CoreV1Api);
  }

  /** null on 404. */
  async get(ref: WorkloadRef, signal?: AbortSignal): Promise<KubeObject | null> {
    try {
      const { group, version, plural } = ref.resource;
      return (await this.custom.getNamespacedCustomObject({ group, version, plural, namespace: ref.namespace, name: ref.name }, withSignal(signal))) as KubeObject;
    } catch (error) {
      if (httpStatus(error) === 404) return null;
      throw error;
    }
  }

  /** A JSON merge patch (RFC 7386) as field manager `gitops-guard`. */
  async mergePatch(ref: WorkloadRef, body: Record<string, unknown>, signal?: AbortSignal): Promise<KubeObject> {
    const { group, version, plural } = ref.resource;
    const options = setHeaderOptions('Content-Type', PatchStrategy.MergePatch, withSignal(signal));
    return (await this.custom.patchNamespacedCustomObject(
      { group, version, plural, namespace: ref.namespace, name: ref.name, body, fieldManager: FIELD_MANAGER },
      options,
    )) as KubeObject;
  }

  async createEvent(namespace: string, event: CoreV1Event, signal?: AbortSignal): Promise<void> {
    await this.core.createNamespacedEvent({ namespace, body: event }, withSignal(signal));
  }
}

function timeString(value: unknown): string | undefined {
  if (value instanceof Date) return value.toISOString();
  return typeof value === 'string' ? value : undefined;
}

function recordOf(lease: V1Lease): LeaseRecord {
  const spec = lease.spec ?? {};
  return {
    holderIdentity: spec.holderIdentity ?? '',
    leaseDurationSeconds: spec.leaseDurationSeconds ?? 0,
    acquireTime: timeString(spec.acquireTime),
    renewTime: timeString(spec.renewTime),
    leaseTransitions: spec.leaseTransitions ?? 0,
    resourceVersion: lease.metadata?.resourceVersion ?? '',
  };
}

/** LeaseClient over coordination.k8s.io/v1. */
export class KubeLeaseClient implements LeaseClient {
  private readonly api: CoordinationV1Api;

  constructor(
    kubeConfig: KubeConfig,
    readonly namespace: string,
    readonly name: string,
  ) {
    this.api = makeKeepAliveApiClient(kubeConfig, CoordinationV1Api);
  }

  private body(spec: LeaseSpec, resourceVersion?: string): V1Lease {
    // Times go over the wire as strings; the API server wants RFC 3339 with microseconds.
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: this.name, namespace: this.namespace, ...(resourceVersion ? { resourceVersion } : {}) },
      spec: {
        holderIdentity: spec.holderIdentity,
        leaseDurationSeconds: spec.leaseDurationSeconds,
        ...(spec.acquireTime ? { acquireTime: spec.acquireTime as never } : {}),
        ...(spec.renewTime ? { renewTime: spec.renewTime as never } : {}),
        leaseTransitions: spec.leaseTransitions,
      },
    };
  }

  async get(signal?: AbortSignal): Promise<LeaseRecord | null> {
    try {
      return recordOf(await this.api.readNamespacedLease({ name: this.name, namespace: this.namespace }, withSignal(signal)));
    } catch (error) {
      if (httpStatus(error) === 404) return null;
      throw error;
    }
  }

  async create(spec: LeaseSpec, signal?: AbortSignal): Promise<LeaseRecord> {
    try {
      return recordOf(await this.api.createNamespacedLease({ namespace: this.namespace, body: this.body(spec) }, withSignal(signal)));
    } catch (error) {
      if (httpStatus(error) === 409) throw new LeaseConflictError('lease already exists');
      throw error;
    }
  }

  async replace(spec: LeaseSpec, resourceVersion: string, signal?: AbortSignal): Promise<LeaseRecord> {
    try {
      return recordOf(
        await this.api.replaceNamespacedLease({ name: this.name, namespace: this.namespace, body: this.body(spec, resourceVersion) }, withSignal(signal)),
      );
    } catch (error) {
      if (httpStatus(error) === 409) throw new LeaseConflictError('lease changed since it was read');
      throw error;
    }
  }
}
