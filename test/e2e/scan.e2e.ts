/**
 * Opt-in end-to-end tier for the cluster scan: `gitops-guard scan` against the tier's API, and the
 * rollout controller's leader keeping the policy reports current there with server-side apply.
 * `npm run test:e2e:peer` provides everything (Argo CD's and the report CRDs, the controller); on a
 * real cluster it needs Argo CD's Application CRD, the wgpolicyk8s.io report CRDs and the
 * controller overlay, and runs with GITOPS_GUARD_E2E_SCAN=1. Creates a throw-away namespace with
 * two Applications (outside Argo CD's own namespace, which Argo CD ignores unless configured for
 * apps in any namespace) and a ClusterRoleBinding named gitops-guard-e2e-scan-*, and removes them.
 */
import { randomBytes } from 'node:crypto';
import { ApiException, CoreV1Api, CustomObjectsApi, PatchStrategy, RbacAuthorizationV1Api, setHeaderOptions } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runCli, type CliResult } from '../support/cli.js';
import { e2eKubeConfig } from './context.js';

const kubeConfig = e2eKubeConfig();
const core = kubeConfig.makeApiClient(CoreV1Api);
const rbac = kubeConfig.makeApiClient(RbacAuthorizationV1Api);
const custom = kubeConfig.makeApiClient(CustomObjectsApi);

const suffix = randomBytes(3).toString('hex');
const namespace = `gitops-guard-e2e-scan-${suffix}`;
const bindingName = `gitops-guard-e2e-scan-${suffix}`;
const APP = { group: 'argoproj.io', version: 'v1alpha1', plural: 'applications' };
const claim = { group: 'rbac.authorization.k8s.io', version: 'v1', kind: 'ClusterRoleBinding', name: bindingName, status: 'Synced' };

const application = (name: string, claims: object[]) => ({
  apiVersion: 'argoproj.io/v1alpha1',
  kind: 'Application',
  metadata: { name, namespace },
  spec: { project: 'default', destination: { server: 'https://kubernetes.default.svc', namespace }, source: { repoURL: 'https://charts.example/airflow', chart: 'airflow', targetRevision: '1.15.0' } },
  status: { sync: { status: 'Synced' }, resources: claims },
});

const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/**
 * What Argo CD's application controller does: set an Application's `status.resources`. Argo CD's
 * CRD has no status subresource, so on a cluster the main resource takes it; apiserver-peer takes
 * status only through `/status`, which a cluster answers with 404 here.
 */
async function setClaims(name: string, claims: object[]): Promise<void> {
  const body = { status: { sync: { status: 'Synced' }, resources: claims } };
  try {
    await custom.patchNamespacedCustomObjectStatus({ ...APP, namespace, name, body }, MERGE_PATCH);
  } catch (error) {
    if (!(error instanceof ApiException && error.code === 404)) throw error;
    await custom.patchNamespacedCustomObject({ ...APP, namespace, name, body }, MERGE_PATCH);
  }
}

async function until<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(value)?.slice(0, 2000)})`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

function runScan(args: string[]): Promise<CliResult> {
  const kubeconfig = inject('kubeconfig');
  return runCli(['scan', ...(kubeconfig ? ['--kubeconfig', kubeconfig] : []), ...args], { timeoutMs: 60_000 });
}

interface Result {
  policy: string;
  rule: string;
  result: string;
  resources?: { kind: string; name: string }[];
  properties?: Record<string, string>;
}
const seedResult = async (): Promise<Result | undefined> => {
  try {
    const report = (await custom.getClusterCustomObject({ group: 'wgpolicyk8s.io', version: 'v1alpha2', plural: 'clusterpolicyreports', name: 'gitops-guard' })) as { results?: Result[] };
    return report.results?.find((r) => r.rule === 'shared-object' && r.resources?.[0]?.name === bindingName);
  } catch (error) {
    if (error instanceof ApiException && error.code === 404) return undefined;
    throw error;
  }
};

beforeAll(async () => {
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  // The binding as the last sync (app a's) applied it: through the webhooks, which record its owner.
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name: bindingName, annotations: { 'argocd.argoproj.io/tracking-id': `${namespace}_a:rbac.authorization.k8s.io/ClusterRoleBinding:${namespace}/${bindingName}` } },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' },
      subjects: [{ kind: 'ServiceAccount', name: 'default', namespace }],
    },
  });
  for (const name of ['a', 'b']) {
    await custom.createNamespacedCustomObject({ ...APP, namespace, body: application(name, [claim]) });
    await setClaims(name, [claim]);
  }
});

afterAll(async () => {
  await rbac.deleteClusterRoleBinding({ name: bindingName }).catch(() => undefined);
  await core.deleteNamespace({ name: namespace }).catch(() => undefined);
});

describe('the cluster scan against the API server', () => {
  it('gitops-guard scan finds the binding both Applications claim, naming both and the one holding it; exit code 1', async () => {
    const { code, stdout, stderr } = await runScan(['--namespaces', namespace, '--format', 'json', '--page-size', '2']);
    expect(stderr).toBe('');
    expect(code).toBe(1);
    const findings = (JSON.parse(stdout) as { findings: (Result & { resource?: { kind: string; name: string } })[] }).findings;
    expect(findings.find((f) => f.rule === 'shared-object' && f.resource?.name === bindingName)).toMatchObject({
      result: 'fail',
      properties: { apps: `${namespace}/a,${namespace}/b`, holder: `${namespace}/a` },
    });
  });

  it('the controller\'s leader writes the ClusterPolicyReport with server-side apply and follows an Application that stops claiming the binding', async () => {
    await until('the shared binding in the ClusterPolicyReport', seedResult, (r) => r?.result === 'fail');
    await setClaims('b', []);
    const passed = await until('the binding to pass', seedResult, (r) => r?.result === 'pass');
    // The webhook recorded the owner when the binding was created (the tier runs in enforce mode).
    expect(passed!.properties).toEqual({ apps: `${namespace}/a`, recorded: `argocd:${namespace}_a` });
  });
});
