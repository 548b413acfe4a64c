import type { Logger } from 'pino';
import { verdictOf } from '../admission/response.js';
import type { AdmissionRequest, AdmissionResponse, WebhookPhase } from '../api/types.js';
import { auditFinding, type PhaseResult } from '../rules/result.js';
import type { Metrics } from './metrics.js';

/** Counts what each rule that ran did, and what audit-mode rules found. */
export function countRuleResults(result: PhaseResult, metrics: Metrics): void {
  for (const r of result.results) {
    if (r.result === 'skipped') continue;
    metrics.ruleResults.inc({ rule: r.rule, action: r.action, mode: r.mode, result: r.result });
    if (r.result === 'error') metrics.errors.inc({ type: 'rule_error' });
    const finding = auditFinding(r);
    if (finding) metrics.auditFindings.inc({ rule: r.rule, action: r.action, finding });
  }
}

/** One line per admission: who, what, which rules fired, the verdict; the body only at debug level (never a Secret's). */
export function logAdmission(
  logger: Logger,
  phase: WebhookPhase,
  request: AdmissionRequest,
  response: AdmissionResponse,
  result: PhaseResult,
  durationMs: number,
  verdict: string = verdictOf(response),
): void {
  const fired: string[] = [];
  // Why each failed rule failed, in the same line (reasons are built from gitops-guard's own
  // messages and name objects only, never their data). A failed rule admitted the object
  // unchanged (or denied it, per onError): worth a warning, not just an info line.
  let ruleErrors: Record<string, string> | undefined;
  for (const r of result.results) {
    if (r.result === 'skipped') continue;
    fired.push(`${r.rule}:${r.mode}:${r.result}`);
    if (r.result === 'error') (ruleErrors ??= {})[r.rule] = r.reason ?? 'unknown error';
  }
  const line: Record<string, unknown> = {
    uid: request.uid,
    webhook: phase,
    kind: request.kind.group ? `${request.kind.group}/${request.kind.kind}` : request.kind.kind,
    namespace: request.namespace,
    name: request.name,
    operation: request.operation,
    dryRun: request.dryRun === true,
    rules: fired,
    verdict,
    patchOps: result.patch.length,
    warnings: response.warnings?.length ?? 0,
  };
  if (ruleErrors) line['ruleErrors'] = ruleErrors;
  line['durationMs'] = Math.round(durationMs * 1000) / 1000;
  if (ruleErrors) logger.warn(line, 'admission');
  else logger.info(line, 'admission');
  if (request.kind.kind !== 'Secret' && logger.isLevelEnabled('debug')) {
    logger.debug({ uid: request.uid, object: request.object, patch: result.patch }, 'admission body');
  }
}
