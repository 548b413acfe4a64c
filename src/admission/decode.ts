import { ADMISSION_API_VERSION, ADMISSION_KIND, type AdmissionRequest } from '../api/types.js';
import { isPlainObject } from '../util/objects.js';

export class BadReviewError extends Error {
  override readonly name = 'BadReviewError';
}

const OPERATIONS = new Set(['CREATE', 'UPDATE', 'DELETE', 'CONNECT']);


function requireGvk(value: unknown, field: string, keys: readonly string[]): void {
  if (!isPlainObject(value)) throw new BadReviewError(`request.${field} must be an object`);
  for (const key of keys) {
    if (typeof value[key] !== 'string') throw new BadReviewError(`request.${field}.${key} must be a string`);
  }
}

/**
 * Checks that a parsed body is an admission.k8s.io/v1 AdmissionReview carrying a request,
 * and returns that request. Only the envelope is checked here: a request whose object does not
 * look like its kind is still a valid review, and rules decide what to do with it.
 */
export function decodeAdmissionReview(body: unknown): AdmissionRequest {
  if (!isPlainObject(body)) throw new BadReviewError('body must be a JSON object (an AdmissionReview)');
  if (body.apiVersion !== ADMISSION_API_VERSION) {
    throw new BadReviewError(
      `apiVersion must be ${ADMISSION_API_VERSION}, got ${JSON.stringify(body.apiVersion ?? null).slice(0, 60)}`,
    );
  }
  if (body.kind !== ADMISSION_KIND) {
    throw new BadReviewError(`kind must be ${ADMISSION_KIND}, got ${JSON.stringify(body.kind ?? null).slice(0, 60)}`);
  }
  const request = body.request;
  if (!isPlainObject(request)) throw new BadReviewError('AdmissionReview has no request');
  if (typeof request.uid !== 'string' || request.uid.length === 0) {
    throw new BadReviewError('request.uid is missing');
  }
  if (typeof request.operation !== 'string' || !OPERATIONS.has(request.operation)) {
    throw new BadReviewError('request.operation must be one of CREATE, UPDATE, DELETE, CONNECT');
  }
  requireGvk(request.kind, 'kind', ['group', 'version', 'kind']);
  requireGvk(request.resource, 'resource', ['group', 'version', 'resource']);
  for (const field of ['object', 'oldObject'] as const) {
    const value = request[field];
    if (value !== undefined && value !== null && !isPlainObject(value)) {
      throw new BadReviewError(`request.${field} must be an object or null`);
    }
  }
  if (request.userInfo !== undefined && !isPlainObject(request.userInfo)) {
    throw new BadReviewError('request.userInfo must be an object');
  }
  return {
    ...(request as unknown as AdmissionRequest),
    object: (request.object as AdmissionRequest['object']) ?? null,
    oldObject: (request.oldObject as AdmissionRequest['oldObject']) ?? null,
    userInfo: (request.userInfo as AdmissionRequest['userInfo']) ?? {},
  };
}
