import type { KubeObject } from '../api/types.js';

/** A JSON object (not null, not an array): what every field of a Kubernetes object may turn out not to be. */
export type PlainObject = Record<string, unknown>;

export function isPlainObject(value: unknown): value is PlainObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `apps/v1` → group `apps`, version `v1`; `v1` → the core group (`""`). */
export function parseApiVersion(apiVersion: string): { group: string; version: string } {
  const slash = apiVersion.indexOf('/');
  return slash === -1 ? { group: '', version: apiVersion } : { group: apiVersion.slice(0, slash), version: apiVersion.slice(slash + 1) };
}

export function groupOf(apiVersion: unknown): string {
  return typeof apiVersion === 'string' ? parseApiVersion(apiVersion).group : '';
}

/** The object's annotations; an empty map when it has none (or they are not a map). */
export function annotationsOf(object: KubeObject | null | undefined): Record<string, string> {
  const annotations = object?.metadata?.annotations;
  return annotations && typeof annotations === 'object' ? annotations : {};
}

/** The object's labels; an empty map when it has none (or they are not a map). */
export function labelsOf(object: KubeObject | null | undefined): Record<string, string> {
  const labels = object?.metadata?.labels;
  return labels && typeof labels === 'object' ? labels : {};
}

/** Own-property lookup: a key like `__proto__` or `constructor` in user data never resolves to Object.prototype. */
export function ownString(map: Record<string, unknown>, key: string): string | undefined {
  if (!Object.prototype.hasOwnProperty.call(map, key)) return undefined;
  const value = map[key];
  return typeof value === 'string' ? value : undefined;
}
