import { setMaxListeners } from 'node:events';
import { isDeadlineExceeded } from '../../util/abort.js';
import { KubeReadError, type ReadFailureReason } from '../../kube/errors.js';
import type { ConfigContent, ConfigSourceKind, KubeReader, ObjectRef, ReadResult } from '../../kube/reader.js';

export interface ReadLimits {
  /** Overall deadline for all reads together. */
  timeoutMs: number;
  /** Limit for each single read once it is sent (capped by the overall deadline). */
  readTimeoutMs: number;
  /**
   * Aborted when the admission request is abandoned or its deadline passes (the reason is then a
   * DeadlineExceededError); pending reads are cancelled.
   */
  signal?: AbortSignal;
}

export type ConfigReadFailure = ReadFailureReason | 'deadline' | 'aborted' | 'unexpected';

/** No checksum can be computed because an object could not be read. Never carries object data. */
export class ConfigReadError extends Error {
  override readonly name = 'ConfigReadError';
  constructor(
    readonly ref: ObjectRef,
    readonly reason: ConfigReadFailure,
    why: string,
    readonly httpStatus?: number,
  ) {
    super(`cannot read ${ref.kind} ${ref.namespace}/${ref.name}: ${why}`);
  }
}

const PLURAL: Record<ConfigSourceKind, string> = { ConfigMap: 'configmaps', Secret: 'secrets' };

function status(error: KubeReadError, fallback: number): number {
  return error.httpStatus ?? fallback;
}

/** One clear message per failure class: 403, 401, timeout, unreachable and server errors read differently. */
function fromKubeReadError(error: KubeReadError, ref: ObjectRef, limits: ReadLimits): ConfigReadError {
  switch (error.reason) {
    case 'forbidden':
      return new ConfigReadError(ref, 'forbidden', `forbidden (HTTP ${status(error, 403)}), gitops-guard needs get on ${PLURAL[ref.kind]}`, status(error, 403));
    case 'unauthorized':
      return new ConfigReadError(ref, 'unauthorized', `unauthorized (HTTP ${status(error, 401)}), API server rejected gitops-guard's credentials`, status(error, 401));
    case 'timeout':
      return error.httpStatus
        ? new ConfigReadError(ref, 'timeout', `API server timed out (HTTP ${error.httpStatus})`, error.httpStatus)
        : new ConfigReadError(ref, 'timeout', `timed out after ${Math.min(limits.readTimeoutMs, limits.timeoutMs)} ms`);
    case 'unavailable':
      return new ConfigReadError(ref, 'unavailable', `API server unreachable (${error.detail})`);
    case 'server':
      return new ConfigReadError(ref, 'server', `API server error${error.httpStatus ? ` (HTTP ${error.httpStatus})` : ''}: ${error.detail}`, error.httpStatus);
  }
}

function classify(error: unknown, ref: ObjectRef, limits: ReadLimits, aborted: () => ConfigReadFailure | null): ConfigReadError {
  const abortReason = aborted();
  if (abortReason === 'deadline') return new ConfigReadError(ref, 'deadline', `no answer within the ${limits.timeoutMs} ms checksum deadline`);
  if (abortReason === 'aborted' && isDeadlineExceeded(limits.signal?.reason)) {
    return new ConfigReadError(ref, 'deadline', `no answer within the admission deadline (${limits.signal.reason.deadlineMs} ms)`);
  }
  if (abortReason === 'aborted') return new ConfigReadError(ref, 'aborted', 'admission request was abandoned before the read finished');
  if (error instanceof KubeReadError) return fromKubeReadError(error, ref, limits);
  // Foreign errors may quote a response body, so only their class name is kept.
  const name = error instanceof Error ? error.name : typeof error;
  return new ConfigReadError(ref, 'unexpected', `unexpected ${name}`);
}

export function refKey(kind: string, name: string): string {
  return `${kind}/${name}`;
}

/**
 * Reads each distinct object once, all concurrently, fresh from the API (no cache: a stale
 * read would stamp the old checksum and silently skip a rollout). Resolves to the content of
 * every object (null when it does not exist), keyed by `refKey`. Rejects with a ConfigReadError
 * as soon as one read fails, the overall deadline passes or `signal` aborts; pending reads are
 * then cancelled. A 404 is an answer (null), not a failure.
 */
export async function readConfigSources(
  refs: readonly { kind: ConfigSourceKind; name: string }[],
  namespace: string,
  kube: KubeReader,
  limits: ReadLimits,
): Promise<Map<string, ConfigContent | null>> {
  const unique = new Map<string, ObjectRef>();
  for (const { kind, name } of refs) unique.set(refKey(kind, name), { kind, namespace, name });
  const results = new Map<string, ConfigContent | null>();
  if (unique.size === 0) return results;

  const first = unique.values().next().value as ObjectRef;
  if (limits.signal?.aborted) {
    throw isDeadlineExceeded(limits.signal.reason)
      ? classify(undefined, first, limits, () => 'aborted')
      : new ConfigReadError(first, 'aborted', 'admission request was abandoned before the read started');
  }

  const controller = new AbortController();
  // Every read listens on this short-lived signal: many references are normal, not a listener leak.
  setMaxListeners(0, controller.signal);
  let abortedBy: ConfigReadFailure | null = null;
  const pending = new Set(unique.keys());

  return new Promise<Map<string, ConfigContent | null>>((resolve, reject) => {
    let settled = false;
    const finish = (error?: ConfigReadError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      limits.signal?.removeEventListener('abort', onAbort);
      if (error) {
        if (!controller.signal.aborted) controller.abort(error);
        reject(error);
      } else {
        resolve(results);
      }
    };
    const stop = (why: 'deadline' | 'aborted'): void => {
      abortedBy = why;
      controller.abort(new Error(why));
      // Name the first object (in reference order) that is still outstanding.
      const key = [...unique.keys()].find((k) => pending.has(k)) ?? unique.keys().next().value!;
      finish(classify(undefined, unique.get(key)!, limits, () => abortedBy));
    };
    const onAbort = (): void => stop('aborted');
    const deadline = setTimeout(() => stop('deadline'), limits.timeoutMs);
    limits.signal?.addEventListener('abort', onAbort, { once: true });

    const readTimeout = Math.min(limits.readTimeoutMs, limits.timeoutMs);
    for (const [key, ref] of unique) {
      // A reader that throws synchronously is treated like one that rejects.
      new Promise<ReadResult>((resolveRead) => resolveRead(kube.readConfigSource(ref, { timeoutMs: readTimeout, signal: controller.signal }))).then(
        (result) => {
          pending.delete(key);
          results.set(key, result.found ? result.content : null);
          if (pending.size === 0) finish();
        },
        (error: unknown) => {
          pending.delete(key);
          finish(classify(error, ref, limits, () => abortedBy));
        },
      );
    }
  });
}
