import {
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type CoreV1Event,
  type KubeConfig,
  type V1Lease,
} from '@kubernetes/client-node';
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
}

export const WORKLOAD_RESOURCES: readonly WorkloadResource[] = [
  { group: 'apps', version: 'v1', kind: 'Deployment', plural: 'deployments' },
  { group: 'apps', version: 'v1', kind: 'StatefulSet', plural: 'statefulsets' },
  { group: 'apps', version: 'v1', kind: 'DaemonSet', plural: 'daemonsets' },
  { group: 'batch', version: 'v1', kind: 'CronJob', plural: 'cronjobs' },
  { group: 'argoproj.io', version: 'v1alpha1', kind: 'Rollout', plural: 'rollouts' },
];

export interface WorkloadRef {
  resource: WorkloadResource;
  namespace: string;
  name: string;
}

/** The HTTP status of a failed API call, if it got an answer. */
export function httpStatus(error: unknown): number | undefined {
  if (error instanceof ApiException) return error.code;
  const code = (error as { code?: unknown; statusCode?: unknown } | null)?.statusCode ?? (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** A short, data-free description of an API failure (status and Status reason only). */
export function describeApiError(error: unknown): string {
  if (error instanceof ApiException) {
    let reason: string | undefined;
    try {
      const body = typeof error.body === 'string' ? JSON.parse(error.body) : error.body;
      if (body && typeof body.reason === 'string' && /^[A-Za-z]{1,40}$/.test(body.reason)) reason = body.reason;
    } catch {
      // body not repeated
    }
    return `HTTP ${error.code}${reason ? ` ${reason}` : ''}`;
  }
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^[A-Z][A-Z0-9_]{1,63}$/.test(code)) return code;
  return error instanceof Error ? error.name : typeof error;
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

  /** Whether the API serves `group/version` (a discovery GET; false on 404). */
  async served(group: string, version: string): Promise<boolean> {
    try {
      await this.custom.getAPIResources({ group, version });
      return true;
    } catch (error) {
      if (httpStatus(error) === 404) return false;
      throw error;
    }
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
