import type { Operation as PatchOperation } from 'fast-json-patch';
import type { RuleResult } from '../rules/result.js';
import type { JsonObject, JsonRendering, JsonReport } from './report-json.js';
import { describeIdentity } from './request.js';

/** The audit as a table for people, grouped by object, rendered from the JSON report. */

export interface TableOptions {
  color: boolean;
  /** Also list objects with nothing to report. */
  all?: boolean;
}

type Style = 'red' | 'yellow' | 'green' | 'cyan' | 'bold' | 'dim';
const CODES: Record<Style, [number, number]> = {
  red: [31, 39],
  yellow: [33, 39],
  green: [32, 39],
  cyan: [36, 39],
  bold: [1, 22],
  dim: [2, 22],
};

function styler(color: boolean): (style: Style, text: string) => string {
  return color ? (style, text) => `\u001b[${CODES[style][0]}m${text}\u001b[${CODES[style][1]}m` : (_style, text) => text;
}

const VALUE_WIDTH = 100;

function shortValue(value: unknown): string {
  const text = JSON.stringify(value) ?? 'null';
  return text.length > VALUE_WIDTH ? `${text.slice(0, VALUE_WIDTH - 1)}…` : text;
}

function describeOp(op: PatchOperation): string {
  if ('value' in op) return `${op.op} ${op.path} ${shortValue(op.value)}`;
  if ('from' in op) return `${op.op} ${op.from} -> ${op.path}`;
  return `${op.op} ${op.path}`;
}

function objectTitle(object: Pick<JsonObject, 'group' | 'kind' | 'namespace' | 'name'>): string {
  const kind = object.group ? `${object.kind}.${object.group}` : object.kind;
  const where = object.namespace ? `${object.namespace}/` : '';
  return `${kind} ${where}${object.name ?? '(generateName)'}`;
}

function ruleLabel(result: Pick<RuleResult, 'rule' | 'mode'>): string {
  return result.mode === 'audit' ? `${result.rule} [audit]` : result.rule;
}

function renderingIsQuiet(rendering: JsonRendering): boolean {
  return (
    rendering.allowed &&
    rendering.mutations.length === 0 &&
    rendering.denials.length === 0 &&
    rendering.warnings.length === 0 &&
    rendering.errors.length === 0 &&
    rendering.notes.length === 0 &&
    rendering.configSources.every((c) => c.from === 'input' || c.from === 'cluster')
  );
}

function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}

/** Human-readable report, grouped by object; only objects with something to say unless `all`. */
export function renderTable(report: JsonReport, options: TableOptions): string {
  const s = styler(options.color);
  const lines: string[] = [];
  const { summary } = report;
  const skipped = summary.skipped.empty + summary.skipped.notKubernetes;
  lines.push(
    s('bold', 'gitops-guard audit') +
      `: ${plural(summary.objects, 'object')} from ${plural(summary.files, 'file')}` +
      (skipped > 0 ? ` (${plural(skipped, 'document')} skipped: ${summary.skipped.empty} empty, ${summary.skipped.notKubernetes} not Kubernetes)` : '') +
      `; namespace for objects without one: ${report.namespace}` +
      (report.cluster ? `; live cluster: ${report.cluster}` : '; offline (no cluster)'),
  );
  if (report.checksumKey.note) lines.push(s('dim', `note: ${report.checksumKey.note}`));

  if (report.inputErrors.length > 0) {
    lines.push('', s('bold', 'Input errors'));
    for (const problem of report.inputErrors) {
      const where = `${problem.file}${problem.line !== undefined ? `:${problem.line}` : ''}${problem.column !== undefined ? `:${problem.column}` : ''}`;
      lines.push(`  ${s('red', 'ERROR')} ${where}: ${problem.message}`);
    }
  }

  if (report.duplicates.length > 0) {
    lines.push('', s('bold', 'Objects rendered more than once'));
    for (const duplicate of report.duplicates) {
      const label = duplicate.severity === 'error' ? s('red', 'DUPLICATE') : s('yellow', 'REPEATED');
      lines.push(`  ${label} ${describeIdentity(duplicate)} (${duplicate.scope === 'Cluster' ? 'cluster-scoped' : 'namespaced'})`);
      for (const r of duplicate.renderings) {
        lines.push(`      ${(r.owner ?? '(no owner)').padEnd(28)} ${s('dim', `${r.file}:${r.line}`)}`);
      }
      lines.push(`      ${duplicate.message}`);
    }
  }

  let quiet = 0;
  const objectLines: string[] = [];
  for (const object of report.objects) {
    const noisy = object.duplicate !== null || object.renderings.some((r) => !renderingIsQuiet(r));
    if (!noisy && !options.all) {
      quiet++;
      continue;
    }
    objectLines.push('', s('bold', objectTitle(object)));
    for (const r of object.renderings) {
      const who = [r.app !== undefined ? `app ${r.app}` : '', r.owner ? `owner ${r.owner}` : ''].filter(Boolean).join(', ');
      const verdict = r.allowed ? s('green', 'allowed') : s('red', 'DENIED');
      const old = r.oldObject === 'none' ? '' : ` over the ${r.oldObject === 'cluster' ? 'live object' : 'earlier rendering'}`;
      objectLines.push(`  ${s('dim', `${r.file}:${r.line}`)}${who ? ` [${who}]` : ''} ${r.operation}${old} -> ${verdict}`);
      for (const m of r.mutations) {
        for (const op of m.patch) {
          const tag = m.mode === 'audit' ? s('yellow', 'would patch') : s('cyan', 'patch');
          objectLines.push(`    ${tag} ${ruleLabel(m)}: ${describeOp(op)}`);
        }
      }
      for (const c of r.checksums) {
        const text =
          c.status === 'failed'
            ? s('yellow', `not computed: ${c.reason ?? 'error'}`)
            : c.status === 'removed'
              ? 'removed (the pod consumes no ConfigMap or Secret any more)'
              : `${c.value}${c.status === 'current' ? ' (already current)' : ''}`;
        objectLines.push(`    ${s('green', 'checksum')} ${ruleLabel(c)}: ${text}`);
      }
      for (const source of r.configSources) {
        const where = `${source.kind} ${source.namespace}/${source.name}`;
        const how =
          source.from === 'input' ? 'from the input' : source.from === 'cluster' ? 'from the cluster' : `${source.from}: ${source.detail ?? ''}`;
        const tag = source.from === 'input' || source.from === 'cluster' ? s('dim', 'config') : s('yellow', 'config');
        objectLines.push(`    ${tag} ${where} ${how}`);
      }
      for (const d of r.denials) {
        const tag = d.mode === 'audit' ? s('yellow', 'would deny') : s('red', 'DENY');
        objectLines.push(`    ${tag} ${ruleLabel(d)}: ${d.message}`);
      }
      for (const e of r.errors) {
        const consequence = e.onError === 'deny' && e.mode === 'enforce' ? 'denied' : 'allowed without its changes';
        objectLines.push(`    ${s('red', 'error')} ${ruleLabel(e)} (${consequence}): ${e.message}`);
      }
      for (const w of r.warnings) objectLines.push(`    ${s('yellow', 'warning')} ${ruleLabel(w)}: ${w.message}`);
      for (const note of r.notes) objectLines.push(`    ${s('dim', 'note')} ${note}`);
    }
  }
  if (objectLines.length > 0) lines.push('', s('bold', 'Objects'), ...objectLines.slice(1));
  if (quiet > 0) lines.push('', s('dim', `${plural(quiet, 'object')} with nothing to report not listed (--all lists them)`));

  const parts = [
    plural(summary.objects, 'object'),
    `${summary.mutated} mutated`,
    summary.denied > 0 ? s('red', `${summary.denied} denied`) : '0 denied',
    summary.duplicates.error > 0 ? s('red', `${plural(summary.duplicates.error, 'duplicate owner')}`) : '0 duplicate owners',
    summary.auditFindings > 0 ? `${plural(summary.auditFindings, 'audit-mode finding')}` : '',
    summary.ruleErrors > 0 ? s('yellow', plural(summary.ruleErrors, 'rule error')) : '',
    summary.checksums.stamped + summary.checksums.current > 0
      ? `${plural(summary.checksums.stamped + summary.checksums.current, 'checksum')}`
      : '',
    summary.checksums.failed > 0 ? s('yellow', `${summary.checksums.failed} checksums not computed`) : '',
    summary.inputErrors > 0 ? s('red', plural(summary.inputErrors, 'input error')) : '',
  ].filter(Boolean);
  const exit = report.exitCode === 0 ? s('green', 'exit 0') : s('red', `exit ${report.exitCode}`);
  lines.push('', `${s('bold', 'Result')}: ${parts.join(', ')} -> ${exit}`);
  return `${lines.join('\n')}\n`;
}
