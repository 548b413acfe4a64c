import type { ConfigReference } from '../actions/checksum/references.js';
import type { ConfigSourceKind } from '../kube/reader.js';

/** `ConfigMap/<namespace>/<name>` or `Secret/<namespace>/<name>`. */
export type SourceKey = string;
/** `<group>/<Kind>/<namespace>/<name>` of a workload (group empty for the core group). */
export type WorkloadKey = string;

export type ConsumedKeys = 'all' | ReadonlySet<string>;

/** Which keys changed between two versions of a ConfigMap or Secret: `all` when it appeared or disappeared. */
export type KeyChange = 'all' | ReadonlySet<string>;

export function sourceKey(kind: ConfigSourceKind, namespace: string, name: string): SourceKey {
  return `${kind}/${namespace}/${name}`;
}

/** Per-key digests of a ConfigMap's or Secret's values (never the values). */
export type KeyDigests = Readonly<Record<string, string>>;

/**
 * The keys whose value differs between `before` and `after` (added, removed or changed). An
 * object that appears or disappears changes everything a consumer sees, including its existence.
 */
export function changedKeys(before: KeyDigests | undefined, after: KeyDigests | undefined): KeyChange {
  if (before === undefined || after === undefined) return before === after ? new Set() : 'all';
  const changed = new Set<string>();
  for (const [key, digest] of Object.entries(after)) if (before[key] !== digest) changed.add(key);
  for (const key of Object.keys(before)) if (!Object.prototype.hasOwnProperty.call(after, key)) changed.add(key);
  return changed;
}

function sees(consumed: ConsumedKeys, change: KeyChange): boolean {
  if (change === 'all') return true;
  if (change.size === 0) return false;
  if (consumed === 'all') return true;
  for (const key of change) if (consumed.has(key)) return true;
  return false;
}

/**
 * From each ConfigMap/Secret to the workloads that consume it and which keys. Pure and
 * synchronous: rebuilt per workload whenever the workload is added, updated or deleted. Holds
 * names and key names only, never values.
 */
export class ConsumerIndex {
  private readonly bySource = new Map<SourceKey, Map<WorkloadKey, ConsumedKeys>>();
  private readonly byWorkload = new Map<WorkloadKey, SourceKey[]>();

  /** Replaces everything known about `workload` with `references` (objects in `namespace`). */
  setWorkload(workload: WorkloadKey, namespace: string, references: readonly ConfigReference[]): void {
    this.removeWorkload(workload);
    const sources: SourceKey[] = [];
    for (const ref of references) {
      const key = sourceKey(ref.kind, namespace, ref.name);
      let consumers = this.bySource.get(key);
      if (!consumers) this.bySource.set(key, (consumers = new Map()));
      consumers.set(workload, ref.keys === 'all' ? 'all' : new Set(ref.keys));
      sources.push(key);
    }
    if (sources.length > 0) this.byWorkload.set(workload, sources);
  }

  removeWorkload(workload: WorkloadKey): void {
    for (const key of this.byWorkload.get(workload) ?? []) {
      const consumers = this.bySource.get(key);
      consumers?.delete(workload);
      if (consumers?.size === 0) this.bySource.delete(key);
    }
    this.byWorkload.delete(workload);
  }

  /** Consumers of one ConfigMap/Secret and the keys each consumes. */
  consumersOf(kind: ConfigSourceKind, namespace: string, name: string): ReadonlyMap<WorkloadKey, ConsumedKeys> {
    return this.bySource.get(sourceKey(kind, namespace, name)) ?? new Map();
  }

  /** The workloads that see `change` to this object: a change to a key nobody consumes affects nobody. */
  affected(kind: ConfigSourceKind, namespace: string, name: string, change: KeyChange): WorkloadKey[] {
    const result: WorkloadKey[] = [];
    for (const [workload, consumed] of this.consumersOf(kind, namespace, name)) if (sees(consumed, change)) result.push(workload);
    return result.sort();
  }

  /** The ConfigMaps/Secrets a workload consumes. */
  sourcesOf(workload: WorkloadKey): readonly SourceKey[] {
    return this.byWorkload.get(workload) ?? [];
  }

  clear(): void {
    this.bySource.clear();
    this.byWorkload.clear();
  }

  get workloads(): number {
    return this.byWorkload.size;
  }

  get sources(): number {
    return this.bySource.size;
  }
}
