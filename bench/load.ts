import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LoadJob, LoadResult } from './load-worker.js';
import { BENCH_DIST_DIR } from './paths.js';
import { startNode } from './processes.js';

export type { LoadJob, LoadResult } from './load-worker.js';

let jobCounter = 0;

export interface LoadHooks {
  /** The warm-up is over and the measured phase starts. */
  onMeasure?: () => void;
  /** The running count of answers (when the job asks for progress). */
  onProgress?: (done: number) => void;
}

/**
 * Runs one load job in a fresh load-generator process (bench/load-worker), pinned to `core`
 * when given.
 */
export async function runLoad(job: LoadJob, runDir: string, core: number | undefined, hooks: LoadHooks = {}): Promise<LoadResult> {
  const jobFile = join(runDir, `load-job-${++jobCounter}.json`);
  writeFileSync(jobFile, JSON.stringify(job));
  const worker = startNode([join(BENCH_DIST_DIR, 'load-worker.js'), jobFile], core, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  worker.process.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  let result: LoadResult | undefined;
  let buffer = '';
  worker.process.stdout!.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('utf8');
    let newline;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      let message: { phase?: string; progress?: number; result?: LoadResult };
      try {
        message = JSON.parse(line) as typeof message;
      } catch {
        continue;
      }
      if (message.phase === 'measure') hooks.onMeasure?.();
      if (typeof message.progress === 'number') hooks.onProgress?.(message.progress);
      if (message.result) result = message.result;
    }
  });
  const code = await worker.exited;
  if (code !== 0 || !result) throw new Error(`bench: load generator failed (exit ${code}): ${stderr.trim() || 'no result'}`);
  return result;
}
