import { CoordinationV1Api, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { call, callOrNull } from './api-error.js';
import { withSignal } from './call-options.js';
import { KubeApiError } from './errors.js';
import { makeKeepAliveApiClient } from './keep-alive.js';

/** What leader election reads and writes of a coordination.k8s.io/v1 Lease. */
export interface LeaseRecord {
  holderIdentity: string;
  leaseDurationSeconds: number;
  /** ISO timestamps as stored (microsecond precision on a real API server). */
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions: number;
  /** Optimistic concurrency: a replace with an older value fails with a conflict. */
  resourceVersion: string;
}

export type LeaseSpec = Omit<LeaseRecord, 'resourceVersion'>;

/** The lease was created or changed by someone else since it was read (a 409, said in the elector's words). */
export class LeaseConflictError extends KubeApiError {
  override readonly name: string = 'LeaseConflictError';
  constructor(message: string) {
    super('conflict', message, 409, message);
  }
}

/** One Lease. Failures other than conflicts are KubeApiErrors. */
export interface LeaseClient {
  /** null when the Lease does not exist. */
  get(signal?: AbortSignal): Promise<LeaseRecord | null>;
  /** Throws LeaseConflictError when it already exists. */
  create(spec: LeaseSpec, signal?: AbortSignal): Promise<LeaseRecord>;
  /** Throws LeaseConflictError when `resourceVersion` is stale. */
  replace(spec: LeaseSpec, resourceVersion: string, signal?: AbortSignal): Promise<LeaseRecord>;
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
    const lease = await callOrNull(() => this.api.readNamespacedLease({ name: this.name, namespace: this.namespace }, withSignal(signal)), signal);
    return lease && recordOf(lease);
  }

  async create(spec: LeaseSpec, signal?: AbortSignal): Promise<LeaseRecord> {
    return recordOf(await this.write(() => this.api.createNamespacedLease({ namespace: this.namespace, body: this.body(spec) }, withSignal(signal)), 'lease already exists', signal));
  }

  async replace(spec: LeaseSpec, resourceVersion: string, signal?: AbortSignal): Promise<LeaseRecord> {
    return recordOf(
      await this.write(
        () => this.api.replaceNamespacedLease({ name: this.name, namespace: this.namespace, body: this.body(spec, resourceVersion) }, withSignal(signal)),
        'lease changed since it was read',
        signal,
      ),
    );
  }

  private async write(request: () => Promise<V1Lease>, conflict: string, signal: AbortSignal | undefined): Promise<V1Lease> {
    try {
      return await call(request, signal);
    } catch (error) {
      if (error instanceof KubeApiError && error.reason === 'conflict') throw new LeaseConflictError(conflict);
      throw error;
    }
  }
}
