import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { generateCertificates, writeCertificates } from '../src/certs/generate.js';
import { runCli } from './support/cli.js';
import { killServers, startServe } from './support/serve.js';
import { httpsRequest } from './support/https-client.js';
import { reviewFor } from './support/review.js';

afterEach(killServers);

describe('gitops-guard serve', () => {
  it('with --dev-certs generates certificates and a checksum key, serves, and exits 0 on SIGTERM', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'gg-serve-'));
    const { child, port, logs, exited } = await startServe(['--dev-certs', '--port', '0'], { cwd });
    for (const file of ['ca.crt', 'tls.crt', 'tls.key', 'checksum.key']) expect(existsSync(join(cwd, 'certs', file)), file).toBe(true);
    const ca = readFileSync(join(cwd, 'certs', 'ca.crt'));
    expect((await httpsRequest({ port, ca, path: '/readyz', servername: 'localhost' })).status).toBe(200);
    const review = reviewFor({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x', namespace: 'y' } });
    const answer = await httpsRequest({ port, ca, method: 'POST', path: '/mutate', body: JSON.stringify(review) });
    expect(JSON.parse(answer.body).response).toEqual({ uid: review.request!.uid, allowed: true });
    // Without --memory-budget-mib the budget is a quarter of the heap limit.
    const serving = logs.map((l) => JSON.parse(l)).find((e) => e.msg === 'gitops-guard serving');
    expect(serving).toMatchObject({ maxTimeoutMs: 5000, maxConnections: 512 });
    expect(serving.memoryBudgetMiB).toBe(Math.round(serving.heapLimitMiB / 4));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(logs.map((l) => JSON.parse(l).msg)).toEqual(expect.arrayContaining(['admission', 'signal received', 'shut down']));
  });

  it('refuses a checksum key file other users can read; warns, without the key, when its group can', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'gg-key-'));
    writeCertificates(join(cwd, 'certs'), generateCertificates({ service: 'gitops-guard', namespace: 'gitops-guard', days: 1 }));
    const key = 'secret-key-material-'.repeat(4);
    const keyPath = join(cwd, 'certs', 'checksum.key');
    writeFileSync(keyPath, key, { mode: 0o600 });
    chmodSync(keyPath, 0o644);
    const env = { KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '' };
    const refused = await runCli(['serve', '--port', '0'], { cwd, env });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe('gitops-guard: checksum key file certs/checksum.key is accessible to other users (mode 0644), make it private: chmod 600 certs/checksum.key\n');

    chmodSync(keyPath, 0o640);
    const { child, logs, exited, port } = await startServe(['--port', '0'], { cwd });
    expect((await httpsRequest({ port, ca: readFileSync(join(cwd, 'certs', 'ca.crt')), path: '/readyz' })).status).toBe(200);
    const warning = logs.map((l) => JSON.parse(l) as { level: string; msg: string }).find((l) => l.msg.startsWith('checksum key file'));
    expect(warning?.level).toBe('warn');
    expect(warning?.msg).toMatch(/^checksum key file certs\/checksum\.key is readable by group \d+ \(mode 0640\)/);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(logs.join('\n')).not.toContain('secret-key-material');
  });

  it('documents every flag and its environment variable in --help', async () => {
    const { code, stdout } = await runCli(['serve', '--help']);
    expect(code).toBe(0);
    for (const flag of ['--port', '--tls-cert', '--tls-key', '--rules', '--mode', '--kubeconfig', '--log-level', '--checksum-key', '--webhook-timeout-seconds', '--memory-budget-mib', '--max-connections', '--idle-timeout-ms', '--api-connections', '--shutdown-delay-ms', '--drain-timeout-ms']) expect(stdout).toContain(flag);
    for (const env of ['GITOPS_GUARD_PORT', 'GITOPS_GUARD_TLS_CERT', 'GITOPS_GUARD_RULES', 'GITOPS_GUARD_MODE', 'GITOPS_GUARD_KUBECONFIG', 'GITOPS_GUARD_LOG_LEVEL']) expect(stdout).toContain(env);
    expect((await runCli(['--help'])).stdout).toContain('audit');
  });

  const sharedCerts = generateCertificates({ service: 'gitops-guard', namespace: 'gitops-guard', days: 1 });
  const bad: [string, string[], number, RegExp][] = [
    ['an unknown flag', ['--prot', '8443'], 2, /^gitops-guard: Unknown option '--prot'\n$/],
    ['a bad mode', ['--mode', 'loud'], 2, /^gitops-guard: --mode must be enforce or audit, got "loud"\n$/],
    ['a webhook timeout the API server does not allow', ['--webhook-timeout-seconds', '31'], 2, /^gitops-guard: --webhook-timeout-seconds must be between 1 and 30, got 31\n$/],
    ['a missing certificate', ['--tls-cert', 'nope/tls.crt'], 1, /^gitops-guard: cannot read TLS certificate nope\/tls\.crt: ENOENT\n$/],
    ['an unreadable certificate', ['--tls-cert', 'garbage.crt', '--tls-key', 'garbage.crt'], 1, /^gitops-guard: TLS certificate garbage\.crt is not a PEM certificate\n$/],
    ['an invalid rules file', ['--rules', 'bad-rules.yaml'], 1, /^gitops-guard: bad-rules\.yaml: invalid rules: \/rules\/0: unknown field "colour"\ngitops-guard: \/rules\/0\/action: unknown action type/],
    ['a missing kubeconfig', ['--kubeconfig', 'nope.kubeconfig'], 1, /^gitops-guard: kubeconfig nope\.kubeconfig does not exist\n$/],
    ['an unknown command', ['serveer'], 2, /^gitops-guard: unknown command "serveer"/],
  ];
  for (const [name, args, code, stderr] of bad) {
    it(`refuses ${name} with one clear line and exit code ${code}`, async () => {
      const cwd = mkdtempSync(join(tmpdir(), 'gg-bad-'));
      writeFileSync(join(cwd, 'garbage.crt'), 'not a certificate');
      writeFileSync(join(cwd, 'bad-rules.yaml'), 'apiVersion: gitops-guard.dev/v1alpha1\nkind: RuleSet\nrules:\n  - { name: a, colour: red, match: { kinds: [{ kind: X }] }, action: { type: nope } }\n');
      writeCertificates(join(cwd, 'certs'), sharedCerts);
      writeFileSync(join(cwd, 'certs', 'checksum.key'), 'a'.repeat(64), { mode: 0o600 });
      const result = await runCli(args[0] === 'serveer' ? args : ['serve', '--port', '0', ...args], { cwd, env: { KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '' } });
      expect(result.code).toBe(code);
      expect(result.stderr).toMatch(stderr);
    });
  }
});
