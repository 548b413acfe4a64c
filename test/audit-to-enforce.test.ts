import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { KubeObject } from '../src/api/types.js';
import type { PolicyReport, ReportResult } from '../src/report/index.js';
import type { KubeApiServer } from './support/kube-api-server.js';
import { runMain, type CliResult } from './support/cli.js';
import { buildObjects } from './support/kustomize.js';
import { fillAirflowCluster, shareAirflowBinding, startScanTestCluster, type ScanTestCluster } from './support/scan-cluster.js';

/**
 * docs/audit-to-enforce.md, checked against the real thing: the guide's cluster (the two Airflow
 * releases whose Applications both claim ClusterRoleBinding/airflow-pre-checker-binding) on the
 * test API server, the scan's output before and after the fix exactly as the guide prints it,
 * the reports' counts and the seed case's result, and the guide's two kustomizations rendered.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const guide = readFileSync(join(ROOT, 'docs', 'audit-to-enforce.md'), 'utf8');

/** The fenced block after `<!-- name -->`. */
function block(name: string): string {
  const match = new RegExp(`^<!-- ${name} -->\\n\`\`\`\\w+\\n([\\s\\S]*?)^\`\`\`$`, 'm').exec(guide);
  expect(match, `a block marked ${name}`).not.toBeNull();
  return match![1]!;
}

/** `kubectl get` output: columns padded to the widest cell plus three spaces (kubectl's tabwriter). */
function kubectlTable(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]! + 3))).join('').trimEnd()).join('\n') + '\n';
}

let cluster: ScanTestCluster<void>;
let api: KubeApiServer;
let kubeconfig: string;
let keyFile: string;
let dir: string;

beforeAll(async () => {
  cluster = await startScanTestCluster(fillAirflowCluster, 'gg-guide-');
  ({ api, kubeconfig, keyFile, dir } = cluster);
});
afterAll(() => cluster?.close());

function scan(...args: string[]): Promise<CliResult> {
  return runMain(['scan', '--kubeconfig', kubeconfig, '--checksum-key', keyFile, ...args]);
}

describe('docs/audit-to-enforce.md', () => {
  it('step 2: the reports\' counts, the seed case\'s result and the scan\'s table are what gitops-guard reports for the guide\'s cluster', async () => {
    const table = await scan();
    expect(table.stderr).toBe('');
    expect(table.code).toBe(1);
    expect(table.stdout).toBe(block('scan-before'));

    const reports = await scan('--format', 'policyreport');
    const items = (parse(reports.stdout) as { items: PolicyReport[] }).items;
    const age = '12m';
    const row = (r: PolicyReport) => [String(r.summary.pass), String(r.summary.fail), String(r.summary.warn), String(r.summary.error), String(r.summary.skip), age];
    const header = ['NAMESPACE', 'NAME', 'PASS', 'FAIL', 'WARN', 'ERROR', 'SKIP', 'AGE'];
    const cluster = items.filter((r) => r.kind === 'ClusterPolicyReport');
    const namespaced = items.filter((r) => r.kind === 'PolicyReport');
    const expected =
      kubectlTable([header, ...cluster.map((r) => ['', `clusterpolicyreport.wgpolicyk8s.io/${r.metadata.name}`, ...row(r)])]) +
      '\n' +
      kubectlTable([header, ...namespaced.map((r) => [r.metadata.namespace!, `policyreport.wgpolicyk8s.io/${r.metadata.name}`, ...row(r)])]);
    expect(block('kubectl-get')).toBe(expected);

    const failing = cluster[0]!.results.filter((r) => r.result === 'fail');
    const shown = parse(block('seed-result')) as ReportResult[];
    expect(shown).toHaveLength(1);
    // uid and timestamp differ from run to run; everything else is as printed.
    const stable = (r: ReportResult) => ({ ...r, timestamp: undefined, resources: r.resources?.map((x) => ({ ...x, uid: undefined })) });
    expect(failing.map(stable)).toEqual(shown.map(stable));
    expect(shown[0]).toMatchObject({ policy: 'single-owner', rule: 'shared-object', properties: { apps: 'argocd/pdp-dev-airflow,argocd/smartdq-dev-airflow' } });
  });

  it('step 3: after the shared app took the binding over, the scan prints what the guide shows and exits 0', async () => {
    shareAirflowBinding(api);
    const table = await scan();
    expect(table.stderr).toBe('');
    expect(table.stdout).toBe(block('scan-after'));
    expect(table.code).toBe(0);
  });

  it('the two kustomizations render: audit with the controller in audit mode and its report RBAC, then enforce', () => {
    const overlays = [...guide.matchAll(/^```yaml\n(# platform\/gitops-guard\/kustomization\.yaml\n[\s\S]*?)^```$/gm)].map((m) => m[1]!);
    expect(overlays).toHaveLength(2);
    const root = join(dir, 'repo');
    mkdirSync(join(root, 'vendor'), { recursive: true });
    symlinkSync(ROOT, join(root, 'vendor', 'gitops-guard'));
    const render = (text: string) => {
      const overlay = join(root, 'platform', 'gitops-guard');
      rmSync(overlay, { recursive: true, force: true });
      mkdirSync(overlay, { recursive: true });
      writeFileSync(join(overlay, 'kustomization.yaml'), text);
      return buildObjects(overlay);
    };
    const modeOf = (objects: KubeObject[], name: string) => {
      const deployment = objects.find((o) => o.kind === 'Deployment' && o.metadata?.name === name) as any;
      expect(deployment, name).toBeDefined();
      const env = deployment.spec.template.spec.containers[0].env as { name: string; value?: string }[];
      return env.filter((e) => e.name === 'GITOPS_GUARD_MODE').map((e) => e.value);
    };
    const audit = render(overlays[0]!);
    expect(modeOf(audit, 'gitops-guard')).toEqual(['audit']);
    expect(modeOf(audit, 'gitops-guard-controller')).toEqual(['audit']);
    const role = audit.find((o) => o.kind === 'ClusterRole' && o.metadata?.name === 'gitops-guard-controller') as any;
    expect(role.rules).toContainEqual({ apiGroups: ['wgpolicyk8s.io'], resources: ['policyreports', 'clusterpolicyreports'], verbs: ['list', 'create', 'patch'] });
    const enforce = render(overlays[1]!);
    expect(modeOf(enforce, 'gitops-guard')).not.toContain('audit');
    expect(modeOf(enforce, 'gitops-guard-controller')).toEqual([]);
  });
});
