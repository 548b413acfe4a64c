/**
 * The one error type of the Kubernetes adapter. Every call gitops-guard makes to the API server
 * (reads for checksums, workloads, leases, discovery, informers, live objects for the audit)
 * fails with a KubeApiError; callers decide by `reason` and `httpStatus`, never by error names or
 * message text. Messages hold status codes, Status reasons and transport codes only: a response
 * body may quote object data (a Secret), so none of it is ever repeated.
 *
 * This module does not load @kubernetes/client-node (the offline audit uses these types without
 * paying for the client); translating the client's own errors is api-error.ts's job.
 */

import type { ObjectRef } from './reader.js';

/** Why a call gave no usable answer. */
export type ApiFailureReason = 'forbidden' | 'unauthorized' | 'not-found' | 'conflict' | 'timeout' | 'unavailable' | 'server';

/** The failures a read can end with (a 404 is an answer there, not a failure). */
export type ReadFailureReason = Exclude<ApiFailureReason, 'not-found' | 'conflict'>;

/** How an HTTP status is classified (a request that got an answer that is not a success). */
export function failureReason(status: number): ApiFailureReason {
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'not-found';
  if (status === 409) return 'conflict';
  if (status === 408 || status === 504) return 'timeout';
  return 'server';
}

const STATUS_REASON = /^[A-Za-z]{1,40}$/;

/**
 * The one parser of the API server's `Status` bodies: the `reason` word (`Forbidden`, `Expired`,
 * `AlreadyExists`) of a body that is a Status, as text or parsed. Nothing else of the body is
 * kept: its message may quote object data.
 */
export function statusReason(body: unknown): string | undefined {
  const reason = statusObject(body)?.['reason'];
  return typeof reason === 'string' && STATUS_REASON.test(reason) ? reason : undefined;
}

/** The body as a `Status` object (parsed when it is text), or undefined when it is not one. */
function statusObject(body: unknown): Record<string, unknown> | undefined {
  let parsed = body;
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body);
    } catch {
      return undefined;
    }
  }
  if (typeof parsed !== 'object' || parsed === null || (parsed as { kind?: unknown }).kind !== 'Status') return undefined;
  return parsed as Record<string, unknown>;
}

/**
 * The continue token a `410 Expired` Status offers when a paged list's own token has expired
 * (`metadata.continue`: it carries on with the rest of the list at the current state, an
 * "inconsistent" continuation). An opaque token the server made, kept only to send back.
 */
export function statusContinueToken(body: unknown): string | undefined {
  const token = (statusObject(body) as { metadata?: { continue?: unknown } } | undefined)?.metadata?.continue;
  return typeof token === 'string' && token !== '' && token.length <= 4096 ? token : undefined;
}

/** `HTTP 403 Forbidden`: how an answered call is described. */
export function describeStatus(status: number, reason?: string): string {
  return `HTTP ${status}${reason ? ` ${reason}` : ''}`;
}

/** A call to the API server that gave no usable answer. */
export class KubeApiError extends Error {
  override readonly name: string = 'KubeApiError';
  constructor(
    readonly reason: ApiFailureReason,
    /** The Status reason (`Forbidden`), `HTTP <code>`, a transport code (`ECONNREFUSED`) or what timed out: never body text. */
    readonly detail: string,
    readonly httpStatus?: number,
    message?: string,
  ) {
    super(message ?? detail);
  }

  /** The call was answered with `status` (and this Status `reason`, when the body was a Status). */
  static fromStatus(status: number, reason?: string): KubeApiError {
    return new KubeApiError(failureReason(status), reason ?? `HTTP ${status}`, status, describeStatus(status, reason));
  }
}

/** A read of a ConfigMap or Secret that gave no answer about the object. Messages never carry object data. */
export class KubeReadError extends KubeApiError {
  override readonly name: string = 'KubeReadError';
  constructor(
    readonly ref: ObjectRef,
    override readonly reason: ReadFailureReason,
    detail: string,
    httpStatus?: number,
  ) {
    super(reason, detail, httpStatus, `${ref.kind} ${ref.namespace}/${ref.name}: ${reason}${httpStatus ? ` (HTTP ${httpStatus})` : ''}: ${detail}`);
  }
}
