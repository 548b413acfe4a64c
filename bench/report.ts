import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { LoadResult } from './load-worker.js';
import type { LatencySummary } from './stats.js';
import type { ContainerProfile, WebhookProfile } from '../test/support/deployed.js';
import type { ScenarioId } from './scenarios.js';

/** The results file (bench/results.json): everything measured, plus how and where. */

export interface Machine {
  cpus: number;
  cpuModel: string;
  totalMemoryMiB: number;
  node: string;
  platform: string;
  /** Cores the server and the load generator were pinned to (null: not pinned). */
  serverCore: number | null;
  loadCore: number | null;
  /** 1, 5 and 15 minute load averages when the run started (other work on the machine skews results). */
  loadAverageAtStart: number[];
}

/** A load result plus what the server process did meanwhile (measured phase only). */
export interface Measured extends LoadResult {
  /** Largest RSS sampled (every 100 ms) during warm-up and measurement. */
  maxRssBytes: number;
  /** Server CPU time (user + system) during the measured phase. */
  cpuMs: number;
  /** Server CPU per answer: robust against other load on the machine, unlike requests/s. */
  cpuPerRequestUs: number;
  /**
   * The part of it spent on the main thread (the event loop: JavaScript, TLS, parsing); the rest
   * is V8's garbage-collection and compiler helper threads and libuv's pool. Absent without /proc.
   */
  mainThreadCpuPerRequestUs?: number;
  /** Server CPU time / wall time: near 1 means the server's core was the bottleneck. */
  cpuUtilization: number;
  /** Machine load average (1 min) before and after the measured phase. */
  loadAverage1m: [number, number];
}

export interface PointResult {
  concurrency: number;
  server: Measured;
  baseline?: Measured;
  /** server requests/s divided by the baseline's for the same bodies and concurrency. */
  throughputRatio?: number;
  /** The test Kubernetes API during this point (scenarios that read it). */
  api?: { requests: number; connections: number; readsPerAdmission: number; serviceMs: LatencySummary };
}

export interface ScenarioResult {
  id: ScenarioId;
  title: string;
  requests: { path: string; bytes: number; expectPatch: boolean }[];
  /** Server RSS right after start-up, before any request. */
  startupRssBytes: number;
  /** Peak RSS (VmHWM) of the gitops-guard process over all of this scenario's points. */
  peakRssBytes: number;
  /** What the server logged at start-up: its V8 heap limit (from NODE_OPTIONS) and memory budget. */
  server?: { heapLimitMiB?: number; memoryBudgetMiB?: number };
  baselinePeakRssBytes?: number;
  points: PointResult[];
}

export interface AuditTiming {
  command: string;
  runs: number;
  wallMs: LatencySummary;
  exitCode: number | null;
  objects?: number;
}

export interface TargetCheck {
  target: string;
  measured: string;
  status: 'met' | 'missed' | 'n/a';
}

export interface SoakResult {
  requests: number;
  concurrency: number;
  load: LoadResult;
  /** Single samples: after start-up, first sample under load, nearest the middle request, after the last. */
  rssBytes: { idle: number; start: number; middle: number; end: number; peak: number };
  /** Median RSS over the first 10%, 45-55% and last 10% of requests. */
  rssMedianBytes: { start: number; middle: number; end: number };
  /** (end - middle) / middle of the window medians: what the target is judged on. */
  growthMiddleToEnd: number;
  /** The same from the single samples (noisier: garbage collection). */
  growthMiddleToEndSamples: number;
  timeline: { requests: number; rssBytes: number; seconds: number }[];
  api?: { requests: number; connections: number; serviceMs: LatencySummary };
}

/** The rollout controller with many workloads (the controller scenario). */
export interface ControllerResult {
  workloads: number;
  /** Workloads, ConfigMaps and Secrets in the API. */
  objects: number;
  startupRssBytes: number;
  /** When its informers had synced (/readyz 200). */
  syncedRssBytes: number;
  /** At rest after the leader compared every workload. */
  idleRssBytes: number;
  maxSampledRssBytes: number;
  /** VmHWM over the whole run. */
  peakRssBytes: number;
  syncMs: number;
  compareMs: number;
  burst: { changed: number; rolled: number; ms: number };
  /** The leader's first cluster scan (overlapping the comparison) and the policy reports it wrote. */
  scan: { durationMs: number; reportWrites: number; failing: number; rssBytes: number };
}

export interface BenchResults {
  kind: 'GitopsGuardBench';
  version: 1;
  mode: 'bench' | 'smoke' | 'soak' | 'soak-smoke';
  startedAt: string;
  finishedAt: string;
  argv: string[];
  /** The CLI that was measured (repository-relative). */
  cli: string;
  /** HEAD when the run started; srcDirty: src/ or rules/ had uncommitted changes. */
  git?: { commit: string; srcDirty: boolean };
  machine: Machine;
  options: { durationSeconds: number; warmupSeconds: number; concurrency?: number[]; logLevel: string; scenarios: (ScenarioId | 'controller')[] };
  /** How the manifests run the processes measured (rendered overlays). */
  deployment: { webhook: WebhookProfile; controller?: ContainerProfile };
  rules: { source: string; addedChecksumRule: boolean };
  notes: string[];
  scenarios: ScenarioResult[];
  soak?: SoakResult;
  controller?: ControllerResult;
  audit?: AuditTiming;
  targets: TargetCheck[];
}

const MiB = 1024 * 1024;

export function mib(bytes: number): string {
  return (bytes / MiB).toFixed(1);
}

function pad(text: string, width: number, left = false): string {
  return left ? text.padEnd(width) : text.padStart(width);
}

function ms(value: number): string {
  return value < 10 ? value.toFixed(2) : value < 100 ? value.toFixed(1) : value.toFixed(0);
}

/** p50, p90, p99, max; '-' when no connection got past its first answer (nothing to measure). */
function latency(summary: LatencySummary): string[] {
  if (summary.count === 0) return ['-', '-', '-', '-'];
  return [ms(summary.p50), ms(summary.p90), ms(summary.p99), ms(summary.max)];
}

/** Server CPU per call as a multiple of the bare baseline's, for the same bodies in the same run. */
function cpuRatio(point: PointResult): string | undefined {
  const base = point.baseline?.cpuPerRequestUs;
  return base ? `${(point.server.cpuPerRequestUs / base).toFixed(1)}x` : undefined;
}

/** The compact table: one row per scenario and concurrency. */
export function formatTable(results: BenchResults): string {
  const header = ['scenario', 'conc', 'req/s', 'base req/s', 'ratio', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'base p99', 'errors', 'RSS MiB', 'cpu us/req', 'main us/req', 'base us/req', 'cpu x base', 'cpu%', 'load 1m'];
  const rows: string[][] = [];
  for (const scenario of results.scenarios) {
    for (const point of scenario.points) {
      const s = point.server;
      rows.push([
        scenario.id,
        String(point.concurrency),
        s.requestsPerSecond.toFixed(0),
        point.baseline ? point.baseline.requestsPerSecond.toFixed(0) : '-',
        point.throughputRatio !== undefined ? point.throughputRatio.toFixed(2) : '-',
        ...latency(s.latencyMs),
        point.baseline && point.baseline.latencyMs.count > 0 ? ms(point.baseline.latencyMs.p99) : '-',
        String(s.errors.total + (point.baseline?.errors.total ?? 0)),
        mib(s.maxRssBytes),
        String(s.cpuPerRequestUs),
        s.mainThreadCpuPerRequestUs !== undefined ? String(s.mainThreadCpuPerRequestUs) : '-',
        point.baseline ? String(point.baseline.cpuPerRequestUs) : '-',
        cpuRatio(point) ?? '-',
        String(Math.round(s.cpuUtilization * 100)),
        s.loadAverage1m.map((l) => l.toFixed(1)).join('/'),
      ]);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => pad(c, widths[i]!, i === 0)).join('  ');
  const out = [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
  for (const scenario of results.scenarios) {
    const bytes = scenario.requests.map((r) => `${r.path} ${(r.bytes / 1024).toFixed(1)} KiB`).join(', ');
    const api = scenario.points.find((p) => p.api)?.api;
    out.push(
      `${scenario.id}: ${scenario.title}; bodies ${bytes}; server peak RSS ${mib(scenario.peakRssBytes)} MiB (start-up ${mib(scenario.startupRssBytes)})` +
        (scenario.baselinePeakRssBytes ? `, baseline ${mib(scenario.baselinePeakRssBytes)} MiB` : '') +
        (api ? `; API reads/admission ${api.readsPerAdmission.toFixed(2)}` : ''),
    );
  }
  for (const scenario of results.scenarios) {
    for (const point of scenario.points) {
      if (point.api) {
        const a = point.api.serviceMs;
        out.push(
          `test API during ${scenario.id} c=${point.concurrency}: ${point.api.requests} reads over ${point.api.connections} new TLS connections, ` +
            `${point.api.readsPerAdmission} reads per admission, service time p50 ${ms(a.p50)} ms, p99 ${ms(a.p99)} ms`,
        );
      }
    }
  }
  if (results.audit) {
    const a = results.audit;
    out.push(`audit: ${a.command}: ${a.runs} runs, wall median ${ms(a.wallMs.p50)} ms, max ${ms(a.wallMs.max)} ms, exit ${a.exitCode}${a.objects !== undefined ? `, ${a.objects} objects` : ''}`);
  }
  if (results.soak) out.push(formatSoak(results.soak));
  if (results.controller) {
    const c = results.controller;
    out.push(
      `controller: ${c.workloads} workloads (${c.objects} objects): RSS MiB start-up ${mib(c.startupRssBytes)}, synced ${mib(c.syncedRssBytes)} (${(c.syncMs / 1000).toFixed(1)} s), ` +
        `idle after comparing all ${mib(c.idleRssBytes)} (${(c.compareMs / 1000).toFixed(1)} s), peak ${mib(c.peakRssBytes)}; ` +
        `burst: ${c.burst.changed} ConfigMaps changed, ${c.burst.rolled} rolled in ${(c.burst.ms / 1000).toFixed(1)} s; ` +
        `cluster scan ${(c.scan.durationMs / 1000).toFixed(1)} s, ${c.scan.reportWrites} report writes, ${c.scan.failing} failing findings, RSS after it ${mib(c.scan.rssBytes)}`,
    );
  }
  return `${out.join('\n')}\n`;
}

export function formatSoak(soak: SoakResult): string {
  const r = soak.rssBytes;
  const l = soak.load;
  return [
    `soak: ${l.requests} requests (scenarios owner + checksum mixed) at concurrency ${soak.concurrency} in ${l.durationSeconds.toFixed(1)} s: ` +
      `${l.requestsPerSecond.toFixed(0)} req/s, p50 ${ms(l.latencyMs.p50)} ms, p99 ${ms(l.latencyMs.p99)} ms, max ${ms(l.latencyMs.max)} ms, errors ${l.errors.total}`,
    `soak RSS MiB: idle ${mib(r.idle)}, start ${mib(r.start)}, middle ${mib(r.middle)}, end ${mib(r.end)}, peak ${mib(r.peak)}; growth middle->end ${(soak.growthMiddleToEndSamples * 100).toFixed(1)}%`,
    `soak RSS MiB, medians over windows: first 10% ${mib(soak.rssMedianBytes.start)}, 45-55% ${mib(soak.rssMedianBytes.middle)}, last 10% ${mib(soak.rssMedianBytes.end)}; growth middle->end ${(soak.growthMiddleToEnd * 100).toFixed(1)}%`,
  ].join('\n');
}

export function formatTargets(targets: TargetCheck[]): string {
  if (targets.length === 0) return '';
  return `targets:\n${targets.map((t) => `  [${t.status}] ${t.target}: ${t.measured}`).join('\n')}\n`;
}

function check(target: string, measured: string, ok: boolean | undefined): TargetCheck {
  return { target, measured, status: ok === undefined ? 'n/a' : ok ? 'met' : 'missed' };
}

/** The issue's targets, judged from what this run measured ('n/a' when the run did not cover one). */
export function evaluateTargets(results: BenchResults): TargetCheck[] {
  const targets: TargetCheck[] = [];
  const point = (id: ScenarioId, concurrency: number) => results.scenarios.find((s) => s.id === id)?.points.find((p) => p.concurrency === concurrency);
  const scenario = (id: ScenarioId) => results.scenarios.find((s) => s.id === id);
  const ratios = (id: ScenarioId) => (scenario(id)?.points ?? []).filter((p) => p.throughputRatio !== undefined).map((p) => `c=${p.concurrency} ${p.throughputRatio!.toFixed(2)}`);
  const minRatio = (id: ScenarioId) => {
    const values = (scenario(id)?.points ?? []).map((p) => p.throughputRatio).filter((r): r is number => r !== undefined);
    return values.length ? Math.min(...values) : undefined;
  };

  // Server CPU per call at c=50, each path against the bare node:https baseline of the same run.
  const cpuTarget = (id: ScenarioId, title: string, maxUs: number) => {
    if (!scenario(id)) return;
    const p = point(id, 50);
    const measured = p
      ? `${p.server.cpuPerRequestUs} us/call` +
        (p.server.mainThreadCpuPerRequestUs !== undefined ? ` (main thread ${p.server.mainThreadCpuPerRequestUs}, helper threads ${p.server.cpuPerRequestUs - p.server.mainThreadCpuPerRequestUs})` : '') +
        `; baseline ${p.baseline ? `${p.baseline.cpuPerRequestUs} us/call, ${cpuRatio(p)} the baseline` : 'not run'}; ` +
        `${p.server.requestsPerSecond.toFixed(0)} req/s (baseline ${p.baseline ? p.baseline.requestsPerSecond.toFixed(0) : '-'}), p99 ${ms(p.server.latencyMs.p99)} ms; ` +
        `load average ${p.server.loadAverage1m.map((l) => l.toFixed(2)).join(' -> ')}`
      : 'not run at c=50';
    targets.push(check(`${id} (${title}): server CPU <= ${maxUs} us per call at concurrency 50`, measured, p ? p.server.cpuPerRequestUs <= maxUs : undefined));
  };
  cpuTarget('checksum', 'Deployment CREATE, 3 reads', 400);
  const c50 = point('checksum', 50);
  if (scenario('checksum')) {
    targets.push(check('checksum: p99 <= 20 ms at concurrency 50', c50 ? `${ms(c50.server.latencyMs.p99)} ms` : 'not run at c=50', c50 ? c50.server.latencyMs.p99 <= 20 : undefined));
  }
  cpuTarget('owner', 'mutate + validate', 90);
  cpuTarget('fastpath', 'no rule matches', 50);

  if (scenario('owner')) {
    const r = minRatio('owner');
    targets.push(check('owner: throughput >= 60% of the baseline (every concurrency)', ratios('owner').join(', ') || 'no baseline', r === undefined ? undefined : r >= 0.6));
    const p = point('owner', 50);
    targets.push(check('owner: p99 <= 2 ms at concurrency 50', p ? `${ms(p.server.latencyMs.p99)} ms` : 'not run at c=50', p ? p.server.latencyMs.p99 <= 2 : undefined));
  }
  const c = point('checksum', 50);
  if (scenario('checksum')) {
    const api = c?.api?.serviceMs;
    targets.push(
      check(
        'checksum: p99 <= 5 ms at concurrency 50 (test API answering in < 0.5 ms)',
        c ? `${ms(c.server.latencyMs.p99)} ms; test API service p50 ${api ? ms(api.p50) : '?'} ms, p99 ${api ? ms(api.p99) : '?'} ms` : 'not run at c=50',
        c ? c.server.latencyMs.p99 <= 5 : undefined,
      ),
    );
  }
  if (scenario('fastpath')) {
    const r = minRatio('fastpath');
    targets.push(check('fastpath: throughput >= 85% of the baseline (every concurrency)', ratios('fastpath').join(', ') || 'no baseline', r === undefined ? undefined : r >= 0.85));
  }
  if (results.scenarios.length > 0) {
    const peak = Math.max(...results.scenarios.map((s) => s.peakRssBytes));
    const worst = results.scenarios.find((s) => s.peakRssBytes === peak)!;
    targets.push(check('peak RSS <= 120 MB (every scenario)', `${mib(peak)} MiB (${(peak / 1e6).toFixed(1)} MB) in ${worst.id}`, peak <= 120e6));
    const limit = results.deployment.webhook.memoryLimitBytes;
    targets.push(
      check(
        `webhook: memory limit >= 1.25 x peak RSS (limit ${mib(limit)} MiB from ${results.deployment.webhook.overlay})`,
        `peak ${mib(peak)} MiB in ${worst.id} = ${((peak / limit) * 100).toFixed(0)}% of the limit; ` + results.scenarios.map((s) => `${s.id} ${mib(s.peakRssBytes)}`).join(', '),
        limit >= 1.25 * peak,
      ),
    );
    const idle = Math.max(...results.scenarios.map((s) => s.startupRssBytes));
    const request = results.deployment.webhook.memoryRequestBytes;
    targets.push(check(`webhook: memory request >= idle RSS (request ${mib(request)} MiB)`, `idle (after start-up) ${mib(idle)} MiB`, request >= idle));
  }
  if (results.soak) {
    targets.push(
      check(
        'soak: RSS growth middle->end <= 10% (window medians)',
        `${(results.soak.growthMiddleToEnd * 100).toFixed(1)}% (single samples ${(results.soak.growthMiddleToEndSamples * 100).toFixed(1)}%)`,
        results.soak.growthMiddleToEnd <= 0.1,
      ),
    );
    targets.push(check('soak: peak RSS <= 120 MB', `${mib(results.soak.rssBytes.peak)} MiB`, results.soak.rssBytes.peak <= 120e6));
  }
  if (results.controller && results.deployment.controller) {
    const c = results.controller;
    const { memoryLimitBytes: limit, memoryRequestBytes: request, overlay } = results.deployment.controller;
    targets.push(
      check(
        `controller: memory limit >= 1.25 x peak RSS (limit ${mib(limit)} MiB from ${overlay})`,
        `peak ${mib(c.peakRssBytes)} MiB with ${c.workloads} workloads = ${((c.peakRssBytes / limit) * 100).toFixed(0)}% of the limit`,
        limit >= 1.25 * c.peakRssBytes,
      ),
    );
    targets.push(check(`controller: memory request >= idle RSS (request ${mib(request)} MiB)`, `idle ${mib(c.idleRssBytes)} MiB with ${c.workloads} workloads`, request >= c.idleRssBytes));
  }
  if (results.audit) {
    targets.push(check('audit of the corpus < 2 s', `median ${ms(results.audit.wallMs.p50)} ms over ${results.audit.runs} runs`, results.audit.wallMs.p50 < 2000));
  }
  return targets;
}

export function writeResults(path: string, results: BenchResults): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(results, null, 2)}\n`);
}
