import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { CHECKS } from '../report/checks.js';
import type { Finding } from '../report/finding.js';
import { createControllerMetrics } from './metrics.js';
import { createScanMetrics, MAX_CHECK_RULES } from './scan-metrics.js';

const shared = (result: Finding['result']) => ({ check: CHECKS.sharedObject.check, rule: CHECKS.sharedObject.rule, result });
const stale = (result: Finding['result']) => ({ check: CHECKS.staleChecksum.check, rule: CHECKS.staleChecksum.rule, result });
const at = (iso: string) => new Date(iso);

/** The samples of one metric as `labels value` lines, sorted. */
async function samples(registry: Registry, name: string): Promise<string[]> {
  const text = await registry.getSingleMetricAsString(name);
  return text
    .split('\n')
    .filter((l) => l.startsWith(name))
    .map((l) => l.slice(name.length))
    .sort();
}

describe('scan metrics', () => {
  it('are registered with the controller metrics, so they are on its /metrics', async () => {
    const registry = new Registry();
    createControllerMetrics(registry, () => 0);
    const names = (await registry.getMetricsAsJSON()).map((m) => m.name);
    expect(names).toEqual(expect.arrayContaining(['gitops_guard_scan_findings', 'gitops_guard_scan_last_run_timestamp_seconds', 'gitops_guard_scan_duration_seconds', 'gitops_guard_scan_runs_total']));
  });

  it('count the latest scan by check, rule and result, with zeros for every result of a check that ran', async () => {
    const registry = new Registry();
    const scan = createScanMetrics(registry);
    scan.recordScan({
      findings: [shared('fail'), shared('fail'), shared('pass'), stale('fail')],
      checks: [CHECKS.sharedObject, CHECKS.staleChecksum, CHECKS.missingReference],
      startedAt: at('2024-05-01T12:00:00Z'),
      finishedAt: at('2024-05-01T12:00:02.5Z'),
    });
    const findings = await samples(registry, 'gitops_guard_scan_findings');
    expect(findings).toContain('{check="single-owner",rule="shared-object",result="fail"} 2');
    expect(findings).toContain('{check="single-owner",rule="shared-object",result="pass"} 1');
    expect(findings).toContain('{check="config-checksum",rule="stale-checksum",result="fail"} 1');
    expect(findings).toContain('{check="config-checksum",rule="missing-reference",result="fail"} 0');
    expect(findings).toHaveLength(3 * 5);
    expect(await samples(registry, 'gitops_guard_scan_last_run_timestamp_seconds')).toEqual([` ${Date.parse('2024-05-01T12:00:02.5Z') / 1000}`]);
    expect(await samples(registry, 'gitops_guard_scan_duration_seconds')).toEqual([' 2.5']);
    expect(await samples(registry, 'gitops_guard_scan_runs_total')).toEqual(['{result="success"} 1']);
  });

  it('replace the previous scan entirely: a fixed problem drops to 0, a check that no longer runs disappears', async () => {
    const registry = new Registry();
    const scan = createScanMetrics(registry);
    const times = { startedAt: at('2024-05-01T12:00:00Z'), finishedAt: at('2024-05-01T12:00:01Z') };
    scan.recordScan({ findings: [shared('fail'), { check: 'old-rule', rule: 'tagOwner', result: 'warn' }], ...times });
    scan.recordScan({ findings: [], checks: [CHECKS.sharedObject], ...times });
    const findings = await samples(registry, 'gitops_guard_scan_findings');
    expect(findings).toContain('{check="single-owner",rule="shared-object",result="fail"} 0');
    expect(findings.filter((l) => l.includes('old-rule'))).toEqual([]);
  });

  it('a failed scan keeps the last counts and is counted; losing leadership clears them', async () => {
    const registry = new Registry();
    const scan = createScanMetrics(registry);
    scan.recordScan({ findings: [shared('fail')], startedAt: at('2024-05-01T12:00:00Z'), finishedAt: at('2024-05-01T12:00:01Z') });
    scan.recordFailure();
    expect(await samples(registry, 'gitops_guard_scan_findings')).toContain('{check="single-owner",rule="shared-object",result="fail"} 1');
    expect(await samples(registry, 'gitops_guard_scan_runs_total')).toEqual(['{result="error"} 1', '{result="success"} 1']);
    scan.clear();
    expect(await samples(registry, 'gitops_guard_scan_findings')).toEqual([]);
    expect(await samples(registry, 'gitops_guard_scan_last_run_timestamp_seconds')).toEqual([' 0']);
  });

  it('bound their series: past the cap, further check/rule pairs are counted as other/other', async () => {
    const registry = new Registry();
    const scan = createScanMetrics(registry);
    const many = Array.from({ length: MAX_CHECK_RULES + 50 }, (_, i) => ({ check: `rule-${i}`, rule: 'tagOwner', result: 'warn' as const }));
    scan.recordScan({ findings: many, startedAt: at('2024-05-01T12:00:00Z'), finishedAt: at('2024-05-01T12:00:01Z') });
    const findings = await samples(registry, 'gitops_guard_scan_findings');
    expect(findings).toHaveLength((MAX_CHECK_RULES + 1) * 5);
    expect(findings).toContain('{check="other",rule="other",result="warn"} 50');
  });
});
