import { isPlainObject, ownString, type PlainObject } from '../../util/objects.js';
import { missingWarning, type ConfigChecksum } from './compute.js';
import { isChecksumValue } from './encoding.js';
import { PodTemplateError } from './pod-template.js';

/**
 * The checksum stamp decision: given what a pod template carries and what its configuration
 * hashes to now, which checksum it should carry, whether that needs a patch, and which warnings
 * to give. Pure. The admission action (stampConfigChecksum) and the rollout controller both ask
 * it, so a workload the controller leaves alone is one the webhook would leave alone too.
 */

/**
 * The pod template's annotations map, created in `template` when absent and `create` is set.
 * Throws a PodTemplateError when metadata or annotations are not maps.
 */
export function templateAnnotations(template: PlainObject, create: boolean): Record<string, unknown> | undefined {
  let metadata = template['metadata'];
  if (metadata === undefined || metadata === null) {
    if (!create) return undefined;
    metadata = template['metadata'] = {};
  }
  if (!isPlainObject(metadata)) throw new PodTemplateError('pod template metadata is not an object');
  let annotations = metadata['annotations'];
  if (annotations === undefined || annotations === null) {
    if (!create) return undefined;
    annotations = metadata['annotations'] = {};
  }
  if (!isPlainObject(annotations)) throw new PodTemplateError('pod template annotations are not a map');
  return annotations;
}

/** The value a pod template carries under `annotation` (undefined: none); the one place it is read. */
export function stampedChecksum(template: PlainObject, annotation: string): string | undefined {
  return ownString(templateAnnotations(template, false) ?? {}, annotation);
}

/**
 * Whether gitops-guard may compute and write the checksum: nothing is stamped yet, or the value is
 * one it wrote (any version). Anything else under its key was written by someone else and is never
 * overwritten (that would be a real GitOps diff), so nothing needs to be read for it either.
 */
export function canStamp(stamped: string | undefined): boolean {
  return stamped === undefined || isChecksumValue(stamped);
}

export type StampDecision =
  /** Someone else's value under the annotation: left alone. */
  | { kind: 'foreign'; warnings: string[] }
  /** The template carries the right checksum already (or none, and consumes nothing): no patch. */
  | { kind: 'in-sync'; checksum: string | null; warnings: string[] }
  /** Set the annotation to `checksum`: the pods roll. */
  | { kind: 'stamp'; checksum: string; warnings: string[] }
  /** The workload consumes no configuration any more: remove gitops-guard's stale value. */
  | { kind: 'remove'; warnings: string[] };

/**
 * Decides for a pod template carrying `stamped` under `annotation`, whose configuration in
 * `namespace` hashes to `computed` now. `computed` is null only when `canStamp(stamped)` is false
 * (nothing is computed for a foreign value). Warnings name every required ConfigMap, Secret or key
 * that does not exist (pods will not start until it does).
 */
export function decideStamp(annotation: string, stamped: string | undefined, computed: ConfigChecksum | null, namespace: string): StampDecision {
  if (!canStamp(stamped)) return { kind: 'foreign', warnings: [`pod template annotation ${annotation} was not written by gitops-guard; checksum not stamped`] };
  if (!computed) throw new Error('internal: a stamp decision needs the computed checksum');
  const warnings = computed.missing.map((missing) => missingWarning(missing, namespace));
  if (computed.value === (stamped ?? null)) return { kind: 'in-sync', checksum: computed.value, warnings };
  return computed.value === null ? { kind: 'remove', warnings } : { kind: 'stamp', checksum: computed.value, warnings };
}
