import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { kustomizeBuild } from '../../support/kustomize.js';
import { locatePeer } from './locate.js';

/**
 * A throw-away cluster for the e2e tier: apiserver-peer serving the Kubernetes API and calling
 * the webhooks exactly as the manifests configure them, `gitops-guard serve` behind them, and
 * `gitops-guard controller` against the same API. Everything runs from the built CLI (`npm run
 * build`) with files created by the CLI itself (`certs`, `checksum-key`), like a user would.
 */

export interface PeerEnvironment {
  /** kubeconfig of the peer's API (CA data and bearer token). */
  kubeconfig: string;
  /** Working directory: certificates, rendered webhooks, logs, the peer's report. */
  dir: string;
  /** The controller's /readyz URL ('' without a controller). */
  controllerReadyz: string;
  /**
   * Stops the controller, the server and the peer (SIGTERM); throws if any misbehaved. The working
   * directory (logs, the peer's report) is removed only when everything went well.
   */
  stop(options?: { keep?: boolean }): Promise<void>;
}

export interface PeerOptions {
  root: string;
  /** Also run the rollout controller (`GITOPS_GUARD_E2E_CONTROLLER` tells the tests). */
  controller: boolean;
  log: (line: string) => void;
}

interface Started {
  name: string;
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
  logFile: string;
}

function startProcess(name: string, command: string, args: string[], dir: string, env: NodeJS.ProcessEnv = {}): Started {
  const logFile = join(dir, `${name}.log`);
  const log = createWriteStream(logFile);
  const child = spawn(command, args, { cwd: dir, env: { ...process.env, KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  for (const stream of [child.stdout!, child.stderr!]) {
    stream.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
      log.write(chunk);
    });
  }
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))));
  void exited.then(() => log.end());
  return { name, child, output: () => output, exited, logFile };
}

async function waitFor(what: string, started: Started[], condition: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const begin = Date.now();
  for (;;) {
    if (await condition()) return;
    const dead = started.find((s) => s.child.exitCode !== null || s.child.signalCode !== null);
    if (dead) throw new Error(`${dead.name} exited while waiting for ${what}:\n${dead.output().slice(-4000)}`);
    if (Date.now() - begin > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function httpStatus(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    httpRequest({ host: '127.0.0.1', port, path }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    })
      .on('error', () => resolve(0))
      .end();
  });
}

function runCli(root: string, args: string[], dir: string): void {
  const result = spawnSync(process.execPath, [join(root, 'dist', 'cli', 'main.js'), ...args], { cwd: dir, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`gitops-guard ${args.join(' ')} failed: ${result.stderr}`);
}

/**
 * The webhook configurations the enforce overlay installs, without `matchConditions` (the peer
 * has no CEL; the conditions only skip calls that cannot change anything, see
 * test/match-conditions.test.ts).
 */
function renderWebhooks(root: string): string {
  const overlay = join(root, 'manifests', 'overlays', 'enforce');
  const configurations = parseAllDocuments(kustomizeBuild(overlay))
    .map((document) => document.toJS() as { kind?: string; webhooks?: Record<string, unknown>[] })
    .filter((object) => object.kind === 'MutatingWebhookConfiguration' || object.kind === 'ValidatingWebhookConfiguration');
  if (configurations.length !== 2) throw new Error(`expected a mutating and a validating webhook configuration in ${overlay}, got ${configurations.length}`);
  for (const configuration of configurations) for (const webhook of configuration.webhooks ?? []) delete webhook['matchConditions'];
  return configurations.map((c) => stringify(c)).join('---\n');
}

interface PeerReport {
  pass?: boolean;
  summary?: { protocolViolations?: number; globalFailures?: number; apiWrites?: number; apiRequests?: number };
}

export async function startPeerEnvironment(options: PeerOptions): Promise<PeerEnvironment> {
  const { root, log } = options;
  if (!existsSync(join(root, 'dist', 'cli', 'main.js'))) throw new Error('dist/cli/main.js is missing: run `npm run build` first');
  const peer = locatePeer(root);
  const dir = mkdtempSync(join(tmpdir(), 'gitops-guard-e2e-peer-'));
  log(`e2e: apiserver-peer ${peer}; working directory ${dir}`);

  runCli(root, ['certs', '--service', 'gitops-guard', '--namespace', 'gitops-guard', '--out', 'certs'], dir);
  runCli(root, ['checksum-key', '--out', 'certs/checksum.key'], dir);
  writeFileSync(join(dir, 'webhooks.yaml'), renderWebhooks(root));
  // A cluster with Argo CD (its CRDs; no Argo Rollouts) and what every cluster has that the tier
  // relies on: the namespace the manifests install into (the controller's Lease lives there), the
  // `view` ClusterRole and a ClusterRoleBinding (which also teach the peer the RBAC and CRD kinds).
  const argoCdCrd = (kind: string, plural: string) => ({
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.argoproj.io`, labels: { 'app.kubernetes.io/part-of': 'argocd' } },
    spec: {
      group: 'argoproj.io',
      names: { kind, listKind: `${kind}List`, plural, singular: kind.toLowerCase() },
      scope: 'Namespaced',
      versions: [{ name: 'v1alpha1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
    },
  });
  // The wgpolicyk8s.io report CRDs (unmodified, from the fixtures), for the controller's reports.
  const reportCrds = ['wgpolicyk8s.io_clusterpolicyreports.yaml', 'wgpolicyk8s.io_policyreports.yaml'].map((file) =>
    parse(readFileSync(join(root, 'test', 'fixtures', 'corpus', 'report-crds', file), 'utf8')) as object,
  );
  const seed = [
    ...reportCrds,
    argoCdCrd('Application', 'applications'),
    argoCdCrd('AppProject', 'appprojects'),
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'gitops-guard', labels: { 'kubernetes.io/metadata.name': 'gitops-guard' } } },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'view' }, rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] }] },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'system:discovery' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:discovery' },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'system:authenticated' }],
    },
  ];
  writeFileSync(join(dir, 'seed.yaml'), seed.map((object) => stringify(object)).join('---\n'));
  writeFileSync(join(dir, 'hold.yaml'), stringify({ steps: [{ name: 'hold', sleepMs: 10 }] }));

  const started: Started[] = [];
  let controllerReadyz = '';
  const webhookPort = await freePort();
  const kubeconfig = join(dir, 'kubeconfig');
  const peerProcess = startProcess(
    'apiserver-peer',
    peer,
    [
      '--webhooks', 'webhooks.yaml',
      '--webhook-addr', `127.0.0.1:${webhookPort}`,
      '--ca-bundle', 'certs/ca.crt',
      '--seed', 'seed.yaml',
      '--scenario', 'hold.yaml',
      '--api-listen', '127.0.0.1:0',
      '--kubeconfig-out', kubeconfig,
      // Every mutating webhook is called again on its own output: a second change is a violation.
      '--idempotency-check',
      '--hold',
      '--out', 'report.json',
    ],
    dir,
  );
  started.push(peerProcess);
  const stopAll = async () => {
    for (const process of [...started].reverse()) if (process.child.exitCode === null) process.child.kill('SIGKILL');
  };
  try {
    await waitFor('the peer\'s API', started, () => existsSync(kubeconfig) && peerProcess.output().includes('--hold: API still served'));

    const cli = join(root, 'dist', 'cli', 'main.js');
    const serve = startProcess('serve', process.execPath, [
      cli, 'serve',
      '--host', '127.0.0.1',
      '--port', String(webhookPort),
      '--tls-cert', 'certs/tls.crt',
      '--tls-key', 'certs/tls.key',
      '--checksum-key', 'certs/checksum.key',
      '--kubeconfig', kubeconfig,
    ], dir);
    started.push(serve);
    await waitFor('gitops-guard serve', started, () => serve.output().includes('"msg":"gitops-guard serving"'));
    log(`e2e: gitops-guard serve on 127.0.0.1:${webhookPort}`);

    if (options.controller) {
      const controller = startProcess('controller', process.execPath, [
        cli, 'controller',
        '--kubeconfig', kubeconfig,
        '--checksum-key', 'certs/checksum.key',
        '--metrics-host', '127.0.0.1',
        '--metrics-port', '0',
        '--lease-namespace', 'gitops-guard',
        '--identity', 'gitops-guard-controller-e2e',
        // Quicker than the defaults so the tier stays short: burst merging, kinds installed at run time, cluster scans after changes.
        '--coalesce-ms', '500',
        '--max-delay-ms', '2000',
        '--discovery-interval-ms', '1000',
        '--scan-coalesce-ms', '500',
      ], dir);
      started.push(controller);
      let metricsPort = 0;
      await waitFor('the controller\'s metrics port', started, () => {
        const line = controller.output().split('\n').find((l) => l.includes('"controller metrics listening"'));
        metricsPort = line ? (JSON.parse(line) as { port: number }).port : 0;
        return metricsPort > 0;
      });
      await waitFor('the controller ready and leading', started, async () => (await httpStatus(metricsPort, '/readyz')) === 200 && controller.output().includes('"msg":"leading: comparing every workload"'));
      controllerReadyz = `http://127.0.0.1:${metricsPort}/readyz`;
      log(`e2e: gitops-guard controller ready and leading (metrics on 127.0.0.1:${metricsPort})`);
    }
  } catch (error) {
    await stopAll();
    throw new Error(`${(error as Error).message}\nlogs: ${dir}`);
  }

  return {
    kubeconfig,
    dir,
    controllerReadyz,
    async stop({ keep = false } = {}) {
      const problems: string[] = [];
      // The controller and the server first (they use the API), each by SIGTERM, as a pod is stopped.
      for (const process of [...started].reverse()) {
        process.child.kill('SIGTERM');
        const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 15_000).unref());
        const code = await Promise.race([process.exited, timeout]);
        if (code === 'timeout') {
          process.child.kill('SIGKILL');
          problems.push(`${process.name} did not stop within 15 s of SIGTERM`);
        } else if (code !== 0) {
          problems.push(`${process.name} exited with ${code} (log: ${process.logFile})`);
        }
      }
      const reportPath = join(dir, 'report.json');
      const report = existsSync(reportPath) ? (JSON.parse(readFileSync(reportPath, 'utf8')) as PeerReport) : undefined;
      if (!report) problems.push('apiserver-peer wrote no report');
      else if (!report.pass || report.summary?.protocolViolations || report.summary?.globalFailures) {
        problems.push(`apiserver-peer found protocol violations or failures: ${JSON.stringify(report.summary)} (report: ${reportPath})`);
      } else {
        log(`e2e: apiserver-peer saw no protocol violation in ${report.summary?.apiRequests ?? '?'} API requests (${report.summary?.apiWrites ?? '?'} writes through the webhooks)`);
      }
      if (problems.length > 0) throw new Error(`e2e environment: ${problems.join('; ')}; logs and report kept in ${dir}`);
      if (keep) log(`e2e: logs of the peer, the server and the controller and the peer's report kept in ${dir}`);
      else rmSync(dir, { recursive: true, force: true });
    },
  };
}
