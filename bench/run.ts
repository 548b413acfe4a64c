import { existsSync, rmSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { relative } from 'node:path';
import { controllerProfile, webhookProfile } from '../test/support/deployed.js';
import { timeAudit } from './audit-timing.js';
import { runController } from './controller.js';
import { log, runScenario } from './measure.js';
import { parseOptions, USAGE, type Options } from './options.js';
import { CLI_PATH, DEFAULT_RULES_PATH, REPO_ROOT } from './paths.js';
import { canPin } from './processes.js';
import { evaluateTargets, formatSoak, formatTable, formatTargets, mib, writeResults, type BenchResults, type Machine } from './report.js';
import { gitState, prepareRunDir, snapshotBuild } from './run-dir.js';
import { buildScenarios } from './scenarios.js';
import { startApiServer, type ApiProcess, type Cores } from './servers.js';
import { runSoak } from './soak.js';

/**
 * `npm run bench` / `npm run soak`: the real server (built CLI, TLS, default rules) in its own
 * process on one core, autocannon in another process on the other core, and a bare node:https
 * baseline measured with the same bodies in the same run. See docs/performance.md. The pieces:
 * options.ts (command line), run-dir.ts (files and build snapshot), servers.ts (the processes it
 * starts), measure.ts (one scenario), soak.ts, controller.ts, audit-timing.ts, report.ts.
 */

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
  if (options.smoke) notes.push('smoke mode: proves the script works; the numbers mean nothing; the server stops without its shutdown delay');
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
