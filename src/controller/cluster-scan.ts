import type { Logger } from 'pino';
import type { ActionRegistry } from '../actions/registry.js';
import type { ObjectApplier } from '../kube/apply.js';
import type { ObjectLister } from '../kube/list.js';
import type { KubeReader } from '../kube/reader.js';
import type { RuleSet } from '../rules/types.js';
import type { ScanDiscovery } from '../scan/plan.js';
import { writeReports, type ReportsSetting } from '../scan/report-writer.js';
import { runScan } from '../scan/scan.js';
import { CoalescingQueue } from './queue.js';
import type { ScanMetrics } from './scan-metrics.js';

/**
 * The leader's cluster scan (src/scan): run every `intervalMs` and after relevant changes
 * (coalesced: a burst of changes is one scan, at most `5 × coalesceMs` after the first), one at a
 * time; then the policy reports are written and the scan metrics set. Losing the lease aborts a
 * running scan (its HTTP requests are cancelled) and clears the metrics: only the leader reports.
 * A scan that fails is retried with back-off, from `retryBaseMs` up to the interval.
 */

export interface ClusterScanOptions {
  lister: ObjectLister;
  applier: ObjectApplier;
  discovery: ScanDiscovery;
  kube: KubeReader;
  registry: ActionRegistry;
  rules: () => RuleSet;
  checksumKey: Buffer | undefined;
  namespaces?: readonly string[];
  /** Every this often; 0: only after changes. */
  intervalMs: number;
  /** Quiet period after a change before the scan runs. */
  coalesceMs: number;
  reports: ReportsSetting;
  metrics: ScanMetrics;
  logger: Logger;
  retryBaseMs?: number;
}

const SCAN = 'scan';

export class ClusterScan {
  private readonly queue: CoalescingQueue<typeof SCAN>;
  private signal: AbortSignal | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Completed scans since start (for tests and logs). */
  completed = 0;

  constructor(private readonly options: ClusterScanOptions) {
    const retryBaseMs = options.retryBaseMs ?? 30_000;
    this.queue = new CoalescingQueue({
      coalesceMs: options.coalesceMs,
      maxDelayMs: options.coalesceMs * 5,
      concurrency: 1,
      retryBaseMs,
      maxRetryMs: Math.max(retryBaseMs, options.intervalMs),
      onRetry: (_key, error, retryInMs) => options.logger.warn({ err: error instanceof Error ? error.message : String(error), retryInMs }, 'cluster scan failed'),
    });
  }

  /** This replica leads: scan soon, then every interval and after changes. */
  startLeading(signal: AbortSignal): void {
    this.signal = signal;
    this.queue.start((_key, reasons) => this.run(signal, reasons));
    this.queue.add(SCAN, 'leading');
    if (this.options.intervalMs > 0) {
      this.timer = setInterval(() => this.queue.add(SCAN, 'periodic', 0), this.options.intervalMs);
      this.timer.unref();
    }
  }

  /** Leadership lost: nothing more runs here, a running scan is aborted by the signal, and the metrics go (the new leader reports). */
  stopLeading(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.signal = undefined;
    this.queue.pause();
    this.queue.clear();
    this.options.metrics.clear();
  }

  /** Something a scan looks at changed (`reason` names it for the log): a scan follows, coalesced with other changes. */
  changed(reason: string): void {
    if (this.signal && !this.signal.aborted) this.queue.add(SCAN, reason);
  }

  /** Resolves when no scan is waiting or running. */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  private async run(signal: AbortSignal, reasons: ReadonlySet<string>): Promise<void> {
    if (signal.aborted) return;
    const { logger, metrics } = this.options;
    let scan;
    try {
      scan = await runScan(
        { lister: this.options.lister, discovery: this.options.discovery, kube: this.options.kube, registry: this.options.registry, logger },
        {
          ruleSet: this.options.rules(),
          ...(this.options.checksumKey ? { checksumKey: this.options.checksumKey } : {}),
          ...(this.options.namespaces ? { namespaces: this.options.namespaces } : {}),
          signal,
        },
      );
    } catch (error) {
      if (signal.aborted) return;
      metrics.recordFailure();
      throw error;
    }
    if (signal.aborted) return;
    const written = await writeReports(
      { discovery: this.options.discovery, lister: this.options.lister, applier: this.options.applier },
      { setting: this.options.reports, findings: scan.findings, now: scan.startedAt, ...(this.options.namespaces ? { namespaces: this.options.namespaces } : {}), signal },
    ).catch((error: unknown) => {
      if (signal.aborted) return undefined;
      return { format: null, why: `discovery of the report APIs failed (${error instanceof Error ? error.message : String(error)})`, written: 0, unchanged: 0, failed: [] };
    });
    if (signal.aborted || !written) return;
    metrics.recordScan({ findings: scan.findings, checks: scan.checks, startedAt: scan.startedAt, finishedAt: scan.finishedAt });
    metrics.recordReportWrites({ written: written.written, unchanged: written.unchanged, failed: written.failed.length });
    this.completed++;
    const counts: Record<string, number> = {};
    for (const finding of scan.findings) counts[finding.result] = (counts[finding.result] ?? 0) + 1;
    logger.info(
      {
        reasons: [...reasons].sort().slice(0, 10),
        findings: counts,
        scanned: Object.fromEntries(scan.scanned.map((s) => [s.resource, s.objects])),
        applications: scan.applications,
        durationMs: scan.finishedAt.getTime() - scan.startedAt.getTime(),
        reports: written.format ? { api: written.format, written: written.written, unchanged: written.unchanged, failed: written.failed.length } : written.why,
      },
      'cluster scan completed',
    );
    for (const failure of scan.failures) logger.warn({ failure }, 'cluster scan: a list failed');
    for (const failure of written.failed) logger.warn({ report: failure.report, err: failure.error }, 'policy report not written');
  }
}
