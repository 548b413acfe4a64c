import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from './paths.js';
import { SCENARIO_IDS, type ScenarioId } from './scenarios.js';

/** The bench's command line. */

export const USAGE = `Usage: node .tmp/bench-dist/bench/run.js [options]

  --scenarios LIST      owner,checksum,fastpath,large,xlarge,controller (default: all)
  --concurrency LIST    connections per point (default: each scenario's own: 50,200,500; large 50,200; xlarge 20)
  --controller-workloads N   workloads (each with a ConfigMap and a Secret) for the controller scenario (default: 10000)
  --duration-s N        seconds measured per point (default: 5)
  --warmup-s N          warm-up seconds before each point (default: 1)
  --no-baseline         skip the bare node:https baseline
  --audit-runs N        time "gitops-guard audit" over the corpus N times (default: 5; 0 to skip)
  --soak                200,000 requests of owner + checksum mixed; RSS at start, middle and end
  --soak-requests N     requests in the soak (default: 200000)
  --smoke               a seconds-long run proving the script works (no meaningful numbers): one short
                        point per scenario, at concurrency 50 (5 for the large bodies)
  --log-level LEVEL     server log level: info (default, as deployed), debug or trace; logs go to a file
  --cpu-prof            run the server under node --cpu-prof (profiles in .tmp/bench-prof/)
  --no-pin              do not pin processes to cores
  --out FILE            results JSON (default: bench/results.json, soak: bench/results-soak.json)
  --keep                keep the run directory (certificates, bodies, logs) under .tmp/
  --cli FILE            the gitops-guard CLI to run (default: dist/cli/main.js), e.g. to compare two builds
`;

export interface Options {
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

export function parseOptions(argv: string[]): Options | 'help' {
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
  // The bench learns the server's port and heap limit from its start-up line, written at info.
  const logLevel = values['log-level'] ?? 'info';
  if (!['info', 'debug', 'trace'].includes(logLevel)) throw new Error(`--log-level must be info, debug or trace (the bench reads the server's start-up line, logged at info), got "${logLevel}"`);
  const concurrency = values.concurrency?.split(',').map((c) => Math.floor(number(c.trim(), 'concurrency', 0, 1)));
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
    logLevel,
    cpuProf: values['cpu-prof'] === true,
    pin: values['no-pin'] !== true,
    out: values.out ?? join(REPO_ROOT, 'bench', soak ? 'results-soak.json' : 'results.json'),
    keep: values.keep === true,
    ...(values.cli ? { cli: resolve(values.cli) } : {}),
  };
}
