import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildObjects } from './support/kustomize.js';

/**
 * Keeps `npm run bench` and `npm run soak` from rotting: compiles the bench (as `bench:build`
 * does, into a private directory) and runs it end to end in smoke mode. No timing assertions:
 * the numbers of a smoke run mean nothing, only that every scenario and the baseline answered.
 */

const REPO = fileURLToPath(new URL('..', import.meta.url));
const OUT = join(REPO, '.tmp', `bench-smoke-${process.pid}`);
const TSC = createRequire(import.meta.url).resolve('typescript/bin/tsc');

function run(args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * The bench ran the server and the controller as the rendered overlays deploy them: their
 * NODE_OPTIONS (the processes' heap limits prove it) and memory limits, judged in the targets.
 */
function expectRunAsDeployed(json: BenchJson, stdout: string): void {
  const container = (overlay: string, deployment: string) => {
    const found = buildObjects(join(REPO, 'manifests', 'overlays', overlay)).find((o) => o.kind === 'Deployment' && o.metadata?.name === deployment) as any;
    return found.spec.template.spec.containers[0] as { args: string[]; env: { name: string; value?: string }[]; resources: { limits: { memory: string }; requests: { memory: string } } };
  };
  const mib = (quantity: string) => Number(/^(\d+)Mi$/.exec(quantity)![1]) * 1024 * 1024;
  for (const [key, overlay, deployment] of [['webhook', 'enforce', 'gitops-guard'], ['controller', 'controller', 'gitops-guard-controller']] as const) {
    const c = container(overlay, deployment);
    const nodeOptions = c.env.find((e) => e.name === 'NODE_OPTIONS')!.value!;
    expect(json.deployment[key]).toMatchObject({
      overlay: `manifests/overlays/${overlay}`,
      nodeOptions,
      args: c.args,
      memoryLimitBytes: mib(c.resources.limits.memory),
      memoryRequestBytes: mib(c.resources.requests.memory),
    });
    expect(stdout).toContain(`${key}: memory limit >= 1.25 x peak RSS (limit ${(mib(c.resources.limits.memory) / 1024 / 1024).toFixed(1)} MiB from manifests/overlays/${overlay})`);
  }
  // The servers measured really ran with the overlay's NODE_OPTIONS: their heap limit is what it gives.
  const heap = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(Math.round(require("v8").getHeapStatistics().heap_size_limit / 1048576)))'], {
    env: { ...process.env, NODE_OPTIONS: json.deployment.webhook.nodeOptions },
    encoding: 'utf8',
  });
  for (const scenario of json.scenarios) expect(scenario.server?.heapLimitMiB, scenario.id).toBe(Number(heap.stdout));
  const defaultHeap = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(Math.round(require("v8").getHeapStatistics().heap_size_limit / 1048576)))'], { env: { ...process.env, NODE_OPTIONS: '' }, encoding: 'utf8' });
  expect(Number(heap.stdout)).not.toBe(Number(defaultHeap.stdout));
}

interface BenchJson {
  mode: string;
  scenarios: { id: string; peakRssBytes: number; points: Point[]; server?: { heapLimitMiB?: number } }[];
  deployment: Record<'webhook' | 'controller', { overlay: string; nodeOptions: string; args: string[]; memoryLimitBytes: number; memoryRequestBytes: number }>;
  controller?: { workloads: number; peakRssBytes: number; burst: { changed: number; rolled: number }; scan: { reportWrites: number; failing: number; rssBytes: number } };
}

interface Point {
  concurrency: number;
  server: { requests: number; errors: { total: number }; cpuPerRequestUs: number; mainThreadCpuPerRequestUs?: number };
  baseline?: { requests: number; errors: { total: number } };
}

describe('bench (smoke)', () => {
  beforeAll(async () => {
    const build = await run([TSC, '-p', 'tsconfig.bench.json', '--outDir', OUT], 60_000);
    expect(build.code, build.stdout + build.stderr).toBe(0);
  }, 60_000);

  afterAll(() => rmSync(OUT, { recursive: true, force: true }));

  it('runs every scenario against the built server and the baseline, prints the table and writes the results', async () => {
    const results = join(OUT, 'results.json');
    const { code, stdout, stderr } = await run([join(OUT, 'bench', 'run.js'), '--smoke', '--duration-s', '0.2', '--out', results], 150_000);
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/^scenario\s+conc\s+req\/s\s+base req\/s\s+ratio\s+p50 ms\s+p90 ms\s+p99 ms\s+max ms\s+base p99\s+errors\s+RSS MiB\s+cpu us\/req\s+main us\/req\s+base us\/req\s+cpu x base/m);
    // One point per scenario: concurrency 50 where the targets are judged, 5 for the megabyte bodies.
    for (const [id, concurrency] of [['owner', 50], ['checksum', 50], ['fastpath', 50], ['large', 5], ['xlarge', 5]] as const) {
      expect(stdout).toMatch(new RegExp(`^${id}\\s+${concurrency}\\s+\\d+\\s+\\d+\\s+[\\d.]+\\s+.*\\s\\d+\\s+\\d+\\s+\\d+\\s+[\\d.]+x\\s`, 'm'));
    }
    // Each path's CPU per call against the baseline of the same run, judged against its target (met or missed: a smoke run's numbers mean nothing).
    for (const [id, us] of [['checksum', 400], ['owner', 90], ['fastpath', 50]] as const) {
      expect(stdout).toMatch(new RegExp(`^  \\[(met|missed)\\] ${id} \\([^)]+\\): server CPU <= ${us} us per call at concurrency 50: \\d+ us/call \\(main thread \\d+, helper threads -?\\d+\\); baseline \\d+ us/call, [\\d.]+x the baseline; \\d+ req/s \\(baseline \\d+\\), p99 [\\d.]+ ms`, 'm'));
    }
    expect(stdout).toMatch(/^ {2}\[(met|missed)\] checksum: p99 <= 20 ms at concurrency 50: [\d.]+ ms$/m);

    expect(existsSync(results)).toBe(true);
    const json = JSON.parse(readFileSync(results, 'utf8')) as BenchJson;
    expect(json.mode).toBe('smoke');
    expect(json.scenarios.map((s) => s.id)).toEqual(['owner', 'checksum', 'fastpath', 'large', 'xlarge']);
    for (const scenario of json.scenarios) {
      expect(scenario.peakRssBytes, scenario.id).toBeGreaterThan(0);
      expect(scenario.points.map((p) => p.concurrency), scenario.id).toEqual([scenario.id.includes('large') ? 5 : 50]);
      expect(scenario.points.length, scenario.id).toBeGreaterThan(0);
      for (const point of scenario.points) {
        expect(point.server.requests, `${scenario.id} server`).toBeGreaterThan(0);
        expect(point.server.errors.total, `${scenario.id} server`).toBe(0);
        // The event loop's share of the server's CPU, the rest being V8's and libuv's helper threads.
        expect(point.server.mainThreadCpuPerRequestUs, `${scenario.id} main thread`).toBeGreaterThan(0);
        expect(point.server.mainThreadCpuPerRequestUs!, `${scenario.id} main thread`).toBeLessThanOrEqual(point.server.cpuPerRequestUs + 1);
        expect(point.baseline?.requests, `${scenario.id} baseline`).toBeGreaterThan(0);
        expect(point.baseline?.errors.total, `${scenario.id} baseline`).toBe(0);
      }
    }

    // The controller scenario ran (smoke: 200 workloads) and rolled what changed.
    expect(json.controller).toMatchObject({ workloads: 200, burst: { changed: 20, rolled: 20 } });
    expect(json.controller!.peakRssBytes).toBeGreaterThan(0);
    // Its leader scanned the Argo CD-shaped cluster and wrote policy reports (one per namespace and the cluster's),
    // finding the binding every Application claims.
    expect(json.controller!.scan.reportWrites).toBeGreaterThan(1);
    expect(json.controller!.scan.failing).toBeGreaterThan(0);
    expect(stdout).toMatch(/cluster scan [\d.]+ s, \d+ report writes, \d+ failing findings, RSS after it [\d.]+/);
    expect(stdout).toMatch(/^controller: 200 workloads \(600 objects\): RSS MiB start-up/m);
    expectRunAsDeployed(json, stdout);
  }, 160_000);

  it('runs the soak (owner and checksum mixed) and reports RSS at start, middle and end', async () => {
    const results = join(OUT, 'results-soak.json');
    const { code, stdout, stderr } = await run([join(OUT, 'bench', 'run.js'), '--soak', '--smoke', '--soak-requests', '400', '--out', results], 60_000);
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/^soak RSS MiB: idle [\d.]+, start [\d.]+, middle [\d.]+, end [\d.]+/m);
    const json = JSON.parse(readFileSync(results, 'utf8')) as { soak: { load: { requests: number; errors: { total: number } }; rssBytes: Record<string, number> } };
    expect(json.soak.load.requests).toBeGreaterThanOrEqual(400);
    expect(json.soak.load.errors.total).toBe(0);
    for (const at of ['start', 'middle', 'end']) expect(json.soak.rssBytes[at], at).toBeGreaterThan(0);
  }, 70_000);
});
