import type { Logger } from 'pino';
import { denied, patched, withAuditAnnotations, withWarnings } from './response.js';
import type { AdmissionRequest, AdmissionResponse, WebhookPhase } from './types.js';
import { evaluate, type EngineDeps, type Evaluation } from '../rules/engine.js';
import type { RuleSet } from '../rules/types.js';
import type { Metrics } from '../server/metrics.js';

/** Denials are policy decisions, not conflicts: 409 would make `kubectl apply` retry its patch. */
export const DENIAL_STATUS_CODE = 403;

export interface HandlerDeps extends EngineDeps {
  rules: () => RuleSet;
  metrics: Metrics;
}

export interface Handled {
  response: AdmissionResponse;
  evaluation: Evaluation;
}

/** Request in, response out: the rule engine's evaluation turned into an AdmissionResponse. */
export async function handleAdmission(
  request: AdmissionRequest,
  phase: WebhookPhase,
  deps: HandlerDeps,
  signal?: AbortSignal,
  deadline?: number,
): Promise<Handled> {
  const evaluation = await evaluate(request, phase, deps.rules(), deps, signal, deadline);
  countResults(evaluation, deps.metrics);
  const base = evaluation.allowed
    ? patched(request.uid, phase === 'mutate' ? evaluation.patch : [])
    : denied(request.uid, evaluation.denials.join('\n'), DENIAL_STATUS_CODE);
  const response = withAuditAnnotations(withWarnings(base, evaluation.warnings), evaluation.auditAnnotations);
  return { response, evaluation };
}

function countResults(evaluation: Evaluation, metrics: Metrics): void {
  for (const r of evaluation.results) {
    if (r.result === 'skipped') continue;
    metrics.ruleResults.inc({ rule: r.rule, action: r.action, mode: r.mode, result: r.result });
    if (r.result === 'error') metrics.errors.inc({ type: 'rule_error' });
    if (r.mode === 'audit' && r.result !== 'noop') {
      const finding = r.result === 'mutated' ? 'patch' : r.result === 'denied' ? 'deny' : 'error';
      metrics.auditFindings.inc({ rule: r.rule, action: r.action, finding });
    }
  }
}

export function logAdmission(
  logger: Logger,
  phase: WebhookPhase,
  request: AdmissionRequest,
  handled: Handled,
  durationMs: number,
): void {
  const { response, evaluation } = handled;
  const fired = evaluation.results.filter((r) => r.result !== 'skipped').map((r) => `${r.rule}:${r.mode}:${r.result}`);
  // Why each failed rule failed, in the same line (reasons are built from gitops-guard's own
  // messages and name objects only, never their data). A failed rule admitted the object
  // unchanged (or denied it, per onError): worth a warning, not just an info line.
  const failed = evaluation.results.filter((r) => r.result === 'error');
  const ruleErrors = failed.length > 0 ? Object.fromEntries(failed.map((r) => [r.rule, r.reason ?? 'unknown error'])) : undefined;
  logger[ruleErrors ? 'warn' : 'info'](
    {
      uid: request.uid,
      webhook: phase,
      kind: `${request.kind.group ? `${request.kind.group}/` : ''}${request.kind.kind}`,
      namespace: request.namespace,
      name: request.name,
      operation: request.operation,
      dryRun: request.dryRun === true,
      rules: fired,
      verdict: verdictOf(response),
      patchOps: evaluation.patch.length,
      warnings: response.warnings?.length ?? 0,
      ...(ruleErrors ? { ruleErrors } : {}),
      durationMs: Math.round(durationMs * 1000) / 1000,
    },
    'admission',
  );
  if (logger.isLevelEnabled('debug') && request.kind.kind !== 'Secret') {
    logger.debug({ uid: request.uid, object: request.object, patch: evaluation.patch }, 'admission body');
  }
}

export function verdictOf(response: AdmissionResponse): 'allowed' | 'patched' | 'denied' {
  if (!response.allowed) return 'denied';
  return response.patch ? 'patched' : 'allowed';
}
