import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request } from 'node:https';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { generateChecksumKey } from '../src/actions/checksum/key.js';
import { testTls } from '../test/support/tls.js';
import { runLoad, type LoadJob } from './load.js';
import { BENCH_DIST_DIR, CLI_PATH, CORPUS_DIR, DEFAULT_RULES_PATH, REPO_ROOT } from './paths.js';
import { canPin, closeLog, openLog, readCpuMs, readMemory, sampleRss, sleep, startNode, waitForFileLine, waitForLine, type Child } from './processes.js';
import {
  evaluateTargets,
  formatSoak,
  formatTable,
  formatTargets,
  mib,
  writeResults,
  type AuditTiming,
  type BenchResults,
  type ControllerResult,
  type Machine,
  type Measured,
  type PointResult,
  type ScenarioResult,
  type SoakResult,
} from './report.js';
import { controllerProfile, deployedArgs, LOCAL_FLAGS, webhookProfile, type ContainerProfile, type WebhookProfile } from '../test/support/deployed.js';
import { benchRules, buildScenarios, SCENARIO_IDS, type BenchRequest, type Scenario, type ScenarioId } from './scenarios.js';
import { summarize, type LatencySummary } from './stats.js';

/**
 * `npm run bench` / `npm run soak`: the real server (built CLI, TLS, default rules) in its own
 * process on one core, autocannon in another process on the other core, and a bare node:https
 * baseline measured with the same bodies in the same run. See docs/performance.md.
 */

const USAGE = `Usage: node .tmp/bench-dist/bench/run.js [options]

  --scenarios LIST      owner,checksum,fastpath,large,xlarge,controller (default: all)
  --concurrency LIST    connections per point (default: each scenario's own: 50,200,500; large 50,200; xlarge 20)
  --controller-workloads N   workloads (each with a ConfigMap and a Secret) for the controller scenario (default: 10000)
  --duration-s N        seconds measured per point (default: 5)
  --warmup-s N          warm-up seconds before each point (default: 1)
  --no-baseline         skip the bare node:https baseline
  --audit-runs N        time "gitops-guard audit" over the corpus N times (default: 5; 0 to skip)
  --soak                200,000 requests of owner + checksum mixed; RSS at start, middle and end
  --soak-requests N     requests in the soak (default: 200000)
  --smoke               a seconds-long run proving the script works (no meaningful numbers)
  --log-level LEVEL     server log level (default: info, as deployed; logs go to a file)
  --cpu-prof            run the server under node --cpu-prof (profiles in .tmp/bench-prof/)
  --no-pin              do not pin processes to cores
  --out FILE            results JSON (default: bench/results.json, soak: bench/results-soak.json)
  --keep                keep the run directory (certificates, bodies, logs) under .tmp/
  --cli FILE            the gitops-guard CLI to run (default: dist/cli/main.js), e.g. to compare two builds
`;

interface Options {
  scenarios: ScenarioId[];
  /** Set by --concurrency; otherwise each scenario's own points. */
  concurrency?: number[];
  controller: boolean;
  controllerWorkloads: number;
  durationSeconds: number;
  warmupSeconds: number;
  baseline: boolean;
  auditRuns: number;
  soak: boolean;
  soakRequests: number;
  smoke: boolean;
  logLevel: string;
  cpuProf: boolean;
  pin: boolean;
  out: string;
  keep: boolean;
  /** Explicit CLI to measure; default: a snapshot of dist/cli/main.js. */
  cli?: string;
}

function parseOptions(argv: string[]): Options | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      scenarios: { type: 'string' },
      concurrency: { type: 'string' },
      'controller-workloads': { type: 'string' },
      'duration-s': { type: 'string' },
      'warmup-s': { type: 'string' },
      'no-baseline': { type: 'boolean' },
      'audit-runs': { type: 'string' },
      soak: { type: 'boolean' },
      'soak-requests': { type: 'string' },
      smoke: { type: 'boolean' },
      'log-level': { type: 'string' },
      'cpu-prof': { type: 'boolean' },
      'no-pin': { type: 'boolean' },
      out: { type: 'string' },
      keep: { type: 'boolean' },
      cli: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  const smoke = values.smoke === true;
  const soak = values.soak === true;
  const number = (raw: string | undefined, name: string, fallback: number, min: number): number => {
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < min) throw new Error(`--${name} must be a number >= ${min}`);
    return value;
  };
  const all = [...SCENARIO_IDS, 'controller'];
  const scenarios = (values.scenarios ?? all.join(',')).split(',').map((s) => s.trim()).filter(Boolean);
  for (const id of scenarios) {
    if (!all.includes(id)) throw new Error(`unknown scenario "${id}" (expected ${all.join(', ')})`);
  }
  const concurrency = (values.concurrency ?? (smoke ? '5' : undefined))?.split(',').map((c) => Math.floor(number(c.trim(), 'concurrency', 0, 1)));
  return {
    scenarios: scenarios.filter((id): id is ScenarioId => id !== 'controller'),
    ...(concurrency ? { concurrency } : {}),
    controller: scenarios.includes('controller') && !soak,
    controllerWorkloads: Math.floor(number(values['controller-workloads'], 'controller-workloads', smoke ? 200 : 10_000, 1)),
    durationSeconds: number(values['duration-s'], 'duration-s', smoke ? 0.3 : 5, 0.1),
    warmupSeconds: number(values['warmup-s'], 'warmup-s', smoke ? 0 : 1, 0),
    baseline: values['no-baseline'] !== true,
    auditRuns: Math.floor(number(values['audit-runs'], 'audit-runs', smoke || soak ? 0 : 5, 0)),
    soak,
    soakRequests: Math.floor(number(values['soak-requests'], 'soak-requests', smoke ? 1000 : 200_000, 100)),
    smoke,
    logLevel: values['log-level'] ?? 'info',
    cpuProf: values['cpu-prof'] === true,
    pin: values['no-pin'] !== true,
    out: values.out ?? join(REPO_ROOT, 'bench', soak ? 'results-soak.json' : 'results.json'),
    keep: values.keep === true,
    ...(values.cli ? { cli: resolve(values.cli) } : {}),
  };
}

// ---- the run directory: certificates, rules, key, bodies, logs ----

interface RunFiles {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  checksumKeyFile: string;
  rulesFile: string;
  addedChecksumRule: boolean;
  bodyFiles: Map<BenchRequest, string>;
  /** How the enforce overlay runs the webhook: flags, NODE_OPTIONS, memory limit, webhook timeouts. */
  profile: WebhookProfile;
}

/**
 * Copies the built application (dist/, package.json, rules/) into the run directory, so builds
 * made while the bench runs (other work in the same checkout) cannot mix into one run. Module
 * resolution still finds the checkout's node_modules (the copy lives inside the checkout).
 */
function snapshotBuild(dir: string): string {
  const app = join(dir, 'app');
  cpSync(join(REPO_ROOT, 'dist'), join(app, 'dist'), { recursive: true });
  cpSync(join(REPO_ROOT, 'rules'), join(app, 'rules'), { recursive: true });
  cpSync(join(REPO_ROOT, 'package.json'), join(app, 'package.json'));
  return join(app, relative(REPO_ROOT, CLI_PATH));
}

/** The commit measured, and whether src/ had uncommitted changes (dist/ is built from the working tree). */
function gitState(): { commit: string; srcDirty: boolean } | undefined {
  const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' });
  if (head.status !== 0) return undefined;
  const status = spawnSync('git', ['status', '--porcelain', '--', 'src', 'rules'], { cwd: REPO_ROOT, encoding: 'utf8' });
  return { commit: head.stdout.trim(), srcDirty: status.stdout.trim().length > 0 };
}

function prepareRunDir(scenarios: Scenario[], profile: WebhookProfile): RunFiles {
  const dir = join(REPO_ROOT, '.tmp', `bench-run-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const tls = testTls();
  const files = {
    caFile: join(dir, 'ca.crt'),
    certFile: join(dir, 'tls.crt'),
    keyFile: join(dir, 'tls.key'),
    checksumKeyFile: join(dir, 'checksum.key'),
    rulesFile: join(dir, 'rules.yaml'),
  };
  writeFileSync(files.caFile, tls.caPem);
  writeFileSync(files.certFile, tls.certPem);
  writeFileSync(files.keyFile, tls.keyPem, { mode: 0o600 });
  writeFileSync(files.checksumKeyFile, `${generateChecksumKey()}\n`, { mode: 0o600 });
  const rules = benchRules(readFileSync(DEFAULT_RULES_PATH, 'utf8'));
  writeFileSync(files.rulesFile, rules.text);
  const bodyFiles = new Map<BenchRequest, string>();
  for (const scenario of scenarios) {
    scenario.requests.forEach((r, i) => {
      const file = join(dir, `${scenario.id}-${i}${r.path.replace('/', '-')}.json`);
      writeFileSync(file, r.body);
      bodyFiles.set(r, file);
    });
  }
  return { dir, ...files, addedChecksumRule: rules.addedChecksumRule, bodyFiles, profile };
}

// ---- processes ----

interface Cores {
  server?: number;
  load?: number;
}

interface ApiStats {
  requests: number;
  /** New TLS connections: one per read means no keep-alive. */
  connections: number;
  unauthorized: number;
  serviceMs: LatencySummary;
}

interface ApiProcess {
  child: Child;
  kubeconfig: string;
  /** Requests and service time since the previous call. */
  stats(): Promise<ApiStats>;
}

async function startApiServer(cores: Cores, args: string[] = []): Promise<ApiProcess> {
  // Shares the load generator's core: the webhook's core stays its own.
  const child = startNode([join(BENCH_DIST_DIR, 'api-server-process.js'), ...args], cores.load, { stdio: ['pipe', 'pipe', 'inherit'] });
  const ready = await waitForLine(child, (line) => {
    try {
      const message = JSON.parse(line) as { kubeconfig?: string };
      return message.kubeconfig ? message : undefined;
    } catch {
      return undefined;
    }
  });
  return {
    child,
    kubeconfig: ready.kubeconfig!,
    async stats() {
      const answer = waitForLine(child, (line) => {
        try {
          return (JSON.parse(line) as { stats?: ApiStats }).stats;
        } catch {
          return undefined;
        }
      });
      child.process.stdin!.write('stats\n');
      return answer;
    },
  };
}

interface ServerProcess {
  child: Child;
  port: number;
  /** What the server logged about itself when it started (heap limit, memory budget). */
  started?: { heapLimitMiB?: number; memoryBudgetMiB?: number };
}

let serverCounter = 0;

/** gitops-guard serve from dist/, exactly as deployed, logging (JSON lines) to a file. */
async function startGitopsGuard(files: RunFiles, options: Options, cores: Cores, kubeconfig: string | undefined): Promise<ServerProcess> {
  const log = join(files.dir, `server-${++serverCounter}.log`);
  const fd = openLog(log);
  const profiling = options.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', join(REPO_ROOT, '.tmp', 'bench-prof')] : [];
  const args = [
    ...profiling,
    options.cli!,
    'serve',
    '--port', '0',
    '--host', '127.0.0.1',
    '--tls-cert', files.certFile,
    '--tls-key', files.keyFile,
    '--rules', files.rulesFile,
    '--checksum-key', files.checksumKeyFile,
    '--log-level', options.logLevel,
    ...(kubeconfig ? ['--kubeconfig', kubeconfig] : []),
    ...deployedArgs(files.profile.args, LOCAL_FLAGS),
  ];
  // The container's NODE_OPTIONS (heap size), exactly as the Deployment sets it.
  const env = { ...process.env, KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '', NODE_ENV: 'production', NODE_OPTIONS: files.profile.nodeOptions };
  const child = startNode(args, cores.server, { stdio: ['ignore', fd, fd], env, cwd: files.dir });
  closeLog(fd);
  const entry = await waitForFileLine(log, child, (line) => {
    try {
      const parsed = JSON.parse(line) as { msg?: string; port?: number; heapLimitMiB?: number; memoryBudgetMiB?: number };
      return parsed.msg === 'gitops-guard serving' ? parsed : undefined;
    } catch {
      return undefined;
    }
  });
  return { child, port: entry.port!, started: { heapLimitMiB: entry.heapLimitMiB, memoryBudgetMiB: entry.memoryBudgetMiB } };
}

/** The URL path the API server calls: the webhook's path with its timeoutSeconds as `?timeout=`. */
function urlPath(r: BenchRequest, profile: WebhookProfile): string {
  return `${r.path}?timeout=${profile.timeoutSeconds[r.webhook]}s`;
}

async function startBaseline(files: RunFiles, cores: Cores): Promise<ServerProcess> {
  const child = startNode([join(BENCH_DIST_DIR, 'baseline-server.js'), '--tls-cert', files.certFile, '--tls-key', files.keyFile], cores.server, {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await waitForLine(child, (line) => {
    try {
      return (JSON.parse(line) as { port?: number }).port;
    } catch {
      return undefined;
    }
  });
  return { child, port };
}

/** One request per body before measuring, so a wrong answer stops the run with a clear message. */
async function preflight(port: number, caFile: string, scenario: Scenario, profile: WebhookProfile): Promise<void> {
  const ca = readFileSync(caFile);
  for (const r of scenario.requests) {
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: urlPath(r, profile), method: 'POST', ca, servername: 'localhost', headers: { 'content-type': 'application/json' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(r.body);
    });
    const response = status === 200 ? (JSON.parse(body) as { response?: { allowed?: boolean; patch?: string; warnings?: string[] } }).response : undefined;
    const ok = response?.allowed === true && (typeof response.patch === 'string') === r.expect.patch && (response.warnings ?? []).length === 0;
    if (!ok) {
      throw new Error(`bench: scenario ${scenario.id} ${r.path}: unexpected answer (HTTP ${status}, expected ${r.expect.patch ? 'a patch' : 'no patch'} and no warnings): ${body.slice(0, 800)}`);
    }
  }
}

function loadJob(scenario: Scenario, files: RunFiles, port: number, connections: number, options: Options, verify: LoadJob['verify']): LoadJob {
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
async function measure(child: Child, job: LoadJob, files: RunFiles, cores: Cores, onMeasure?: () => void, onProgress?: (done: number) => void): Promise<Measured> {
  const sampler = sampleRss(child.pid, 100);
  let cpuStart: number | null = null;
  let wallStart = 0n;
  let loadBefore = loadavg()[0]!;
  try {
    const result = await runLoad(job, files.dir, cores.load, {
      onMeasure: () => {
        cpuStart = readCpuMs(child.pid);
        wallStart = process.hrtime.bigint();
        loadBefore = loadavg()[0]!;
        onMeasure?.();
      },
      onProgress,
    });
    const cpuEnd = readCpuMs(child.pid);
    const wallMs = Number(process.hrtime.bigint() - wallStart) / 1e6;
    const cpuMs = cpuStart !== null && cpuEnd !== null ? cpuEnd - cpuStart : 0;
    return {
      ...result,
      maxRssBytes: sampler.stop(),
      cpuMs: Math.round(cpuMs),
      cpuPerRequestUs: result.requests > 0 ? Math.round((cpuMs * 1000) / result.requests) : 0,
      cpuUtilization: wallMs > 0 ? Math.round((cpuMs / wallMs) * 100) / 100 : 0,
      loadAverage1m: [Math.round(loadBefore * 100) / 100, Math.round(loadavg()[0]! * 100) / 100],
    };
  } finally {
    sampler.stop();
  }
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

async function runScenario(scenario: Scenario, files: RunFiles, options: Options, cores: Cores, api: ApiProcess | undefined): Promise<ScenarioResult> {
  const points: PointResult[] = [];
  const server = await startGitopsGuard(files, options, cores, api?.kubeconfig);
  let peakRssBytes = 0;
  let startupRssBytes = 0;
  try {
    startupRssBytes = readMemory(server.child.pid)?.rss ?? 0;
    await preflight(server.port, files.caFile, scenario, files.profile);
    for (const connections of options.concurrency ?? scenario.defaultConcurrency) {
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

async function runSoak(scenarios: Scenario[], files: RunFiles, options: Options, cores: Cores, api: ApiProcess | undefined): Promise<SoakResult> {
  const server = await startGitopsGuard(files, options, cores, api?.kubeconfig);
  try {
    for (const scenario of scenarios) await preflight(server.port, files.caFile, scenario, files.profile);
    const idle = readMemory(server.child.pid)?.rss ?? 0;
    const concurrency = options.concurrency?.[0] ?? 50;
    const mixed: Scenario = { id: 'owner', title: 'soak', requests: scenarios.flatMap((s) => s.requests), apiReadsPerCycle: 0, defaultConcurrency: [concurrency] };
    const job: LoadJob = {
      ...loadJob(mixed, files, server.port, concurrency, options, 'admission'),
      amount: options.soakRequests,
      durationSeconds: undefined,
      progressIntervalMs: 250,
    };
    const timeline: SoakResult['timeline'] = [];
    let started = Date.now();
    let windowStart: Promise<unknown> | undefined;
    let lastLogged = 0;
    const load = await measure(
      server.child,
      job,
      files,
      cores,
      () => {
        started = Date.now();
        windowStart = api?.stats();
      },
      (done) => {
        const memory = readMemory(server.child.pid);
        if (memory) timeline.push({ requests: done, rssBytes: memory.rss, seconds: (Date.now() - started) / 1000 });
        if (done - lastLogged >= options.soakRequests / 10) {
          lastLogged = done;
          log(`  soak: ${done} requests, RSS ${memory ? mib(memory.rss) : '?'} MiB`);
        }
      },
    );
    await windowStart;
    const end = readMemory(server.child.pid);
    const peak = end?.peak ?? load.maxRssBytes;
    const measured = timeline.filter((t) => t.requests > 0);
    const nearest = (n: number) => measured.reduce((best, t) => (Math.abs(t.requests - n) < Math.abs(best.requests - n) ? t : best), measured[0] ?? { requests: 0, rssBytes: idle, seconds: 0 });
    const start = measured[0]?.rssBytes ?? idle;
    const middle = nearest(options.soakRequests / 2).rssBytes;
    const endRss = end?.rss ?? measured[measured.length - 1]?.rssBytes ?? 0;
    const apiStats = api ? await api.stats() : undefined;
    // Single samples ride the garbage collector's sawtooth; medians over a window do not.
    const medianIn = (from: number, to: number): number => {
      const values = measured.filter((t) => t.requests >= from * options.soakRequests && t.requests <= to * options.soakRequests).map((t) => t.rssBytes);
      values.sort((a, b) => a - b);
      return values[values.length >> 1] ?? 0;
    };
    const windows = { start: medianIn(0, 0.1), middle: medianIn(0.45, 0.55), end: medianIn(0.9, 1) };
    return {
      requests: options.soakRequests,
      concurrency,
      load,
      rssBytes: { idle, start, middle, end: endRss, peak },
      rssMedianBytes: windows,
      growthMiddleToEnd: Math.round(((windows.end - windows.middle) / Math.max(1, windows.middle)) * 1000) / 1000,
      growthMiddleToEndSamples: Math.round(((endRss - middle) / Math.max(1, middle)) * 1000) / 1000,
      timeline,
      ...(apiStats ? { api: { requests: apiStats.requests, connections: apiStats.connections, serviceMs: apiStats.serviceMs } } : {}),
    };
  } finally {
    await server.child.stop();
  }
}

// ---- the rollout controller with many workloads ----

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
async function runController(files: RunFiles, options: Options, cores: Cores, profile: ContainerProfile): Promise<ControllerResult> {
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
    ...deployedArgs(profile.args, LOCAL_FLAGS),
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
    await sleep(3000);
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
    };
  } finally {
    sampler.stop();
    const code = await child.stop();
    if (code !== 0) log(`  warning: the controller exited with ${code}; see ${relative(REPO_ROOT, logFile)}`);
    await api.child.stop();
  }
}

/** Wall time of `gitops-guard audit` over the whole corpus (a CI job's cost). */
async function timeAudit(cli: string, runs: number): Promise<AuditTiming> {
  const args = [cli, 'audit', '-f', CORPUS_DIR, '--format', 'json'];
  const walls: number[] = [];
  let exitCode: number | null = null;
  let objects: number | undefined;
  for (let i = 0; i < runs; i++) {
    const started = process.hrtime.bigint();
    const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>((resolve, reject) => {
      const child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
      child.on('error', reject);
      child.on('close', (c) => resolve({ code: c, stdout: out }));
    });
    walls.push(Number(process.hrtime.bigint() - started) / 1e6);
    exitCode = code;
    try {
      objects = (JSON.parse(stdout) as { summary?: { objects?: number } }).summary?.objects;
    } catch {
      throw new Error(`bench: "gitops-guard audit" did not print a JSON report (exit ${code})`);
    }
  }
  return { command: `gitops-guard audit -f ${relative(REPO_ROOT, CORPUS_DIR)} --format json`, runs, wallMs: summarize(walls), exitCode, objects };
}

function machine(cores: Cores): Machine {
  const list = cpus();
  return {
    cpus: list.length,
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    totalMemoryMiB: Math.round(totalmem() / 1024 / 1024),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    serverCore: cores.server ?? null,
    loadCore: cores.load ?? null,
    loadAverageAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

async function main(): Promise<number> {
  let options: Options | 'help';
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`bench: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (options === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const requestedCli = options.cli ?? CLI_PATH;
  if (!existsSync(requestedCli)) {
    process.stderr.write(`bench: ${relative(REPO_ROOT, requestedCli)} is missing; run "npm run build" first\n`);
    return 2;
  }

  const startedAt = new Date().toISOString();
  const cores: Cores = options.pin && canPin() ? { server: 1, load: 0 } : {};
  const all = buildScenarios();
  const selected = options.soak ? all.filter((s) => s.id === 'owner' || s.id === 'checksum') : all.filter((s) => options.scenarios.includes(s.id));
  // Run as deployed: flags, NODE_OPTIONS and memory limits from the rendered overlays.
  const profile = webhookProfile();
  const controller = options.controller ? controllerProfile() : undefined;
  const files = prepareRunDir(selected, profile);
  const git = gitState();
  options.cli ??= snapshotBuild(files.dir);
  const notes: string[] = [];
  if (git?.srcDirty) notes.push(`src/ or rules/ had uncommitted changes: dist/ may differ from commit ${git.commit}`);
  if (cores.server === undefined) notes.push('processes not pinned (no taskset, a single core, or --no-pin)');
  else notes.push(`gitops-guard and the baseline pinned to core ${cores.server}; the load generator and the test API server share core ${cores.load}`);
  if (files.addedChecksumRule) notes.push('rules/default-rules.yaml has no stampConfigChecksum rule; the bench appends the stamp-config-checksum rule from docs/config-checksum.md');
  notes.push('latency excludes each connection\'s first answer (TLS handshake); keep-alive connections as the API server uses');
  notes.push('autocannon does not verify the server certificate (it forces rejectUnauthorized: false); the handshake and encryption costs are real');
  if (options.smoke) notes.push('smoke mode: proves the script works; the numbers mean nothing');
  const [load1] = loadavg();
  if (!options.smoke && load1! > 0.5) notes.push(`the machine was busy when the run started (load average ${load1!.toFixed(2)}): other work competes for both cores`);
  notes.push(
    `server run as ${profile.overlay} deploys it: NODE_OPTIONS "${profile.nodeOptions}", memory limit ${mib(profile.memoryLimitBytes)} MiB, ` +
      `?timeout= ${profile.timeoutSeconds.owners}s (owners) / ${profile.timeoutSeconds.workloads}s (workloads)`,
  );
  const plan = options.soak
    ? `${options.soakRequests} soak requests at concurrency ${options.concurrency?.[0] ?? 50}`
    : `concurrency ${options.concurrency?.join(',') ?? 'per scenario'}, ${options.durationSeconds}s per point`;
  log(`bench: ${selected.length} scenario(s), ${plan}; ${notes.find((n) => n.includes('pinned')) ?? ''}`);

  const needsApi = selected.some((s) => s.apiReadsPerCycle > 0);
  let api: ApiProcess | undefined;
  const results: BenchResults = {
    kind: 'GitopsGuardBench',
    version: 1,
    mode: options.soak ? (options.smoke ? 'soak-smoke' : 'soak') : options.smoke ? 'smoke' : 'bench',
    startedAt,
    finishedAt: startedAt,
    argv: process.argv.slice(2),
    cli: requestedCli === CLI_PATH && !process.argv.includes('--cli') ? `${relative(REPO_ROOT, CLI_PATH)} (snapshot taken at start)` : relative(REPO_ROOT, requestedCli),
    ...(git ? { git } : {}),
    machine: machine(cores),
    options: {
      durationSeconds: options.durationSeconds,
      warmupSeconds: options.warmupSeconds,
      ...(options.concurrency ? { concurrency: options.concurrency } : {}),
      logLevel: options.logLevel,
      scenarios: [...selected.map((s) => s.id), ...(options.controller ? ['controller' as const] : [])],
    },
    deployment: { webhook: profile, ...(controller ? { controller } : {}) },
    rules: { source: relative(REPO_ROOT, DEFAULT_RULES_PATH), addedChecksumRule: files.addedChecksumRule },
    notes,
    scenarios: [],
    targets: [],
  };
  try {
    if (needsApi) api = await startApiServer(cores);
    if (options.soak) {
      results.soak = await runSoak(selected, files, options, cores, api);
    } else {
      for (const scenario of selected) {
        log(`scenario ${scenario.id}: ${scenario.title}`);
        results.scenarios.push(await runScenario(scenario, files, options, cores, api));
      }
    }
    if (controller) {
      log(`controller: ${options.controllerWorkloads} workloads with a ConfigMap and a Secret each`);
      results.controller = await runController(files, options, cores, controller);
    }
    if (options.auditRuns > 0) {
      log(`audit: ${options.auditRuns} runs over the corpus`);
      results.audit = await timeAudit(options.cli!, options.auditRuns);
    }
  } finally {
    if (api) await api.child.stop();
    if (!options.keep) rmSync(files.dir, { recursive: true, force: true });
  }
  results.finishedAt = new Date().toISOString();
  results.targets = evaluateTargets(results);
  writeResults(options.out, results);

  process.stdout.write(options.soak ? `${formatSoak(results.soak!)}\n` : formatTable(results));
  process.stdout.write(formatTargets(results.targets));
  process.stdout.write(`results: ${relative(process.cwd(), options.out) || options.out}\n`);
  // Timeouts and dropped connections under overload are results; wrong answers mean a broken setup.
  const points = results.scenarios.flatMap((s) => s.points.flatMap((p) => [p.server, ...(p.baseline ? [p.baseline] : [])]));
  const loads = [...points, ...(results.soak ? [results.soak.load] : [])];
  const wrong = loads.reduce((n, l) => n + l.errors.wrongAnswer + l.errors.non2xx, 0);
  const failed = loads.reduce((n, l) => n + l.errors.timeouts + l.errors.connection + l.errors.rejected, 0);
  if (failed > 0) process.stderr.write(`bench: ${failed} request(s) timed out, lost their connection or were refused past their deadline (503); see ${options.out}\n`);
  if (wrong > 0) {
    process.stderr.write(`bench: ${wrong} answer(s) were errors or not the expected AdmissionReview; see ${options.out}\n`);
    return 1;
  }
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);

