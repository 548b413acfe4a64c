import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { ScanJson } from '../src/cli/scan.js';
import type { PolicyReport } from '../src/report/index.js';
import { runMain, type CliResult } from './support/cli.js';
import { CORPUS_DIR } from './support/corpus.js';
import { crdValidator, readCrd, type CrdValidator } from './support/crd-schema.js';
import { admit } from './support/controller.js';
import { configMap, deployment } from './support/kube-fixtures.js';
import { KubeApiServer } from './support/kube-api-server.js';
import { SCANNED_CLUSTER_RESOURCES } from './support/kube-store.js';
import { kubectlReads } from './support/kubectl.js';
import { fillAirflowCluster, fillScanCluster, startScanTestCluster, type ScanClusterFacts, type ScanTestCluster } from './support/scan-cluster.js';

/**
 * `gitops-guard scan` as users run it (in process, through the CLI's own dispatch), against the
 * test API server filled from the Airflow fixtures: every output format, exit codes, refused
 * lists, paging, the progress line, and the Secret canary.
 */

const CRD_FILES: Record<string, string> = {
  'wgpolicyk8s.io_clusterpolicyreports.yaml': 'ClusterPolicyReport',
  'wgpolicyk8s.io_policyreports.yaml': 'PolicyReport',
  'openreports.io_clusterreports.yaml': 'ClusterReport',
  'openreports.io_reports.yaml': 'Report',
};
const VALIDATORS: Record<string, CrdValidator> = Object.fromEntries(
  Object.entries(CRD_FILES).map(([file, kind]) => [kind, crdValidator(readCrd(join(CORPUS_DIR, 'report-crds', file)))]),
);

let cluster: ScanTestCluster<ScanClusterFacts>;
let api: KubeApiServer;
let kubeconfig: string;
let facts: ScanClusterFacts;
let dir: string;
let keyFile: string;

beforeAll(async () => {
  cluster = await startScanTestCluster(fillScanCluster, 'gg-scan-cli-');
  ({ api, kubeconfig, facts, dir, keyFile } = cluster);
});
afterAll(() => cluster.close());
beforeEach(() => {
  api.clearFaults();
  api.clearRequests();
});

function scan(args: string[], options: { tty?: boolean } = {}): Promise<CliResult> {
  return runMain(['scan', ...args], { stderrTty: options.tty === true });
}

const withCluster = (...args: string[]) => ['--kubeconfig', kubeconfig, ...args];

describe('gitops-guard scan', () => {
  it('table: the failing findings, most urgent first, with the seed case, and exit code 1', async () => {
    const { code, stdout, stderr } = await scan(withCluster('--checksum-key', keyFile));
    expect(stderr).toBe('');
    expect(code).toBe(1);
    expect(stdout).toMatch(/^RESULT {2}SEVERITY {2}CHECK\/RULE/);
    expect(stdout).toMatch(/^FAIL +high +single-owner\/shared-object +ClusterRoleBinding\.rbac\.authorization\.k8s\.io airflow-pre-checker-binding$/m);
    expect(stdout).toContain('    apps=argocd/pdp-dev-airflow,argocd/smartdq-dev-airflow holder=argocd/pdp-dev-airflow');
    expect(stdout).toMatch(/^FAIL +high +single-owner\/owner-conflict +ClusterRole\.rbac\.authorization\.k8s\.io smartdq-dev-airflow-pre-checker$/m);
    expect(stdout).toMatch(/^FAIL +medium +config-checksum\/stale-checksum +Deployment\.apps shop\/web$/m);
    expect(stdout).toMatch(/^FAIL +medium +config-checksum\/missing-reference +Deployment\.apps smartdq-dev\/smartdq-dev-airflow-webserver$/m);
    expect(stdout).not.toMatch(/^PASS/m);
    expect(stdout).toMatch(/^\d+ findings: 0 error, \d+ fail, \d+ warn, 0 skip, \d+ pass \(\d+ passing or skipped not listed\)$/m);
  });

  it('json: every finding with counts, the exit code, what was scanned', async () => {
    const { code, stdout } = await scan(withCluster('--checksum-key', keyFile, '--format', 'json'));
    expect(code).toBe(1);
    const report = JSON.parse(stdout) as ScanJson;
    expect(report).toMatchObject({ apiVersion: 'gitops-guard.dev/v1alpha1', kind: 'ScanReport', exitCode: 1, failures: [], applications: 3 });
    expect(report.scanned).toContainEqual({ resource: 'deployments.apps', objects: 4 });
    expect(report.scanned).toContainEqual({ resource: 'clusterrolebindings.rbac.authorization.k8s.io', objects: 1 });
    expect(report.notServed).toContain('Rollout.argoproj.io');
    expect(report.summary.pass + report.summary.fail + report.summary.warn + report.summary.error + report.summary.skip).toBe(report.findings.length);
    expect(report.findings.find((f) => f.rule === 'stale-checksum' && f.resource?.name === 'web')).toMatchObject({ properties: { stamped: facts.shopStamped, current: facts.shopCurrent } });
  });

  it.each(['policyreport', 'openreports'] as const)('%s: one List of reports that validate against the published CRDs and that kubectl apply reads', async (format) => {
    const { code, stdout } = await scan(withCluster('--checksum-key', keyFile, '--format', format));
    expect(code).toBe(1);
    const list = parse(stdout) as { apiVersion: string; kind: string; items: PolicyReport[] };
    expect([list.apiVersion, list.kind]).toEqual(['v1', 'List']);
    const kinds = format === 'policyreport' ? ['ClusterPolicyReport', 'PolicyReport'] : ['ClusterReport', 'Report'];
    expect(list.items.map((r) => `${r.kind}/${r.metadata.namespace ?? ''}`)).toEqual([
      `${kinds[0]}/`,
      ...['canary', 'pdp-dev', 'shop', 'smartdq-dev'].map((ns) => `${kinds[1]}/${ns}`),
    ]);
    for (const report of list.items) expect(VALIDATORS[report.kind]!(report), `${report.kind} ${report.metadata.namespace ?? ''}`).toEqual([]);
    const cluster = list.items[0]!;
    const seed = cluster.results.find((r) => r.rule === 'shared-object' && r.result === 'fail')!;
    expect(seed).toMatchObject({ policy: 'single-owner', source: 'gitops-guard', resources: [{ kind: 'ClusterRoleBinding', name: 'airflow-pre-checker-binding' }] });
    expect(cluster.summary.fail).toBeGreaterThanOrEqual(3);
    expect(kubectlReads<PolicyReport>(stdout).map((r) => r.kind)).toEqual(list.items.map((r) => r.kind));
  });

  it('--namespaces: reports for exactly those namespaces (an empty one too, so applying it clears older results)', async () => {
    const { stdout } = await scan(withCluster('--checksum-key', keyFile, '--format', 'policyreport', '--namespaces', 'shop,quiet'));
    const list = parse(stdout) as { items: PolicyReport[] };
    expect(list.items.map((r) => r.metadata.namespace ?? '')).toEqual(['', 'quiet', 'shop']);
    expect(list.items[1]!.results).toEqual([]);
  });

  it('the Secret canary: its value, its encodings and its checksums appear in no output of any format, nor in the engine\'s debug log', async () => {
    for (const format of ['table', 'json', 'policyreport', 'openreports']) {
      for (const key of [[], ['--checksum-key', keyFile]]) {
        const { stdout, stderr } = await scan(withCluster(...key, '--format', format, '--all', '--log-level', 'debug'));
        expect(stdout).toContain('vault-reader');
        for (const derived of facts.canaryDerived) {
          expect(stdout, `${format} ${key.length ? 'with' : 'without'} key`).not.toContain(derived);
          expect(stderr, `${format} log`).not.toContain(derived);
        }
        expect(stdout, `${format}: the cluster-key checksum of a Secret consumer`).not.toContain(facts.canaryClusterChecksum.slice(3));
      }
    }
  });

  it('without --checksum-key: says that stale-checksum is skipped and why, and shows no checksum at all', async () => {
    const { code, stdout } = await scan(withCluster());
    expect(code).toBe(1);
    expect(stdout).toMatch(/^SKIP +medium +config-checksum\/stale-checksum +-\n {4}stale-checksum skipped: no checksum key given \(--checksum-key, the webhook's key\)/m);
    expect(stdout).toMatch(/^FAIL +medium +config-checksum\/missing-reference +Deployment\.apps smartdq-dev\/smartdq-dev-airflow-webserver$/m);
    expect(stdout).not.toMatch(/v\d:[0-9a-f]{64}/);
  });

  it('a refused list: reported by kind, the rest scanned, exit code 2', async () => {
    api.fault({ path: '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings' }, { status: 403 });
    const { code, stdout, stderr } = await scan(withCluster('--checksum-key', keyFile));
    expect(code).toBe(2);
    expect(stderr).toBe('gitops-guard scan: listing clusterrolebindings.rbac.authorization.k8s.io failed (HTTP 403 Forbidden): those objects were not scanned\n');
    expect(stdout).toMatch(/^ERROR +high +gitops-guard\/scan-error +-$/m);
    // The binding's shared-object finding still comes from the Applications' claims.
    expect(stdout).toMatch(/^FAIL +high +single-owner\/shared-object +ClusterRoleBinding\.rbac\.authorization\.k8s\.io airflow-pre-checker-binding$/m);
    expect(stdout).toContain('it was not read (its kind could not be listed)');
    expect(stdout).toMatch(/config-checksum\/stale-checksum +Deployment\.apps shop\/web/);
  });

  it('pages through lists bigger than a page, with a progress line on a terminal only', async () => {
    const tty = await scan(withCluster('--checksum-key', keyFile, '--page-size', '2', '--format', 'json'), { tty: true });
    expect(JSON.parse(tty.stdout).findings.filter((f: { rule: string }) => f.rule === 'missing-checksum')).toHaveLength(4);
    const pages = api.requests.filter((r) => r.path === '/apis/apps/v1/deployments');
    expect(pages.map((r) => r.query.replace(/continue=[^&]+/, 'continue=…'))).toEqual(['?limit=2', '?limit=2&continue=…']);
    expect(tty.stderr).toContain('\r\u001b[Kscanning deployments.apps: 2 of 4\r\u001b[Kscanning deployments.apps: 4');
    expect(tty.stderr.endsWith('\r\u001b[K')).toBe(true);
    const piped = await scan(withCluster('--checksum-key', keyFile, '--page-size', '2', '--format', 'json'));
    expect(piped.stderr).toBe('');
  });

  it('usage and setup errors: one line, exit code 2', async () => {
    for (const [args, message] of [
      [['--format', 'yaml'], '--format must be one of table, json, policyreport, openreports, got "yaml"'],
      [['--namespaces', 'Bad_NS'], '--namespaces: "Bad_NS" is not a namespace name'],
      [['--page-size', '0'], '--page-size must be between 1 and 10000, got 0'],
      [['--kubeconfig', join(dir, 'missing')], `kubeconfig ${join(dir, 'missing')} does not exist`],
      [['--kubeconfig', kubeconfig, '--checksum-key', join(dir, 'nope')], `cannot read checksum key file ${join(dir, 'nope')}: ENOENT`],
    ] as const) {
      const { code, stdout, stderr } = await scan([...args]);
      expect(stderr, args.join(' ')).toBe(`gitops-guard scan: ${message}\n`);
      expect(code).toBe(2);
      expect(stdout).toBe('');
    }
    expect((await scan(['--help'])).stdout).toContain('Usage: gitops-guard scan');
  });

  it('an API server that cannot be reached: exit code 2 with the reason, no findings', async () => {
    const gone = await KubeApiServer.start();
    const path = gone.writeKubeconfig();
    const copy = join(dir, 'gone.kubeconfig');
    writeFileSync(copy, (await import('node:fs')).readFileSync(path));
    await gone.close();
    const { code, stdout, stderr } = await scan(['--kubeconfig', copy]);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/^gitops-guard scan: cannot read the cluster at https:\/\/127\.0\.0\.1:\d+: ECONNREFUSED\n$/);
  });

  it('a cluster with nothing to report exits 0', async () => {
    const clean = await KubeApiServer.start({ resources: SCANNED_CLUSTER_RESOURCES });
    try {
      const path = clean.writeKubeconfig();
      const kubeConfig = new KubeConfig();
      kubeConfig.loadFromFile(path);
      clean.put(configMap('ok', 'settings', { A: '1' }));
      await admit(clean, kubeConfig, deployment('ok', 'app', { containers: [{ name: 'a', image: 'a', envFrom: [{ configMapRef: { name: 'settings' } }] }] }));
      const { code, stdout } = await scan(['--kubeconfig', path, '--checksum-key', keyFile]);
      expect(stdout).toMatch(/^\d+ findings: 0 error, 0 fail, 0 warn, 0 skip, \d+ pass/m);
      expect(code).toBe(0);
    } finally {
      await clean.close();
    }
  });
});

describe('gitops-guard scan | kubectl apply -f - on a cluster with the report CRDs', () => {
  /** kubectl against `kubeconfig`, asynchronously (the test API server runs in this process). */
  const kubectl = (kubeconfigPath: string, args: string[], input: string) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn('kubectl', args, { env: { ...process.env, KUBECONFIG: kubeconfigPath, HOME: dir } });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c) => (stdout += c));
      child.stderr.on('data', (c) => (stderr += c));
      child.on('error', reject);
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
      child.stdin.end(input);
    });

  it.each([
    ['policyreport', 'wgpolicyk8s.io/v1alpha2', ['clusterpolicyreport', 'policyreport']],
    ['openreports', 'openreports.io/v1alpha1', ['clusterreport', 'report']],
  ] as const)('%s: kubectl applies the List (client dry run, then for real), the stored reports are the output, and applying it again changes nothing', async (format, apiVersion, [clusterKind, kind]) => {
    const cluster = await KubeApiServer.start({ resources: SCANNED_CLUSTER_RESOURCES });
    try {
      const path = cluster.writeKubeconfig();
      const kubeConfig = new KubeConfig();
      kubeConfig.loadFromFile(path);
      await fillAirflowCluster(cluster, kubeConfig);
      for (const file of Object.keys(CRD_FILES)) cluster.put(parse(readFileSync(join(CORPUS_DIR, 'report-crds', file), 'utf8')));
      const { code, stdout } = await scan(['--kubeconfig', path, '--checksum-key', keyFile, '--format', format]);
      expect(code).toBe(1);
      const items = (parse(stdout) as { items: PolicyReport[] }).items;
      const names = [`${clusterKind}.${apiVersion.split('/')[0]}/gitops-guard`, ...['pdp-dev', 'smartdq-dev'].map(() => `${kind}.${apiVersion.split('/')[0]}/gitops-guard`)];
      // Client-side validation needs the OpenAPI documents, which the test API server does not
      // serve; the reports are validated against the CRDs' schemas above.
      const dryRun = await kubectl(path, ['apply', '--dry-run=client', '--validate=false', '-f', '-'], stdout);
      expect(dryRun.stderr).toBe('');
      expect(dryRun.stdout).toBe(names.map((n) => `${n} created (dry run)\n`).join(''));
      expect(cluster.list(apiVersion, items[0]!.kind)).toEqual([]);

      const applied = await kubectl(path, ['apply', '--validate=false', '-f', '-'], stdout);
      expect(applied.stderr).toBe('');
      expect(applied.stdout).toBe(names.map((n) => `${n} created\n`).join(''));
      for (const report of items) {
        const stored = cluster.get(apiVersion, report.kind, report.metadata.namespace ?? '', 'gitops-guard') as unknown as PolicyReport;
        const { annotations, uid: _uid, resourceVersion: _rv, creationTimestamp: _ct, generation: _g, ...metadata } = stored.metadata as Record<string, unknown>;
        expect(Object.keys(annotations as object)).toEqual(['kubectl.kubernetes.io/last-applied-configuration']);
        expect({ ...stored, metadata }).toEqual(report);
      }
      const again = await kubectl(path, ['apply', '--validate=false', '-f', '-'], stdout);
      expect(again.stdout).toBe(names.map((n) => `${n} unchanged\n`).join(''));
    } finally {
      await cluster.close();
    }
  });
});
