import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CORPUS_DIR } from '../../test/support/corpus.js';
import { crdValidator, readCrd } from '../../test/support/crd-schema.js';
import { KubeApiServer } from '../../test/support/kube-api-server.js';
import { DEFAULT_RESOURCES } from '../../test/support/kube-store.js';
import type { KubeObject } from '../api/types.js';
import { ClientNodeObjectApplier } from '../kube/apply.js';
import { ApiDiscovery } from '../kube/discovery.js';
import { ClientNodeObjectLister } from '../kube/list.js';
import { apiJsonBytes, CHECKS, SERVER_SIDE_APPLY_REPORT_MAX_BYTES, type Finding } from '../report/index.js';
import { REPORT_DIGEST_ANNOTATION, REPORT_FIELD_MANAGER, writeReports, type ReportsSetting } from './report-writer.js';

const CRD_FILES = {
  ClusterPolicyReport: 'wgpolicyk8s.io_clusterpolicyreports.yaml',
  PolicyReport: 'wgpolicyk8s.io_policyreports.yaml',
  ClusterReport: 'openreports.io_clusterreports.yaml',
  Report: 'openreports.io_reports.yaml',
} as const;
type ReportKind = keyof typeof CRD_FILES;
const crdObject = (kind: ReportKind) => parse(readFileSync(join(CORPUS_DIR, 'report-crds', CRD_FILES[kind]), 'utf8')) as KubeObject;
const validate = (object: KubeObject) => crdValidator(readCrd(join(CORPUS_DIR, 'report-crds', CRD_FILES[object.kind as ReportKind])))(object);

const NOW = new Date('2024-05-01T12:00:00Z');
const running: KubeApiServer[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((a) => a.close()));
});

async function cluster(kinds: ReportKind[]) {
  const api = await KubeApiServer.start({ resources: DEFAULT_RESOURCES.concat([{ group: 'apiextensions.k8s.io', kind: 'CustomResourceDefinition', plural: 'customresourcedefinitions', namespaced: false }]) });
  running.push(api);
  for (const kind of kinds) api.put(crdObject(kind));
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(api.writeKubeconfig());
  const deps = { discovery: new ApiDiscovery(kubeConfig), lister: new ClientNodeObjectLister(kubeConfig), applier: new ClientNodeObjectApplier(kubeConfig) };
  const write = (findings: Finding[], setting: ReportsSetting = 'auto', namespaces?: string[]) => writeReports(deps, { setting, findings, now: NOW, ...(namespaces ? { namespaces } : {}) });
  return { api, write };
}

const stale = (namespace: string, name: string, result: Finding['result'] = 'fail'): Finding => ({
  check: CHECKS.staleChecksum.check,
  rule: CHECKS.staleChecksum.rule,
  result,
  severity: 'medium',
  category: 'Configuration',
  message: `Deployment ${namespace}/${name}: its pods run older ConfigMap/Secret content than the cluster holds`,
  resource: { apiVersion: 'apps/v1', kind: 'Deployment', namespace, name, uid: `uid-${namespace}-${name}` },
});
const shared: Finding = {
  check: 'single-owner',
  rule: 'shared-object',
  result: 'fail',
  severity: 'high',
  category: 'Ownership',
  message: 'ClusterRoleBinding/airflow-pre-checker-binding is claimed by 2 Argo CD Applications',
  resource: { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', name: 'airflow-pre-checker-binding' },
  properties: { apps: 'argocd/pdp-dev-airflow,argocd/smartdq-dev-airflow' },
};

describe('writing policy reports', () => {
  it('auto with both APIs served: wgpolicyk8s.io, with server-side apply under gitops-guard\'s field manager; the stored reports validate', async () => {
    const { api, write } = await cluster(['ClusterPolicyReport', 'PolicyReport', 'ClusterReport', 'Report']);
    const result = await write([shared, stale('shop', 'web'), stale('team-a', 'api', 'pass')]);
    expect(result).toEqual({ format: 'policyreport', written: 3, unchanged: 0, failed: [] });
    const applies = api.patches.filter((p) => p.contentType === 'application/apply-patch+yaml');
    expect(applies.map((p) => [p.path, p.fieldManager, p.force, p.status])).toEqual([
      ['/apis/wgpolicyk8s.io/v1alpha2/clusterpolicyreports/gitops-guard', REPORT_FIELD_MANAGER, true, 201],
      ['/apis/wgpolicyk8s.io/v1alpha2/namespaces/shop/policyreports/gitops-guard', REPORT_FIELD_MANAGER, true, 201],
      ['/apis/wgpolicyk8s.io/v1alpha2/namespaces/team-a/policyreports/gitops-guard', REPORT_FIELD_MANAGER, true, 201],
    ]);
    const stored = api.get('wgpolicyk8s.io/v1alpha2', 'ClusterPolicyReport', '', 'gitops-guard')!;
    expect(validate(stored)).toEqual([]);
    expect(validate(api.get('wgpolicyk8s.io/v1alpha2', 'PolicyReport', 'shop', 'gitops-guard')!)).toEqual([]);
    expect((stored as any).results[0]).toMatchObject({ policy: 'single-owner', rule: 'shared-object', result: 'fail', resources: [{ name: 'airflow-pre-checker-binding' }] });
    expect(stored.metadata!.annotations![REPORT_DIGEST_ANNOTATION]).toMatch(/^[0-9a-f]{64}$/);
    expect(api.list('openreports.io/v1alpha1', 'Report')).toEqual([]);
  });

  it('unchanged results are not written again; deleted objects\' results go; a namespace with nothing left is cleared, others are left alone', async () => {
    const { api, write } = await cluster(['ClusterPolicyReport', 'PolicyReport']);
    await write([shared, stale('shop', 'web'), stale('shop', 'api'), stale('gone', 'old')]);
    const before = api.get('wgpolicyk8s.io/v1alpha2', 'PolicyReport', 'shop', 'gitops-guard')!.metadata!.resourceVersion;
    // Someone else's report in the namespace is none of gitops-guard's business.
    api.put({ apiVersion: 'wgpolicyk8s.io/v1alpha2', kind: 'PolicyReport', metadata: { name: 'kyverno-pol', namespace: 'gone' }, results: [] });
    api.patches.length = 0;

    const again = await write([shared, stale('shop', 'web'), stale('shop', 'api'), stale('gone', 'old')]);
    expect(again).toEqual({ format: 'policyreport', written: 0, unchanged: 3, failed: [] });
    expect(api.patches).toEqual([]);
    expect(api.get('wgpolicyk8s.io/v1alpha2', 'PolicyReport', 'shop', 'gitops-guard')!.metadata!.resourceVersion).toBe(before);

    const after = await write([stale('shop', 'web')]);
    expect(after).toEqual({ format: 'policyreport', written: 3, unchanged: 0, failed: [] });
    expect((api.get('wgpolicyk8s.io/v1alpha2', 'PolicyReport', 'shop', 'gitops-guard') as any).results.map((r: any) => r.resources[0].name)).toEqual(['web']);
    expect(api.get('wgpolicyk8s.io/v1alpha2', 'PolicyReport', 'gone', 'gitops-guard')).toMatchObject({ results: [], summary: { pass: 0, fail: 0, warn: 0, error: 0, skip: 0 } });
    expect(api.get('wgpolicyk8s.io/v1alpha2', 'ClusterPolicyReport', '', 'gitops-guard')).toMatchObject({ results: [] });
    expect(api.get('wgpolicyk8s.io/v1alpha2', 'PolicyReport', 'gone', 'kyverno-pol')).toBeDefined();
  });

  it('with --namespaces only the reports of those namespaces are read and cleared', async () => {
    const { api, write } = await cluster(['ClusterPolicyReport', 'PolicyReport']);
    await write([stale('shop', 'web'), stale('other', 'x')]);
    await write([], 'auto', ['shop']);
    expect(api.get('wgpolicyk8s.io/v1alpha2', 'PolicyReport', 'shop', 'gitops-guard')).toMatchObject({ results: [] });
    expect((api.get('wgpolicyk8s.io/v1alpha2', 'PolicyReport', 'other', 'gitops-guard') as any).results).toHaveLength(1);
  });

  it('falls back to openreports.io when only it is served; writes only the kinds served; nothing without report CRDs', async () => {
    const open = await cluster(['ClusterReport', 'Report']);
    expect(await open.write([shared, stale('shop', 'web')])).toMatchObject({ format: 'openreports', written: 2 });
    expect(validate(open.api.get('openreports.io/v1alpha1', 'Report', 'shop', 'gitops-guard')!)).toEqual([]);
    expect(open.api.get('openreports.io/v1alpha1', 'ClusterReport', '', 'gitops-guard')).toMatchObject({ source: 'gitops-guard' });

    const namespacedOnly = await cluster(['PolicyReport']);
    expect(await namespacedOnly.write([shared, stale('shop', 'web')])).toMatchObject({ format: 'policyreport', written: 1 });

    const none = await cluster([]);
    expect(await none.write([shared])).toEqual({
      format: null,
      why: 'the cluster serves no report API (wgpolicyk8s.io/v1alpha2 or openreports.io/v1alpha1): install the CRDs to get reports',
      written: 0,
      unchanged: 0,
      failed: [],
    });
    expect(none.api.patches).toEqual([]);
    expect(await open.write([shared], 'wgpolicyk8s')).toMatchObject({ format: null, why: expect.stringContaining('wgpolicyk8s.io/v1alpha2') });
    expect(await open.write([shared], 'off')).toEqual({ format: null, why: 'reports are turned off (--reports off)', written: 0, unchanged: 0, failed: [] });
  });

  it('a report never exceeds the size limit for server-side apply: results beyond it are left out with a note', async () => {
    const { api, write } = await cluster(['ClusterPolicyReport', 'PolicyReport']);
    const many = Array.from({ length: 4000 }, (_, i) => stale('big', `app-${String(i).padStart(4, '0')}`, i % 5 === 0 ? 'fail' : 'pass'));
    expect(await write(many)).toMatchObject({ written: 2, failed: [] });
    const report = api.get('wgpolicyk8s.io/v1alpha2', 'PolicyReport', 'big', 'gitops-guard') as any;
    const sent = api.patches.find((p) => p.path.endsWith('/namespaces/big/policyreports/gitops-guard'))!.body;
    expect(apiJsonBytes(sent)).toBeLessThanOrEqual(SERVER_SIDE_APPLY_REPORT_MAX_BYTES + 200); // + the digest annotation
    expect(report.results.at(-1)).toMatchObject({ policy: 'gitops-guard', rule: 'report-truncated', result: 'warn' });
    expect(report.summary).toMatchObject({ fail: 800, pass: 3200 });
    expect(report.results.filter((r: any) => r.result === 'fail')).toHaveLength(800);
    expect(validate(report)).toEqual([]);
  });

  it('a report that cannot be written is named with the status and reason; the others are written', async () => {
    const { api, write } = await cluster(['ClusterPolicyReport', 'PolicyReport']);
    api.fault({ method: 'PATCH', path: '/apis/wgpolicyk8s.io/v1alpha2/namespaces/shop/policyreports/gitops-guard' }, { status: 403 });
    const result = await write([shared, stale('shop', 'web'), stale('team-a', 'api')]);
    expect(result).toEqual({ format: 'policyreport', written: 2, unchanged: 0, failed: [{ report: 'PolicyReport shop/gitops-guard', error: 'HTTP 403 Forbidden' }] });
  });
});
