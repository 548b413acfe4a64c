import { ApiException } from '@kubernetes/client-node';
import { KubeApiError, statusReason } from './errors.js';

/** Error codes are the only part of a transport error that is repeated (messages may quote bodies). */
export function transportCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[A-Z][A-Z0-9_]{1,63}$/.test(code) ? code : undefined;
}

/**
 * A failure of @kubernetes/client-node as the adapter's one error type: its ApiException for
 * requests (`code`, a Status `body`), its Watch's Error for watches (`statusCode`), an aborted
 * request (its `signal` aborted), or a transport failure (`ECONNREFUSED`). Anything else keeps
 * its class name only.
 */
export function toKubeApiError(error: unknown, signal?: AbortSignal): KubeApiError {
  if (error instanceof KubeApiError) return error;
  if (error instanceof ApiException) return KubeApiError.fromStatus(error.code, statusReason(error.body));
  const status = (error as { statusCode?: unknown } | null)?.statusCode;
  if (typeof status === 'number') return KubeApiError.fromStatus(status);
  if (signal?.aborted) return new KubeApiError('timeout', 'request aborted');
  const code = transportCode(error);
  if (code) return new KubeApiError('unavailable', code);
  return new KubeApiError('server', `unexpected ${error instanceof Error ? error.name : typeof error}`);
}

/** Runs a client-node call (aborted by `signal`); whatever it throws becomes a KubeApiError. */
export async function call<T>(request: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  try {
    return await request();
  } catch (error) {
    throw toKubeApiError(error, signal);
  }
}

/** Like `call`, for reads: a 404 is an answer (null), not a failure. */
export async function callOrNull<T>(request: () => Promise<T>, signal?: AbortSignal): Promise<T | null> {
  try {
    return await request();
  } catch (error) {
    const failure = toKubeApiError(error, signal);
    if (failure.reason === 'not-found') return null;
    throw failure;
  }
}
