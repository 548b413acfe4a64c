import type { Operation as PatchOperation } from 'fast-json-patch';
import {
  ADMISSION_API_VERSION,
  ADMISSION_KIND,
  type AdmissionResponse,
  type AdmissionReview,
} from '../api/types.js';
import type { PhaseResult } from '../rules/result.js';
import { clampWarning } from '../util/text.js';

/** Denials are policy decisions, not conflicts: 409 would make `kubectl apply` retry its patch. */
export const DENIAL_STATUS_CODE = 403;

/** Helpers in the spirit of controller-runtime's admission package. */

export function allowed(uid: string): AdmissionResponse {
  return { uid, allowed: true };
}

export function denied(uid: string, message: string, code = 403): AdmissionResponse {
  return { uid, allowed: false, status: { code, message, reason: code === 403 ? 'Forbidden' : undefined } };
}

/** An allowed response carrying `ops`; no patch fields at all when there is nothing to change. */
export function patched(uid: string, ops: readonly PatchOperation[]): AdmissionResponse {
  if (ops.length === 0) return allowed(uid);
  return {
    uid,
    allowed: true,
    patchType: 'JSONPatch',
    patch: Buffer.from(JSON.stringify(ops), 'utf8').toString('base64'),
  };
}

export function withWarnings(response: AdmissionResponse, warnings: readonly string[]): AdmissionResponse {
  if (warnings.length === 0) return response;
  return { ...response, warnings: warnings.map(clampWarning) };
}

export function withAuditAnnotations(
  response: AdmissionResponse,
  annotations: Readonly<Record<string, string>>,
): AdmissionResponse {
  if (Object.keys(annotations).length === 0) return response;
  return { ...response, auditAnnotations: { ...annotations } };
}

export function toReview(response: AdmissionResponse): AdmissionReview {
  return { apiVersion: ADMISSION_API_VERSION, kind: ADMISSION_KIND, response };
}

/**
 * The AdmissionResponse for a phase's result: allowed (with the mutating phase's patch) or denied
 * with every denial, plus the warnings and audit annotations. A validating webhook never patches.
 */
export function responseFor(uid: string, result: PhaseResult): AdmissionResponse {
  const base = result.allowed ? patched(uid, result.phase === 'mutate' ? result.patch : []) : denied(uid, result.denials.join('\n'), DENIAL_STATUS_CODE);
  return withAuditAnnotations(withWarnings(base, result.warnings), result.auditAnnotations);
}

/** How logs and the latency metric name an answer. */
export function verdictOf(response: AdmissionResponse): 'allowed' | 'patched' | 'denied' {
  if (!response.allowed) return 'denied';
  return response.patch ? 'patched' : 'allowed';
}
