import type { ConfigSourceKind } from '../../kube/reader.js';
import { isPlainObject, type PlainObject } from '../../util/objects.js';

/** One ConfigMap or Secret a pod template consumes, merged over every place that names it. */
export interface ConfigReference {
  kind: ConfigSourceKind;
  name: string;
  /** `all` when some consumer sees every key (envFrom, a volume without `items`). */
  keys: 'all' | ReadonlySet<string>;
  /** True only when every consumer is optional: pods start without the object. */
  optional: boolean;
  /** Keys a non-optional consumer names explicitly; pods do not start while one is missing. */
  requiredKeys: ReadonlySet<string>;
}

export interface ReferenceOptions {
  /** Hash the Secrets named in `imagePullSecrets` too (all keys, optional). */
  includeImagePullSecrets: boolean;
}

interface Use {
  kind: ConfigSourceKind;
  name: string;
  keys: 'all' | Set<string>;
  optional: boolean;
  requiredKeys: Set<string>;
}

function asArray(value: unknown): PlainObject[] {
  return Array.isArray(value) ? value.filter(isPlainObject) : [];
}

function nonEmptyString(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

/** A volume or projected source: `items` limits the keys; no items (or an empty list) means all keys. */
function volumeUse(kind: ConfigSourceKind, name: string | undefined, source: PlainObject): Use | undefined {
  if (!name) return undefined;
  const optional = source['optional'] === true;
  const items = asArray(source['items'])
    .map((item) => nonEmptyString(item['key']))
    .filter((key): key is string => key !== undefined);
  if (items.length === 0) return { kind, name, keys: 'all', optional, requiredKeys: new Set() };
  return { kind, name, keys: new Set(items), optional, requiredKeys: optional ? new Set() : new Set(items) };
}

function volumeUses(podSpec: PlainObject): Use[] {
  const uses: (Use | undefined)[] = [];
  for (const volume of asArray(podSpec['volumes'])) {
    const configMap = volume['configMap'];
    if (isPlainObject(configMap)) uses.push(volumeUse('ConfigMap', nonEmptyString(configMap['name']), configMap));
    const secret = volume['secret'];
    if (isPlainObject(secret)) uses.push(volumeUse('Secret', nonEmptyString(secret['secretName']), secret));
    const projected = volume['projected'];
    if (isPlainObject(projected)) {
      for (const source of asArray(projected['sources'])) {
        const cm = source['configMap'];
        if (isPlainObject(cm)) uses.push(volumeUse('ConfigMap', nonEmptyString(cm['name']), cm));
        const sec = source['secret'];
        if (isPlainObject(sec)) uses.push(volumeUse('Secret', nonEmptyString(sec['name']), sec));
      }
    }
  }
  return uses.filter((use): use is Use => use !== undefined);
}

function containerUses(container: PlainObject): Use[] {
  const uses: Use[] = [];
  for (const envFrom of asArray(container['envFrom'])) {
    for (const [field, kind] of [['configMapRef', 'ConfigMap'], ['secretRef', 'Secret']] as const) {
      const ref = envFrom[field];
      const name = isPlainObject(ref) ? nonEmptyString(ref['name']) : undefined;
      if (isPlainObject(ref) && name) {
        uses.push({ kind, name, keys: 'all', optional: ref['optional'] === true, requiredKeys: new Set() });
      }
    }
  }
  for (const env of asArray(container['env'])) {
    const valueFrom = env['valueFrom'];
    if (!isPlainObject(valueFrom)) continue;
    for (const [field, kind] of [['configMapKeyRef', 'ConfigMap'], ['secretKeyRef', 'Secret']] as const) {
      const ref = valueFrom[field];
      if (!isPlainObject(ref)) continue;
      const name = nonEmptyString(ref['name']);
      const key = nonEmptyString(ref['key']);
      if (!name || !key) continue;
      const optional = ref['optional'] === true;
      uses.push({ kind, name, keys: new Set([key]), optional, requiredKeys: optional ? new Set() : new Set([key]) });
    }
  }
  return uses;
}

function merge(into: Use, use: Use): void {
  if (into.keys !== 'all') {
    if (use.keys === 'all') into.keys = 'all';
    else for (const key of use.keys) into.keys.add(key);
  }
  into.optional &&= use.optional;
  for (const key of use.requiredKeys) into.requiredKeys.add(key);
}

/**
 * Every ConfigMap and Secret a pod spec consumes, from `volumes` (plain and projected) and from
 * `envFrom`/`env` of `containers` and `initContainers`, merged to one reference per object and
 * sorted by kind and name. Entries that are not well-formed are ignored (the API server
 * rejects such pods anyway). Pure: reads nothing but `podSpec`.
 */
export function collectReferences(podSpec: PlainObject, options: ReferenceOptions): ConfigReference[] {
  const uses = volumeUses(podSpec);
  for (const field of ['initContainers', 'containers'] as const) {
    for (const container of asArray(podSpec[field])) uses.push(...containerUses(container));
  }
  if (options.includeImagePullSecrets) {
    for (const pullSecret of asArray(podSpec['imagePullSecrets'])) {
      const name = nonEmptyString(pullSecret['name']);
      // A missing pull secret does not stop a pod from starting, so it is never required.
      if (name) uses.push({ kind: 'Secret', name, keys: 'all', optional: true, requiredKeys: new Set() });
    }
  }

  const merged = new Map<string, Use>();
  for (const use of uses) {
    const id = `${use.kind}\u0000${use.name}`;
    const existing = merged.get(id);
    if (existing) merge(existing, use);
    else merged.set(id, { ...use, keys: use.keys === 'all' ? 'all' : new Set(use.keys), requiredKeys: new Set(use.requiredKeys) });
  }
  return [...merged.values()]
    .sort((a, b) => (a.kind === b.kind ? compareStrings(a.name, b.name) : compareStrings(a.kind, b.kind)))
    .map((use) => ({ kind: use.kind, name: use.name, keys: use.keys, optional: use.optional, requiredKeys: use.requiredKeys }));
}

/** Byte-wise (UTF-8) order, the same order the checksum encoding uses. */
export function compareStrings(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
