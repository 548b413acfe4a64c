import { ApiException } from '@kubernetes/client-node';

/**
 * The HTTP status of a failed API call, if it got an answer: client-node's ApiException for
 * requests (`code`), its Watch's Error for watches (`statusCode`).
 */
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
  const status = httpStatus(error);
  if (status !== undefined) return `HTTP ${status}`;
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^[A-Z][A-Z0-9_]{1,63}$/.test(code)) return code;
  return error instanceof Error ? error.name : typeof error;
}
