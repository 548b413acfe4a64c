import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The repository root, found by walking up from this (compiled) file to the gitops-guard
 * package.json, so the bench works from any output directory inside the checkout.
 */
function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'gitops-guard') return dir;
      } catch {
        // not ours; keep walking
      }
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error('bench: cannot find the gitops-guard package.json above the bench output');
    dir = parent;
  }
}

export const REPO_ROOT = findRepoRoot();
/** The built CLI, exactly as the container runs it (`npm run build`). */
export const CLI_PATH = join(REPO_ROOT, 'dist', 'cli', 'main.js');
export const DEFAULT_RULES_PATH = join(REPO_ROOT, 'rules', 'default-rules.yaml');
export const CORPUS_DIR = join(REPO_ROOT, 'test', 'fixtures', 'corpus');
/** Compiled sibling scripts (this file's directory). */
export const BENCH_DIST_DIR = dirname(fileURLToPath(import.meta.url));
