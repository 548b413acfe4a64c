import { CHECKS } from './checks.js';
import {
  assertValidFinding,
  countResults,
  RESULT_PRIORITY,
  RESULTS,
  SEVERITY_PRIORITY,
  type Finding,
  type FindingResult,
  type ResultCounts,
  type Severity,
} from './finding.js';
import { apiJsonBytes, clip, DEFAULT_REPORT_MAX_BYTES, MAX_MESSAGE_CHARS, MAX_PROPERTY_CHARS, MIN_REPORT_MAX_BYTES } from './size.js';

/**
 * Findings as the policy report APIs the ecosystem reads (Policy Reporter, Kyverno's tooling,
 * dashboards): one cluster-wide report for cluster-scoped objects and one report per namespace,
 * all named `gitops-guard`, in either
 *
 * - `wgpolicyk8s.io/v1alpha2` `ClusterPolicyReport` / `PolicyReport` (format `policyreport`), or
 * - `openreports.io/v1alpha1` `ClusterReport` / `Report` (format `openreports`, the successor API).
 *
 * Pure: the same findings and options always give byte-identical reports (sorted results, fixed
 * key order, the caller's timestamp). Every report stays under `maxBytes` (see size.ts): when
 * the results do not fit, the least urgent are left out and a note result says how many of which
 * kind (see docs/reports.md for why truncation rather than splitting).
 */

export const REPORT_NAME = 'gitops-guard';
export const REPORT_SOURCE = 'gitops-guard';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';

export type ReportFormat = 'policyreport' | 'openreports';
export const REPORT_FORMATS: readonly ReportFormat[] = ['policyreport', 'openreports'];

export const REPORT_APIS: Readonly<Record<ReportFormat, { apiVersion: string; namespacedKind: string; clusterKind: string }>> = {
  policyreport: { apiVersion: 'wgpolicyk8s.io/v1alpha2', namespacedKind: 'PolicyReport', clusterKind: 'ClusterPolicyReport' },
  openreports: { apiVersion: 'openreports.io/v1alpha1', namespacedKind: 'Report', clusterKind: 'ClusterReport' },
};

export interface ReportResource {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
  uid?: string;
}

/** One entry of `results`; the fields both APIs share. */
export interface ReportResult {
  policy: string;
  rule: string;
  result: FindingResult;
  severity?: Severity;
  category?: string;
  message: string;
  resources?: ReportResource[];
  properties?: Record<string, string>;
  source: string;
  timestamp: { seconds: number; nanos: number };
}

export interface PolicyReport {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels: Record<string, string> };
  /** openreports.io only: the engine that manages the report. */
  source?: string;
  summary: ResultCounts;
  results: ReportResult[];
}

export interface BuildReportsOptions {
  format: ReportFormat;
  /** When the findings were made: every result's `timestamp`. Passed in, so building stays pure. */
  now: Date;
  /**
   * Namespaces that were scanned: each gets a report even without findings, so applying the
   * output replaces an older report's results instead of leaving them behind.
   */
  namespaces?: Iterable<string>;
  /** Largest report in bytes as the API server encodes it (default DEFAULT_REPORT_MAX_BYTES, for `kubectl apply`). */
  maxBytes?: number;
}

/** The cluster-wide report first, then one per namespace in name order. */
export function buildReports(findings: readonly Finding[], options: BuildReportsOptions): PolicyReport[] {
  const maxBytes = options.maxBytes ?? DEFAULT_REPORT_MAX_BYTES;
  if (!Number.isInteger(maxBytes) || maxBytes < MIN_REPORT_MAX_BYTES) {
    throw new RangeError(`maxBytes must be a whole number of at least ${MIN_REPORT_MAX_BYTES} (got ${maxBytes})`);
  }
  if (!(REPORT_FORMATS as readonly string[]).includes(options.format)) throw new RangeError(`unknown report format ${JSON.stringify(options.format)}`);
  if (Number.isNaN(options.now.getTime())) throw new RangeError('now must be a valid date');

  const timestamp = timestampOf(options.now);
  const byScope = new Map<string, ReportResult[]>([[CLUSTER, []]]);
  for (const namespace of options.namespaces ?? []) {
    if (typeof namespace !== 'string' || namespace === '') throw new TypeError('namespaces must be non-empty strings');
    byScope.set(namespace, []);
  }
  for (const finding of findings) {
    assertValidFinding(finding);
    const scope = finding.resource?.namespace ?? CLUSTER;
    let results = byScope.get(scope);
    if (!results) byScope.set(scope, (results = []));
    results.push(toResult(finding, timestamp));
  }
  const scopes = [...byScope.keys()].filter((s) => s !== CLUSTER).sort(compareStrings);
  return [CLUSTER, ...scopes].map((scope) => bounded(skeleton(options.format, scope === CLUSTER ? undefined : scope), byScope.get(scope)!, maxBytes, timestamp));
}

// A namespace name cannot be empty, so the empty string stands for cluster scope.
const CLUSTER = '';

function skeleton(format: ReportFormat, namespace: string | undefined): PolicyReport {
  const api = REPORT_APIS[format];
  return {
    apiVersion: api.apiVersion,
    kind: namespace === undefined ? api.clusterKind : api.namespacedKind,
    metadata: { name: REPORT_NAME, ...(namespace !== undefined ? { namespace } : {}), labels: { [MANAGED_BY_LABEL]: REPORT_SOURCE } },
    ...(format === 'openreports' ? { source: REPORT_SOURCE } : {}),
    summary: countResults([]),
    results: [],
  };
}

function timestampOf(now: Date): ReportResult['timestamp'] {
  const ms = now.getTime();
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: (ms - seconds * 1000) * 1_000_000 };
}

function toResult(finding: Finding, timestamp: ReportResult['timestamp']): ReportResult {
  const resource = finding.resource;
  const properties = Object.entries(finding.properties ?? {}).sort(([a], [b]) => compareStrings(a, b));
  return {
    policy: finding.check,
    rule: finding.rule,
    result: finding.result,
    ...(finding.severity !== undefined ? { severity: finding.severity } : {}),
    ...(finding.category !== undefined && finding.category !== '' ? { category: clip(finding.category, 64) } : {}),
    message: clip(finding.message, MAX_MESSAGE_CHARS),
    ...(resource
      ? {
          resources: [
            {
              apiVersion: resource.apiVersion,
              kind: resource.kind,
              ...(resource.namespace !== undefined ? { namespace: resource.namespace } : {}),
              name: resource.name,
              ...(resource.uid !== undefined ? { uid: resource.uid } : {}),
            },
          ],
        }
      : {}),
    ...(properties.length > 0 ? { properties: Object.fromEntries(properties.map(([k, v]) => [k, clip(v, MAX_PROPERTY_CHARS)])) } : {}),
    source: REPORT_SOURCE,
    timestamp,
  };
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Reading order: by policy and rule, then by object, then by result and message. */
function compareResults(a: ReportResult, b: ReportResult): number {
  const ra = a.resources?.[0];
  const rb = b.resources?.[0];
  return (
    compareStrings(a.policy, b.policy) ||
    compareStrings(a.rule, b.rule) ||
    compareStrings(ra?.kind ?? '', rb?.kind ?? '') ||
    compareStrings(ra?.apiVersion ?? '', rb?.apiVersion ?? '') ||
    compareStrings(ra?.namespace ?? '', rb?.namespace ?? '') ||
    compareStrings(ra?.name ?? '', rb?.name ?? '') ||
    compareStrings(ra?.uid ?? '', rb?.uid ?? '') ||
    RESULT_PRIORITY[a.result] - RESULT_PRIORITY[b.result] ||
    compareStrings(a.message, b.message) ||
    compareStrings(JSON.stringify(a.properties ?? {}), JSON.stringify(b.properties ?? {}))
  );
}

/** Keeping order when a report must leave results out: errors and failures first, passes last. */
function compareUrgency(a: ReportResult, b: ReportResult): number {
  return (
    RESULT_PRIORITY[a.result] - RESULT_PRIORITY[b.result] ||
    SEVERITY_PRIORITY[a.severity ?? 'info'] - SEVERITY_PRIORITY[b.severity ?? 'info'] ||
    compareResults(a, b)
  );
}

/**
 * The report with every result when it fits in `maxBytes`; otherwise the most urgent results
 * that fit, plus a note (a `warn` result) counting what was left out. The summary always counts
 * every result of the scope, left out or not, plus the note: `kubectl get policyreports` shows
 * the real numbers even when the list is cut.
 */
function bounded(report: PolicyReport, results: ReportResult[], maxBytes: number, timestamp: ReportResult['timestamp']): PolicyReport {
  results.sort(compareResults);
  const all: PolicyReport = { ...report, summary: countResults(results), results };
  if (apiJsonBytes(all) <= maxBytes) return all;

  const summary = countResults(results);
  summary.warn++;
  const byUrgency = [...results].sort(compareUrgency);
  // The note's size grows with the numbers it carries; size it for the largest it could get.
  const worstNote = truncationNote(Object.fromEntries(RESULTS.map((r) => [r, results.length])) as ResultCounts, results.length, results.length, maxBytes, timestamp);
  let used = apiJsonBytes({ ...report, summary, results: [worstNote] });
  let kept = 0;
  for (const result of byUrgency) {
    const cost = apiJsonBytes(result) + 1; // and the comma before it
    if (used + cost > maxBytes) break;
    used += cost;
    kept++;
  }
  // Never more than the estimate; the loop is a guard in case an estimate was off.
  for (;;) {
    const keep = byUrgency.slice(0, kept);
    const omitted = countResults(byUrgency.slice(kept));
    const note = truncationNote(omitted, results.length - kept, results.length, maxBytes, timestamp);
    const out: PolicyReport = { ...report, summary, results: [...keep.sort(compareResults), note] };
    if (apiJsonBytes(out) <= maxBytes || kept === 0) return out;
    kept--;
  }
}

function truncationNote(omitted: ResultCounts, omittedTotal: number, total: number, maxBytes: number, timestamp: ReportResult['timestamp']): ReportResult {
  const kinds = [...RESULTS].sort((a, b) => RESULT_PRIORITY[b] - RESULT_PRIORITY[a]).filter((r) => omitted[r] > 0);
  const { check, rule, category, severity } = CHECKS.reportTruncated;
  return {
    policy: check,
    rule,
    result: 'warn',
    severity,
    category,
    message:
      `This report lists ${total - omittedTotal} of ${total} results: ${omittedTotal} (${kinds.map((r) => `${omitted[r]} ${r}`).join(', ')}) ` +
      `were left out to keep it under ${maxBytes} bytes, below the API server's object size limit. ` +
      'Passes are left out first, then skipped, warning, failing and error results. The summary counts all of them; ' +
      "the scan's table and JSON output list every result.",
    properties: {
      'max-bytes': String(maxBytes),
      omitted: String(omittedTotal),
      ...Object.fromEntries(kinds.map((r) => [`omitted-${r}`, String(omitted[r])])),
    },
    source: REPORT_SOURCE,
    timestamp,
  };
}
