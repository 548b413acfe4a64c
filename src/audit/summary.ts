import { ruleResults, type RuleResult } from '../rules/result.js';
import type { DuplicateFinding } from './duplicates.js';
import type { InputStats } from './input.js';
import type { AuditSummary, ObjectResult } from './types.js';

/** Summing up an executed audit: counts for the report and the exit code. */

function count(results: readonly RuleResult[], predicate: (r: RuleResult) => boolean): number {
  return results.reduce((n, r) => n + (predicate(r) ? 1 : 0), 0);
}

export function exitCodeFor(summary: Omit<AuditSummary, 'exitCode'>): 0 | 1 | 2 {
  if (summary.denied > 0 || summary.duplicates.error > 0) return 1;
  if (summary.inputErrors > 0 || summary.objects === 0) return 2;
  return 0;
}

export function summarise(stats: InputStats, inputErrors: number, objects: readonly ObjectResult[], duplicates: readonly DuplicateFinding[]): AuditSummary {
  const all = objects.flatMap((o) => o.renderings);
  const results = all.flatMap(ruleResults);
  const checksums = all.flatMap((r) => r.checksums);
  const partial: Omit<AuditSummary, 'exitCode'> = {
    files: stats.files,
    documents: stats.documents,
    objects: all.length,
    distinctObjects: objects.length,
    skipped: { ...stats.skipped },
    inputErrors,
    mutated: all.filter((r) => r.patch.length > 0).length,
    denied: all.filter((r) => !r.allowed).length,
    auditFindings: count(results, (r) => r.mode === 'audit' && (r.result === 'mutated' || r.result === 'denied')),
    warnings: results.reduce((n, r) => n + (r.warnings?.length ?? 0), 0),
    ruleErrors: count(results, (r) => r.result === 'error'),
    duplicates: {
      error: duplicates.filter((d) => d.severity === 'error').length,
      warning: duplicates.filter((d) => d.severity === 'warning').length,
    },
    checksums: {
      stamped: checksums.filter((c) => c.status === 'stamped').length,
      current: checksums.filter((c) => c.status === 'current').length,
      failed: checksums.filter((c) => c.status === 'failed').length,
    },
  };
  return { ...partial, exitCode: exitCodeFor(partial) };
}
