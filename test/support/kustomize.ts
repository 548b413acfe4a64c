import { spawnSync } from 'node:child_process';
import { parseAllDocuments } from 'yaml';
import type { KubeObject } from '../../src/api/types.js';

/**
 * Renders kustomizations the way users install them. Uses `kubectl kustomize` (kustomize is
 * built into kubectl) when kubectl is on PATH, else a standalone `kustomize build`. Needs
 * kustomize v5 or later (components, `labels`); there is no fallback that skips the tests.
 */
export interface KustomizeTool {
  /** e.g. ['kubectl', 'kustomize'] or ['kustomize', 'build']. */
  command: readonly [string, ...string[]];
  version: string;
}

const MIN_MAJOR = 5;
let cached: KustomizeTool | undefined;

function run(command: string, args: readonly string[]): { ok: boolean; missing: boolean; stdout: string; stderr: string } {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 * 1024 * 1024 });
  const missing = (result.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
  return { ok: !result.error && result.status === 0, missing, stdout: result.stdout ?? '', stderr: result.stderr ?? String(result.error ?? '') };
}

function majorOf(version: string): number {
  const match = /v?(\d+)\./.exec(version);
  return match ? Number(match[1]) : 0;
}

export function kustomizeTool(): KustomizeTool {
  if (cached) return cached;
  const problems: string[] = [];
  const kubectl = run('kubectl', ['version', '--client', '-o', 'json']);
  if (kubectl.ok) {
    const version = String((JSON.parse(kubectl.stdout) as { kustomizeVersion?: string }).kustomizeVersion ?? '');
    if (majorOf(version) >= MIN_MAJOR) return (cached = { command: ['kubectl', 'kustomize'], version });
    problems.push(`kubectl's built-in kustomize is ${version || 'unknown'} (need v${MIN_MAJOR}+)`);
  } else {
    problems.push(kubectl.missing ? 'kubectl is not on PATH' : `kubectl version failed: ${kubectl.stderr.trim()}`);
  }
  const kustomize = run('kustomize', ['version']);
  if (kustomize.ok) {
    const version = kustomize.stdout.trim();
    if (majorOf(version) >= MIN_MAJOR) return (cached = { command: ['kustomize', 'build'], version });
    problems.push(`kustomize is ${version} (need v${MIN_MAJOR}+)`);
  } else {
    problems.push(kustomize.missing ? 'kustomize is not on PATH' : `kustomize version failed: ${kustomize.stderr.trim()}`);
  }
  throw new Error(
    `no usable kustomize: ${problems.join('; ')}. Install kubectl 1.27+ (kustomize v5 built in) or a standalone kustomize v5.`,
  );
}

/** `kustomize build DIR` as text; throws with kustomize's own error text on failure. */
export function kustomizeBuild(dir: string): string {
  const [command, ...args] = kustomizeTool().command;
  const result = run(command, [...args, dir]);
  if (!result.ok) throw new Error(`${[command, ...args, dir].join(' ')} failed: ${result.stderr.trim()}`);
  return result.stdout;
}

/** The objects `kustomize build DIR` renders, in output order. */
export function buildObjects(dir: string): KubeObject[] {
  return parseAllDocuments(kustomizeBuild(dir)).map((document) => {
    if (document.errors.length > 0) throw new Error(`kustomize output for ${dir} is not YAML: ${document.errors[0]!.message}`);
    return document.toJS() as KubeObject;
  });
}
