import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capturingLogger } from '../../test/support/app.js';
import { defaultRules, webhookChecksum } from '../../test/support/controller.js';
import { KubeApiServer } from '../../test/support/kube-api-server.js';
import { ARGOCD_CLUSTER_RESOURCES, SCANNED_CLUSTER_RESOURCES } from '../../test/support/kube-store.js';
import { fillScanCluster, SCAN_KEY, type ScanClusterFacts } from '../../test/support/scan-cluster.js';
import { createRegistry } from '../actions/registry.js';
import { ClientNodeReader } from '../kube/client-node-reader.js';
import { ApiDiscovery } from '../kube/discovery.js';
import { ClientNodeObjectLister } from '../kube/list.js';
import type { Finding } from '../report/index.js';
import { parseRuleSet } from '../rules/load.js';
import { runScan, type ScanOptions } from './scan.js';

const registry = createRegistry();
let api: KubeApiServer;
let kubeConfig: KubeConfig;
let facts: ScanClusterFacts;

beforeAll(async () => {
  api = await KubeApiServer.start({ resources: SCANNED_CLUSTER_RESOURCES });
  kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(api.writeKubeconfig());
  facts = await fillScanCluster(api, kubeConfig);
});
afterAll(() => api.close());

function scan(options: Partial<ScanOptions> = {}, config = kubeConfig) {
  const { logger, lines } = capturingLogger('debug');
  const deps = { lister: new ClientNodeObjectLister(config), discovery: new ApiDiscovery(config), kube: new ClientNodeReader(config), registry, logger };
  return runScan(deps, { ruleSet: defaultRules, checksumKey: SCAN_KEY, ...options }).then((result) => ({ ...result, lines }));
}

const about = (findings: Finding[], check: string, rule: string, name?: string) =>
  findings.filter((f) => f.check === check && f.rule === rule && (name === undefined || f.resource?.name === name));
const one = (findings: Finding[], check: string, rule: string, name: string) => {
  const found = about(findings, check, rule, name);
  expect(found, `${check}/${rule} ${name}`).toHaveLength(1);
  return found[0]!;
};

describe('the cluster scan', () => {
  it('the seed case: ClusterRoleBinding/airflow-pre-checker-binding is claimed by pdp-dev-airflow and smartdq-dev-airflow; the one holding it now is named', async () => {
    const { findings } = await scan();
    const shared = one(findings, 'single-owner', 'shared-object', 'airflow-pre-checker-binding');
    expect(shared).toMatchObject({
      result: 'fail',
      severity: 'high',
      resource: { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', name: 'airflow-pre-checker-binding', uid: expect.any(String) },
      properties: { apps: 'argocd/pdp-dev-airflow,argocd/smartdq-dev-airflow', holder: 'argocd/pdp-dev-airflow' },
    });
    expect(shared.resource).not.toHaveProperty('namespace');
    expect(shared.message).toContain('argocd/pdp-dev-airflow holds it now (argocd:pdp-dev-airflow, from its tracking metadata)');
    expect(shared.message).toContain('kubectl annotate clusterrolebindings.rbac.authorization.k8s.io airflow-pre-checker-binding gitops-guard.dev/handover-to=argocd:smartdq-dev-airflow');
    // Audit mode never wrote an owner annotation: the claims come from the Applications.
    expect(api.get('rbac.authorization.k8s.io/v1', 'ClusterRoleBinding', '', 'airflow-pre-checker-binding')!.metadata!.annotations).not.toHaveProperty(['gitops-guard.dev/owner']);
    // Objects one app claims pass; namespaced objects no owner rule selects get no shared-object result.
    expect(about(findings, 'single-owner', 'shared-object').filter((f) => f.result === 'fail')).toHaveLength(1);
    expect(one(findings, 'single-owner', 'shared-object', 'pdp-dev-airflow-pre-checker')).toMatchObject({ result: 'pass', properties: { apps: 'argocd/pdp-dev-airflow' } });
    expect(about(findings, 'single-owner', 'shared-object', 'web')).toEqual([]);
  });

  it('under annotation tracking the chart\'s own instance label is no owner; with label tracking configured it is, exactly as the webhook resolves it', async () => {
    const annotation = (await scan()).findings;
    expect(one(annotation, 'single-owner', 'owner-conflict', 'airflow-shared-reader')).toMatchObject({ result: 'pass' });
    expect(one(annotation, 'single-owner', 'shared-object', 'airflow-shared-reader')).toMatchObject({ result: 'pass' });

    const labelFirst = parseRuleSet(
      `apiVersion: gitops-guard.dev/v1alpha1
kind: RuleSet
rules:
  - name: deny-duplicate-owner
    match: { kinds: [{ group: rbac.authorization.k8s.io, kind: ClusterRole }] }
    action: { type: denyDuplicateOwner, params: { sources: [argocdLabel, argocdAnnotation] } }
`,
      'label-tracking rules',
      registry,
    );
    const label = (await scan({ ruleSet: labelFirst })).findings;
    expect(one(label, 'single-owner', 'owner-conflict', 'airflow-shared-reader')).toMatchObject({
      result: 'fail',
      properties: { recorded: 'argocd:pdp-dev-airflow', owner: 'argocd:smartdq-dev-airflow', source: 'argocdLabel' },
    });
    expect(one(label, 'single-owner', 'shared-object', 'airflow-shared-reader')).toMatchObject({
      result: 'fail',
      properties: { apps: 'argocd/pdp-dev-airflow,argocd/smartdq-dev-airflow', holder: 'argocd/smartdq-dev-airflow' },
    });
  });

  it('an owner record the tracking metadata contradicts: the next sync would be denied in enforce mode', async () => {
    const { findings } = await scan();
    const conflict = one(findings, 'single-owner', 'owner-conflict', 'smartdq-dev-airflow-pre-checker');
    expect(conflict).toMatchObject({ result: 'fail', severity: 'high', properties: { recorded: 'argocd:pdp-dev-airflow', owner: 'argocd:smartdq-dev-airflow', source: 'argocdAnnotation' } });
    expect(conflict.message).toContain('gitops-guard.dev/handover-to=argocd:smartdq-dev-airflow');
    // ...which is what the deny rule itself says, in audit mode's words.
    expect(one(findings, 'deny-duplicate-owner', 'denyDuplicateOwner', 'smartdq-dev-airflow-pre-checker')).toMatchObject({ result: 'fail', category: 'Rules' });
    expect(one(findings, 'deny-duplicate-owner', 'denyDuplicateOwner', 'pdp-dev-airflow-pre-checker').result).toBe('pass');
    expect(one(findings, 'tag-owner', 'tagOwner', 'airflow-pre-checker-binding')).toMatchObject({ result: 'warn' });
    expect(one(findings, 'tag-owner', 'tagOwner', 'airflow-pre-checker-binding').message).toContain('add /metadata/annotations/gitops-guard.dev~1owner');
  });

  it('workloads: stale after a ConfigMap change (checksums shown: no Secret consumed), a missing required ConfigMap, one up to date, a Secret consumer without checksums', async () => {
    const { findings } = await scan();
    expect(one(findings, 'config-checksum', 'stale-checksum', 'web')).toMatchObject({ result: 'fail', resource: { namespace: 'shop', kind: 'Deployment' }, properties: { stamped: facts.shopStamped, current: facts.shopCurrent } });
    expect(facts.shopStamped).not.toBe(facts.shopCurrent);
    expect(one(findings, 'config-checksum', 'stale-checksum', 'pdp-dev-airflow-webserver')).toMatchObject({ result: 'pass' });
    expect(one(findings, 'config-checksum', 'stale-checksum', 'pdp-dev-airflow-webserver')).not.toHaveProperty('properties');
    const missing = one(findings, 'config-checksum', 'missing-reference', 'smartdq-dev-airflow-webserver');
    expect(missing).toMatchObject({ result: 'fail', severity: 'medium' });
    expect(missing.message).toContain('requires ConfigMap smartdq-dev-airflow-config, which does not exist in namespace smartdq-dev');
    expect(one(findings, 'config-checksum', 'missing-reference', 'pdp-dev-airflow-webserver').result).toBe('pass');
    const canary = one(findings, 'config-checksum', 'stale-checksum', 'vault-reader');
    expect(canary).toMatchObject({ result: 'fail' });
    expect(canary).not.toHaveProperty('properties');
    expect(one(findings, 'stamp-config-checksum', 'stampConfigChecksum', 'vault-reader')).toMatchObject({ result: 'warn', severity: 'low' });
    for (const name of ['web', 'vault-reader', 'pdp-dev-airflow-webserver']) expect(one(findings, 'config-checksum', 'missing-checksum', name).result).toBe('pass');
    // The facts the canary test relies on are what the webhook computes.
    expect(facts.canaryClusterChecksum).toBe(await webhookChecksum(kubeConfig, api.get('apps/v1', 'Deployment', 'canary', 'vault-reader')!));
    for (const derived of [...facts.canaryDerived, facts.canaryClusterChecksum]) expect(JSON.stringify(findings)).not.toContain(derived);
  });

  it('without the cluster\'s key: stale-checksum is skipped and says why; missing references are still found; nothing Secret-derived is produced', async () => {
    const { findings } = await scan({ checksumKey: undefined });
    expect(about(findings, 'config-checksum', 'stale-checksum')).toEqual([
      expect.objectContaining({ result: 'skip', message: expect.stringContaining('no checksum key given (--checksum-key') }),
    ]);
    expect(about(findings, 'config-checksum', 'stale-checksum')[0]).not.toHaveProperty('resource');
    expect(one(findings, 'config-checksum', 'missing-reference', 'smartdq-dev-airflow-webserver').result).toBe('fail');
    expect(one(findings, 'stamp-config-checksum', 'stampConfigChecksum', 'web')).toMatchObject({ result: 'skip' });
    expect(JSON.stringify(findings)).not.toMatch(/v2:[0-9a-f]{64}/);
  });

  it('owner kinds are listed as metadata only (their rules read nothing else), workloads and Applications whole', async () => {
    api.clearRequests();
    await scan();
    // Owner kinds are listed as metadata, workloads as whole objects (the test server answers what is asked).
    const lists = api.requests.filter((r) => r.method === 'GET' && /\/(clusterroles|clusterrolebindings|deployments|applications)$/.test(r.path));
    const asked = (r: (typeof lists)[number]) => `${r.path} ${/as=PartialObjectMetadataList/.test(r.accept ?? '') ? 'metadata' : 'whole'}`;
    expect(lists.map(asked).sort()).toEqual([
      '/apis/apps/v1/deployments whole',
      '/apis/argoproj.io/v1alpha1/applications whole',
      '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings metadata',
      '/apis/rbac.authorization.k8s.io/v1/clusterroles metadata',
    ]);
  });

  it('--namespaces: namespaced objects only there; cluster-scoped objects and Applications everywhere', async () => {
    api.clearRequests();
    const { findings } = await scan({ namespaces: ['shop'] });
    expect(new Set(findings.map((f) => f.resource?.namespace).filter(Boolean))).toEqual(new Set(['shop']));
    expect(one(findings, 'single-owner', 'shared-object', 'airflow-pre-checker-binding').result).toBe('fail');
    expect(api.requests.some((r) => r.path === '/apis/apps/v1/namespaces/shop/deployments')).toBe(true);
    expect(api.requests.some((r) => r.path === '/apis/apps/v1/deployments')).toBe(false);
  });

  it('a forbidden list is reported by kind and the rest is scanned; paging over more objects than one page', async () => {
    api.clearRequests();
    api.fault({ path: '/apis/rbac.authorization.k8s.io/v1/clusterroles' }, { status: 403 });
    try {
      const { findings, failures, scanned } = await scan({ pageSize: 2 });
      expect(failures).toEqual(['listing clusterroles.rbac.authorization.k8s.io failed (HTTP 403 Forbidden): those objects were not scanned']);
      expect(about(findings, 'gitops-guard', 'scan-error')).toEqual([expect.objectContaining({ result: 'error', message: failures[0] })]);
      expect(about(findings, 'single-owner', 'owner-conflict', 'smartdq-dev-airflow-pre-checker')).toEqual([]);
      expect(one(findings, 'single-owner', 'shared-object', 'airflow-pre-checker-binding').result).toBe('fail');
      expect(scanned.find((s) => s.resource === 'deployments.apps')).toEqual({ resource: 'deployments.apps', objects: 4 });
      const deploymentLists = api.requests.filter((r) => r.path === '/apis/apps/v1/deployments');
      expect(deploymentLists).toHaveLength(2);
      expect(deploymentLists[1]!.query).toContain('continue=');
      expect(about(findings, 'config-checksum', 'stale-checksum').map((f) => f.resource?.name).sort()).toEqual(['pdp-dev-airflow-webserver', 'smartdq-dev-airflow-webserver', 'vault-reader', 'web']);
    } finally {
      api.clearFaults();
    }
  });

  it('a cluster without Argo CD has no shared-object check, and says so: not an error', async () => {
    const bare = await KubeApiServer.start({ resources: ARGOCD_CLUSTER_RESOURCES.filter((r) => r.kind !== 'Application' && r.kind !== 'AppProject') });
    try {
      const config = new KubeConfig();
      config.loadFromFile(bare.writeKubeconfig());
      const result = await scan({}, config);
      expect(result.applications).toBeNull();
      expect(result.failures).toEqual([]);
      expect(about(result.findings, 'single-owner', 'shared-object')).toEqual([expect.objectContaining({ result: 'skip', message: expect.stringContaining('this cluster has no Argo CD') })]);
      expect(result.notServed).toEqual(expect.arrayContaining(['ClusterRole.rbac.authorization.k8s.io', 'Rollout.argoproj.io']));
    } finally {
      await bare.close();
    }
  });

  it('never logs the canary Secret or anything derived from it', async () => {
    const { lines } = await scan();
    expect(lines.length).toBeGreaterThan(0);
    for (const derived of facts.canaryDerived) expect(lines.join('\n')).not.toContain(derived);
  });
});
