import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

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

interface Point {
  concurrency: number;
  server: { requests: number; errors: { total: number } };
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
    const { code, stdout, stderr } = await run([join(OUT, 'bench', 'run.js'), '--smoke', '--out', results], 90_000);
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/^scenario\s+conc\s+req\/s\s+base req\/s\s+ratio/m);
    for (const id of ['owner', 'checksum', 'fastpath', 'large']) expect(stdout).toMatch(new RegExp(`^${id}\\s+5\\s+\\d+`, 'm'));

    expect(existsSync(results)).toBe(true);
    const json = JSON.parse(readFileSync(results, 'utf8')) as { mode: string; scenarios: { id: string; peakRssBytes: number; points: Point[] }[] };
    expect(json.mode).toBe('smoke');
    expect(json.scenarios.map((s) => s.id)).toEqual(['owner', 'checksum', 'fastpath', 'large']);
    for (const scenario of json.scenarios) {
      expect(scenario.peakRssBytes, scenario.id).toBeGreaterThan(0);
      expect(scenario.points.length, scenario.id).toBeGreaterThan(0);
      for (const point of scenario.points) {
        expect(point.server.requests, `${scenario.id} server`).toBeGreaterThan(0);
        expect(point.server.errors.total, `${scenario.id} server`).toBe(0);
        expect(point.baseline?.requests, `${scenario.id} baseline`).toBeGreaterThan(0);
        expect(point.baseline?.errors.total, `${scenario.id} baseline`).toBe(0);
      }
    }
  }, 100_000);

  it('runs the soak (owner and checksum mixed) and reports RSS at start, middle and end', async () => {
    const results = join(OUT, 'results-soak.json');
    const { code, stdout, stderr } = await run([join(OUT, 'bench', 'run.js'), '--soak', '--smoke', '--out', results], 60_000);
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/^soak RSS MiB: idle [\d.]+, start [\d.]+, middle [\d.]+, end [\d.]+/m);
    const json = JSON.parse(readFileSync(results, 'utf8')) as { soak: { load: { requests: number; errors: { total: number } }; rssBytes: Record<string, number> } };
    expect(json.soak.load.requests).toBeGreaterThanOrEqual(1000);
    expect(json.soak.load.errors.total).toBe(0);
    for (const at of ['start', 'middle', 'end']) expect(json.soak.rssBytes[at], at).toBeGreaterThan(0);
  }, 70_000);
});
