import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { deployedArgs, LOCAL_FLAGS, type WebhookProfile } from '../test/support/deployed.js';
import type { Options } from './options.js';
import { BENCH_DIST_DIR, REPO_ROOT } from './paths.js';
import { closeLog, openLog, startNode, waitForFileLine, waitForLine, type Child } from './processes.js';
import type { RunFiles } from './run-dir.js';
import type { BenchRequest, Scenario } from './scenarios.js';
import type { LatencySummary } from './stats.js';

/** The processes a bench run starts: gitops-guard as deployed, the baseline server, the test API server. */

export interface Cores {
  server?: number;
  load?: number;
}

export interface ApiStats {
  requests: number;
  /** New TLS connections: one per read means no keep-alive. */
  connections: number;
  unauthorized: number;
  serviceMs: LatencySummary;
}

export interface ApiProcess {
  child: Child;
  kubeconfig: string;
  /** Requests and service time since the previous call. */
  stats(): Promise<ApiStats>;
}

export async function startApiServer(cores: Cores, args: string[] = []): Promise<ApiProcess> {
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

export interface ServerProcess {
  child: Child;
  port: number;
  /** What the server logged about itself when it started (heap limit, memory budget). */
  started?: { heapLimitMiB?: number; memoryBudgetMiB?: number };
}

let serverCounter = 0;

/** gitops-guard serve from dist/, exactly as deployed, logging (JSON lines) to a file. */
export async function startGitopsGuard(files: RunFiles, options: Options, cores: Cores, kubeconfig: string | undefined): Promise<ServerProcess> {
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
    // A smoke run skips the shutdown delay (time for endpoints to drop the pod): it only comes
    // after the measurement, and would add 5 s per scenario to a run whose numbers mean nothing.
    ...(options.smoke ? ['--shutdown-delay-ms', '0', ...deployedArgs(files.profile.args, [...LOCAL_FLAGS, 'shutdown-delay-ms'])] : deployedArgs(files.profile.args, LOCAL_FLAGS)),
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
export function urlPath(r: BenchRequest, profile: WebhookProfile): string {
  return `${r.path}?timeout=${profile.timeoutSeconds[r.webhook]}s`;
}

export async function startBaseline(files: RunFiles, cores: Cores): Promise<ServerProcess> {
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
export async function preflight(port: number, caFile: string, scenario: Scenario, profile: WebhookProfile): Promise<void> {
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
