import { randomBytes } from 'node:crypto';
import type { CoreV1Event } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { AdmissionRequest, KubeObject } from '../admission/types.js';
import { computeWorkloadChecksum, DEFAULT_CHECKSUM_OPTIONS } from '../actions/checksum/compute.js';
import { isChecksumValue } from '../actions/checksum/encoding.js';
import { locatePodTemplate, PodTemplateError, type PodTemplateLocation } from '../actions/checksum/pod-template.js';
import { isPlainObject, type PlainObject } from '../util/objects.js';
import { DEFAULT_CHECKSUM_ANNOTATION, readDeadlines, type StampConfigChecksumParams } from '../actions/checksum/stamp-config-checksum.js';
import type { KubeReader } from '../kube/reader.js';
import { matchRule } from '../rules/match.js';
import type { RuleSet } from '../rules/types.js';
import { describeApiError, httpStatus } from '../kube/api-error.js';
import type { WorkloadApi, WorkloadRef, WorkloadResource } from './kube-api.js';

/** Workload annotation that keeps the controller away from a workload (the webhook still stamps it). */
export const ROLLOUT_OPT_OUT_ANNOTATION = 'gitops-guard.dev/rollout';
export const ROLLOUT_OPT_OUT_VALUE = 'disabled';
/** Reason of the Event recorded on a workload the controller rolled. */
export const EVENT_REASON = 'ConfigChanged';

export function workloadKey(resource: WorkloadResource, namespace: string, name: string): string {
  return `${resource.group}/${resource.kind}/${namespace}/${name}`;
}

export interface ReconcileDeps {
  /** Reads ConfigMaps and Secrets: the same live reads the webhook makes. */
  kube: KubeReader;
  api: WorkloadApi;
  /** The rules in use (re-read on every reconcile, so a rules reload applies at once). */
  rules: () => RuleSet;
  checksumKey: Buffer | undefined;
  /** The user the synthetic UPDATE request is made as, for rules that match on userInfo. */
  username: string;
  /** Checked right before the patch: a replica that lost its lease must not write. */
  isLeader: () => boolean;
  /** Component and instance named in Events. */
  identity: string;
  logger: Logger;
  /**
   * Also stamp workloads that carry no checksum yet (admitted before the webhook ran, or while
   * it was down). Off by default: the first stamp then comes from the webhook at the workload's
   * next admission, so installing the controller never rolls every old workload at once.
   */
  stampUnstamped?: boolean;
  /** Compute and report, never write (the webhook's `--mode audit`). */
  dryRun?: boolean;
}

export type ReconcileOutcome =
  | { result: 'patched'; checksum: string | null; previous: string | undefined; sources: string[] }
  | { result: 'would-patch'; checksum: string | null; previous: string | undefined; sources: string[] }
  | { result: 'in-sync'; checksum: string | null }
  | { result: 'skipped'; reason: string };

/** Thrown when the workload changed between read and patch (409): retry soon. */
export class WorkloadConflictError extends Error {
  override readonly name = 'WorkloadConflictError';
}

export class LeadershipLostError extends Error {
  override readonly name = 'LeadershipLostError';
}

/** The UPDATE the webhook would see if the workload were re-applied unchanged. */
export function syntheticRequest(resource: WorkloadResource, object: KubeObject, username: string): AdmissionRequest {
  const namespace = object.metadata?.namespace;
  const name = object.metadata?.name;
  return {
    uid: 'gitops-guard-controller',
    kind: { group: resource.group, version: resource.version, kind: resource.kind },
    resource: { group: resource.group, version: resource.version, resource: resource.plural },
    ...(name ? { name } : {}),
    ...(namespace ? { namespace } : {}),
    operation: 'UPDATE',
    userInfo: { username },
    object,
    oldObject: object,
  };
}

/**
 * The parameters of the first enforce-mode stampConfigChecksum rule that selects this workload,
 * or why none does. Audit-mode rules never write, so they select nothing here either.
 */
export function stampingParams(ruleSet: RuleSet, request: AdmissionRequest, object: KubeObject): StampConfigChecksumParams | string {
  let why = 'no stampConfigChecksum rule';
  for (const rule of ruleSet.rules) {
    if (rule.action.type !== 'stampConfigChecksum') continue;
    if (rule.mode !== 'enforce') {
      why = `rule ${rule.name} is in audit mode`;
      continue;
    }
    const skip = matchRule(rule.match, request, object);
    if (skip) {
      why = `rule ${rule.name}: ${skip}`;
      continue;
    }
    const params = rule.action.params as Partial<StampConfigChecksumParams>;
    return {
      annotation: params.annotation ?? DEFAULT_CHECKSUM_ANNOTATION,
      timeoutMs: params.timeoutMs ?? DEFAULT_CHECKSUM_OPTIONS.timeoutMs,
      readTimeoutMs: params.readTimeoutMs ?? DEFAULT_CHECKSUM_OPTIONS.readTimeoutMs,
      includeImagePullSecrets: params.includeImagePullSecrets ?? DEFAULT_CHECKSUM_OPTIONS.includeImagePullSecrets,
    };
  }
  return why;
}

export function optedOut(object: KubeObject): boolean {
  return object.metadata?.annotations?.[ROLLOUT_OPT_OUT_ANNOTATION] === ROLLOUT_OPT_OUT_VALUE;
}

function templateAnnotation(template: PlainObject, annotation: string): string | undefined {
  const metadata = template['metadata'];
  const annotations = isPlainObject(metadata) ? metadata['annotations'] : undefined;
  const value = isPlainObject(annotations) && Object.prototype.hasOwnProperty.call(annotations, annotation) ? annotations[annotation] : undefined;
  return typeof value === 'string' ? value : undefined;
}

/**
 * A JSON merge patch that sets (or, for null, removes) one pod-template annotation, with the
 * workload's resourceVersion as a precondition so a concurrent change is never overwritten.
 */
export function annotationPatch(templatePath: readonly string[], resourceVersion: string | undefined, annotation: string, value: string | null): Record<string, unknown> {
  let node: Record<string, unknown> = { metadata: { annotations: { [annotation]: value } } };
  for (const step of [...templatePath].reverse()) node = { [step]: node };
  if (resourceVersion) node['metadata'] = { resourceVersion };
  return node;
}

/** `ConfigMap app-config, Secret db`: names only. */
function eventMessage(sources: readonly string[], checksum: string | null): string {
  const what = sources.length > 0 ? `${sources.join(', ')} changed` : 'consumed configuration is out of date';
  return `${what}: pod template annotation updated${checksum ? ` to ${checksum.slice(0, 15)}…` : ' (no config consumed)'}, rolling pods`.slice(0, 1024);
}

function event(object: KubeObject, sources: readonly string[], checksum: string | null, identity: string): CoreV1Event {
  const now = new Date();
  const name = object.metadata?.name ?? 'workload';
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: `${name}.${randomBytes(8).toString('hex')}`, namespace: object.metadata?.namespace },
    involvedObject: {
      apiVersion: object.apiVersion,
      kind: object.kind,
      name,
      namespace: object.metadata?.namespace,
      uid: object.metadata?.uid,
      resourceVersion: object.metadata?.resourceVersion,
    },
    reason: EVENT_REASON,
    message: eventMessage(sources, checksum),
    type: 'Normal',
    source: { component: 'gitops-guard-controller' },
    reportingComponent: 'gitops-guard.dev/controller',
    reportingInstance: identity.slice(0, 128),
    action: 'Rollout',
    firstTimestamp: now,
    lastTimestamp: now,
    count: 1,
  };
}

/**
 * One workload: read it fresh, check that the stamping rules select it and it has not opted out,
 * compute its checksum exactly as the webhook does (same function, same live reads), and only when
 * the stamped value differs, patch that one annotation (which rolls the pods) and record an Event.
 * `sources` names the ConfigMaps/Secrets whose change queued it (for the Event).
 */
export async function reconcileWorkload(ref: WorkloadRef, sources: readonly string[], deps: ReconcileDeps, signal: AbortSignal): Promise<ReconcileOutcome> {
  const object = await deps.api.get(ref, signal);
  if (!object) return { result: 'skipped', reason: 'workload no longer exists' };
  if (object.metadata?.deletionTimestamp) return { result: 'skipped', reason: 'workload is being deleted' };
  if (optedOut(object)) return { result: 'skipped', reason: `opted out (${ROLLOUT_OPT_OUT_ANNOTATION}: ${ROLLOUT_OPT_OUT_VALUE})` };
  const params = stampingParams(deps.rules(), syntheticRequest(ref.resource, object, deps.username), object);
  if (typeof params === 'string') return { result: 'skipped', reason: `not selected for stamping (${params})` };

  let location: PodTemplateLocation | null;
  try {
    location = locatePodTemplate(object);
  } catch (error) {
    if (error instanceof PodTemplateError) return { result: 'skipped', reason: error.message };
    throw error;
  }
  if (!location) return { result: 'skipped', reason: 'no pod template of its own' };
  const current = templateAnnotation(location.template, params.annotation);
  if (current !== undefined && !isChecksumValue(current)) {
    return { result: 'skipped', reason: `annotation ${params.annotation} was not written by gitops-guard` };
  }
  if (current === undefined && !deps.stampUnstamped) {
    return { result: 'skipped', reason: 'not stamped by the webhook yet (it stamps at the next admission)' };
  }

  const result = await computeWorkloadChecksum(object, ref.namespace, deps.kube, deps.checksumKey, {
    ...readDeadlines(params, undefined),
    includeImagePullSecrets: params.includeImagePullSecrets,
    signal,
  });
  if (result.value === current || (result.value === null && current === undefined)) return { result: 'in-sync', checksum: result.value };

  if (deps.dryRun) return { result: 'would-patch', checksum: result.value, previous: current, sources: [...sources] };
  if (signal.aborted || !deps.isLeader()) throw new LeadershipLostError('not the leader any more; patch not sent');
  const patch = annotationPatch(location.workload.templatePath, object.metadata?.resourceVersion, params.annotation, result.value);
  let patched: KubeObject;
  try {
    patched = await deps.api.mergePatch(ref, patch, signal);
  } catch (error) {
    if (httpStatus(error) === 409) throw new WorkloadConflictError(`workload changed while it was being reconciled (${describeApiError(error)})`);
    throw error;
  }
  try {
    await deps.api.createEvent(ref.namespace, event(patched, sources, result.value, deps.identity), signal);
  } catch (error) {
    deps.logger.warn({ workload: `${ref.resource.kind} ${ref.namespace}/${ref.name}`, err: describeApiError(error) }, 'could not record the rollout Event');
  }
  return { result: 'patched', checksum: result.value, previous: current, sources: [...sources] };
}
