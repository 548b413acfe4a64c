import type { KubeObject } from '../api/types.js';
import { isPlainObject } from '../util/objects.js';

export const LAST_APPLIED_ANNOTATION = 'kubectl.kubernetes.io/last-applied-configuration';

/** Server-owned metadata an apply keeps from the live object. */
const SERVER_METADATA = ['uid', 'resourceVersion', 'creationTimestamp', 'generation'] as const;


function stringMap(value: unknown): Record<string, string> {
  if (!isPlainObject(value)) return {};
  const out: Record<string, string> = {};
  for (const [key, entry] of Object.entries(value)) if (typeof entry === 'string') out[key] = entry;
  return out;
}

/** Label or annotation keys the previous apply set (from kubectl's last-applied record). */
function lastAppliedKeys(live: KubeObject, field: 'labels' | 'annotations'): Set<string> {
  const raw = live.metadata?.annotations?.[LAST_APPLIED_ANNOTATION];
  if (typeof raw !== 'string') return new Set();
  try {
    const parsed: unknown = JSON.parse(raw);
    const metadata = isPlainObject(parsed) && isPlainObject(parsed.metadata) ? parsed.metadata : {};
    return new Set(Object.keys(stringMap(metadata[field])));
  } catch {
    return new Set();
  }
}

function mergeMap(live: KubeObject, manifest: KubeObject, field: 'labels' | 'annotations'): Record<string, string> | undefined {
  const previous = stringMap(live.metadata?.[field]);
  const wanted = stringMap(manifest.metadata?.[field]);
  const droppedByApply = lastAppliedKeys(live, field);
  const merged: Record<string, string> = {};
  for (const [key, value] of Object.entries(previous)) {
    if (!(key in wanted) && droppedByApply.has(key)) continue;
    merged[key] = value;
  }
  Object.assign(merged, wanted);
  return Object.keys(merged).length > 0 || manifest.metadata?.[field] !== undefined ? merged : undefined;
}

/**
 * The object an apply of `manifest` over `live` sends to admission, approximated the way a
 * three-way merge treats metadata: the manifest's fields, plus labels and annotations others
 * set on the live object (e.g. gitops-guard's owner record) unless the last apply set and the
 * manifest removed them, plus server-owned metadata (uid, resourceVersion, ...).
 */
export function applyOnto(live: KubeObject, manifest: KubeObject): KubeObject {
  const metadata: Record<string, unknown> = { ...(manifest.metadata ?? {}) };
  const labels = mergeMap(live, manifest, 'labels');
  const annotations = mergeMap(live, manifest, 'annotations');
  if (labels) metadata.labels = labels;
  if (annotations) metadata.annotations = annotations;
  const liveMetadata = live.metadata ?? {};
  for (const field of SERVER_METADATA) {
    if (liveMetadata[field] !== undefined) metadata[field] = liveMetadata[field];
  }
  return { ...manifest, metadata };
}
