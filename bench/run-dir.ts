import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { generateChecksumKey } from '../src/actions/checksum/key.js';
import type { WebhookProfile } from '../test/support/deployed.js';
import { testTls } from '../test/support/tls.js';
import { CLI_PATH, DEFAULT_RULES_PATH, REPO_ROOT } from './paths.js';
import { benchRules, type BenchRequest, type Scenario } from './scenarios.js';

/** The run directory: certificates, rules, key, bodies, logs, and a snapshot of the build. */

export interface RunFiles {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  checksumKeyFile: string;
  rulesFile: string;
  addedChecksumRule: boolean;
  bodyFiles: Map<BenchRequest, string>;
  /** How the enforce overlay runs the webhook: flags, NODE_OPTIONS, memory limit, webhook timeouts. */
  profile: WebhookProfile;
}

/**
 * Copies the built application (dist/, package.json, rules/) into the run directory, so builds
 * made while the bench runs (other work in the same checkout) cannot mix into one run. Module
 * resolution still finds the checkout's node_modules (the copy lives inside the checkout).
 */
export function snapshotBuild(dir: string): string {
  const app = join(dir, 'app');
  cpSync(join(REPO_ROOT, 'dist'), join(app, 'dist'), { recursive: true });
  cpSync(join(REPO_ROOT, 'rules'), join(app, 'rules'), { recursive: true });
  cpSync(join(REPO_ROOT, 'package.json'), join(app, 'package.json'));
  return join(app, relative(REPO_ROOT, CLI_PATH));
}

/** The commit measured, and whether src/ had uncommitted changes (dist/ is built from the working tree). */
export function gitState(): { commit: string; srcDirty: boolean } | undefined {
  const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' });
  if (head.status !== 0) return undefined;
  const status = spawnSync('git', ['status', '--porcelain', '--', 'src', 'rules'], { cwd: REPO_ROOT, encoding: 'utf8' });
  return { commit: head.stdout.trim(), srcDirty: status.stdout.trim().length > 0 };
}

export function prepareRunDir(scenarios: Scenario[], profile: WebhookProfile): RunFiles {
  const dir = join(REPO_ROOT, '.tmp', `bench-run-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const tls = testTls();
  const files = {
    caFile: join(dir, 'ca.crt'),
    certFile: join(dir, 'tls.crt'),
    keyFile: join(dir, 'tls.key'),
    checksumKeyFile: join(dir, 'checksum.key'),
    rulesFile: join(dir, 'rules.yaml'),
  };
  writeFileSync(files.caFile, tls.caPem);
  writeFileSync(files.certFile, tls.certPem);
  writeFileSync(files.keyFile, tls.keyPem, { mode: 0o600 });
  writeFileSync(files.checksumKeyFile, `${generateChecksumKey()}\n`, { mode: 0o600 });
  const rules = benchRules(readFileSync(DEFAULT_RULES_PATH, 'utf8'));
  writeFileSync(files.rulesFile, rules.text);
  const bodyFiles = new Map<BenchRequest, string>();
  for (const scenario of scenarios) {
    scenario.requests.forEach((r, i) => {
      const file = join(dir, `${scenario.id}-${i}${r.path.replace('/', '-')}.json`);
      writeFileSync(file, r.body);
      bodyFiles.set(r, file);
    });
  }
  return { dir, ...files, addedChecksumRule: rules.addedChecksumRule, bodyFiles, profile };
}
