import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { KubeObject } from '../src/api/types.js';
import { RolloutController } from '../src/controller/controller.js';
import { capturingLogger } from './support/app.js';
import { defaultRules, CONTROLLER_TEST_KEY, FAST_CONTROLLER_TIMINGS, waitFor } from './support/controller.js';
import { CORPUS_DIR } from './support/corpus.js';
import { crdValidator, readCrd } from './support/crd-schema.js';
import { KubeApiServer } from './support/kube-api-server.js';
import { SCANNED_CLUSTER_RESOURCES } from './support/kube-store.js';
import type { ReportsSetting } from '../src/scan/report-writer.js';
import { fillScanCluster, resourceStatus, type ScanClusterFacts } from './support/scan-cluster.js';

/**
 * The rollout controller's leader scanning the cluster and keeping the policy reports current
 * through the API (server-side apply), against the test API server filled from the Airflow
 * fixtures, with the report CRDs installed: the reports follow an Application that stops
 * claiming the seed case's binding, a deleted workload, and stay as they are when nothing changed;
 * they carry nothing derived from a Secret. Only report APIs the cluster serves are written, the
 * one `--reports` names, or none with `--reports off`.
 */

const CRDS = ['wgpolicyk8s.io_clusterpolicyreports.yaml', 'wgpolicyk8s.io_policyreports.yaml'];
const validators = Object.fromEntries(
  CRDS.map((file) => {
    const crd = readCrd(join(CORPUS_DIR, 'report-crds', file));
    return [crd.spec.names.kind, crdValidator(crd)];
  }),
);

let api: KubeApiServer;
let kubeConfig: KubeConfig;
let facts: ScanClusterFacts;
let controller: RolloutController;
let registry: Registry;
const logs: string[] = [];

const installCrd = (api: KubeApiServer, file: string) => api.put(parse(readFileSync(join(CORPUS_DIR, 'report-crds', file), 'utf8')) as KubeObject);

/** A leader scanning `kubeConfig`'s cluster, in audit mode as a first install runs, after its first scan. */
async function startScanner(kubeConfig: KubeConfig, registry: Registry, logs: string[], reports?: ReportsSetting): Promise<RolloutController> {
  const { logger, lines } = capturingLogger('debug');
  const push = lines.push.bind(lines);
  lines.push = (...items: string[]) => {
    logs.push(...items);
    return push(...items);
  };
  const controller = new RolloutController({
    kubeConfig,
    rules: () => defaultRules,
    checksumKey: CONTROLLER_TEST_KEY,
    identity: 'scanner',
    leaseName: 'gitops-guard-controller-scan',
    ...FAST_CONTROLLER_TIMINGS,
    // Audit mode, as a first install runs: the controller rolls nothing, the reports say what it would.
    dryRun: true,
    scan: { intervalMs: 3_600_000, coalesceMs: 150, ...(reports ? { reports } : {}) },
    registry,
    logger,
  });
  await controller.start();
  await waitFor('leadership', () => controller.leading);
  await waitFor('the first scan', () => controller.scansCompleted >= 1, 15_000);
  return controller;
}

beforeAll(async () => {
  api = await KubeApiServer.start({ resources: SCANNED_CLUSTER_RESOURCES });
  kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(api.writeKubeconfig());
  facts = await fillScanCluster(api, kubeConfig);
  for (const file of CRDS) installCrd(api, file);
  registry = new Registry();
  controller = await startScanner(kubeConfig, registry, logs);
}, 30_000);
afterAll(async () => {
  await controller?.stop();
  await api?.close();
});

const clusterReport = () => api.get('wgpolicyk8s.io/v1alpha2', 'ClusterPolicyReport', '', 'gitops-guard') as any;
const report = (namespace: string) => api.get('wgpolicyk8s.io/v1alpha2', 'PolicyReport', namespace, 'gitops-guard') as any;
const seedResult = () => clusterReport().results.find((r: any) => r.rule === 'shared-object' && r.resources?.[0]?.name === 'airflow-pre-checker-binding');
const metric = async (name: string, labels: Record<string, string>) =>
  (await registry.getSingleMetric(name)!.get()).values.find((v) => Object.entries(labels).every(([k, value]) => v.labels[k] === value))?.value;

async function nextScan(change: () => void): Promise<void> {
  const before = controller.scansCompleted;
  change();
  await waitFor('a scan after the change', () => controller.scansCompleted > before, 10_000);
}

describe('the controller\'s cluster scan', () => {
  it('writes the reports through the API with server-side apply, under its own field manager; they validate against the CRDs', async () => {
    const applies = api.patches.filter((p) => p.contentType === 'application/apply-patch+yaml');
    expect(new Set(applies.map((p) => p.fieldManager))).toEqual(new Set(['gitops-guard-controller']));
    expect(applies.every((p) => p.force === true)).toBe(true);
    expect(clusterReport()).toBeDefined();
    for (const ns of ['canary', 'pdp-dev', 'shop', 'smartdq-dev']) expect(validators.PolicyReport!(report(ns)), ns).toEqual([]);
    expect(validators.ClusterPolicyReport!(clusterReport())).toEqual([]);
    expect(seedResult()).toMatchObject({ result: 'fail', properties: { apps: 'argocd/pdp-dev-airflow,argocd/smartdq-dev-airflow', holder: 'argocd/pdp-dev-airflow' } });
    expect(report('shop').results.find((r: any) => r.rule === 'stale-checksum')).toMatchObject({ result: 'fail', resources: [{ name: 'web' }] });
    // The scan metrics, on the leader.
    expect(await metric('gitops_guard_scan_findings', { check: 'single-owner', rule: 'shared-object', result: 'fail' })).toBe(1);
    expect(await metric('gitops_guard_scan_findings', { check: 'config-checksum', rule: 'stale-checksum', result: 'fail' })).toBe(3);
    expect(await metric('gitops_guard_scan_runs_total', { result: 'success' })).toBeGreaterThanOrEqual(1);
    // Audit mode: nothing was rolled.
    expect(api.patches.filter((p) => p.path.includes('/deployments/'))).toEqual([]);
  });

  it('the reports hold no Secret value, nothing derived from it, and not the cluster-key checksum of a Secret consumer', () => {
    expect(report('canary').results.some((r: any) => r.resources?.[0]?.name === 'vault-reader')).toBe(true);
    const stored = JSON.stringify([...api.list('wgpolicyk8s.io/v1alpha2', 'PolicyReport'), ...api.list('wgpolicyk8s.io/v1alpha2', 'ClusterPolicyReport')]);
    const sent = JSON.stringify(api.patches.filter((p) => p.contentType === 'application/apply-patch+yaml').map((p) => p.body));
    for (const text of [stored, sent]) {
      for (const derived of facts.canaryDerived) expect(text).not.toContain(derived);
      expect(text).not.toContain(facts.canaryClusterChecksum.slice(3));
    }
  });

  it('updates the reports when an Application stops claiming the object (the Application watch starts a scan)', async () => {
    const smartdq = structuredClone(facts.apps.smartdq) as any;
    smartdq.status.resources = smartdq.status.resources.filter((r: any) => r.kind !== 'ClusterRoleBinding');
    await nextScan(() => api.put(smartdq));
    await waitFor('the seed case to pass', () => seedResult()?.result === 'pass', 5000);
    expect(seedResult().properties).toEqual({ apps: 'argocd/pdp-dev-airflow' });
    expect(await metric('gitops_guard_scan_findings', { check: 'single-owner', rule: 'shared-object', result: 'fail' })).toBe(0);
    // ...and back.
    const claimed = structuredClone(smartdq);
    claimed.status.resources.push(resourceStatus({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'airflow-pre-checker-binding' } }));
    await nextScan(() => api.put(claimed));
    expect(seedResult().result).toBe('fail');
  });

  it('an Application\'s status or health changing is no reason to scan', async () => {
    const before = controller.scansCompleted;
    const pdp = api.get('argoproj.io/v1alpha1', 'Application', 'argocd', 'pdp-dev-airflow') as any;
    pdp.status.health = { status: 'Progressing' };
    api.put(pdp);
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(controller.scansCompleted).toBe(before);
  });

  it('results of deleted objects disappear; a namespace with nothing left is cleared; unchanged reports are not written again', async () => {
    const canaryBefore = report('canary').metadata.resourceVersion;
    const pdpBefore = report('pdp-dev').metadata.resourceVersion;
    await nextScan(() => api.delete('apps/v1', 'Deployment', 'shop', 'web'));
    expect(report('shop').results.some((r: any) => r.resources?.[0]?.name === 'web')).toBe(false);
    expect(report('canary').metadata.resourceVersion).toBe(canaryBefore);
    expect(report('pdp-dev').metadata.resourceVersion).toBe(pdpBefore);
    expect(await metric('gitops_guard_scan_report_writes_total', { result: 'unchanged' })).toBeGreaterThan(0);

    await nextScan(() => api.delete('apps/v1', 'Deployment', 'canary', 'vault-reader'));
    expect(report('canary')).toMatchObject({ results: [], summary: { pass: 0, fail: 0, warn: 0, error: 0, skip: 0 } });
  });

  it('logs no Secret value or anything derived from it without the cluster key', () => {
    expect(logs.some((l) => l.includes('"cluster scan completed"'))).toBe(true);
    for (const derived of facts.canaryDerived) expect(logs.join('\n')).not.toContain(derived);
  });

  it('losing leadership stops scanning and clears the scan metrics (only the leader reports)', async () => {
    await controller.stop();
    expect(controller.leading).toBe(false);
    expect((await registry.getSingleMetric('gitops_guard_scan_findings')!.get()).values).toEqual([]);
    expect(await metric('gitops_guard_scan_last_run_timestamp_seconds', {})).toBe(0);
  });
});

describe('which report API the controller writes', () => {
  const clusters: KubeApiServer[] = [];
  const controllers: RolloutController[] = [];
  afterAll(async () => {
    for (const c of controllers) await c.stop();
    for (const c of clusters) await c.close();
  });
  async function scanned(crds: string[], reports?: ReportsSetting) {
    const api = await KubeApiServer.start({ resources: SCANNED_CLUSTER_RESOURCES });
    clusters.push(api);
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(api.writeKubeconfig());
    await fillScanCluster(api, kubeConfig);
    for (const file of crds) installCrd(api, file);
    api.clearRequests();
    const logs: string[] = [];
    const controller = await startScanner(kubeConfig, new Registry(), logs, reports);
    controllers.push(controller);
    await controller.stop();
    const completed = logs.map((l) => JSON.parse(l)).find((l) => l.msg === 'cluster scan completed');
    return { api, completed, reportRequests: (group: string) => api.requests.filter((r) => r.path.startsWith(`/apis/${group}/`)) };
  }
  const OPENREPORTS = ['openreports.io_clusterreports.yaml', 'openreports.io_reports.yaml'];

  it('auto on a cluster that serves only openreports.io: ClusterReport and Reports, validating against their CRDs; of wgpolicyk8s.io only discovery is asked', async () => {
    const { api, completed, reportRequests } = await scanned(OPENREPORTS);
    expect(completed.reports).toMatchObject({ api: 'openreports', failed: 0 });
    const cluster = api.get('openreports.io/v1alpha1', 'ClusterReport', '', 'gitops-guard') as any;
    const validate = { ClusterReport: crdValidator(readCrd(join(CORPUS_DIR, 'report-crds', OPENREPORTS[0]!))), Report: crdValidator(readCrd(join(CORPUS_DIR, 'report-crds', OPENREPORTS[1]!))) };
    expect(validate.ClusterReport(cluster)).toEqual([]);
    expect(cluster.results.find((r: any) => r.rule === 'shared-object' && r.resources[0].name === 'airflow-pre-checker-binding')).toMatchObject({ result: 'fail' });
    const namespaced = api.list('openreports.io/v1alpha1', 'Report');
    expect(namespaced.map((r) => r.metadata!.namespace).sort()).toEqual(['canary', 'pdp-dev', 'shop', 'smartdq-dev']);
    for (const r of namespaced) expect(validate.Report(r), r.metadata!.namespace).toEqual([]);
    expect(reportRequests('wgpolicyk8s.io').map((r) => `${r.method} ${r.path}`)).toEqual(['GET /apis/wgpolicyk8s.io/v1alpha2']);
  });

  it('--reports wgpolicyk8s on a cluster that serves only openreports.io: nothing written, and the log says why', async () => {
    const { api, completed, reportRequests } = await scanned(OPENREPORTS, 'wgpolicyk8s');
    expect(completed.reports).toBe('the cluster serves no report API (wgpolicyk8s.io/v1alpha2): install the CRDs to get reports');
    expect(api.list('openreports.io/v1alpha1', 'Report')).toEqual([]);
    expect(reportRequests('openreports.io')).toEqual([]);
    expect(api.patches.filter((p) => p.contentType === 'application/apply-patch+yaml')).toEqual([]);
  });

  it('--reports off: the scan runs, no report API is asked or written', async () => {
    const { api, completed, reportRequests } = await scanned([...CRDS, ...OPENREPORTS], 'off');
    expect(completed.reports).toBe('reports are turned off (--reports off)');
    expect(completed.findings.fail).toBeGreaterThan(0);
    expect([...reportRequests('wgpolicyk8s.io'), ...reportRequests('openreports.io')]).toEqual([]);
    expect(api.patches.filter((p) => p.contentType === 'application/apply-patch+yaml')).toEqual([]);
  });
});
