import type { KubeObject } from '../../admission/types.js';
import { groupOf, isPlainObject, type PlainObject } from '../../util/objects.js';

/** A workload kind gitops-guard stamps, and where its pod template lives. */
export interface WorkloadKind {
  /** API group; every version of the group is accepted. */
  group: string;
  kind: string;
  /** Property path from the object root to the PodTemplateSpec. */
  templatePath: readonly string[];
}

/** The one table of workload kinds and their pod-template paths. */
export const WORKLOAD_KINDS: readonly WorkloadKind[] = [
  { group: 'apps', kind: 'Deployment', templatePath: ['spec', 'template'] },
  { group: 'apps', kind: 'StatefulSet', templatePath: ['spec', 'template'] },
  { group: 'apps', kind: 'DaemonSet', templatePath: ['spec', 'template'] },
  { group: 'batch', kind: 'CronJob', templatePath: ['spec', 'jobTemplate', 'spec', 'template'] },
  { group: 'argoproj.io', kind: 'Rollout', templatePath: ['spec', 'template'] },
];


export function workloadKindOf(object: KubeObject): WorkloadKind | undefined {
  if (typeof object.apiVersion !== 'string' || typeof object.kind !== 'string') return undefined;
  const group = groupOf(object.apiVersion);
  return WORKLOAD_KINDS.find((w) => w.group === group && w.kind === object.kind);
}

export interface PodTemplateLocation {
  workload: WorkloadKind;
  /** The PodTemplateSpec inside `object` (not a copy). */
  template: PlainObject;
  /** The template's PodSpec (`template.spec`). */
  podSpec: PlainObject;
}

/** Thrown for objects that are not a supported workload or whose pod template is malformed. */
export class PodTemplateError extends Error {
  override readonly name = 'PodTemplateError';
}

function describeKind(object: KubeObject): string {
  const apiVersion = typeof object.apiVersion === 'string' ? object.apiVersion : '(no apiVersion)';
  const kind = typeof object.kind === 'string' ? object.kind : '(no kind)';
  return `${apiVersion} ${kind}`;
}

/**
 * Finds the pod template of a supported workload. Returns null for an Argo Rollout that
 * references a Deployment (`spec.workloadRef`) instead of carrying its own template: the
 * referenced Deployment is stamped itself. Throws a PodTemplateError for anything else
 * without a usable template.
 */
export function locatePodTemplate(object: unknown): PodTemplateLocation | null {
  if (!isPlainObject(object)) throw new PodTemplateError('object is not a Kubernetes object');
  const kubeObject = object as KubeObject;
  const workload = workloadKindOf(kubeObject);
  if (!workload) throw new PodTemplateError(`${describeKind(kubeObject)} is not a workload with a pod template`);

  let node: unknown = kubeObject;
  for (const [index, step] of workload.templatePath.entries()) {
    const next = isPlainObject(node) ? node[step] : undefined;
    if (next === undefined && workload.kind === 'Rollout' && index === 1 && isPlainObject(node) && isPlainObject(node['workloadRef'])) {
      return null;
    }
    if (!isPlainObject(next)) {
      throw new PodTemplateError(`${workload.kind} has no pod template at .${workload.templatePath.slice(0, index + 1).join('.')}`);
    }
    node = next;
  }
  const template = node as PlainObject;
  const podSpec = template['spec'];
  if (!isPlainObject(podSpec)) {
    throw new PodTemplateError(`${workload.kind} pod template has no spec at .${workload.templatePath.join('.')}.spec`);
  }
  return { workload, template, podSpec };
}
