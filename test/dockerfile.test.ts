import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { httpsRequest } from './support/https-client.js';
import { killServers, startServe } from './support/serve.js';

/**
 * No Docker engine runs on the build machines, so this replays the Dockerfile: it builds the
 * context through .dockerignore, gives every stage its own root directory, performs each COPY
 * (from the context or `--from` another stage) and each RUN, then starts the runtime stage's
 * ENTRYPOINT. A COPY that misses a file, a dependency declared as dev-only, or a wrong
 * entrypoint fails here as it would in `docker build`/`docker run`.
 *
 * One substitution: the build stage's full `npm ci` (dev dependencies) is replaced by a link to
 * this checkout's node_modules, installed by `npm ci` from the same lockfile (checked). The
 * production-only install of the runtime dependencies is performed for real.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

interface Stage {
  name: string;
  from: string;
  instructions: Instruction[];
}

export function parseDockerfile(text: string): Stage[] {
  const logical: { text: string; line: number }[] = [];
  let pending = '';
  let start = 0;
  text.split('\n').forEach((raw, index) => {
    const line = raw.replace(/\r$/, '');
    if (pending === '' && (/^\s*#/.test(line) || line.trim() === '')) return;
    if (pending === '') start = index + 1;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      return;
    }
    logical.push({ text: (pending + line).trim(), line: start });
    pending = '';
  });
  const stages: Stage[] = [];
  for (const { text: instruction, line } of logical) {
    const [, keyword, args] = /^(\S+)\s*(.*)$/s.exec(instruction)!;
    const upper = keyword!.toUpperCase();
    if (upper === 'FROM') {
      const [, image, name] = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args!.trim()) ?? [];
      if (!image) throw new Error(`Dockerfile line ${line}: cannot parse FROM ${args}`);
      stages.push({ name: name ?? String(stages.length), from: image, instructions: [] });
      continue;
    }
    if (stages.length === 0) {
      if (upper === 'ARG') continue;
      throw new Error(`Dockerfile line ${line}: ${upper} before FROM`);
    }
    stages.at(-1)!.instructions.push({ keyword: upper, args: args!.trim(), line });
  }
  return stages;
}

/** Docker's .dockerignore semantics for the patterns this repository uses (`*`, `**`, `?`, `!`). */
function dockerignoreMatcher(text: string): (path: string) => boolean {
  const patterns = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = posix.normalize((negate ? l.slice(1) : l).replace(/^\/+/, '')).replace(/\/+$/, '');
      const source = pattern
        .split(/(\*\*\/|\*\*|\*|\?)/)
        .map((part) => ({ '**/': '(?:.*/)?', '**': '.*', '*': '[^/]*', '?': '[^/]' })[part] ?? part.replace(/[.+^${}()|[\]\\]/g, '\\$&'))
        .join('');
      return { negate, regex: new RegExp(`^${source}$`) };
    });
  return (path: string) => {
    const ancestors = path.split('/').map((_, i, parts) => parts.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const { negate, regex } of patterns) {
      if (ancestors.some((p) => regex.test(p))) excluded = !negate;
    }
    return excluded;
  };
}

/** The build context: every file of the checkout that .dockerignore lets through. */
function buildContext(target: string): string[] {
  const ignored = dockerignoreMatcher(readFileSync(join(ROOT, '.dockerignore'), 'utf8'));
  const files: string[] = [];
  const walk = (relative: string) => {
    for (const entry of readdirSync(join(ROOT, relative), { withFileTypes: true })) {
      const path = relative ? `${relative}/${entry.name}` : entry.name;
      // Never walked (large, and checked below to be excluded anyway).
      if (path === '.git' || path === 'node_modules') continue;
      if (entry.isDirectory()) walk(path);
      else if (!ignored(path)) files.push(path);
    }
  };
  walk('');
  for (const file of files) {
    mkdirSync(dirname(join(target, file)), { recursive: true });
    cpSync(join(ROOT, file), join(target, file));
  }
  return files.sort();
}

/** `["a", "b"]` (exec form) or a plain word list. */
function words(args: string): string[] {
  return args.startsWith('[') ? (JSON.parse(args) as string[]) : args.split(/\s+/).filter(Boolean);
}

function inStage(stageRoot: string, workdir: string, path: string): string {
  return join(stageRoot, posix.isAbsolute(path) ? path : posix.join(workdir, path));
}

/** COPY semantics: a directory source copies its contents; several sources need a directory destination. */
function copy(sources: string[], fromRoot: string, fromWorkdir: string, dest: string, toRoot: string, toWorkdir: string): void {
  const target = inStage(toRoot, toWorkdir, dest);
  const intoDirectory = dest.endsWith('/') || sources.length > 1;
  for (const source of sources) {
    const path = posix.isAbsolute(source) ? join(fromRoot, source) : join(fromRoot, fromWorkdir, source);
    if (!existsSync(path)) throw new Error(`COPY ${source}: no such file in the ${fromRoot.endsWith('context') ? 'build context (.dockerignore?)' : 'source stage'}`);
    const isDirectory = lstatSync(path).isDirectory();
    const destination = intoDirectory && !isDirectory ? join(target, posix.basename(source)) : target;
    mkdirSync(isDirectory ? destination : dirname(destination), { recursive: true });
    cpSync(path, destination, { recursive: true, dereference: true });
  }
}

interface Replayed {
  stages: Stage[];
  roots: Map<string, string>;
  context: string[];
  runtime: Stage;
  runtimeRoot: string;
  env: Record<string, string>;
  user: string | undefined;
  entrypoint: string[];
  runs: { stage: string; command: string; replayed: 'ran' | 'linked dev dependencies' }[];
}

function replay(work: string): Replayed {
  const stages = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
  const contextRoot = join(work, 'context');
  const context = buildContext(contextRoot);
  const roots = new Map<string, string>();
  const runs: Replayed['runs'] = [];
  let env: Record<string, string> = {};
  let user: string | undefined;
  let entrypoint: string[] = [];
  for (const stage of stages) {
    const root = join(work, 'stages', stage.name);
    mkdirSync(root, { recursive: true });
    roots.set(stage.name, root);
    let workdir = '/';
    env = {};
    user = undefined;
    entrypoint = [];
    for (const { keyword, args, line } of stage.instructions) {
      switch (keyword) {
        case 'WORKDIR':
          workdir = posix.resolve(workdir, args);
          mkdirSync(join(root, workdir), { recursive: true });
          break;
        case 'ENV':
          for (const [, k, v] of args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) env[k!] = v!.replace(/^"|"$/g, '');
          break;
        case 'COPY': {
          const parts = words(args);
          const from = parts.find((p) => p.startsWith('--from='))?.slice('--from='.length);
          const rest = parts.filter((p) => !p.startsWith('--'));
          expect(parts.filter((p) => p.startsWith('--') && !p.startsWith('--from=')), `Dockerfile line ${line}: unsupported COPY flags`).toEqual([]);
          const dest = rest.pop()!;
          if (from) {
            const fromRoot = roots.get(from);
            expect(fromRoot, `Dockerfile line ${line}: COPY --from=${from} names an earlier stage`).toBeDefined();
            copy(rest, fromRoot!, '/', dest, root, workdir);
          } else {
            copy(rest, contextRoot, '/', dest, root, workdir);
          }
          break;
        }
        case 'RUN': {
          const cwd = join(root, workdir);
          if (/^npm ci\b/.test(args) && !/--omit=dev\b/.test(args)) {
            expect(readFileSync(join(cwd, 'package-lock.json'), 'utf8'), 'the dev install uses the checkout\'s lockfile').toBe(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'));
            symlinkSync(join(ROOT, 'node_modules'), join(cwd, 'node_modules'), 'dir');
            runs.push({ stage: stage.name, command: args, replayed: 'linked dev dependencies' });
            break;
          }
          const result = spawnSync('sh', ['-c', args], {
            cwd,
            encoding: 'utf8',
            timeout: 240_000,
            env: { ...process.env, ...env, npm_config_update_notifier: 'false' },
          });
          expect(result.status, `Dockerfile line ${line} (stage ${stage.name}): RUN ${args}\n${result.stdout}\n${result.stderr}`).toBe(0);
          runs.push({ stage: stage.name, command: args, replayed: 'ran' });
          break;
        }
        case 'USER':
          user = args;
          break;
        case 'ENTRYPOINT':
          expect(args.startsWith('['), 'exec-form ENTRYPOINT (signals reach node, no shell in between)').toBe(true);
          entrypoint = words(args);
          break;
        case 'EXPOSE':
        case 'LABEL':
        case 'ARG':
          break;
        default:
          throw new Error(`Dockerfile line ${line}: ${keyword} is not replayed by this test; extend it`);
      }
    }
  }
  const runtime = stages.at(-1)!;
  return { stages, roots, context, runtime, runtimeRoot: roots.get(runtime.name)!, env, user, entrypoint, runs };
}

describe('Dockerfile', () => {
  const work = mkdtempSync(join(tmpdir(), 'gg-dockerfile-'));
  let replayed: Replayed | undefined;
  const replayOnce = () => (replayed ??= replay(work));

  afterEach(() => killServers());
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('is multi-stage: builds with dev dependencies, runs with production dependencies only, as a numeric non-root user', () => {
    const stages = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const runtime = stages.at(-1)!;
    // A small Node.js 20 base (the version package.json's engines and CI use).
    for (const stage of stages) expect(stage.from, stage.name).toMatch(/^node:20(\.\d+){0,2}-(alpine|slim|bookworm-slim)(@sha256:[0-9a-f]{64})?$/);
    const run = (stage: Stage) => stage.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);
    expect(run(runtime), 'the runtime stage installs nothing itself').toEqual([]);
    const copies = runtime.instructions.filter((i) => i.keyword === 'COPY').map((i) => words(i.args));
    const fromStage = (dest: string) => copies.find((c) => c.at(-1)!.replace(/\/$/, '').endsWith(dest))?.find((p) => p.startsWith('--from='))?.slice(7);
    const depsStage = stages.find((s) => s.name === fromStage('node_modules'));
    expect(depsStage, 'node_modules is copied from an earlier stage').toBeDefined();
    expect(run(depsStage!).some((r) => /^npm ci\b.*--omit=dev/.test(r)), 'node_modules comes from `npm ci --omit=dev`').toBe(true);
    const buildStage = stages.find((s) => s.name === fromStage('dist'));
    expect(buildStage, 'dist is copied from the build stage').toBeDefined();
    expect(run(buildStage!).some((r) => /^npm ci\b/.test(r) && !/--omit=dev/.test(r)), 'the build stage has the dev dependencies').toBe(true);
    expect(run(buildStage!)).toContain('npm run build');
    const user = runtime.instructions.filter((i) => i.keyword === 'USER').at(-1)?.args;
    expect(user, 'USER uid[:gid], numeric so the kubelet can verify runAsNonRoot').toMatch(/^[1-9]\d*(:\d+)?$/);
    const entrypoint = words(runtime.instructions.find((i) => i.keyword === 'ENTRYPOINT')!.args);
    expect(entrypoint).toEqual(['node', '/app/dist/cli/main.js', 'serve']);
  });

  it('keeps local state out of the build context (.dockerignore)', () => {
    const ignored = dockerignoreMatcher(readFileSync(join(ROOT, '.dockerignore'), 'utf8'));
    for (const path of ['node_modules/yaml/package.json', 'dist/cli/main.js', 'certs/tls.key', 'certs/checksum.key', '.git/config', 'test/https.test.ts', 'src/rules/engine.test.ts', '.env']) {
      expect(ignored(path), path).toBe(true);
    }
    for (const path of ['package.json', 'package-lock.json', 'src/cli/main.ts', 'rules/default-rules.yaml', 'tsconfig.build.json']) {
      expect(ignored(path), path).toBe(false);
    }
  });

  it('replays without Docker: build, production-only install, `gitops-guard --help`, and a real `serve` start-up', async () => {
    const image = replayOnce();
    expect(image.runs.map((r) => `${r.stage}: ${r.replayed}`)).toEqual(['build: linked dev dependencies', 'build: ran', 'deps: ran']);
    expect(image.context.some((f) => f.startsWith('src/') && f.endsWith('.test.ts')), 'tests stay out of the context').toBe(false);

    const root = image.runtimeRoot;
    const app = join(root, 'app');
    // Production dependencies only, and all of them: every lockfile package marked dev-only is
    // absent, every other (non-optional) one is present.
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; optional?: boolean }> };
    const installed = Object.entries(lock.packages).filter(([path]) => path.startsWith('node_modules/'));
    const devOnly = installed.filter(([, entry]) => entry.dev);
    const production = installed.filter(([, entry]) => !entry.dev && !entry.optional);
    expect(devOnly.map(([path]) => path)).toContain('node_modules/typescript');
    expect(devOnly.filter(([path]) => existsSync(join(app, path))).map(([path]) => path), 'dev-only packages in the image').toEqual([]);
    expect(production.filter(([path]) => !existsSync(join(app, path, 'package.json'))).map(([path]) => path), 'production packages missing').toEqual([]);
    const pkg = JSON.parse(readFileSync(join(app, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    for (const dependency of Object.keys(pkg.dependencies)) expect(existsSync(join(app, 'node_modules', dependency, 'package.json')), dependency).toBe(true);
    expect(lstatSync(join(app, 'node_modules')).isSymbolicLink()).toBe(false);
    expect(existsSync(join(app, 'rules', 'default-rules.yaml')), 'the shipped default rules').toBe(true);
    expect(existsSync(join(app, 'src')), 'no TypeScript sources in the image').toBe(false);
    expect(image.env['NODE_ENV']).toBe('production');

    // The entrypoint, with the image's paths inside the runtime stage's root.
    const [node, main, ...command] = image.entrypoint;
    expect(node).toBe('node');
    const cli = join(root, main!);
    const runEnv = { ...process.env, ...image.env, KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '' };
    const help = spawnSync(process.execPath, [cli, '--help'], { cwd: app, encoding: 'utf8', env: runEnv, timeout: 30_000 });
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^gitops-guard \d+\.\d+\.\d+: /);
    expect(help.stdout).toContain('serve');
    const serveHelp = spawnSync(process.execPath, [cli, ...command, '--help'], { cwd: app, encoding: 'utf8', env: runEnv, timeout: 30_000 });
    expect(serveHelp.status, serveHelp.stderr).toBe(0);
    expect(serveHelp.stdout).toMatch(/^Usage: gitops-guard serve/);

    expect(command).toEqual(['serve']);
    const cwd = mkdtempSync(join(work, 'run-'));
    const server = await startServe(['--dev-certs', '--port', '0', '--host', '127.0.0.1'], { cwd, cli, env: image.env, timeoutMs: 30_000 });
    const ca = readFileSync(join(cwd, 'certs', 'ca.crt'));
    const ready = await httpsRequest({ port: server.port, ca, servername: 'localhost', path: '/readyz' });
    expect(ready.status).toBe(200);
    // The default rules the image ships are the ones it serves.
    const metrics = await httpsRequest({ port: server.port, ca, servername: 'localhost', path: '/metrics' });
    expect(metrics.body).toMatch(/^gitops_guard_rules_loaded [1-9]/m);
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
  }, 300_000);

  it('a COPY of a file the context does not have breaks the replay (the test is not a tautology)', () => {
    const broken = join(work, 'broken');
    mkdirSync(broken, { recursive: true });
    const stages = parseDockerfile('FROM node:20-alpine AS x\nWORKDIR /app\nCOPY no-such-file ./\n');
    expect(stages[0]!.instructions.map((i) => i.keyword)).toEqual(['WORKDIR', 'COPY']);
    writeFileSync(join(broken, 'present'), '');
    expect(() => copy(['no-such-file'], broken, '/', './', join(broken, 'stage'), '/app')).toThrow(/no such file/);
  });
});
