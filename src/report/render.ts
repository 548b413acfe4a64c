import { stringify } from 'yaml';
import { countResults, RESULT_PRIORITY, SEVERITY_PRIORITY, type Finding, type FindingResult, type ResultCounts } from './finding.js';
import type { PolicyReport } from './policy-report.js';

/**
 * Text renderings: reports as one `v1` `List` that `kubectl apply -f -` takes as it is (YAML or
 * JSON), and findings as a table for people or JSON for programs.
 *
 * Why a List and not multi-document YAML: one document is valid JSON and YAML alike, so both
 * encodings share one shape, `jq` and `yq` read it whole, and it is what `kubectl get -o yaml`
 * prints for several objects.
 */

export interface ReportList {
  apiVersion: 'v1';
  kind: 'List';
  metadata: Record<string, never>;
  items: PolicyReport[];
}

export function toList(reports: readonly PolicyReport[]): ReportList {
  return { apiVersion: 'v1', kind: 'List', metadata: {}, items: [...reports] };
}

export type Encoding = 'yaml' | 'json';

/** The reports as a List, for `kubectl apply -f -`. YAML lines are never folded, so messages stay on one line. */
export function renderReports(reports: readonly PolicyReport[], encoding: Encoding): string {
  const list = toList(reports);
  return encoding === 'json' ? `${JSON.stringify(list, null, 2)}\n` : stringify(list, { lineWidth: 0, aliasDuplicateObjects: false });
}

// ---------------------------------------------------------------------------------------------
// Findings for the command line

/** Findings in the order people read them: most urgent first, then by check and object. */
export function sortFindings(findings: readonly Finding[]): Finding[] {
  return [...findings].sort(
    (a, b) =>
      RESULT_PRIORITY[a.result] - RESULT_PRIORITY[b.result] ||
      SEVERITY_PRIORITY[a.severity ?? 'info'] - SEVERITY_PRIORITY[b.severity ?? 'info'] ||
      compare(a.check, b.check) ||
      compare(a.rule, b.rule) ||
      compare(resourceText(a), resourceText(b)) ||
      compare(a.message, b.message),
  );
}

export interface FindingsJson {
  summary: ResultCounts;
  findings: Finding[];
}

/** Every finding (nothing is truncated here) with counts; a building block of a command's JSON output. */
export function findingsJson(findings: readonly Finding[]): FindingsJson {
  return {
    summary: countResults(findings),
    findings: sortFindings(findings).map((f) => ({
      check: f.check,
      rule: f.rule,
      result: f.result,
      ...(f.severity !== undefined ? { severity: f.severity } : {}),
      ...(f.category !== undefined ? { category: f.category } : {}),
      message: f.message,
      ...(f.resource !== undefined ? { resource: { ...f.resource } } : {}),
      ...(f.properties !== undefined && Object.keys(f.properties).length > 0
        ? { properties: Object.fromEntries(Object.entries(f.properties).sort(([a], [b]) => compare(a, b))) }
        : {}),
    })),
  };
}

export interface FindingsTableOptions {
  color: boolean;
  /** Also list passing and skipped findings about objects (by default only counted). */
  all?: boolean;
}

const COLORS: Record<FindingResult, number> = { error: 31, fail: 31, warn: 33, skip: 2, pass: 32 };

/**
 * One line per finding: RESULT, SEVERITY, CHECK/RULE, RESOURCE, then the message and properties
 * indented below it. Passing and skipped findings about objects are only counted unless `all`. Text from the cluster (names, messages) is stripped of control characters,
 * so an object name cannot move the cursor or recolour a terminal.
 */
export function renderFindingsTable(findings: readonly Finding[], options: FindingsTableOptions): string {
  const paint = (result: FindingResult, text: string) => (options.color ? `\u001b[${COLORS[result]}m${text}\u001b[0m` : text);
  // Findings about the scan itself (no object: a check that was skipped, say) are always listed.
  const shown = sortFindings(findings).filter((f) => options.all || (f.result !== 'pass' && f.result !== 'skip') || f.resource === undefined);
  const rows = shown.map((f) => [f.result.toUpperCase(), f.severity ?? '-', `${f.check}/${f.rule}`, resourceText(f)].map(printable));
  const header = ['RESULT', 'SEVERITY', 'CHECK/RULE', 'RESOURCE'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const pad = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)));
  const out: string[] = [];
  if (shown.length > 0) out.push(pad(header).join('  '));
  shown.forEach((finding, i) => {
    const cells = pad(rows[i]!);
    // Colour the word only, so the padding (and the columns after it) line up either way.
    cells[0] = paint(finding.result, rows[i]![0]!) + cells[0]!.slice(rows[i]![0]!.length);
    out.push(cells.join('  '));
    out.push(`    ${printable(finding.message)}`);
    const properties = Object.entries(finding.properties ?? {}).sort(([a], [b]) => compare(a, b));
    if (properties.length > 0) out.push(`    ${properties.map(([k, v]) => `${printable(k)}=${printable(v)}`).join(' ')}`);
  });
  const counts = countResults(findings);
  const hidden = findings.length - shown.length;
  if (out.length > 0) out.push('');
  out.push(
    `${findings.length} findings: ${(['error', 'fail', 'warn', 'skip', 'pass'] as const).map((r) => `${counts[r]} ${r}`).join(', ')}` +
      (hidden > 0 ? ` (${hidden} passing or skipped not listed)` : ''),
  );
  return `${out.join('\n')}\n`;
}

function resourceText(finding: Finding): string {
  const r = finding.resource;
  if (!r) return '-';
  const group = r.apiVersion.includes('/') ? `.${r.apiVersion.slice(0, r.apiVersion.indexOf('/'))}` : '';
  return `${r.kind}${group} ${r.namespace !== undefined ? `${r.namespace}/` : ''}${r.name}`;
}

// C0 and C1 control characters, DEL, and the Unicode line/paragraph separators and bidi controls.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** `text` safe to print on a terminal: control characters shown as `\uXXXX` instead of acting. */
export function printable(text: string): string {
  return text.replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
