import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { unchangedUpdate } from '../admission/request.js';
import type { AdmissionRequest, KubeObject } from '../api/types.js';
import { computeWorkloadChecksum } from '../actions/checksum/compute.js';
import { locatePodTemplate, PodTemplateError, type PodTemplateLocation, type WorkloadKind } from '../actions/checksum/pod-template.js';
import { readDeadlines, type StampConfigChecksumParams } from '../actions/checksum/stamp-config-checksum.js';
import { canStamp, decideStamp, stampedChecksum } from '../actions/checksum/stamp.js';
import { KubeApiError } from '../kube/errors.js';
import type { KubeReader } from '../kube/reader.js';
import type { WorkloadClient, WorkloadRef } from '../kube/workloads.js';
import { stampingRule } from '../rules/configured.js';
import type { RuleSet } from '../rules/types.js';

/** Workload annotation that keeps the controller away from a workload (the webhook still stamps it). */
export const ROLLOUT_OPT_OUT_ANNOTATION = 'gitops-guard.dev/rollout';
export const ROLLOUT_OPT_OUT_VALUE = 'disabled';
/** Reason of the Event recorded on a workload the controller rolled. */
export const EVENT_REASON = 'ConfigChanged';

export interface ReconcileDeps {
  /** Reads ConfigMaps and Secrets: the same live reads the webhook makes. */
  kube: KubeReader;
  workloads: WorkloadClient;
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
  /** How soon a workload that changed between read and patch is reconciled again. */
  conflictRequeueMs: number;
}

/**
 * What one reconcile did. `conflict` asks to be run again after `requeueAfterMs` (the workload
 * changed meanwhile; the next read sees the new version). Failures are thrown, and the queue
 * retries them with back-off.
 */
export type ReconcileResult =
  | { result: 'patched'; checksum: string | null; previous: string | undefined; sources: string[] }
  | { result: 'would-patch'; checksum: string | null; previous: string | undefined; sources: string[] }
  | { result: 'in-sync'; checksum: string | null }
  | { result: 'skipped'; reason: string }
  | { result: 'conflict'; reason: string; requeueAfterMs: number };

/** Thrown when this replica lost its lease before the patch: the next leader compares everything again. */
export class LeadershipLostError extends Error {
  override readonly name = 'LeadershipLostError';
}

/** The UPDATE the webhook would see if the workload were re-applied unchanged, made by `username`. */
export function syntheticRequest(resource: WorkloadKind, object: KubeObject, username: string): AdmissionRequest {
  return unchangedUpdate(resource, object, { username }, 'gitops-guard-controller');
}

/**
 * The parameters the controller computes with: those of the first enforce-mode
 * stampConfigChecksum rule that selects this workload (as loaded, defaults filled in), with the
 * read deadlines outside an admission; or why no rule selects it.
 */
export function stampingParams(ruleSet: RuleSet, request: AdmissionRequest, object: KubeObject): Required<Pick<StampConfigChecksumParams, 'timeoutMs' | 'readTimeoutMs'>> & StampConfigChecksumParams | string {
  const rule = stampingRule(ruleSet, request, object);
  if (typeof rule === 'string') return rule;
  const params = rule.action.params;
  return { ...params, ...readDeadlines(params, undefined) };
}

export function optedOut(object: KubeObject): boolean {
  return object.metadata?.annotations?.[ROLLOUT_OPT_OUT_ANNOTATION] === ROLLOUT_OPT_OUT_VALUE;
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

/** A core/v1 Event on the workload that was rolled. */
export function rolloutEvent(object: KubeObject, sources: readonly string[], checksum: string | null, identity: string): KubeObject {
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

/** The pod template and what it carries, or why the workload is left alone. */
function stampedTemplate(object: KubeObject, annotation: string): { location: PodTemplateLocation; stamped: string | undefined } | string {
  try {
    const location = locatePodTemplate(object);
    if (!location) return 'no pod template of its own';
    return { location, stamped: stampedChecksum(location.template, annotation) };
  } catch (error) {
    if (error instanceof PodTemplateError) return error.message;
    throw error;
  }
}

/**
 * One workload: read it fresh, check that the stamping rules select it and it has not opted out,
 * compute its checksum exactly as the webhook does (same function, same live reads, same stamp
 * decision), and only when the stamped value is not the one the webhook would stamp, patch that
 * one annotation (which rolls the pods) and record an Event. `sources` names the
 * ConfigMaps/Secrets whose change queued it (for the Event).
 */
export async function reconcileWorkload(ref: WorkloadRef<WorkloadKind>, sources: readonly string[], deps: ReconcileDeps, signal: AbortSignal): Promise<ReconcileResult> {
  const object = await deps.workloads.get(ref, signal);
  if (!object) return { result: 'skipped', reason: 'workload no longer exists' };
  if (object.metadata?.deletionTimestamp) return { result: 'skipped', reason: 'workload is being deleted' };
  if (optedOut(object)) return { result: 'skipped', reason: `opted out (${ROLLOUT_OPT_OUT_ANNOTATION}: ${ROLLOUT_OPT_OUT_VALUE})` };
  const params = stampingParams(deps.rules(), syntheticRequest(ref.resource, object, deps.username), object);
  if (typeof params === 'string') return { result: 'skipped', reason: `not selected for stamping (${params})` };

  const template = stampedTemplate(object, params.annotation);
  if (typeof template === 'string') return { result: 'skipped', reason: template };
  const { location, stamped } = template;
  if (!canStamp(stamped)) return { result: 'skipped', reason: `annotation ${params.annotation} was not written by gitops-guard` };
  if (stamped === undefined && !deps.stampUnstamped) {
    return { result: 'skipped', reason: 'not stamped by the webhook yet (it stamps at the next admission)' };
  }

  const computed = await computeWorkloadChecksum(object, ref.namespace, deps.kube, deps.checksumKey, {
    timeoutMs: params.timeoutMs,
    readTimeoutMs: params.readTimeoutMs,
    includeImagePullSecrets: params.includeImagePullSecrets,
    signal,
  });
  const decision = decideStamp(params.annotation, stamped, computed, ref.namespace);
  if (decision.kind !== 'stamp' && decision.kind !== 'remove') return { result: 'in-sync', checksum: computed.value };
  const checksum = decision.kind === 'stamp' ? decision.checksum : null;

  if (deps.dryRun) return { result: 'would-patch', checksum, previous: stamped, sources: [...sources] };
  if (signal.aborted || !deps.isLeader()) throw new LeadershipLostError('not the leader any more; patch not sent');
  let patched: KubeObject;
  try {
    patched = await deps.workloads.mergePatch(ref, annotationPatch(location.workload.templatePath, object.metadata?.resourceVersion, params.annotation, checksum), signal);
  } catch (error) {
    if (error instanceof KubeApiError && error.reason === 'conflict') {
      return { result: 'conflict', reason: `workload changed while it was being reconciled (${error.message})`, requeueAfterMs: deps.conflictRequeueMs };
    }
    throw error;
  }
  try {
    await deps.workloads.createEvent(ref.namespace, rolloutEvent(patched, sources, checksum, deps.identity), signal);
  } catch (error) {
    deps.logger.warn({ workload: `${ref.resource.kind} ${ref.namespace}/${ref.name}`, err: error instanceof Error ? error.message : String(error) }, 'could not record the rollout Event');
  }
  return { result: 'patched', checksum, previous: stamped, sources: [...sources] };
}
