import type { KubeConfig } from '@kubernetes/client-node';
import type { KubeObject } from '../api/types.js';
import { KubeApiError, statusContinueToken, statusReason } from './errors.js';
import { collectionPath } from './objects.js';
import { parseObject, RawApiClient } from './raw.js';
import type { ApiResource } from './resources.js';

/**
 * Paged lists of any resource (`?limit=&continue=`), the way kubectl and client-go's pager read
 * big collections: one page in memory at a time. Every call (list, and every page of it) is a
 * `list` in RBAC terms on the resource named.
 */

/** A resource that can be listed: where it is served and whether it lives in namespaces. */
export interface ListableResource extends ApiResource {
  namespaced: boolean;
}

export interface ListOptions {
  /** One namespace; absent: every namespace (and always for cluster-scoped resources). */
  namespace?: string;
  labelSelector?: string;
  /** Objects per page (default DEFAULT_PAGE_SIZE). */
  limit?: number;
  /**
   * Only each object's metadata (`PartialObjectMetadataList`), for callers that read labels and
   * annotations only: a list of CustomResourceDefinitions is then kilobytes instead of megabytes.
   * A server that cannot answer so sends whole objects, which are just as good.
   */
  metadataOnly?: boolean;
  signal?: AbortSignal;
}

export interface ListPage {
  /** The page's objects, each with apiVersion and kind set (list items often have neither). */
  items: KubeObject[];
  /** Objects left after this page, when the server says (`metadata.remainingItemCount`). */
  remaining?: number;
}

export interface ObjectLister {
  /** The collection, page by page. Throws a KubeApiError when a page gets no usable answer (e.g. `forbidden`). */
  pages(resource: ListableResource, options?: ListOptions): AsyncIterable<ListPage>;
}

/** kubectl's `--chunk-size` default. */
export const DEFAULT_PAGE_SIZE = 500;
export const MAX_PAGE_SIZE = 10_000;
/** Continue tokens that expire again and again without a page in between: the list is given up. */
const MAX_EXPIRIES_IN_A_ROW = 5;

const METADATA_ONLY_ACCEPT = 'application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json';

/** Objects are listed in the order of their storage keys: namespace, then name. */
function storageKey(object: KubeObject): string {
  return `${object.metadata?.namespace ?? ''}/${object.metadata?.name ?? ''}`;
}

export class ClientNodeObjectLister implements ObjectLister {
  private readonly api: RawApiClient;

  constructor(kubeConfig: KubeConfig, timeoutMs = 60_000) {
    this.api = new RawApiClient(kubeConfig, timeoutMs);
  }

  /**
   * A continue token lives about five minutes (etcd compaction). When one has expired (`410
   * Expired`), the list carries on with the token the Status offers for the rest of the list at
   * the current state; without one it starts again and skips every object already handed out
   * (lists come in key order), so no object is seen twice either way.
   */
  async *pages(resource: ListableResource, options: ListOptions = {}): AsyncIterable<ListPage> {
    const limit = options.limit ?? DEFAULT_PAGE_SIZE;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) throw new RangeError(`limit must be 1..${MAX_PAGE_SIZE}`);
    const apiVersion = resource.group ? `${resource.group}/${resource.version}` : resource.version;
    const path = collectionPath(apiVersion, resource.plural, resource.namespaced ? options.namespace : undefined);
    let token: string | undefined;
    let lastKey: string | undefined;
    let skipThrough: string | undefined;
    let expiries = 0;
    for (;;) {
      const { status, text } = await this.api.send({
        method: 'GET',
        path,
        query: { limit: String(limit), continue: token, labelSelector: options.labelSelector },
        accept: options.metadataOnly ? METADATA_ONLY_ACCEPT : 'application/json',
        ...(options.signal ? { signal: options.signal } : {}),
      });
      if (status === 410 && token !== undefined) {
        if (++expiries > MAX_EXPIRIES_IN_A_ROW) throw KubeApiError.fromStatus(status, statusReason(text));
        token = statusContinueToken(text);
        if (token === undefined) skipThrough = lastKey;
        continue;
      }
      if (status !== 200) throw KubeApiError.fromStatus(status, statusReason(text));
      expiries = 0;
      const list = parseObject(text);
      if (!Array.isArray(list.items)) throw new KubeApiError('server', 'list response has no items');
      const metadata = (list.metadata ?? {}) as { continue?: unknown; remainingItemCount?: unknown };
      const items: KubeObject[] = [];
      for (const item of list.items as unknown[]) {
        if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new KubeApiError('server', 'list item is not an object');
        // PartialObjectMetadata items say meta.k8s.io/v1; whole items of built-in kinds say nothing.
        const object = { ...(item as KubeObject), apiVersion, kind: resource.kind };
        if (skipThrough !== undefined && storageKey(object) <= skipThrough) continue;
        items.push(object);
      }
      if (items.length > 0) lastKey = storageKey(items.at(-1)!);
      const remaining = typeof metadata.remainingItemCount === 'number' && metadata.remainingItemCount >= 0 ? metadata.remainingItemCount : undefined;
      yield { items, ...(remaining !== undefined ? { remaining } : {}) };
      token = typeof metadata.continue === 'string' && metadata.continue !== '' ? metadata.continue : undefined;
      if (token === undefined) return;
    }
  }
}
