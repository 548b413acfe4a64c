import autocannon, { type AutocannonRequest, type AutocannonResult } from 'autocannon';
import { readFileSync } from 'node:fs';
import { summarize, type LatencySummary } from './stats.js';

/**
 * The load generator, in its own process (pinned to its own core by the orchestrator): drives
 * one server with autocannon over HTTPS keep-alive connections, as the API server does, and
 * checks every answer.
 *
 * Usage: node load-worker.js JOB.json
 * Prints {"phase":"measure"} when the warm-up is over, {"progress":N} lines while it runs (soak)
 * and one {"result":...} line at the end.
 */

export type Verify = 'admission' | 'any-allowed';

export interface LoadJob {
  url: string;
  /** CA of the server (the client verifies nothing else: autocannon turns verification off). */
  caFile: string;
  requests: { path: string; bodyFile: string; expectPatch: boolean }[];
  connections: number;
  warmupSeconds: number;
  /** Measure for this long, or until `amount` requests have completed. */
  durationSeconds?: number;
  amount?: number;
  /** `admission`: gitops-guard's answer must be allowed and carry a patch exactly when expected, with no warnings. */
  verify: Verify;
  /** Print a progress line this often (ms); 0 for none. */
  progressIntervalMs: number;
  timeoutSeconds: number;
}

export interface LoadResult {
  connections: number;
  durationSeconds: number;
  /** Answers received (any status). */
  requests: number;
  requestsPerSecond: number;
  /** Every connection's first answer is left out (it includes the TLS handshake). */
  latencyMs: LatencySummary;
  errors: {
    /** Connection errors (refused, reset, TLS). */
    connection: number;
    timeouts: number;
    /** 503: refused because the admission deadline passed while the call waited for memory (overload, reported). */
    rejected: number;
    /** Other non-2xx answers. */
    non2xx: number;
    /** 2xx answers that were not the expected AdmissionReview. */
    wrongAnswer: number;
    total: number;
  };
  statusCodes: Record<string, number>;
  bytesRead: number;
  /** The first wrong answer (truncated), to make a failure easy to diagnose. */
  firstWrongAnswer?: string;
}

interface Check {
  wrong: number;
  first?: string;
}

function checker(verify: Verify, expectPatch: boolean, check: Check): (status: number, body: string) => void {
  return (status, body) => {
    if (status < 200 || status >= 300) return; // counted as non2xx by autocannon
    let ok = false;
    try {
      const response = (JSON.parse(body) as { response?: { allowed?: unknown; patch?: unknown; warnings?: unknown[] } }).response;
      ok = response?.allowed === true;
      if (ok && verify === 'admission') {
        ok = (typeof response!.patch === 'string') === expectPatch && (response!.warnings ?? []).length === 0;
      }
    } catch {
      ok = false;
    }
    if (!ok) {
      check.wrong++;
      check.first ??= body.slice(0, 600);
    }
  };
}

function run(job: LoadJob, requests: AutocannonRequest[], measure: boolean, onProgress?: (done: number) => void): Promise<{ result: AutocannonResult; latencies: number[]; answers: number; elapsedSeconds: number }> {
  return new Promise((resolve, reject) => {
    const latencies: number[] = [];
    const seen = new WeakSet<object>();
    let done = 0;
    const started = process.hrtime.bigint();
    const instance = autocannon(
      {
        url: job.url,
        connections: job.connections,
        pipelining: 1,
        timeout: job.timeoutSeconds,
        requests,
        tlsOptions: { ca: readFileSync(job.caFile) },
        ...(measure && job.amount ? { amount: job.amount } : { duration: measure ? job.durationSeconds ?? 5 : job.warmupSeconds }),
      },
      (error, result) => {
        if (error) reject(error);
        else resolve({ result, latencies, answers: done, elapsedSeconds: Number(process.hrtime.bigint() - started) / 1e9 });
      },
    );
    instance.on('response', (client: object, _status: number, _bytes: number, responseTime: number) => {
      done++;
      if (!measure) return;
      if (!seen.has(client)) {
        seen.add(client);
        return;
      }
      latencies.push(responseTime);
    });
    if (onProgress && job.progressIntervalMs > 0) {
      const timer = setInterval(() => onProgress(done), job.progressIntervalMs);
      instance.once('done', () => clearInterval(timer));
    }
  });
}

async function main(): Promise<void> {
  const jobFile = process.argv[2];
  if (!jobFile) throw new Error('usage: load-worker JOB.json');
  const job = JSON.parse(readFileSync(jobFile, 'utf8')) as LoadJob;
  const check: Check = { wrong: 0 };
  const discard: Check = { wrong: 0 };
  const build = (target: Check): AutocannonRequest[] =>
    job.requests.map((r) => ({
      method: 'POST',
      path: r.path,
      headers: { 'content-type': 'application/json' },
      body: readFileSync(r.bodyFile),
      onResponse: checker(job.verify, r.expectPatch, target),
    }));

  if (job.warmupSeconds > 0) await run(job, build(discard), false);
  process.stdout.write(`${JSON.stringify({ phase: 'measure' })}\n`);
  const progress = (done: number): void => {
    process.stdout.write(`${JSON.stringify({ progress: done })}\n`);
  };
  const { result, latencies, answers, elapsedSeconds } = await run(job, build(check), true, progress);

  const connection = result.errors - result.timeouts;
  const statusCodes = Object.fromEntries(Object.entries(result.statusCodeStats).map(([code, { count }]) => [code, count])) as Record<string, number>;
  const rejected = statusCodes['503'] ?? 0;
  const out: LoadResult = {
    connections: job.connections,
    durationSeconds: Math.round(elapsedSeconds * 1000) / 1000,
    requests: answers,
    requestsPerSecond: Math.round((answers / elapsedSeconds) * 10) / 10,
    latencyMs: summarize(latencies),
    errors: {
      connection: Math.max(0, connection),
      timeouts: result.timeouts,
      rejected,
      non2xx: result.non2xx - rejected,
      wrongAnswer: check.wrong,
      total: Math.max(0, connection) + result.timeouts + result.non2xx + check.wrong,
    },
    statusCodes,
    bytesRead: result.throughput.total,
    ...(check.first ? { firstWrongAnswer: check.first } : {}),
  };
  process.stdout.write(`${JSON.stringify({ result: out })}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`load-worker: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  process.exit(1);
});
