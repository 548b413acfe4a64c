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
