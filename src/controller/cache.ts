import { createHmac, randomBytes } from 'node:crypto';
import type { KubeObject } from '../api/types.js';
import { configContent } from '../kube/config-data.js';
import type { ConfigSourceKind } from '../kube/reader.js';
import type { KeyDigests } from './consumers.js';

/**
 * What the controller's informer caches keep: as little as it needs to tell which workloads a
 * change affects. Reconcile reads each workload fresh, and config checksums read every ConfigMap
 * and Secret fresh, so nothing here is ever used to compute a checksum.
 */

/**
 * What the controller keeps of a ConfigMap or Secret: its name and one digest per key, never a
 * value. The digest is an HMAC under a key that exists only in this process, so it says nothing
 * about a value to anyone who sees it; it is only ever compared with the previous digest.
 */
export interface SourceSummary {
  kind: ConfigSourceKind;
  metadata: { name: string; namespace: string; resourceVersion?: string };
  /** undefined when the object could not be decoded (malformed data): treated as "changed". */
  digests: KeyDigests | undefined;
}

const PROCESS_DIGEST_KEY = randomBytes(32);

/** Reduces a ConfigMap or Secret to per-key digests; the object (and its data) is dropped by the caller. */
export function summarise(kind: ConfigSourceKind, object: { metadata?: { name?: string; namespace?: string; resourceVersion?: string }; data?: unknown; binaryData?: unknown }): SourceSummary {
  const name = object.metadata?.name ?? '';
  const namespace = object.metadata?.namespace ?? '';
  let digests: Record<string, string> | undefined;
  try {
    digests = {};
    for (const [key, value] of configContent({ kind, namespace, name }, object)) {
      digests[key] = createHmac('sha256', PROCESS_DIGEST_KEY).update(value).digest('base64url').slice(0, 22);
    }
  } catch {
    digests = undefined;
  }
  return { kind, metadata: { name, namespace, resourceVersion: object.metadata?.resourceVersion }, digests };
}

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/**
 * Keeps workloads small in the cache: status, managedFields and kubectl's last-applied copy of
 * the whole object are never needed (reconcile reads the workload fresh).
 */
export function slimWorkload(object: KubeObject): KubeObject {
  const { status: _status, ...rest } = object;
  if (!rest.metadata) return rest;
  const { managedFields: _managed, ...metadata } = rest.metadata;
  if (metadata.annotations && LAST_APPLIED in metadata.annotations) {
    const { [LAST_APPLIED]: _lastApplied, ...annotations } = metadata.annotations;
    metadata.annotations = annotations;
  }
  return { ...rest, metadata };
}
