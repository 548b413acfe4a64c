import { loadavg } from 'node:os';
import { relative } from 'node:path';
import { runLoad, type LoadJob } from './load.js';
import type { Options } from './options.js';
import { REPO_ROOT } from './paths.js';
import { readCpuMs, readMemory, readThreadCpuMs, sampleRss, type Child } from './processes.js';
import { mib, type Measured, type PointResult, type ScenarioResult } from './report.js';
import type { RunFiles } from './run-dir.js';
import type { Scenario } from './scenarios.js';
import { preflight, startBaseline, startGitopsGuard, urlPath, type ApiProcess, type Cores } from './servers.js';

/** One scenario at its concurrency points: gitops-guard, then the baseline with the same bodies. */

export function loadJob(scenario: Scenario, files: RunFiles, port: number, connections: number, options: Options, verify: LoadJob['verify']): LoadJob {
  return {
    url: `https://127.0.0.1:${port}`,
    caFile: files.caFile,
    requests: scenario.requests.map((r) => ({ path: urlPath(r, files.profile), bodyFile: files.bodyFiles.get(r)!, expectPatch: r.expect.patch })),
    connections,
    warmupSeconds: options.warmupSeconds,
    durationSeconds: options.durationSeconds,
    verify,
    progressIntervalMs: 0,
    timeoutSeconds: 10,
  };
}

/** What the server process did during the measured phase of one load job. */
export async function measure(child: Child, job: LoadJob, files: RunFiles, cores: Cores, onMeasure?: () => void, onProgress?: (done: number) => void): Promise<Measured> {
  const sampler = sampleRss(child.pid, 100);
  let cpuStart: number | null = null;
  let threadsStart: ReturnType<typeof readThreadCpuMs> = null;
  let wallStart = 0n;
  let loadBefore = loadavg()[0]!;
  try {
    const result = await runLoad(job, files.dir, cores.load, {
      onMeasure: () => {
        cpuStart = readCpuMs(child.pid);
        threadsStart = readThreadCpuMs(child.pid);
        wallStart = process.hrtime.bigint();
        loadBefore = loadavg()[0]!;
        onMeasure?.();
      },
      onProgress,
    });
    const cpuEnd = readCpuMs(child.pid);
    const threadsEnd = readThreadCpuMs(child.pid);
    const wallMs = Number(process.hrtime.bigint() - wallStart) / 1e6;
    const cpuMs = cpuStart !== null && cpuEnd !== null ? cpuEnd - cpuStart : 0;
    return {
      ...result,
      maxRssBytes: sampler.stop(),
      cpuMs: Math.round(cpuMs),
      cpuPerRequestUs: result.requests > 0 ? Math.round((cpuMs * 1000) / result.requests) : 0,
      mainThreadCpuPerRequestUs:
        threadsStart && threadsEnd && result.requests > 0 ? Math.round(((threadsEnd.main - (threadsStart as { main: number }).main) * 1000) / result.requests) : undefined,
      cpuUtilization: wallMs > 0 ? Math.round((cpuMs / wallMs) * 100) / 100 : 0,
      loadAverage1m: [Math.round(loadBefore * 100) / 100, Math.round(loadavg()[0]! * 100) / 100],
    };
  } finally {
    sampler.stop();
  }
}

/** A smoke run's one point: concurrency 50, where the targets are judged, or 5 for bodies of a megabyte and more. */
function smokeConcurrency(scenario: Scenario): number {
  const largest = Math.max(...scenario.requests.map((r) => Buffer.byteLength(r.body)));
  return largest >= 512 * 1024 ? 5 : Math.min(50, scenario.defaultConcurrency[0]!);
}

export function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

export async function runScenario(scenario: Scenario, files: RunFiles, options: Options, cores: Cores, api: ApiProcess | undefined): Promise<ScenarioResult> {
  const points: PointResult[] = [];
  const server = await startGitopsGuard(files, options, cores, api?.kubeconfig);
  let peakRssBytes = 0;
  let startupRssBytes = 0;
  try {
    startupRssBytes = readMemory(server.child.pid)?.rss ?? 0;
    await preflight(server.port, files.caFile, scenario, files.profile);
    for (const connections of options.concurrency ?? (options.smoke ? [smokeConcurrency(scenario)] : scenario.defaultConcurrency)) {
      // The API's statistics window starts with the measured phase (warm-up reads are left out).
      let windowStart: Promise<unknown> | undefined;
      const job = loadJob(scenario, files, server.port, connections, options, 'admission');
      const reads = scenario.apiReadsPerCycle > 0 ? api : undefined;
      const result = await measure(server.child, job, files, cores, () => (windowStart = reads?.stats()));
      const point: PointResult = { concurrency: connections, server: result };
      if (reads) {
        await windowStart;
        const stats = await reads.stats();
        const mutations = (result.requests / scenario.requests.length) * scenario.requests.filter((r) => r.path === '/mutate').length;
        point.api = {
          requests: stats.requests,
          connections: stats.connections,
          readsPerAdmission: Math.round((stats.requests / Math.max(1, mutations)) * 100) / 100,
          serviceMs: stats.serviceMs,
        };
      }
      points.push(point);
      log(`  ${scenario.id} c=${connections}: ${result.requestsPerSecond.toFixed(0)} req/s, p99 ${result.latencyMs.p99} ms, errors ${result.errors.total}, RSS ${mib(result.maxRssBytes)} MiB`);
      if (result.firstWrongAnswer) log(`    first wrong answer: ${result.firstWrongAnswer}`);
    }
    peakRssBytes = readMemory(server.child.pid)?.peak ?? Math.max(...points.map((p) => p.server.maxRssBytes));
  } finally {
    const code = await server.child.stop();
    if (code !== 0) log(`  warning: gitops-guard exited with ${code}; see ${relative(REPO_ROOT, files.dir)}`);
  }

  let baselinePeakRssBytes: number | undefined;
  if (options.baseline) {
    const baseline = await startBaseline(files, cores);
    try {
      for (const point of points) {
        const result = await measure(baseline.child, loadJob(scenario, files, baseline.port, point.concurrency, options, 'any-allowed'), files, cores);
        point.baseline = result;
        point.throughputRatio = Math.round((point.server.requestsPerSecond / Math.max(1e-9, result.requestsPerSecond)) * 1000) / 1000;
        log(`  ${scenario.id} baseline c=${point.concurrency}: ${result.requestsPerSecond.toFixed(0)} req/s, p99 ${result.latencyMs.p99} ms (ratio ${point.throughputRatio.toFixed(2)})`);
      }
      baselinePeakRssBytes = readMemory(baseline.child.pid)?.peak;
    } finally {
      await baseline.child.stop();
    }
  }
  return {
    id: scenario.id,
    title: scenario.title,
    requests: scenario.requests.map((r) => ({ path: r.path, bytes: Buffer.byteLength(r.body), expectPatch: r.expect.patch })),
    startupRssBytes,
    peakRssBytes,
    ...(server.started ? { server: server.started } : {}),
    ...(baselinePeakRssBytes ? { baselinePeakRssBytes } : {}),
    points,
  };
}
