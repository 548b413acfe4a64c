import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { AUDIT_CHECKSUM_KEY } from '../../src/cli/audit.js';
import { checksumV2 } from '../../src/actions/checksum/encoding.js';
import type { KubeObject } from '../../src/api/types.js';
import { admit, CONTROLLER_TEST_KEY } from './controller.js';
import { configMap, deployment, secret } from './kube-fixtures.js';
import { KubeApiServer } from './kube-api-server.js';
import { SCANNED_CLUSTER_RESOURCES } from './kube-store.js';

/**
 * A cluster for the scan tests, filled from the Airflow fixtures (test/fixtures/audit/airflow, the
 * corpus chart rendered for two releases) as Argo CD would leave it: two Applications whose
 * `status.resources` both list the chart's hard-coded `ClusterRoleBinding/airflow-pre-checker-binding`
 * (the seed case), the binding as the last sync left it (pdp-dev-airflow's tracking id), an object
 * whose tracking id and instance label name different apps, an owner record its tracking metadata
 * contradicts, workloads stamped before their config changed, one whose ConfigMap is gone, one up
 * to date, and a Secret canary. The checksum key is the controller tests' (the webhook's, here).
 */

export const SCAN_KEY = CONTROLLER_TEST_KEY;
/** A Secret value that must appear in no output of the scan. */
export const CANARY = 'canary-Secret-value-3f9c2a71d0';

const AIRFLOW = fileURLToPath(new URL('../fixtures/audit/airflow/', import.meta.url));
const TRACKING = 'argocd.argoproj.io/tracking-id';
const OWNER = 'gitops-guard.dev/owner';

function airflowObjects(release: 'pdp-dev' | 'smartdq-dev'): KubeObject[] {
  return parseAllDocuments(readFileSync(`${AIRFLOW}${release}/airflow.yaml`, 'utf8'))
    .map((d) => d.toJS() as KubeObject)
    .filter((o) => o && o.kind !== 'ServiceAccount');
}

function groupOf(object: KubeObject): string {
  const apiVersion = object.apiVersion ?? '';
  return apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : '';
}

/** The object with the tracking id Argo CD writes for `app` (the Application's destination namespace for cluster-scoped objects). */
export function tracked(object: KubeObject, app: string, destination: string, annotations: Record<string, string> = {}): KubeObject {
  const id = `${app}:${groupOf(object)}/${object.kind}:${object.metadata?.namespace ?? destination}/${object.metadata?.name}`;
  return { ...object, metadata: { ...object.metadata, annotations: { ...object.metadata?.annotations, [TRACKING]: id, ...annotations } } };
}

/** What Argo CD's `status.resources` says of an object. */
export function resourceStatus(object: KubeObject): Record<string, unknown> {
  const apiVersion = object.apiVersion ?? 'v1';
  return {
    group: groupOf(object),
    version: apiVersion.includes('/') ? apiVersion.slice(apiVersion.indexOf('/') + 1) : apiVersion,
    kind: object.kind,
    ...(object.metadata?.namespace ? { namespace: object.metadata.namespace } : {}),
    name: object.metadata?.name,
    status: 'Synced',
  };
}

export function application(namespace: string, name: string, destination: string, claims: KubeObject[]): KubeObject {
  return {
    apiVersion: 'argoproj.io/v1alpha1',
    kind: 'Application',
    metadata: { name, namespace },
    spec: { project: 'default', destination: { server: 'https://kubernetes.default.svc', namespace: destination }, source: { repoURL: 'https://charts.example/airflow', chart: 'airflow', targetRevision: '1.15.0' } },
    status: { sync: { status: 'Synced' }, health: { status: 'Healthy' }, resources: claims.map(resourceStatus) },
  };
}

export interface ScanClusterFacts {
  /** The Applications as stored (to change their claims later). */
  apps: { pdp: KubeObject; smartdq: KubeObject; shop: KubeObject };
  /** The canary Secret's value and what is derived from it without the cluster's key: in no output and no log. */
  canaryDerived: string[];
  /**
   * The canary consumer's checksum under the cluster's key: in no output either (reports are read
   * by more people than Secrets); logs may carry it, like the webhook's and the controller's, and
   * the workload's own annotation will once it is rolled.
   */
  canaryClusterChecksum: string;
  /** The checksum shop/web should carry now (it consumes no Secret, so reports may show it). */
  shopCurrent: string;
  shopStamped: string;
}

/** Fills `api` (served: SCANNED_CLUSTER_RESOURCES) with the scan tests' cluster. */
export async function fillScanCluster(api: KubeApiServer, kubeConfig: KubeConfig): Promise<ScanClusterFacts> {
  const claims: Record<'pdp' | 'smartdq', KubeObject[]> = { pdp: [], smartdq: [] };
  for (const [key, release] of [['pdp', 'pdp-dev'], ['smartdq', 'smartdq-dev']] as const) {
    const app = `${release}-airflow`;
    for (const object of airflowObjects(release)) {
      claims[key].push(object);
      if (object.kind === 'ClusterRoleBinding') {
        // One object, two renderings: the live one is what the last sync (pdp-dev-airflow's) left.
        if (key === 'pdp') api.put(tracked(object, app, release));
        continue;
      }
      if (object.kind === 'Deployment') continue; // stamped below
      api.put(tracked(object, app, release, key === 'smartdq' && object.kind === 'ClusterRole' ? { [OWNER]: 'argocd:pdp-dev-airflow' } : {}));
    }
  }
  const webserver = (release: 'pdp-dev' | 'smartdq-dev') => tracked(airflowObjects(release).find((o) => o.kind === 'Deployment')!, `${release}-airflow`, release);
  // Up to date: stamped with the checksum of what it consumes now.
  await admit(api, kubeConfig, webserver('pdp-dev'));
  // Stamped, then its required ConfigMap was deleted.
  await admit(api, kubeConfig, webserver('smartdq-dev'));
  api.delete('v1', 'ConfigMap', 'smartdq-dev', 'smartdq-dev-airflow-config');

  // The chart's own `app.kubernetes.io/instance` label names another app than the tracking id.
  const sharedReader = tracked(
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'airflow-shared-reader', labels: { 'app.kubernetes.io/instance': 'smartdq-dev-airflow', release: 'airflow' } },
      rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] }],
    },
    'pdp-dev-airflow',
    'pdp-dev',
    { [OWNER]: 'argocd:pdp-dev-airflow' },
  );
  api.put(sharedReader);
  claims.pdp.push(sharedReader);

  // An app outside Argo CD's namespace (apps-in-any-namespace): its tracking id says team-shop_web.
  api.put(configMap('shop', 'settings', { LEVEL: 'debug' }));
  const web = tracked(deployment('shop', 'web', { containers: [{ name: 'web', image: 'web:1', env: [{ name: 'LEVEL', valueFrom: { configMapKeyRef: { name: 'settings', key: 'LEVEL' } } }] }] }), 'team-shop_web', 'shop');
  const shopStamped = (await admit(api, kubeConfig, web)).spec as { template: { metadata: { annotations: Record<string, string> } } };
  api.put(configMap('shop', 'settings', { LEVEL: 'info' })); // changed after the stamp: its pods run the old value

  // The Secret canary: a workload stamped before the Secret changed.
  api.put(secret('canary', 'vault', { password: 'an-older-value' }));
  const reader = deployment('canary', 'vault-reader', { containers: [{ name: 'r', image: 'r:1', env: [{ name: 'PW', valueFrom: { secretKeyRef: { name: 'vault', key: 'password' } } }] }] });
  await admit(api, kubeConfig, reader);
  api.put(secret('canary', 'vault', { password: CANARY }));

  const pdp = api.put(application('argocd', 'pdp-dev-airflow', 'pdp-dev', claims.pdp));
  const smartdq = api.put(application('argocd', 'smartdq-dev-airflow', 'smartdq-dev', claims.smartdq));
  const shop = api.put(application('team-shop', 'web', 'shop', [web, configMap('shop', 'settings')]));

  const snapshot = (key: Buffer) => checksumV2(key, 'canary', [{ kind: 'Secret', name: 'vault', keys: new Set(['password']), content: new Map([['password', Buffer.from(CANARY)]]) }]);
  const shopSnapshot = checksumV2(SCAN_KEY, 'shop', [{ kind: 'ConfigMap', name: 'settings', keys: new Set(['LEVEL']), content: new Map([['LEVEL', Buffer.from('info')]]) }]);
  return {
    apps: { pdp, smartdq, shop },
    canaryDerived: [
      CANARY,
      Buffer.from(CANARY).toString('base64'),
      createHash('sha256').update(CANARY).digest('hex'),
      snapshot(AUDIT_CHECKSUM_KEY), // the plain checksum under the public audit key
    ].flatMap((s) => [s, s.replace(/^v2:/, '')]),
    canaryClusterChecksum: snapshot(SCAN_KEY),
    shopCurrent: shopSnapshot,
    shopStamped: shopStamped.template.metadata.annotations['gitops-guard.dev/config-checksum']!,
  };
}

/**
 * The guide's cluster (docs/audit-to-enforce.md): the two Airflow releases as Argo CD leaves them
 * with gitops-guard in audit mode, nothing else. Both Applications claim the chart's hard-coded
 * `ClusterRoleBinding/airflow-pre-checker-binding`; the live binding is what the last sync
 * (pdp-dev-airflow's) applied; the webservers are stamped and up to date; no owner was recorded.
 */
export async function fillAirflowCluster(api: KubeApiServer, kubeConfig: KubeConfig): Promise<void> {
  for (const release of ['pdp-dev', 'smartdq-dev'] as const) {
    const app = `${release}-airflow`;
    const objects = airflowObjects(release);
    for (const object of objects) {
      if (object.kind === 'ClusterRoleBinding' && release !== 'pdp-dev') continue;
      if (object.kind === 'Deployment') await admit(api, kubeConfig, tracked(object, app, release));
      else api.put(tracked(object, app, release));
    }
    api.put(application('argocd', app, release, objects));
  }
}

/**
 * The guide's fix, "one shared app": a third Application, airflow-shared, renders the pre-checker's
 * ClusterRole and the binding once for every release (one subject per release namespace), both
 * releases stop rendering the binding (`preChecker.clusterRoleBinding: false` in their values),
 * and Argo CD has synced all three.
 */
export function shareAirflowBinding(api: KubeApiServer): void {
  const pdp = airflowObjects('pdp-dev');
  const binding = pdp.find((o) => o.kind === 'ClusterRoleBinding')!;
  const role = pdp.find((o) => o.kind === 'ClusterRole')!;
  const labels = { 'app.kubernetes.io/name': 'airflow-shared' };
  const sharedRole = { ...role, metadata: { name: 'airflow-pre-checker', labels } } as KubeObject;
  const sharedBinding = {
    ...binding,
    metadata: { name: binding.metadata!.name, labels },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'airflow-pre-checker' },
    subjects: ['pdp-dev', 'smartdq-dev'].map((namespace) => ({ kind: 'ServiceAccount', name: 'airflow-pre-checker', namespace })),
  } as KubeObject;
  for (const object of [sharedRole, sharedBinding]) api.put(tracked(object, 'airflow-shared', 'airflow-shared'));
  api.put(application('argocd', 'airflow-shared', 'airflow-shared', [sharedRole, sharedBinding]));
  for (const release of ['pdp-dev', 'smartdq-dev'] as const) {
    api.put(application('argocd', `${release}-airflow`, release, airflowObjects(release).filter((o) => o.kind !== 'ClusterRoleBinding')));
  }
}

/** A test API server shaped for the scan, filled by `fill`, its kubeconfig, and the checksum key in a file of its own. */
export interface ScanTestCluster<T> {
  api: KubeApiServer;
  kubeconfig: string;
  keyFile: string;
  /** Temporary directory of the key file (and anything else the test writes). */
  dir: string;
  facts: T;
  close(): Promise<void>;
}

export async function startScanTestCluster<T>(fill: (api: KubeApiServer, kubeConfig: KubeConfig) => Promise<T>, prefix: string): Promise<ScanTestCluster<T>> {
  const api = await KubeApiServer.start({ resources: SCANNED_CLUSTER_RESOURCES });
  const kubeconfig = api.writeKubeconfig();
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(kubeconfig);
  const facts = await fill(api, kubeConfig);
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const keyFile = join(dir, 'checksum.key');
  writeFileSync(keyFile, `${SCAN_KEY.toString('utf8')}\n`, { mode: 0o600 });
  return {
    api,
    kubeconfig,
    keyFile,
    dir,
    facts,
    async close() {
      await api.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
