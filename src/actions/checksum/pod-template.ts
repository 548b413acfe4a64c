import type { KubeObject } from '../../api/types.js';
import type { ApiResource } from '../../kube/resources.js';
import { groupOf, isPlainObject, type PlainObject } from '../../util/objects.js';

/** A workload kind gitops-guard stamps: where its pod template lives, and how the API serves it. */
export interface WorkloadKind extends ApiResource {
  /** The version the rollout controller watches; the webhook accepts every version of the group. */
  version: string;
  /** Property path from the object root to the PodTemplateSpec. */
  templatePath: readonly string[];
  /**
   * Part of Kubernetes itself: the controller's failing list keeps it unready (RBAC is missing).
   * The others are custom resources a cluster may or may not have; they never hold readiness back.
   */
  builtIn: boolean;
}

/** The one table of workload kinds: the webhook's pod-template paths and the controller's watched resources. */
export const WORKLOAD_KINDS: readonly WorkloadKind[] = [
  { group: 'apps', version: 'v1', kind: 'Deployment', plural: 'deployments', templatePath: ['spec', 'template'], builtIn: true },
  { group: 'apps', version: 'v1', kind: 'StatefulSet', plural: 'statefulsets', templatePath: ['spec', 'template'], builtIn: true },
  { group: 'apps', version: 'v1', kind: 'DaemonSet', plural: 'daemonsets', templatePath: ['spec', 'template'], builtIn: true },
  { group: 'batch', version: 'v1', kind: 'CronJob', plural: 'cronjobs', templatePath: ['spec', 'jobTemplate', 'spec', 'template'], builtIn: true },
  { group: 'argoproj.io', version: 'v1alpha1', kind: 'Rollout', plural: 'rollouts', templatePath: ['spec', 'template'], builtIn: false },
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
