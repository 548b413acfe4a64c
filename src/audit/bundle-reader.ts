import type { KubeObject } from '../api/types.js';
import { decodeConfigData } from '../kube/config-data.js';
import { KubeReadError } from '../kube/errors.js';
import type { ConfigContent, ConfigSourceKind, KubeReader, ObjectRef, ReadOptions, ReadResult } from '../kube/reader.js';

/**
 * The audit's KubeReader: ConfigMaps and Secrets rendered in the same input are applied together
 * with the workloads that use them, so they are read from the input first; anything else comes
 * from the live cluster when one is configured. Every read is recorded, so the report can say
 * where each checksum input came from and what could not be resolved.
 */

/**
 * `input`: rendered in the audited manifests; `cluster`: read from the live cluster; `absent`: in
 * neither (the cluster answered 404, or offline: not in the input, and the offline audit models an
 * empty cluster); `unresolved`: the cluster did not answer, so nothing is assumed about it and no
 * checksum is computed.
 */
export type ConfigResolution = 'input' | 'cluster' | 'absent' | 'unresolved';

export interface ConfigLookup {
  kind: ConfigSourceKind;
  namespace: string;
  name: string;
  from: ConfigResolution;
  /** Why a read failed (never object data). */
  detail?: string;
}

export interface BundleProblem {
  kind: ConfigSourceKind;
  namespace: string;
  name: string;
  message: string;
}

export const OFFLINE_ABSENT =
  'not in the input; offline audits model an empty cluster (--kubeconfig reads the live one)';

interface BundleEntry {
  app?: string;
  content: ConfigContent;
}

function refKey(ref: ObjectRef): string {
  return `${ref.kind}/${ref.namespace}/${ref.name}`;
}

export function configSourceKind(object: KubeObject): ConfigSourceKind | null {
  if (object.apiVersion !== 'v1') return null;
  return object.kind === 'ConfigMap' || object.kind === 'Secret' ? object.kind : null;
}

/** ConfigMaps and Secrets found in the input, by namespace and name. */
export class ConfigBundle {
  private readonly entries = new Map<string, BundleEntry[]>();
  readonly problems: BundleProblem[] = [];

  /** Adds a placed (namespace filled in) ConfigMap or Secret; anything else is ignored. */
  add(object: KubeObject, app?: string): void {
    const kind = configSourceKind(object);
    const name = object.metadata?.name;
    const namespace = object.metadata?.namespace;
    if (!kind || typeof name !== 'string' || typeof namespace !== 'string') return;
    const { content, problems } = decodeConfigData(kind, object);
    for (const message of problems) this.problems.push({ kind, namespace, name, message });
    const key = refKey({ kind, namespace, name });
    const list = this.entries.get(key);
    const entry: BundleEntry = { ...(app !== undefined ? { app } : {}), content };
    if (list) list.push(entry);
    else this.entries.set(key, [entry]);
  }

  get size(): number {
    return this.entries.size;
  }

  /** The rendering from the same app when there is one (each app applies its own), else the first. */
  get(ref: ObjectRef, app?: string): ConfigContent | undefined {
    const list = this.entries.get(refKey(ref));
    if (!list) return undefined;
    return (list.find((entry) => entry.app === app) ?? list[0])?.content;
  }
}

/** Shares live-cluster answers (and failures) between objects: each ConfigMap is read once. */
export class CachingReader implements KubeReader {
  private readonly cache = new Map<string, Promise<ReadResult>>();
  constructor(private readonly inner: KubeReader) {}

  readConfigSource(ref: ObjectRef, options: ReadOptions): Promise<ReadResult> {
    const key = refKey(ref);
    let pending = this.cache.get(key);
    if (!pending) {
      pending = this.inner.readConfigSource(ref, options);
      this.cache.set(key, pending);
    }
    return pending;
  }
}

/** One object's view: the bundle first, then `fallback` (the live cluster) if any. */
export class BundleReader implements KubeReader {
  readonly lookups: ConfigLookup[] = [];

  constructor(
    private readonly bundle: ConfigBundle,
    private readonly fallback?: KubeReader,
    private readonly app?: string,
  ) {}

  async readConfigSource(ref: ObjectRef, options: ReadOptions): Promise<ReadResult> {
    const base = { kind: ref.kind, namespace: ref.namespace, name: ref.name };
    const local = this.bundle.get(ref, this.app);
    if (local) {
      this.lookups.push({ ...base, from: 'input' });
      return { found: true, content: local };
    }
    if (!this.fallback) {
      // Offline audits model a cluster that holds nothing but the input (every object is a
      // CREATE), so a source that is not in the input does not exist there either.
      this.lookups.push({ ...base, from: 'absent', detail: OFFLINE_ABSENT });
      return { found: false };
    }
    try {
      const result = await this.fallback.readConfigSource(ref, options);
      this.lookups.push(
        result.found ? { ...base, from: 'cluster' } : { ...base, from: 'absent', detail: 'not in the input nor in the cluster' },
      );
      return result;
    } catch (error) {
      const detail =
        error instanceof KubeReadError
          ? `${error.reason}${error.httpStatus ? ` (HTTP ${error.httpStatus})` : ''}: ${error.detail}`
          : error instanceof Error
            ? error.message
            : String(error);
      this.lookups.push({ ...base, from: 'unresolved', detail: `cluster read failed: ${detail}` });
      throw error;
    }
  }
}
