import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  buildReports,
  CHECKS,
  DEFAULT_REPORT_MAX_BYTES,
  RESULTS,
  SERVER_SIDE_APPLY_REPORT_MAX_BYTES,
  SEVERITIES,
  renderReports,
  type Finding,
  type PolicyReport,
  type ReportFormat,
} from '../src/report/index.js';
import { CORPUS_DIR } from './support/corpus.js';
import { crdValidator, readCrd, type CrdValidator } from './support/crd-schema.js';
import { kubectlReads } from './support/kubectl.js';

/**
 * Generated reports against the report APIs' own published schemas (the CRDs in
 * test/fixtures/corpus/report-crds, unmodified), and through kubectl's own reader.
 */

const crd = (file: string) => crdValidator(readCrd(join(CORPUS_DIR, 'report-crds', file)));
const VALIDATORS: Record<string, CrdValidator> = {
  ClusterPolicyReport: crd('wgpolicyk8s.io_clusterpolicyreports.yaml'),
  PolicyReport: crd('wgpolicyk8s.io_policyreports.yaml'),
  ClusterReport: crd('openreports.io_clusterreports.yaml'),
  Report: crd('openreports.io_reports.yaml'),
};
const FORMATS: ReportFormat[] = ['policyreport', 'openreports'];
const NOW = new Date('2024-05-01T12:34:56.789Z');

function errors(report: PolicyReport): string[] {
  const validate = VALIDATORS[report.kind];
  if (!validate) return [`no CRD for ${report.kind}`];
  return validate(report);
}

/** Every result, every severity, cluster-scoped and namespaced objects, findings without an object, non-ASCII text. */
function variety(): Finding[] {
  const out: Finding[] = [];
  RESULTS.forEach((result, i) =>
    SEVERITIES.forEach((severity, j) =>
      out.push({
        check: CHECKS.sharedObject.check,
        rule: CHECKS.sharedObject.rule,
        result,
        severity,
        category: 'Ownership',
        message: `ClusterRoleBinding/crb-${i}-${j} is claimed by pdp-dev-airflow and smartdq-dev-airflow — keep it in one app <shared> & done`,
        resource: { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', name: `crb-${i}-${j}`, uid: `3f1c-${i}-${j}` },
        properties: { apps: 'argocd/pdp-dev-airflow,argocd/smartdq-dev-airflow', holder: 'argocd/pdp-dev-airflow' },
      }),
    ),
  );
  out.push({ check: 'config-checksum', rule: 'stale-checksum', result: 'fail', severity: 'medium', category: 'Configuration', message: 'pods run old config: roll them', resource: { apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'airflow', name: 'webserver' } });
  out.push({ check: 'scan', rule: 'list', result: 'error', message: 'listing secrets in namespace airflow is forbidden: grant list on secrets' });
  out.push({ check: 'stamp-config-checksum', rule: 'stampConfigChecksum', result: 'skip', category: 'Rules', message: 'opted out', resource: { apiVersion: 'batch/v1', kind: 'CronJob', namespace: 'jobs', name: 'nightly' } });
  return out;
}

function crowded(count: number): Finding[] {
  return Array.from({ length: count }, (_, i) => ({
    check: 'config-checksum',
    rule: 'stale-checksum',
    result: i % 10 === 0 ? ('fail' as const) : ('pass' as const),
    severity: 'medium' as const,
    message: `Deployment big/app-${i}: pods run the content the cluster holds`,
    resource: { apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'big', name: `app-${i}`, uid: `00000000-0000-0000-0000-${String(i).padStart(12, '0')}` },
    properties: { checksum: `v1:${'a'.repeat(64)}` },
  }));
}

/**
 * What client-side `kubectl apply` does to an object before it sends it: it stores the object,
 * as compact JSON in Go's escaping, in the last-applied-configuration annotation.
 */
function asKubectlApplies(report: PolicyReport): PolicyReport & { metadata: { annotations: Record<string, string> } } {
  const copy = JSON.parse(JSON.stringify(report)) as PolicyReport & { metadata: { annotations?: Record<string, string> } };
  const goJson = JSON.stringify(report).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  copy.metadata.annotations = { 'kubectl.kubernetes.io/last-applied-configuration': `${goJson}\n` };
  return copy as PolicyReport & { metadata: { annotations: Record<string, string> } };
}

describe('reports validate against the published CRD schemas', () => {
  it.each(FORMATS)('every result, severity and scope (%s)', (format) => {
    const reports = buildReports(variety(), { format, now: NOW, namespaces: ['empty'] });
    expect(reports.map((r) => `${r.kind}/${r.metadata.namespace ?? ''}`)).toEqual(
      format === 'policyreport' ? ['ClusterPolicyReport/', 'PolicyReport/airflow', 'PolicyReport/empty', 'PolicyReport/jobs'] : ['ClusterReport/', 'Report/airflow', 'Report/empty', 'Report/jobs'],
    );
    for (const report of reports) expect(errors(report), `${report.kind} ${report.metadata.namespace ?? ''}`).toEqual([]);
  });

  it.each(FORMATS)('the oversized case: a truncated report, also with kubectl apply\'s last-applied copy (%s)', (format) => {
    const [, report] = buildReports(crowded(5000), { format, now: NOW });
    expect(report!.results.at(-1)!.rule).toBe('report-truncated');
    expect(errors(report!)).toEqual([]);
    expect(errors(asKubectlApplies(report!))).toEqual([]);
  });

  it('a report built for server-side apply is too big for client-side kubectl apply, which is why the default budget is smaller', () => {
    const [, large] = buildReports(crowded(5000), { format: 'policyreport', now: NOW, maxBytes: SERVER_SIDE_APPLY_REPORT_MAX_BYTES });
    expect(errors(large!)).toEqual([]);
    expect(errors(asKubectlApplies(large!))).toContain('metadata.annotations: Too long: may not be more than 262144 bytes');
    expect(DEFAULT_REPORT_MAX_BYTES).toBeLessThan(262144);
  });

  it('the validator is strict: it reports unknown fields, wrong enums, wrong types, wrong scope and wrong versions', () => {
    const [cluster, namespaced] = buildReports(variety(), { format: 'policyreport', now: NOW });
    const broken = structuredClone(namespaced!) as any;
    broken.results[0].resource = broken.results[0].resources[0]; // a typo the API server would silently prune
    broken.results[0].result = 'failed';
    broken.results[0].timestamp.nanos = 'soon';
    broken.summary.pass = 1.5;
    broken.metadata.labels['bad label'] = 'x';
    const found = errors(broken).join('\n');
    expect(found).toContain('must NOT have additional properties (resource)');
    expect(found).toContain('/results/0/result: must be equal to one of the allowed values');
    expect(found).toContain('/results/0/timestamp/nanos: must be integer');
    expect(found).toContain('/summary/pass: must be integer');
    expect(found).toContain('/metadata/labels');
    expect(errors({ ...cluster!, metadata: { ...cluster!.metadata, namespace: 'x' } })).toContain('metadata.namespace must be absent for a Cluster-scoped kind');
    expect(errors({ ...cluster!, apiVersion: 'wgpolicyk8s.io/v2' })[0]).toContain('is not served');
    expect(errors({ ...namespaced!, results: [{ ...namespaced!.results[0]!, timestamp: { seconds: 1, nanos: 2 ** 31 } }] }).join()).toContain('must match format "int32"');
  });
});

describe('output for kubectl apply -f -', () => {
  it.each(FORMATS.flatMap((format) => (['yaml', 'json'] as const).map((encoding) => [format, encoding] as const)))('%s as %s: one List that kubectl reads into the reports, unchanged', (format, encoding) => {
    const reports = buildReports([...variety(), ...crowded(3000)], { format, now: NOW });
    const text = renderReports(reports, encoding);
    const parsed = (encoding === 'json' ? JSON.parse(text) : parse(text)) as { apiVersion: string; kind: string; items: PolicyReport[] };
    expect([parsed.apiVersion, parsed.kind]).toEqual(['v1', 'List']);
    expect(parsed.items).toEqual(reports);
    const read = kubectlReads<PolicyReport>(text);
    expect(read.map((r) => `${r.kind}/${r.metadata.namespace ?? ''}`)).toEqual(reports.map((r) => `${r.kind}/${r.metadata.namespace ?? ''}`));
    read.forEach((object, i) => {
      const { annotations, ...metadata } = object.metadata as PolicyReport['metadata'] & { annotations?: Record<string, string> };
      expect(annotations).toEqual({ 'gitops-guard.dev/read': 'yes' });
      expect({ ...object, metadata }).toEqual(reports[i]);
    });
  });

  it('renders YAML without folded lines or aliases, and quotes strings that look like numbers', () => {
    const text = renderReports(buildReports(crowded(5000), { format: 'policyreport', now: NOW }), 'yaml');
    expect(text).toMatch(/^ +omitted: "\d+"$/m);
    expect(text).toMatch(/^ +message: "This report lists \d+ of 5000 results: .* list every result\."$/m);
    // Every result carries the same timestamp; YAML anchors and aliases (&a1 / *a1) would be legal but
    // are refused by some tools and hide what each result says.
    expect(text).not.toMatch(/[&*]a\d+\b/);
  });
});

describe('the CRD validator handles the Kubernetes schema extensions', () => {
  const synthetic = (schema: object, scope: 'Cluster' | 'Namespaced' = 'Cluster') =>
    crdValidator({
      spec: {
        group: 'example.com',
        names: { kind: 'Thing', plural: 'things' },
        scope,
        versions: [{ name: 'v1', served: true, schema: { openAPIV3Schema: { type: 'object', properties: { apiVersion: { type: 'string' }, kind: { type: 'string' }, metadata: { type: 'object' }, spec: schema } } } }],
      },
    });
  const thing = (spec: unknown) => ({ apiVersion: 'example.com/v1', kind: 'Thing', metadata: { name: 'a' }, spec });

  it('x-kubernetes-int-or-string: an integer or a string, nothing else', () => {
    const validate = synthetic({ type: 'object', properties: { port: { 'x-kubernetes-int-or-string': true } } });
    expect(validate(thing({ port: 8080 }))).toEqual([]);
    expect(validate(thing({ port: 'metrics' }))).toEqual([]);
    expect(validate(thing({ port: 1.5 })).join()).toContain('/spec/port');
    expect(validate(thing({ port: true })).join()).toContain('/spec/port');
  });

  it('x-kubernetes-preserve-unknown-fields keeps unknown fields; elsewhere they are errors (the API server would prune them)', () => {
    const validate = synthetic({ type: 'object', properties: { open: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true, properties: { a: { type: 'string' } } }, closed: { type: 'object', properties: { a: { type: 'string' } } } } });
    expect(validate(thing({ open: { a: 'x', b: 1 } }))).toEqual([]);
    expect(validate(thing({ closed: { a: 'x', b: 1 } })).join()).toContain('must NOT have additional properties (b)');
  });

  it('x-kubernetes-list-type: atomic allows repeats, set and map (by the map keys) do not', () => {
    const validate = synthetic({
      type: 'object',
      properties: {
        atomic: { type: 'array', 'x-kubernetes-list-type': 'atomic', items: { type: 'string' } },
        set: { type: 'array', 'x-kubernetes-list-type': 'set', items: { type: 'string' } },
        map: { type: 'array', 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'], items: { type: 'object', properties: { name: { type: 'string' }, v: { type: 'integer' } } } },
      },
    });
    expect(validate(thing({ atomic: ['a', 'a'], set: ['a', 'b'], map: [{ name: 'a', v: 1 }, { name: 'b', v: 1 }] }))).toEqual([]);
    expect(validate(thing({ set: ['a', 'a'] })).join()).toContain('/spec/set');
    expect(validate(thing({ map: [{ name: 'a', v: 1 }, { name: 'a', v: 2 }] })).join()).toContain('/spec/map');
  });

  it('refuses what it cannot check instead of passing it: CEL rules, unknown formats', () => {
    expect(() => synthetic({ type: 'object', 'x-kubernetes-validations': [{ rule: 'self.a > 0' }] })).toThrow(/x-kubernetes-validations/);
    expect(() => synthetic({ type: 'string', format: 'date-time' })).toThrow(/unknown format/);
  });

  it('checks metadata as ObjectMeta and the scope of the kind', () => {
    const validate = synthetic({ type: 'object' }, 'Namespaced');
    expect(validate({ ...thing({}), metadata: { name: 'a', namespace: 'ns' } })).toEqual([]);
    expect(validate(thing({}))).toContain('metadata.namespace must be set for a Namespaced-scoped kind');
    expect(validate({ ...thing({}), metadata: { name: 'Not_A_Name', namespace: 'ns' } }).join()).toContain('/metadata/name');
    expect(validate({ ...thing({}), metadata: { name: 'a', namespace: 'ns', uid: 'x', generation: 2 } })).toEqual([]);
    expect(validate({ ...thing({}), metadata: { name: 'a', namespace: 'ns', label: { a: 'b' } } }).join()).toContain('(label)');
  });
});

describe('docs/reports.md', () => {
  const markdown = readFileSync(join(CORPUS_DIR, '..', '..', '..', 'docs', 'reports.md'), 'utf8');

  it('its example report validates against the CRD', () => {
    const example = [...markdown.matchAll(/^```yaml\n([\s\S]*?)^```$/gm)].map((m) => parse(m[1]!) as PolicyReport).find((o) => o?.kind === 'ClusterPolicyReport');
    expect(example).toBeDefined();
    expect(errors(example!)).toEqual([]);
  });

  it('lists every built-in check with its severity, and the budgets the code uses', () => {
    for (const check of Object.values(CHECKS)) expect(markdown).toMatch(new RegExp(`^\\| \`${check.check}\` \\| \`${check.rule}\` \\| ${check.severity}\\b`, 'm'));
    expect(markdown).toContain(`| ${DEFAULT_REPORT_MAX_BYTES / 1024} KiB (default) |`);
    expect(markdown).toContain(`| ${SERVER_SIDE_APPLY_REPORT_MAX_BYTES / 1024 / 1024} MiB |`);
  });
});
