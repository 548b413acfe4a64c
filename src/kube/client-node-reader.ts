import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { toKubeApiError } from './api-error.js';
import { withSignal } from './call-options.js';
import { configContent } from './config-data.js';
import { KubeReadError, type ReadFailureReason } from './errors.js';
import { KeepAliveAuthentication, makeKeepAliveApiClient } from './keep-alive.js';
import type { KubeReader, ObjectRef, ReadOptions, ReadResult } from './reader.js';
import { Slots } from './slots.js';

/**
 * Connections to the API server for reads. Every read in flight needs one (HTTP/1.1), and the
 * webhook reads for every admission it works on at the same time: 50 concurrent Deployment
 * admissions with three references each are 150 reads. Beyond this, reads wait for a
 * connection without that wait counting against their own timeout.
 */
export const DEFAULT_READ_CONNECTIONS = 256;

/** A read has no conflicts: any other answer it cannot use is the server's failure. */
function readFailure(reason: ReturnType<typeof toKubeApiError>['reason']): ReadFailureReason {
  return reason === 'conflict' || reason === 'not-found' ? 'server' : reason;
}

/**
 * KubeReader over @kubernetes/client-node: one fresh GET per read (no cache), cancelled at
 * `timeoutMs` after it was sent or when `signal` aborts. 404 is an answer ({found: false}); every
 * other failure is a KubeReadError whose text holds status codes and reasons only, never object data.
 */
export class ClientNodeReader implements KubeReader {
  private readonly core: CoreV1Api;
  private readonly slots: Slots;

  constructor(kubeConfig: KubeConfig, options: { maxConnections?: number } = {}) {
    const connections = options.maxConnections ?? DEFAULT_READ_CONNECTIONS;
    this.slots = new Slots(connections);
    this.core = makeKeepAliveApiClient(kubeConfig, CoreV1Api, new KeepAliveAuthentication(kubeConfig, connections));
  }

  readsWaiting(): number {
    return this.slots.waiting;
  }

  async readConfigSource(ref: ObjectRef, options: ReadOptions): Promise<ReadResult> {
    if (options.signal?.aborted) throw new KubeReadError(ref, 'timeout', 'aborted before the read started');
    let release: () => void;
    try {
      // Waiting for a connection is bounded by the caller's signal (the admission deadline), not by timeoutMs.
      release = await this.slots.acquire(options.signal);
    } catch {
      throw new KubeReadError(ref, 'timeout', 'aborted while waiting for a connection to the API server');
    }
    try {
      return await this.read(ref, options);
    } finally {
      release();
    }
  }

  private async read(ref: ObjectRef, { timeoutMs, signal }: ReadOptions): Promise<ReadResult> {
    if (signal?.aborted) throw new KubeReadError(ref, 'timeout', 'aborted before the read started');
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    // Also bounds time spent before the request is sent (e.g. an exec credential plugin).
    const stopped = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        controller.abort();
        reject(new KubeReadError(ref, 'timeout', `no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      onAbort = () => {
        controller.abort();
        reject(new KubeReadError(ref, 'timeout', 'aborted by the caller'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    try {
      const object = await Promise.race([this.get(ref, controller.signal), stopped]);
      return { found: true, content: configContent(ref, object) };
    } catch (error) {
      if (error instanceof KubeReadError) throw error;
      const failure = toKubeApiError(error, controller.signal);
      if (failure.reason === 'not-found') return { found: false };
      throw new KubeReadError(ref, readFailure(failure.reason), failure.detail, failure.httpStatus);
    } finally {
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  }

  private get(ref: ObjectRef, signal: AbortSignal): Promise<{ data?: unknown; binaryData?: unknown }> {
    const request = { name: ref.name, namespace: ref.namespace };
    return ref.kind === 'Secret'
      ? this.core.readNamespacedSecret(request, withSignal(signal))
      : this.core.readNamespacedConfigMap(request, withSignal(signal));
  }
}
