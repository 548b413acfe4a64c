import type { Operation as PatchOperation } from 'fast-json-patch';
import type { KubeObject, WebhookPhase } from '../api/types.js';
import type { ActionDetails } from '../actions/types.js';
import type { RuleMode } from './types.js';

/**
 * The engine's result vocabulary (ADR 0001), modelled on Kyverno's EngineResponse/RuleResponse:
 *
 * - ActionResult (actions/types.ts): what one action answers (patch, denial, warnings) plus the
 *   `details` it reports.
 * - RuleResult: one rule in one phase: matched or not, what it did or would do, and its details.
 * - PhaseResult: one webhook phase (`mutate` or `validate`) over every rule: the answer the
 *   webhook gives (allowed, one patch, warnings, audit annotations) and each rule's result.
 * - AdmissionResult: both phases, as the API server runs them: mutate, apply the patch, validate
 *   the mutated object. It carries the admitted object.
 *
 * The webhook answers from a PhaseResult; the audit and the cluster scan read AdmissionResults.
 * Nobody re-applies a rule's patch or recomputes what an action found out.
 */

/** What a rule did, the same words in metrics (`result` label), logs and the audit report. */
export type RuleStatus = 'skipped' | 'noop' | 'mutated' | 'denied' | 'error';

export interface RuleResult {
  rule: string;
  action: string;
  mode: RuleMode;
  result: RuleStatus;
  /** Why the rule was skipped, or the error it raised (gitops-guard's own text, never object data). */
  reason?: string;
  /** Operations this rule made (enforce) or would have made (audit), against the object it saw. */
  patch?: PatchOperation[];
  denial?: string;
  warnings?: string[];
  /** What the action found out (ActionDetails), also when it failed; absent for skipped rules and actions that report nothing. */
  details?: ActionDetails;
}

export interface PhaseResult {
  phase: WebhookPhase;
  /** False when an enforce-mode rule denies (or fails with `onError: deny`). */
  allowed: boolean;
  /** One patch against the request's object (enforce-mode rules only); empty when nothing changes or the request is denied. */
  patch: PatchOperation[];
  denials: string[];
  /** Warnings as the webhook sends them (audit-mode ones prefixed `[audit]`). */
  warnings: string[];
  auditAnnotations: Record<string, string>;
  /** Every rule of the phase, in file order. */
  results: RuleResult[];
}

export interface AdmissionResult {
  /** Whether the API server would accept the request: neither phase denied it. */
  allowed: boolean;
  /** The mutating webhook's patch against the object as sent (what the API server applies). */
  patch: PatchOperation[];
  /**
   * The object after the mutating phase, as the validating phase judged it and as it would be
   * stored (the object as sent when nothing changed; unchanged when the mutating phase denied).
   */
  object: KubeObject;
  /** `mutate`, then `validate` unless the mutating phase denied (the API server stops there). */
  phases: PhaseResult[];
}

/** What a rule in audit mode reports (the `finding` label of gitops_guard_audit_findings_total), or null when it found nothing. */
export function auditFinding(result: Pick<RuleResult, 'mode' | 'result'>): 'patch' | 'deny' | 'error' | null {
  if (result.mode !== 'audit') return null;
  switch (result.result) {
    case 'mutated':
      return 'patch';
    case 'denied':
      return 'deny';
    case 'error':
      return 'error';
    default:
      return null;
  }
}

/** Every rule's result of an admission, mutate phase first. */
export function ruleResults(admission: Pick<AdmissionResult, 'phases'>): RuleResult[] {
  return admission.phases.flatMap((phase) => phase.results);
}
