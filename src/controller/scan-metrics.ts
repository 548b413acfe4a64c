import { Counter, Gauge, type Registry } from 'prom-client';
import { RESULTS, type Finding } from '../report/finding.js';

/**
 * Metrics of the latest cluster scan, on the controller's /metrics (the leader runs the scan).
 * Cardinality is bounded: counts by check, rule and result only, never object names or
 * namespaces (those are in the reports). Check and rule names come from the built-in checks and
 * the rules file; past MAX_CHECK_RULES pairs the rest are counted as `other`/`other`, so even a
 * huge rules file cannot flood Prometheus.
 */

export const MAX_CHECK_RULES = 256;
export const OTHER = 'other';

export interface ScanRun {
  findings: readonly Pick<Finding, 'check' | 'rule' | 'result'>[];
  /**
   * Every check/rule pair that ran, including those that found nothing: their series show 0
   * (instead of disappearing), so `== 0` and `> 0` both answer and a fixed problem visibly clears.
   */
  checks?: readonly { check: string; rule: string }[];
  startedAt: Date;
  finishedAt: Date;
}

export interface ScanMetrics {
  /** A completed scan: replaces every finding count of the previous scan at once. */
  recordScan(run: ScanRun): void;
  /** A scan that could not complete: the previous counts stay (they are still the latest known). */
  recordFailure(): void;
  /** What writing a scan's policy reports came to: reports written, left as they were (unchanged), or failed. */
  recordReportWrites(counts: { written: number; unchanged: number; failed: number }): void;
  /** Leadership lost: this replica no longer scans, so it stops reporting counts (the new leader will). */
  clear(): void;
}

export function createScanMetrics(registry: Registry): ScanMetrics {
  const registers = [registry];
  const findings = new Gauge({
    name: 'gitops_guard_scan_findings',
    help: 'Findings of the latest completed cluster scan, by check, rule and result (pass, fail, warn, error, skip).',
    labelNames: ['check', 'rule', 'result'],
    registers,
  });
  const lastRun = new Gauge({
    name: 'gitops_guard_scan_last_run_timestamp_seconds',
    help: 'When the latest completed cluster scan finished (Unix time); 0 before the first scan of this leader.',
    registers,
  });
  const duration = new Gauge({ name: 'gitops_guard_scan_duration_seconds', help: 'How long the latest completed cluster scan took.', registers });
  const runs = new Counter({ name: 'gitops_guard_scan_runs_total', help: 'Cluster scans by result (success, error).', labelNames: ['result'], registers });
  const reportWrites = new Counter({
    name: 'gitops_guard_scan_report_writes_total',
    help: 'Policy reports after each scan, by result (written: applied because its results changed; unchanged: left as it was; error: the apply failed).',
    labelNames: ['result'],
    registers,
  });
  for (const result of ['written', 'unchanged', 'error']) reportWrites.inc({ result }, 0);

  return {
    recordScan(run) {
      const counts = new Map<string, { check: string; rule: string; byResult: Map<string, number> }>();
      const pair = (check: string, rule: string) => {
        let key = JSON.stringify([check, rule]);
        if (!counts.has(key) && counts.size >= MAX_CHECK_RULES) {
          key = JSON.stringify([OTHER, OTHER]);
          check = rule = OTHER;
        }
        let entry = counts.get(key);
        if (!entry) counts.set(key, (entry = { check, rule, byResult: new Map(RESULTS.map((r) => [r, 0])) }));
        return entry;
      };
      for (const { check, rule } of run.checks ?? []) pair(check, rule);
      for (const finding of run.findings) {
        const entry = pair(finding.check, finding.rule);
        entry.byResult.set(finding.result, (entry.byResult.get(finding.result) ?? 0) + 1);
      }
      // Synchronous from reset to the last set: a scrape never sees half a scan.
      findings.reset();
      for (const { check, rule, byResult } of counts.values()) for (const [result, n] of byResult) findings.set({ check, rule, result }, n);
      lastRun.set(run.finishedAt.getTime() / 1000);
      duration.set(Math.max(0, (run.finishedAt.getTime() - run.startedAt.getTime()) / 1000));
      runs.inc({ result: 'success' });
    },
    recordFailure() {
      runs.inc({ result: 'error' });
    },
    recordReportWrites({ written, unchanged, failed }) {
      reportWrites.inc({ result: 'written' }, written);
      reportWrites.inc({ result: 'unchanged' }, unchanged);
      reportWrites.inc({ result: 'error' }, failed);
    },
    clear() {
      findings.reset();
      lastRun.set(0);
      duration.set(0);
    },
  };
}
