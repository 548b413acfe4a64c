import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { KubeObject } from '../src/api/types.js';
import { RolloutController } from '../src/controller/controller.js';
import { capturingLogger } from './support/app.js';
import { defaultRules, CONTROLLER_TEST_KEY, waitFor } from './support/controller.js';
import { CORPUS_DIR } from './support/corpus.js';
import { crdValidator, readCrd } from './support/crd-schema.js';
import { KubeApiServer } from './support/kube-api-server.js';
import { SCANNED_CLUSTER_RESOURCES } from './support/kube-store.js';
import { fillScanCluster, resourceStatus, type ScanClusterFacts } from './support/scan-cluster.js';

/**
 * The rollout controller's leader scanning the cluster and keeping the policy reports current
 * through the API (server-side apply), against the test API server filled from the Airflow
 * fixtures, with the report CRDs installed: the reports follow an Application that stops
 * claiming the seed case's binding, a deleted workload, and stay as they are when nothing changed.
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

beforeAll(async () => {
  api = await KubeApiServer.start({ resources: SCANNED_CLUSTER_RESOURCES });
  kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(api.writeKubeconfig());
  facts = await fillScanCluster(api, kubeConfig);
  for (const file of CRDS) api.put(parse(readFileSync(join(CORPUS_DIR, 'report-crds', file), 'utf8')) as KubeObject);
  const { logger, lines } = capturingLogger('debug');
  const push = lines.push.bind(lines);
  lines.push = (...items: string[]) => {
    logs.push(...items);
    return push(...items);
  };
  registry = new Registry();
  controller = new RolloutController({
    kubeConfig,
    rules: () => defaultRules,
    checksumKey: CONTROLLER_TEST_KEY,
    identity: 'scanner',
    leaseName: 'gitops-guard-controller-scan',
    leaseNamespace: 'gitops-guard',
    leaseDurationMs: 1000,
    renewDeadlineMs: 700,
    retryPeriodMs: 100,
    coalesceMs: 100,
    maxDelayMs: 1000,
    watchRestartDelayMs: 100,
    retryBaseMs: 100,
    // Audit mode, as a first install runs: the controller rolls nothing, the reports say what it would.
    dryRun: true,
    scan: { intervalMs: 3_600_000, coalesceMs: 150 },
    registry,
    logger,
  });
  await controller.start();
  await waitFor('leadership', () => controller.leading);
  await waitFor('the first scan', () => controller.scansCompleted >= 1, 15_000);
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
