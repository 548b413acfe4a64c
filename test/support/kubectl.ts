import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { KubeObject } from '../../src/api/types.js';

/**
 * kubectl's own reader (the resource builder behind `kubectl apply -f -`), offline: `annotate
 * --local` decodes the input exactly as apply does and prints each object it found, with the
 * annotation `gitops-guard.dev/read: yes` added.
 */
export function kubectlReads<T = KubeObject>(text: string): T[] {
  const dir = mkdtempSync(join(tmpdir(), 'gg-kubectl-'));
  const result = spawnSync('kubectl', ['annotate', '--local', '-f', '-', 'gitops-guard.dev/read=yes', '-o', 'json'], {
    input: text,
    encoding: 'utf8',
    env: { ...process.env, KUBECONFIG: join(dir, 'none'), HOME: dir },
    maxBuffer: 64 * 1024 * 1024,
  });
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
  // One JSON object per object read, one after another.
  return [...result.stdout.matchAll(/^\{[\s\S]*?^\}$/gm)].map((m) => JSON.parse(m[0]) as T);
}
