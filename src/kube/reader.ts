import { KubeReadError } from './errors.js';

/**
 * The one seam through which actions read the cluster: ConfigMaps and Secrets for checksums. The
 * webhook and the rollout controller use the @kubernetes/client-node implementation
 * (ClientNodeReader); the offline audit reads rendered manifests first. A 404 is an answer
 * (`found: false`); a read that gives no answer fails with a KubeReadError naming the object.
 */

export type ConfigSourceKind = 'ConfigMap' | 'Secret';

export interface ObjectRef {
  kind: ConfigSourceKind;
  namespace: string;
  name: string;
}

/** Keys mapped to the exact bytes a pod would see (data and binaryData merged; Secret values decoded). */
export type ConfigContent = ReadonlyMap<string, Buffer>;

export type ReadResult = { found: true; content: ConfigContent } | { found: false };

export interface ReadOptions {
  /** Give up on this read this long after it was sent (time spent waiting for a connection does not count). */
  timeoutMs: number;
  /** Ends the read, also while it waits for a connection (the admission deadline). */
  signal?: AbortSignal;
}

export interface KubeReader {
  readConfigSource(ref: ObjectRef, options: ReadOptions): Promise<ReadResult>;
  /** Reads waiting for a connection to the API server right now (a metric), when the reader queues them. */
  readsWaiting?(): number;
}

/** Used when no cluster is configured (development, `npm start`): every read fails clearly. */
export class UnavailableKubeReader implements KubeReader {
  constructor(private readonly why: string) {}
  async readConfigSource(ref: ObjectRef): Promise<ReadResult> {
    throw new KubeReadError(ref, 'unavailable', this.why);
  }
}
