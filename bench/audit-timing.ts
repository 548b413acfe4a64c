import { spawn } from 'node:child_process';
import { relative } from 'node:path';
import { CORPUS_DIR, REPO_ROOT } from './paths.js';
import type { AuditTiming } from './report.js';
import { summarize } from './stats.js';

/** Wall time of `gitops-guard audit` over the whole corpus (a CI job's cost). */
export async function timeAudit(cli: string, runs: number): Promise<AuditTiming> {
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
