import type { KubeObject } from '../../api/types.js';
import type { ConfigSourceKind, KubeReader } from '../../kube/reader.js';
import { checksumV2, type SourceSnapshot } from './encoding.js';
import { locatePodTemplate, type PodTemplateLocation } from './pod-template.js';
import type { PlainObject } from '../../util/objects.js';
import { readConfigSources, refKey, type ReadLimits } from './read.js';
import { collectReferences, compareStrings, type ConfigReference, type ReferenceOptions } from './references.js';

export interface ChecksumOptions extends ReferenceOptions, ReadLimits {}

export const DEFAULT_CHECKSUM_OPTIONS: Readonly<Omit<ChecksumOptions, 'signal'>> = {
  timeoutMs: 2000,
  readTimeoutMs: 1500,
  includeImagePullSecrets: false,
};

/** A required object, or a key a non-optional consumer names, that does not exist. */
export interface MissingConfig {
  kind: ConfigSourceKind;
  name: string;
  /** Absent when the whole object is missing. */
  key?: string;
}

export interface ConfigChecksum {
  /** `v2:<hex>`; null when the pod consumes no ConfigMap or Secret. */
  value: string | null;
  references: ConfigReference[];
  /** Sorted; each keeps pods from starting until it exists. */
  missing: MissingConfig[];
}

export interface WorkloadChecksum extends ConfigChecksum {
  /** Null for an Argo Rollout with `workloadRef` (no template of its own; nothing to stamp). */
  location: PodTemplateLocation | null;
}

export class ChecksumKeyMissingError extends Error {
  override readonly name = 'ChecksumKeyMissingError';
  constructor() {
    super('no checksum key configured; config checksums cannot be computed');
  }
}

/**
 * The checksum of everything a pod spec consumes from ConfigMaps and Secrets in `namespace`,
 * read fresh through `kube`. Throws a ConfigReadError when any object cannot be read (never a
 * partial checksum).
 */
export async function computePodSpecChecksum(
  podSpec: PlainObject,
  namespace: string,
  kube: KubeReader,
  key: Buffer | undefined,
  options: ChecksumOptions,
): Promise<ConfigChecksum> {
  if (!key || key.length === 0) throw new ChecksumKeyMissingError();
  if (!namespace) throw new Error('config checksum needs the namespace of the workload');
  const references = collectReferences(podSpec, options);
  if (references.length === 0) return { value: null, references, missing: [] };

  const contents = await readConfigSources(references, namespace, kube, options);
  const snapshots: SourceSnapshot[] = [];
  const missing: MissingConfig[] = [];
  for (const ref of references) {
    const content = contents.get(refKey(ref.kind, ref.name));
    if (content === undefined) throw new Error(`internal: ${ref.kind} ${ref.name} was not read`);
    snapshots.push({ kind: ref.kind, name: ref.name, keys: ref.keys, content });
    if (content === null) {
      if (!ref.optional) missing.push({ kind: ref.kind, name: ref.name });
    } else {
      for (const k of [...ref.requiredKeys].sort(compareStrings)) {
        if (!content.has(k)) missing.push({ kind: ref.kind, name: ref.name, key: k });
      }
    }
  }
  return { value: checksumV2(key, namespace, snapshots), references, missing };
}

/**
 * The config checksum of a workload (Deployment, StatefulSet, DaemonSet, CronJob, Argo Rollout):
 * the one function the admission action, the rollout controller and the offline audit share.
 * Throws a PodTemplateError for objects without a usable pod template.
 */
export async function computeWorkloadChecksum(
  object: KubeObject,
  namespace: string,
  kube: KubeReader,
  key: Buffer | undefined,
  options: ChecksumOptions,
): Promise<WorkloadChecksum> {
  if (!key || key.length === 0) throw new ChecksumKeyMissingError();
  const location = locatePodTemplate(object);
  if (!location) return { value: null, references: [], missing: [], location };
  return { ...(await computePodSpecChecksum(location.podSpec, namespace, kube, key, options)), location };
}

/** e.g. `Secret airflow/webserver-secret-key not found: pods will not start until it exists`. Names only. */
export function missingWarning(missing: MissingConfig, namespace: string): string {
  const object = `${missing.kind} ${namespace}/${missing.name}`;
  return missing.key === undefined
    ? `${object} not found: pods will not start until it exists`
    : `${object} has no key ${missing.key}: pods will not start until it exists`;
}
