import type { KubeObject } from '../api/types.js';
import { locatePodTemplate, type WorkloadKind } from '../actions/checksum/pod-template.js';
import { collectReferences, type ConfigReference } from '../actions/checksum/references.js';
import type { InformerEvent } from '../kube/informers.js';
import type { ConfigSourceKind } from '../kube/reader.js';
import type { WorkloadRef } from '../kube/workloads.js';
import type { SourceSummary } from './cache.js';
import { changedKeys, ConsumerIndex, sourceKey, type KeyDigests, type SourceKey, type WorkloadKey } from './consumers.js';

/** `<group>/<Kind>/<namespace>/<name>`: how the queue and the index name a workload. */
export function workloadKey(resource: Pick<WorkloadKind, 'group' | 'kind'>, namespace: string, name: string): WorkloadKey {
  return `${resource.group}/${resource.kind}/${namespace}/${name}`;
}

/**
 * From informer events to the workloads to compare: which workloads consume which ConfigMap or
 * Secret keys (the consumer index), what each key's digest was, and which workloads exist and at
 * which generation. Pure and synchronous; the controller decides whether to act on its answers
 * (only the leader does).
 */
export class ChangeTracker {
  readonly index = new ConsumerIndex();
  /** Per-key digests of every ConfigMap/Secret seen: to tell which keys a change touched. */
  private readonly digests = new Map<SourceKey, KeyDigests>();
  private readonly workloads = new Map<WorkloadKey, { ref: WorkloadRef<WorkloadKind>; generation: unknown }>();

  /**
   * A ConfigMap or Secret was added, changed or deleted: the workloads that see the change (a
   * change to a key nobody consumes affects nobody). `affected` false only records its digests.
   */
  sourceChanged(kind: ConfigSourceKind, type: InformerEvent, object: SourceSummary, affected = true): WorkloadKey[] {
    const { name, namespace } = object.metadata;
    const key = sourceKey(kind, namespace, name);
    const before = this.digests.get(key);
    // Undecodable data cannot be compared: treat it as a change of every key.
    const after = type === 'delete' ? undefined : object.digests ?? { '': `malformed:${object.metadata.resourceVersion ?? ''}` };
    if (after === undefined) this.digests.delete(key);
    else this.digests.set(key, after);
    return affected ? this.index.affected(kind, namespace, name, changedKeys(before, after)) : [];
  }

  /**
   * A workload was added, changed or deleted. `compare` is true for new workloads and spec
   * changes (not status updates): those are compared once; the webhook has usually stamped them
   * already, and then nothing is written.
   */
  workloadChanged(resource: WorkloadKind, type: InformerEvent, object: KubeObject): { key: WorkloadKey; compare: boolean } {
    const namespace = object.metadata?.namespace ?? '';
    const name = object.metadata?.name ?? '';
    const key = workloadKey(resource, namespace, name);
    if (type === 'delete') {
      this.index.removeWorkload(key);
      this.workloads.delete(key);
      return { key, compare: false };
    }
    let references: ConfigReference[] = [];
    try {
      const location = locatePodTemplate(object);
      // A superset (image pull secrets too): the index only decides what to look at again.
      if (location) references = collectReferences(location.podSpec, { includeImagePullSecrets: true });
    } catch {
      references = [];
    }
    this.index.setWorkload(key, namespace, references);
    const previous = this.workloads.get(key);
    const generation = object.metadata?.['generation'];
    this.workloads.set(key, { ref: { resource, namespace, name }, generation });
    return { key, compare: previous === undefined || previous.generation !== generation || generation === undefined };
  }

  /** Forgets the workloads of a kind no longer watched (their state can no longer be kept current); returns their keys. */
  dropKind(resource: WorkloadKind): WorkloadKey[] {
    const dropped: WorkloadKey[] = [];
    for (const [key, known] of this.workloads) {
      if (known.ref.resource !== resource) continue;
      this.index.removeWorkload(key);
      this.workloads.delete(key);
      dropped.push(key);
    }
    return dropped;
  }

  ref(key: WorkloadKey): WorkloadRef<WorkloadKind> | undefined {
    return this.workloads.get(key)?.ref;
  }

  /** Every known workload. */
  keys(): IterableIterator<WorkloadKey> {
    return this.workloads.keys();
  }

  get workloadCount(): number {
    return this.workloads.size;
  }

  get sourceCount(): number {
    return this.digests.size;
  }

  clear(): void {
    this.digests.clear();
    this.workloads.clear();
    this.index.clear();
  }
}
