import { describe, expect, it } from 'vitest';
import { CHECKS } from './checks.js';
import { RESULTS, SEVERITIES, type Finding, type FindingResult } from './finding.js';
import { buildReports, REPORT_APIS, type PolicyReport, type ReportFormat } from './policy-report.js';
import { apiJsonBytes, DEFAULT_REPORT_MAX_BYTES, MAX_MESSAGE_CHARS, MAX_PROPERTY_CHARS, MIN_REPORT_MAX_BYTES } from './size.js';

const NOW = new Date('2024-05-01T12:34:56.789Z');
const FORMATS: ReportFormat[] = ['policyreport', 'openreports'];

const crb = (name: string, uid = `uid-${name}`) => ({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', name, uid });
const deploy = (namespace: string, name: string) => ({ apiVersion: 'apps/v1', kind: 'Deployment', namespace, name, uid: `uid-${namespace}-${name}` });

function finding(overrides: Partial<Finding> = {}): Finding {
  return {
    check: CHECKS.sharedObject.check,
    rule: CHECKS.sharedObject.rule,
    result: 'fail',
    severity: 'high',
    category: 'Ownership',
    message: 'ClusterRoleBinding/airflow-pre-checker-binding is claimed by pdp-dev-airflow and smartdq-dev-airflow: keep it in one app.',
    resource: crb('airflow-pre-checker-binding'),
    properties: { apps: 'argocd/pdp-dev-airflow,argocd/smartdq-dev-airflow', holder: 'argocd/pdp-dev-airflow' },
    ...overrides,
  };
}

const only = (reports: PolicyReport[], namespace?: string) => reports.find((r) => r.metadata.namespace === namespace)!;

describe('result and summary mapping', () => {
  it.each(RESULTS.flatMap((result) => FORMATS.map((format) => [result, format] as const)))('a %s finding becomes a `%s` result and is counted under it (%s)', (result, format) => {
    const [cluster] = buildReports([finding({ result })], { format, now: NOW });
    expect(cluster!.results).toHaveLength(1);
    expect(cluster!.results[0]!.result).toBe(result);
    expect(cluster!.summary).toEqual({ pass: 0, fail: 0, warn: 0, error: 0, skip: 0, [result]: 1 });
  });

  it.each([
    { results: [], summary: { pass: 0, fail: 0, warn: 0, error: 0, skip: 0 } },
    { results: ['pass', 'pass', 'pass'], summary: { pass: 3, fail: 0, warn: 0, error: 0, skip: 0 } },
    { results: ['fail', 'pass', 'fail', 'error'], summary: { pass: 1, fail: 2, warn: 0, error: 1, skip: 0 } },
    { results: ['warn', 'skip', 'skip', 'pass', 'error'], summary: { pass: 1, fail: 0, warn: 1, error: 1, skip: 2 } },
  ] as { results: FindingResult[]; summary: Record<FindingResult, number> }[])('summary of $results is $summary', ({ results, summary }) => {
    const findings = results.map((result, i) => finding({ result, resource: crb(`b${i}`) }));
    for (const format of FORMATS) expect(buildReports(findings, { format, now: NOW })[0]!.summary).toEqual(summary);
  });

  it.each(SEVERITIES)('severity %s is kept as it is', (severity) => {
    expect(buildReports([finding({ severity })], { format: 'openreports', now: NOW })[0]!.results[0]!.severity).toBe(severity);
  });

  it.each(FORMATS)('maps every field of a finding (%s)', (format) => {
    const [cluster] = buildReports([finding()], { format, now: NOW });
    expect(cluster!.results[0]).toEqual({
      policy: 'single-owner',
      rule: 'shared-object',
      result: 'fail',
      severity: 'high',
      category: 'Ownership',
      message: finding().message,
      resources: [{ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', name: 'airflow-pre-checker-binding', uid: 'uid-airflow-pre-checker-binding' }],
      properties: { apps: 'argocd/pdp-dev-airflow,argocd/smartdq-dev-airflow', holder: 'argocd/pdp-dev-airflow' },
      source: 'gitops-guard',
      timestamp: { seconds: Math.floor(NOW.getTime() / 1000), nanos: 789_000_000 },
    });
  });

  it('leaves out what a finding does not have (no empty resources, properties, severity or category)', () => {
    const bare: Finding = { check: 'scan', rule: 'list', result: 'error', message: 'listing applications is forbidden: grant list on applications.argoproj.io' };
    const result = buildReports([bare], { format: 'policyreport', now: NOW })[0]!.results[0]!;
    expect(Object.keys(result).sort()).toEqual(['message', 'policy', 'result', 'rule', 'source', 'timestamp']);
  });
});

describe('report objects', () => {
  it.each(FORMATS)('one cluster-wide report for cluster-scoped objects, one per namespace, all named gitops-guard (%s)', (format) => {
    const api = REPORT_APIS[format];
    const reports = buildReports(
      [finding(), finding({ resource: deploy('team-b', 'web'), check: 'config-checksum', rule: 'stale-checksum' }), finding({ resource: deploy('team-a', 'api'), result: 'pass' })],
      { format, now: NOW },
    );
    expect(reports.map((r) => [r.apiVersion, r.kind, r.metadata.namespace, r.metadata.name])).toEqual([
      [api.apiVersion, api.clusterKind, undefined, 'gitops-guard'],
      [api.apiVersion, api.namespacedKind, 'team-a', 'gitops-guard'],
      [api.apiVersion, api.namespacedKind, 'team-b', 'gitops-guard'],
    ]);
    expect(only(reports).results.map((r) => r.resources![0]!.name)).toEqual(['airflow-pre-checker-binding']);
    expect(only(reports, 'team-b').results.map((r) => r.resources![0])).toEqual([deploy('team-b', 'web')]);
    for (const report of reports) {
      expect(report.metadata.labels).toEqual({ 'app.kubernetes.io/managed-by': 'gitops-guard' });
      // openreports.io names the engine on the report too; wgpolicyk8s.io v1alpha2 has no such field.
      expect(report.source).toBe(format === 'openreports' ? 'gitops-guard' : undefined);
    }
  });

  it('gives every scanned namespace a report, empty when nothing was found, and always a cluster report', () => {
    const reports = buildReports([], { format: 'policyreport', now: NOW, namespaces: ['b', 'a'] });
    expect(reports.map((r) => [r.kind, r.metadata.namespace, r.results.length])).toEqual([
      ['ClusterPolicyReport', undefined, 0],
      ['PolicyReport', 'a', 0],
      ['PolicyReport', 'b', 0],
    ]);
  });

  it('is deterministic: findings in any order give byte-identical reports, sorted by check, rule and object', () => {
    const findings = [
      finding({ resource: crb('zeta') }),
      finding({ resource: crb('alpha'), result: 'pass' }),
      finding({ check: 'config-checksum', rule: 'missing-checksum', resource: deploy('ns', 'b') }),
      finding({ check: 'config-checksum', rule: 'missing-checksum', resource: deploy('ns', 'a') }),
      finding({ check: 'stamp-config-checksum', rule: 'stampConfigChecksum', resource: deploy('ns', 'a'), result: 'warn' }),
      finding({ resource: crb('alpha'), result: 'fail', message: 'second finding on the same object' }),
    ];
    const render = (list: Finding[]) => JSON.stringify(buildReports(list, { format: 'openreports', now: NOW }));
    const expected = render(findings);
    for (let i = 0; i < 5; i++) expect(render([...findings].sort(() => Math.random() - 0.5))).toBe(expected);
    const reports = JSON.parse(expected) as PolicyReport[];
    expect(only(reports).results.map((r) => `${r.resources![0]!.name}:${r.result}`)).toEqual(['alpha:fail', 'alpha:pass', 'zeta:fail']);
    expect(only(reports, 'ns').results.map((r) => `${r.policy}/${r.rule}:${r.resources![0]!.name}`)).toEqual([
      'config-checksum/missing-checksum:a',
      'config-checksum/missing-checksum:b',
      'stamp-config-checksum/stampConfigChecksum:a',
    ]);
  });

  it('takes the timestamp from the caller, never the clock', () => {
    const at = (now: Date) => buildReports([finding()], { format: 'policyreport', now })[0]!.results[0]!.timestamp;
    expect(at(new Date(0))).toEqual({ seconds: 0, nanos: 0 });
    expect(at(new Date('2030-01-01T00:00:00.001Z'))).toEqual({ seconds: 1893456000, nanos: 1_000_000 });
  });

  it('cuts an overlong message or property value (by characters, never inside a surrogate pair)', () => {
    const long = '🙂'.repeat(MAX_MESSAGE_CHARS + 10);
    const result = buildReports([finding({ message: long, properties: { apps: 'a,'.repeat(MAX_PROPERTY_CHARS) } })], { format: 'policyreport', now: NOW })[0]!.results[0]!;
    expect(Array.from(result.message)).toHaveLength(MAX_MESSAGE_CHARS);
    expect(result.message.endsWith('🙂…')).toBe(true);
    expect(result.properties!.apps!.length).toBe(MAX_PROPERTY_CHARS);
    expect(result.properties!.apps!.endsWith('…')).toBe(true);
  });

  it.each([
    ['a check that is not an identifier', { check: 'two words' }],
    ['an empty rule', { rule: '' }],
    ['an unknown result', { result: 'fixed' }],
    ['an unknown severity', { severity: 'urgent' }],
    ['an empty message', { message: '  ' }],
    ['a resource without a name', { resource: { apiVersion: 'v1', kind: 'ConfigMap', name: '' } }],
    ['an empty namespace', { resource: { apiVersion: 'v1', kind: 'ConfigMap', name: 'x', namespace: '' } }],
    ['a property that is not a string', { properties: { count: 3 } }],
    ['a property key with spaces', { properties: { 'two words': 'x' } }],
    ['too many properties', { properties: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`p${i}`, 'x'])) }],
  ])('refuses a finding with %s', (_, overrides) => {
    expect(() => buildReports([finding(overrides as Partial<Finding>)], { format: 'policyreport', now: NOW })).toThrow(TypeError);
  });

  it('refuses a budget too small for the note, an unknown format and an invalid date', () => {
    expect(() => buildReports([], { format: 'policyreport', now: NOW, maxBytes: MIN_REPORT_MAX_BYTES - 1 })).toThrow(RangeError);
    expect(() => buildReports([], { format: 'polr' as ReportFormat, now: NOW })).toThrow(RangeError);
    expect(() => buildReports([], { format: 'policyreport', now: new Date('nope') })).toThrow(RangeError);
  });
});

describe('size bound', () => {
  /** A namespace full of findings: mostly passes, some failures and errors of different severities. */
  function crowded(namespace: string, passes: number): Finding[] {
    const out: Finding[] = [];
    for (let i = 0; i < passes; i++) {
      out.push(finding({ check: 'config-checksum', rule: 'stale-checksum', result: 'pass', severity: 'medium', resource: deploy(namespace, `app-${String(i).padStart(5, '0')}`), message: 'pods run the ConfigMap and Secret content the cluster holds', properties: { checksum: `v1:${'0'.repeat(64)}` } }));
    }
    for (let i = 0; i < 40; i++) out.push(finding({ check: 'config-checksum', rule: 'stale-checksum', result: 'fail', severity: i % 2 ? 'low' : 'high', resource: deploy(namespace, `stale-${i}`) }));
    for (let i = 0; i < 3; i++) out.push(finding({ check: 'scan', rule: 'read', result: 'error', severity: undefined, resource: deploy(namespace, `broken-${i}`), message: 'reading its ConfigMap failed: 403' }));
    return out;
  }

  it('keeps a report within the budget as the API server counts bytes, leaving out passes first and saying so', () => {
    const findings = crowded('big', 3000);
    const [, report] = buildReports(findings, { format: 'policyreport', now: NOW });
    expect(apiJsonBytes(report)).toBeLessThanOrEqual(DEFAULT_REPORT_MAX_BYTES);
    expect(apiJsonBytes(report)).toBeGreaterThan(DEFAULT_REPORT_MAX_BYTES * 0.95);
    const kept = report!.results.filter((r) => r.rule !== 'report-truncated');
    expect(kept.filter((r) => r.result === 'fail')).toHaveLength(40);
    expect(kept.filter((r) => r.result === 'error')).toHaveLength(3);
    const passesKept = kept.filter((r) => r.result === 'pass').length;
    expect(passesKept).toBeGreaterThan(100);
    expect(passesKept).toBeLessThan(3000);

    const note = report!.results.at(-1)!;
    expect(note).toMatchObject({ policy: 'gitops-guard', rule: 'report-truncated', result: 'warn', severity: 'info' });
    expect(note.properties).toEqual({ 'max-bytes': String(DEFAULT_REPORT_MAX_BYTES), omitted: String(3000 - passesKept), 'omitted-pass': String(3000 - passesKept) });
    expect(note.message).toContain(`This report lists ${passesKept + 43} of 3043 results: ${3000 - passesKept} (${3000 - passesKept} pass) were left out`);
    // The summary counts every result of the namespace, listed or not, and the note.
    expect(report!.summary).toEqual({ pass: 3000, fail: 40, warn: 1, error: 3, skip: 0 });
  });

  it('drops failures by severity (low before high) only once no pass, skip or warning is left', () => {
    const findings = crowded('tight', 200);
    const [, report] = buildReports(findings, { format: 'openreports', now: NOW, maxBytes: MIN_REPORT_MAX_BYTES });
    expect(apiJsonBytes(report)).toBeLessThanOrEqual(MIN_REPORT_MAX_BYTES);
    const kept = report!.results.filter((r) => r.rule !== 'report-truncated');
    expect(kept.filter((r) => r.result === 'pass')).toEqual([]);
    expect(kept.filter((r) => r.result === 'error')).toHaveLength(3);
    const severities = kept.filter((r) => r.result === 'fail').map((r) => r.severity);
    // 8 KiB hold about a dozen results: the errors, then high-severity failures only.
    expect(severities.length).toBeGreaterThan(3);
    expect(severities.length).toBeLessThan(20);
    expect(new Set(severities)).toEqual(new Set(['high']));
    expect(report!.results.at(-1)!.properties!['omitted-fail']).toBe(String(40 - severities.length));
  });

  it("counts Go's JSON escaping of <, > and & (six bytes each on the API server)", () => {
    const angry = Array.from({ length: 400 }, (_, i) => finding({ resource: crb(`b${i}`), message: '<>&'.repeat(100) }));
    const [report] = buildReports(angry, { format: 'policyreport', now: NOW });
    // 400 results of 300 escaped characters are over 720 KB for the API server, though JSON.stringify makes them ~200 KB.
    expect(Buffer.byteLength(JSON.stringify(report))).toBeLessThan(DEFAULT_REPORT_MAX_BYTES);
    expect(report!.results.at(-1)!.rule).toBe('report-truncated');
    expect(apiJsonBytes(report)).toBeLessThanOrEqual(DEFAULT_REPORT_MAX_BYTES);
  });

  it('is not truncated when everything fits, and a report exactly at the budget keeps every result', () => {
    const findings = crowded('small', 10);
    const [, report] = buildReports(findings, { format: 'policyreport', now: NOW });
    expect(report!.results).toHaveLength(findings.length);
    const exact = apiJsonBytes(report);
    expect(buildReports(findings, { format: 'policyreport', now: NOW, maxBytes: exact })[1]!.results).toHaveLength(findings.length);
    expect(buildReports(findings, { format: 'policyreport', now: NOW, maxBytes: exact - 1 })[1]!.results.at(-1)!.rule).toBe('report-truncated');
  });
});
