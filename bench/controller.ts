import { request as httpRequest } from 'node:http';
import { join, relative } from 'node:path';
import { deployedArgs, LOCAL_FLAGS, type ContainerProfile } from '../test/support/deployed.js';
import { log } from './measure.js';
import type { Options } from './options.js';
import { REPO_ROOT } from './paths.js';
import { closeLog, openLog, readMemory, sampleRss, sleep, startNode, waitForFileLine, waitForLine } from './processes.js';
import { mib, type ControllerResult } from './report.js';
import type { RunFiles } from './run-dir.js';
import { startApiServer, type Cores } from './servers.js';

/** The rollout controller with many workloads. */

/** GET over plain HTTP (the controller's metrics port); null when it does not answer. */
function httpGet(port: number, path: string): Promise<{ status: number; body: string } | null> {
  return new Promise((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', () => resolve(null));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** Sum of a Prometheus counter's series (all label values). */
function metricSum(text: string, name: string): number {
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
}

/** Sum of a metric's series whose labels include `label` (e.g. `result="fail"`). */
function metricValue(text: string, name: string, label: string): number {
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) && line.includes(label))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
}

async function until(what: string, timeoutMs: number, condition: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > timeoutMs) throw new Error(`bench: controller: ${what} not reached within ${timeoutMs / 1000} s`);
    await sleep(250);
  }
  return Date.now() - started;
}

/**
 * `gitops-guard controller` as the controller overlay deploys it (flags, NODE_OPTIONS) against
 * the test API holding `workloads` stamped Deployments and their ConfigMaps and Secrets: RSS
 * when its informers have synced, after the leader compared every workload, at rest, and through
 * a burst of ConfigMap changes (a tenth of the workloads roll).
 */
export async function runController(files: RunFiles, options: Options, cores: Cores, profile: ContainerProfile): Promise<ControllerResult> {
  const api = await startApiServer(cores, ['--controller-workloads', String(options.controllerWorkloads), '--checksum-key', files.checksumKeyFile]);
  const logFile = join(files.dir, 'controller.log');
  const fd = openLog(logFile);
  const args = [
    options.cli!,
    'controller',
    '--kubeconfig', api.kubeconfig,
    '--rules', files.rulesFile,
    '--checksum-key', files.checksumKeyFile,
    '--metrics-port', '0',
    '--metrics-host', '127.0.0.1',
    '--log-level', options.logLevel,
    // The first cluster scan a second after leading instead of a minute: it then overlaps the
    // comparison of every workload, the controller's busiest moment, and the bench need not wait.
    '--scan-coalesce-ms', '1000',
    ...deployedArgs(profile.args, [...LOCAL_FLAGS, 'scan-coalesce-ms']),
  ];
  const env = { ...process.env, KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '', NODE_ENV: 'production', NODE_OPTIONS: profile.nodeOptions, POD_NAMESPACE: 'gitops-guard', HOSTNAME: 'bench-controller' };
  const child = startNode(args, cores.server, { stdio: ['ignore', fd, fd], env, cwd: files.dir });
  closeLog(fd);
  const sampler = sampleRss(child.pid, 100);
  try {
    const port = await waitForFileLine(logFile, child, (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; port?: number };
        return entry.msg === 'controller metrics listening' ? entry.port : undefined;
      } catch {
        return undefined;
      }
    });
    const startupRssBytes = readMemory(child.pid)?.rss ?? 0;
    const workloads = options.controllerWorkloads;
    const minutes = 10 * 60_000;
    const syncMs = await until('informers synced (/readyz)', minutes, async () => (await httpGet(port, '/readyz'))?.status === 200);
    const syncedRssBytes = readMemory(child.pid)?.rss ?? 0;
    log(`  controller: informers synced in ${(syncMs / 1000).toFixed(1)} s, RSS ${mib(syncedRssBytes)} MiB`);
    const metrics = async () => (await httpGet(port, '/metrics'))?.body ?? '';
    const compareMs = await until('every workload compared', minutes, async () => {
      const text = await metrics();
      return metricSum(text, 'gitops_guard_controller_reconciles_total') >= workloads && metricSum(text, 'gitops_guard_controller_queue_depth') === 0;
    });
    const afterCompare = await metrics();
    log(`  controller: compared ${workloads} workloads in ${(compareMs / 1000).toFixed(1)} s (${metricSum(afterCompare, 'gitops_guard_controller_rollouts_total')} rolled)`);
    const scanMs = await until('a completed cluster scan', minutes, async () => metricSum(await metrics(), 'gitops_guard_scan_last_run_timestamp_seconds') > 0);
    const afterScan = await metrics();
    const scan = {
      durationMs: metricSum(afterScan, 'gitops_guard_scan_duration_seconds') * 1000,
      reportWrites: metricSum(afterScan, 'gitops_guard_scan_report_writes_total'),
      failing: metricValue(afterScan, 'gitops_guard_scan_findings', 'result="fail"'),
      rssBytes: readMemory(child.pid)?.rss ?? 0,
    };
    log(
      `  controller: cluster scan completed ${(scanMs / 1000).toFixed(1)} s after the comparison (took ${(scan.durationMs / 1000).toFixed(1)} s), ` +
        `${scan.reportWrites} report writes, ${scan.failing} failing findings, RSS ${mib(scan.rssBytes)} MiB`,
    );
    if (scan.reportWrites === 0) throw new Error('bench: controller: the cluster scan wrote no policy report');
    // At rest: garbage collected after the comparison (a smoke run only proves the step runs).
    await sleep(options.smoke ? 300 : 3000);
    const idleRssBytes = readMemory(child.pid)?.rss ?? 0;
    const changed = Math.max(1, Math.floor(workloads / 10));
    const answer = waitForLine(api.child, (line) => (line.includes('"changed"') ? true : undefined));
    api.child.process.stdin!.write(`change ${changed}\n`);
    await answer;
    const burstMs = await until(`${changed} rollouts`, minutes, async () => {
      const text = await metrics();
      return metricSum(text, 'gitops_guard_controller_rollouts_total') >= changed && metricSum(text, 'gitops_guard_controller_queue_depth') === 0;
    });
    const rolled = metricSum(await metrics(), 'gitops_guard_controller_rollouts_total');
    log(`  controller: ${changed} ConfigMaps changed, ${rolled} workloads rolled in ${(burstMs / 1000).toFixed(1)} s`);
    const peakRssBytes = readMemory(child.pid)?.peak ?? sampler.stop();
    return {
      workloads,
      objects: workloads * 3,
      startupRssBytes,
      syncedRssBytes,
      idleRssBytes,
      maxSampledRssBytes: sampler.stop(),
      peakRssBytes,
      syncMs,
      compareMs,
      burst: { changed, rolled, ms: burstMs },
      scan,
    };
  } finally {
    sampler.stop();
    const code = await child.stop();
    if (code !== 0) log(`  warning: the controller exited with ${code}; see ${relative(REPO_ROOT, logFile)}`);
    await api.child.stop();
  }
}
