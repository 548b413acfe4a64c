import type { KubeConfig } from '@kubernetes/client-node';
import { ApiGetClient } from './api-get.js';
import { Cancellation } from './cancellation.js';
import { configContent } from './config-data.js';
import { failureReason, KubeApiError, KubeReadError, statusReason, type ReadFailureReason } from './errors.js';
import type { KubeReader, ObjectRef, ReadOptions, ReadResult } from './reader.js';
import { Slots } from './slots.js';

/**
 * Connections to the API server for reads. Every read in flight needs one (HTTP/1.1), and the
 * webhook reads for every admission it works on at the same time: 50 concurrent Deployment
 * admissions with three references each are 150 reads. Beyond this, reads wait for a
 * connection without that wait counting against their own timeout.
 */
export const DEFAULT_READ_CONNECTIONS = 256;

/**
 * The largest answer a read accepts. The API server refuses ConfigMaps and Secrets over 1 MiB of
 * data and etcd stores objects up to 1.5 MiB; as JSON, with escapes (a control byte is six
 * characters), an object that large stays below this.
 */
export const MAX_CONFIG_SOURCE_BYTES = 16 * 1024 * 1024;

/** The resources the reader GETs (RBAC: `get` on exactly these). */
export const CONFIG_SOURCE_RESOURCES = { ConfigMap: 'configmaps', Secret: 'secrets' } as const;

/** `/api/v1/namespaces/ns/configmaps/name`. */
export function configSourcePath(ref: ObjectRef): string {
  return `/api/v1/namespaces/${encodeURIComponent(ref.namespace)}/${CONFIG_SOURCE_RESOURCES[ref.kind]}/${encodeURIComponent(ref.name)}`;
}

/** A read has no conflicts: any other answer it cannot use is the server's failure. */
function readFailure(reason: KubeApiError['reason']): ReadFailureReason {
  return reason === 'conflict' || reason === 'not-found' ? 'server' : reason;
}

/**
 * KubeReader for the webhook and the rollout controller: one fresh GET per read (no cache),
 * cancelled at `timeoutMs` after it was sent or when `signal` aborts, over kept-alive connections
 * with the kubeconfig's credentials applied by @kubernetes/client-node (ApiGetClient). The answer
 * is parsed once, straight into the content. 404 is an answer ({found: false}); every other
 * failure is a KubeReadError whose text holds status codes and reasons only, never object data.
 */
export class ClientNodeReader implements KubeReader {
  private readonly client: ApiGetClient;
  private readonly slots: Slots;

  constructor(kubeConfig: KubeConfig, options: { maxConnections?: number } = {}) {
    const connections = options.maxConnections ?? DEFAULT_READ_CONNECTIONS;
    this.slots = new Slots(connections);
    this.client = new ApiGetClient(kubeConfig, { maxSockets: connections });
  }

  readsWaiting(): number {
    return this.slots.waiting;
  }

  readConfigSource(ref: ObjectRef, options: ReadOptions): Promise<ReadResult> {
    if (options.signal?.aborted) return Promise.reject(new KubeReadError(ref, 'timeout', 'aborted before the read started'));
    const release = this.slots.tryAcquire();
    if (release) return this.read(ref, options, release);
    // Waiting for a connection is bounded by the caller's signal (the admission deadline), not by timeoutMs.
    return this.slots.acquire(options.signal).then(
      (acquired) => this.read(ref, options, acquired),
      () => {
        throw new KubeReadError(ref, 'timeout', 'aborted while waiting for a connection to the API server');
      },
    );
  }

  /** One read holding a slot (given back when it settles): the GET, bounded by `timeoutMs` and the caller's signal. */
  private read(ref: ObjectRef, { timeoutMs, signal }: ReadOptions, release: () => void): Promise<ReadResult> {
    if (signal?.aborted) {
      release();
      return Promise.reject(new KubeReadError(ref, 'timeout', 'aborted before the read started'));
    }
    const cancellation = new Cancellation();
    return new Promise<ReadResult>((resolve, reject) => {
      let settled = false;
      const settle = (error: unknown, result?: ReadResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        // Cancels the request (or keeps an exec credential plugin's answer from being used)
        // before its slot goes to the next read.
        if (error) cancellation.cancel();
        release();
        if (error) reject(error);
        else resolve(result!);
      };
      // Also bounds time spent before the request is sent (e.g. an exec credential plugin).
      const timer = setTimeout(() => settle(new KubeReadError(ref, 'timeout', `no answer within ${timeoutMs} ms`)), timeoutMs);
      const onAbort = (): void => settle(new KubeReadError(ref, 'timeout', 'aborted by the caller'));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.client.request(configSourcePath(ref), cancellation, MAX_CONFIG_SOURCE_BYTES).then(
        ({ status, body }) => {
          try {
            settle(null, answer(ref, status, body));
          } catch (error) {
            settle(error);
          }
        },
        (error: unknown) => {
          const failure = error instanceof KubeApiError ? error : new KubeApiError('server', 'unexpected failure');
          settle(new KubeReadError(ref, readFailure(failure.reason), failure.detail, failure.httpStatus));
        },
      );
    });
  }
}

/** What an answer says about the object: its content, not found, or a KubeReadError naming only the status and its Status reason. */
function answer(ref: ObjectRef, status: number, body: Buffer): ReadResult {
  if (status === 404) return { found: false };
  if (status !== 200) throw new KubeReadError(ref, readFailure(failureReason(status)), statusReason(body.toString('utf8')) ?? `HTTP ${status}`, status);
  let object: unknown;
  try {
    object = JSON.parse(body.toString('utf8'));
  } catch {
    throw new KubeReadError(ref, 'server', 'answer is not JSON');
  }
  if (typeof object !== 'object' || object === null || Array.isArray(object)) throw new KubeReadError(ref, 'server', 'answer is not an object');
  return { found: true, content: configContent(ref, object as Record<string, unknown>) };
}
