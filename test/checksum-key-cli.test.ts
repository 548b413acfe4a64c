import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { loadChecksumKey } from '../src/actions/checksum/key.js';
import { main } from '../src/cli/dispatch.js';
import { DEFAULT_RULES } from './support/app.js';
import { CLI, runCli } from './support/cli.js';
import { waitFor } from './support/controller.js';
import { httpsRequest } from './support/https-client.js';
import { deployment } from './support/kube-fixtures.js';
import { KubeApiServer } from './support/kube-api-server.js';
import { reviewFor } from './support/review.js';
import { killServers, startServe } from './support/serve.js';

/**
 * The first run: `certs`, then `serve` with the default rules and no checksum key. The error says
 * how to create one (a command that exists and works); rules that stamp nothing need no key; a key
 * is never generated behind the user's back.
 */

afterEach(killServers);

const scratch = () => mkdtempSync(join(tmpdir(), 'gg-first-run-'));
const NO_CLUSTER = { KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '' };

/** The default rules without the stamping rule: only owner tagging and single-owner enforcement. */
function ownerOnlyRules(dir: string): string {
  const rules = parse(readFileSync(DEFAULT_RULES, 'utf8')) as { rules: { action: { type: string } }[] };
  rules.rules = rules.rules.filter((r) => r.action.type !== 'stampConfigChecksum');
  expect(rules.rules.length).toBeGreaterThan(0);
  const path = join(dir, 'owner-rules.yaml');
  writeFileSync(path, stringify(rules));
  return path;
}

const web = () => deployment('shop', 'web', { containers: [{ name: 'web', image: 'web:1', envFrom: [{ configMapRef: { name: 'app-config' } }] }] });

async function mutate(port: number, ca: Buffer, object = web()): Promise<{ allowed: boolean; patch?: string }> {
  const answer = await httpsRequest({ port, ca, method: 'POST', path: '/mutate', body: JSON.stringify(reviewFor(object)) });
  expect(answer.status).toBe(200);
  return JSON.parse(answer.body).response;
}

describe('first run without a checksum key', () => {
  it('serve says how to create the key; the command it names creates one, and serve then runs', async () => {
    const cwd = scratch();
    const certs = await runCli(['certs', '--out', 'certs'], { cwd });
    expect(certs.code, certs.stderr).toBe(0);
    const failed = await runCli(['serve', '--port', '0', '--tls-cert', 'certs/tls.crt', '--tls-key', 'certs/tls.key'], { cwd, env: NO_CLUSTER });
    expect(failed.code).toBe(1);
    expect(failed.stderr).toBe(
      [
        'gitops-guard: cannot read checksum key file certs/checksum.key: ENOENT',
        'gitops-guard: rule stamp-config-checksum stamps config checksums, which needs a key shared by every webhook replica and the controller',
        'gitops-guard: create one with: gitops-guard checksum-key --out certs/checksum.key, then pass it with --checksum-key certs/checksum.key (env GITOPS_GUARD_CHECKSUM_KEY)',
        '',
      ].join('\n'),
    );
    expect(existsSync(join(cwd, 'certs', 'checksum.key')), 'serve never generates a key').toBe(false);

    // Exactly the command the message names.
    const command = /create one with: gitops-guard (.+?), then/.exec(failed.stderr)![1]!.split(' ');
    const created = await runCli(command, { cwd });
    expect(created.code, created.stderr).toBe(0);
    expect(created.stderr).toContain('--checksum-key certs/checksum.key');
    const { port } = await startServe(['--port', '0', '--tls-cert', 'certs/tls.crt', '--tls-key', 'certs/tls.key', '--checksum-key', 'certs/checksum.key'], { cwd });
    const response = await mutate(port, readFileSync(join(cwd, 'certs', 'ca.crt')));
    expect(response.allowed).toBe(true);
    // No cluster to read the ConfigMap from: the stamping rule ran (and, onError allow, let it through with a warning).
    expect(JSON.stringify(response)).toContain('stamp-config-checksum');
  });

  it('the README\'s first run works as written', async () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const block = /Outside `npm start`[\s\S]*?```sh\n([\s\S]*?)```/.exec(readme)![1]!;
    const commands = block.trim().split('\n').map((line) => line.split(' '));
    expect(commands.map((c) => c.slice(0, 2).join(' '))).toEqual(['gitops-guard certs', 'gitops-guard checksum-key', 'gitops-guard serve']);
    const cwd = scratch();
    for (const command of commands.slice(0, -1)) expect((await runCli(command.slice(1), { cwd })).code, command.join(' ')).toBe(0);
    const { port } = await startServe([...commands.at(-1)!.slice(2), '--port', '0'], { cwd });
    expect((await mutate(port, readFileSync(join(cwd, 'certs', 'ca.crt')))).allowed).toBe(true);
  });

  it('the controller gives the same advice', async () => {
    const api = await KubeApiServer.start();
    try {
      const cwd = scratch();
      const result = await runCli(['controller', `--kubeconfig=${api.writeKubeconfig()}`, '--metrics-port=0'], { cwd, env: NO_CLUSTER });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('gitops-guard: cannot read checksum key file certs/checksum.key: ENOENT\n');
      expect(result.stderr).toContain('gitops-guard: create one with: gitops-guard checksum-key --out certs/checksum.key, then pass it with --checksum-key certs/checksum.key');
    } finally {
      await api.close();
    }
  });

  it('rules that stamp nothing need no key; a reload that adds a stamping rule is refused clearly and the server carries on', async () => {
    const cwd = scratch();
    expect((await runCli(['certs', '--out', 'certs'], { cwd })).code).toBe(0);
    const rules = ownerOnlyRules(cwd);
    const server = await startServe(['--port', '0', '--tls-cert', 'certs/tls.crt', '--tls-key', 'certs/tls.key', '--rules', rules, '--reload-interval-ms', '100'], { cwd });
    const ca = readFileSync(join(cwd, 'certs', 'ca.crt'));
    expect(existsSync(join(cwd, 'certs', 'checksum.key'))).toBe(false);
    expect(server.logs.some((l) => JSON.parse(l).msg.startsWith('no checksum key: the rules stamp no config checksums'))).toBe(true);
    expect(await mutate(server.port, ca)).toEqual({ uid: expect.any(String), allowed: true });

    writeFileSync(rules, readFileSync(DEFAULT_RULES));
    await waitFor('the refused reload', () => server.logs.some((l) => JSON.parse(l).msg === 'rules reload failed; keeping the last good rules'), 5000);
    const refusal = server.logs.map((l) => JSON.parse(l)).find((l) => l.msg === 'rules reload failed; keeping the last good rules');
    expect(refusal.problems).toEqual([
      {
        path: '/rules/2/action/type',
        message:
          'stampConfigChecksum needs a checksum key, and this process started without one (certs/checksum.key did not exist): create one with: gitops-guard checksum-key --out certs/checksum.key, then pass it with --checksum-key certs/checksum.key (env GITOPS_GUARD_CHECKSUM_KEY), and restart',
      },
    ]);
    // Still serving, with the last good rules; nothing crashed and nothing was generated.
    expect(server.child.exitCode).toBeNull();
    expect(await mutate(server.port, ca)).toEqual({ uid: expect.any(String), allowed: true });
    const metrics = await httpsRequest({ port: server.port, ca, path: '/metrics' });
    expect(metrics.body).toMatch(/^gitops_guard_rules_last_reload_success 0$/m);
    expect(existsSync(join(cwd, 'certs', 'checksum.key'))).toBe(false);
  });

  it('a controller whose rules stamp nothing starts without a key and refuses a reload that adds a stamping rule', async () => {
    const api = await KubeApiServer.start();
    const cwd = scratch();
    const rules = ownerOnlyRules(cwd);
    const child = spawn(process.execPath, [CLI, 'controller', `--kubeconfig=${api.writeKubeconfig()}`, `--rules=${rules}`, '--metrics-port=0', '--metrics-host=127.0.0.1', '--reload-interval-ms=100'], {
      cwd,
      env: { ...process.env, ...NO_CLUSTER },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      let stdout = '';
      child.stdout!.on('data', (c) => (stdout += c));
      const lines = () => stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { msg: string; problems?: unknown });
      await waitFor('the controller synced', () => lines().some((l) => l.msg === 'informers synced'), 10_000);
      expect(lines().some((l) => l.msg.startsWith('no checksum key: the rules stamp no config checksums'))).toBe(true);
      writeFileSync(rules, readFileSync(DEFAULT_RULES));
      await waitFor('the refused reload', () => lines().some((l) => l.msg === 'rules reload failed; keeping the last good rules'), 5000);
      expect(lines().find((l) => l.msg === 'rules reload failed; keeping the last good rules')!.problems).toEqual([
        { path: '/rules/2/action/type', message: expect.stringContaining('create one with: gitops-guard checksum-key --out certs/checksum.key') },
      ]);
      expect(child.exitCode).toBeNull();
      expect(existsSync(join(cwd, 'certs', 'checksum.key'))).toBe(false);
    } finally {
      child.kill('SIGKILL');
      await api.close();
    }
  });
});

describe('gitops-guard checksum-key', () => {
  it('creates a 64-hex-character key readable only by its owner, loadable by serve, and never replaces one', async () => {
    const cwd = scratch();
    const first = await runCli(['checksum-key', '--out', 'keys/checksum.key'], { cwd });
    expect(first.code, first.stderr).toBe(0);
    const path = join(cwd, 'keys', 'checksum.key');
    const text = readFileSync(path, 'utf8');
    expect(text).toMatch(/^[0-9a-f]{64}\n$/);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(loadChecksumKey(path).toString('utf8')).toBe(text.trim());

    const again = await runCli(['checksum-key', '--out', 'keys/checksum.key'], { cwd });
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('keys/checksum.key already exists and is kept');
    expect(readFileSync(path, 'utf8')).toBe(text);

    const second = await runCli(['checksum-key', '--out', '-'], { cwd });
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/^[0-9a-f]{64}\n$/);
    expect(second.stdout).not.toBe(text);
  });

  it('defaults to the path serve reads, documents itself, and rejects stray arguments', async () => {
    const cwd = scratch();
    expect((await runCli(['checksum-key'], { cwd })).code).toBe(0);
    expect(readFileSync(join(cwd, 'certs', 'checksum.key'), 'utf8')).toMatch(/^[0-9a-f]{64}\n$/);
    const help = await runCli(['checksum-key', '--help']);
    expect(help.stdout).toContain('Usage: gitops-guard checksum-key [--out FILE]');
    expect((await runCli(['--help'])).stdout).toContain('checksum-key');
    const stderr = new PassThrough();
    let err = '';
    stderr.on('data', (c) => (err += c));
    expect(await main(['checksum-key', 'extra'], { stdin: new PassThrough(), stdout: new PassThrough(), stderr })).toBe(2);
    expect(err).toBe('gitops-guard: unexpected argument "extra"\n');
  });
});
