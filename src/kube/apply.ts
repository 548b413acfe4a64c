import type { KubeConfig } from '@kubernetes/client-node';
import type { KubeObject } from '../api/types.js';
import { KubeApiError, statusReason } from './errors.js';
import { objectPath, type ObjectAddress } from './objects.js';
import { parseObject, RawApiClient } from './raw.js';

/**
 * Server-side apply (`PATCH` with `application/apply-patch+yaml`) of objects gitops-guard owns
 * whole, such as its policy reports. The API server creates the object when it is missing and
 * otherwise makes it exactly what was applied for the fields this field manager owns: fields it
 * applied before and leaves out now are removed. Unlike client-side apply it keeps no copy of the
 * object in an annotation, so an object may use most of the API server's size limit. An apply
 * that changes nothing writes nothing. RBAC: `patch`, and `create` for an object that does not
 * exist yet.
 */
export interface ObjectApplier {
  /** Applies `object` (apiVersion, kind and metadata.name/namespace as in `address`); returns the stored object. */
  apply(address: ObjectAddress, object: KubeObject, options: ApplyOptions): Promise<KubeObject>;
}

export interface ApplyOptions {
  fieldManager: string;
  /**
   * Take over fields another manager set (`force=true`): right for objects only gitops-guard
   * writes, where another manager's value (e.g. a `kubectl apply` of `gitops-guard scan` output)
   * is an older copy of gitops-guard's own.
   */
  force: boolean;
  signal?: AbortSignal;
}

export class ClientNodeObjectApplier implements ObjectApplier {
  private readonly api: RawApiClient;

  constructor(kubeConfig: KubeConfig, timeoutMs = 30_000) {
    this.api = new RawApiClient(kubeConfig, timeoutMs);
  }

  async apply(address: ObjectAddress, object: KubeObject, options: ApplyOptions): Promise<KubeObject> {
    const { status, text } = await this.api.send({
      method: 'PATCH',
      path: objectPath(address),
      query: { fieldManager: options.fieldManager, ...(options.force ? { force: 'true' } : {}) },
      // JSON is YAML: the API server reads the body as YAML.
      contentType: 'application/apply-patch+yaml',
      body: JSON.stringify(object),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    if (status !== 200 && status !== 201) throw KubeApiError.fromStatus(status, statusReason(text));
    return parseObject(text) as KubeObject;
  }
}
