import { createPrivateKey, X509Certificate } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { generateCertificates } from '../src/certs/generate.js';
import { createRegistry, builtinActions } from '../src/actions/registry.js';
import type { ActionDefinition } from '../src/actions/types.js';
import { startServer, type RunningServer } from '../src/server/server.js';
import { DEFAULT_RULES } from './support/app.js';
import { httpsRequest } from './support/https-client.js';
import { reviewFor } from './support/review.js';
import { corpusObject } from './support/corpus.js';
import { certDir, startGuardServer } from './support/guard-server.js';
import { runCli } from './support/cli.js';

const running: RunningServer[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.shutdown()));
});

async function serve(dir: string, extra: Partial<Parameters<typeof startServer>[0]> = {}): Promise<RunningServer> {
  const { server } = await startGuardServer({ reloadIntervalMs: 50, ...extra }, dir);
  running.push(server);
  return server;
}

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
const binding = corpusObject('argocd-install.yaml', 'ClusterRoleBinding', 'argocd-application-controller');

describe('gitops-guard certs', () => {
  it('writes a CA (path length 0) and a serving certificate with the service names only, serverAuth and a 0600 key', async () => {
    const out = mkdtempSync(join(tmpdir(), 'gg-certs-'));
    const { code, stdout } = await runCli(['certs', '--service', 'guard', '--namespace', 'platform', '--out', out, '--days', '10']);
    expect(code).toBe(0);
    const caPem = readFileSync(join(out, 'ca.crt'));
    expect(stdout.trim()).toBe(caPem.toString('base64'));
    expect(statSync(join(out, 'tls.key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(out, 'tls.crt')).mode & 0o777).toBe(0o644);
    const ca = new X509Certificate(caPem);
    const cert = new X509Certificate(readFileSync(join(out, 'tls.crt')));
    expect(ca.ca).toBe(true);
    expect(cert.ca).toBe(false);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkIssued(ca)).toBe(true);
    // Production certificates name the Service and nothing else: no localhost, no loopback address.
    expect(cert.subjectAltName).toBe('DNS:guard, DNS:guard.platform, DNS:guard.platform.svc, DNS:guard.platform.svc.cluster.local');
    expect(cert.checkHost('localhost')).toBeUndefined();
    expect(cert.checkIP('127.0.0.1')).toBeUndefined();
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(cert.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(ca.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(cert.toLegacyObject().asn1Curve).toBeUndefined();
    const days = (Date.parse(cert.validTo) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(9.9);
    expect(days).toBeLessThan(10.1);
    expect(cert.serialNumber).not.toBe(ca.serialNumber);
    if (hasOpenssl) {
      // The CA may sign end-entity certificates only: as OpenSSL reads its basicConstraints.
      const text = execFileSync('openssl', ['x509', '-in', join(out, 'ca.crt'), '-noout', '-text'], { encoding: 'utf8' });
      expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    }
  });

  it('writes the private key with mode 0600 whatever the umask and a previous file were, and never through a symlink', async () => {
    const out = mkdtempSync(join(tmpdir(), 'gg-certs-'));
    writeFileSync(join(out, 'tls.key'), 'old', { mode: 0o644 });
    const first = await runCli(['certs', '--out', out], { umask: 0 });
    expect(first.code).toBe(0);
    expect(statSync(join(out, 'tls.key')).mode & 0o777).toBe(0o600);
    expect(createPrivateKey(readFileSync(join(out, 'tls.key'))).asymmetricKeyType).toBe('rsa');
    expect(readdirSync(out).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);

    // A link planted at the target (say, to a file the attacker can read) is refused; nothing is written through it.
    const elsewhere = mkdtempSync(join(tmpdir(), 'gg-elsewhere-'));
    for (const file of ['tls.key', 'tls.crt', 'ca.crt']) {
      const dir = mkdtempSync(join(tmpdir(), 'gg-certs-'));
      const bait = join(elsewhere, `${file}.bait`);
      writeFileSync(bait, 'bait', { mode: 0o644 });
      symlinkSync(bait, join(dir, file));
      const refused = await runCli(['certs', '--out', dir]);
      expect(refused.code, file).toBe(1);
      expect(refused.stderr).toBe(`gitops-guard: refusing to write ${join(dir, file)}: it is a symbolic link\n`);
      expect(readFileSync(bait, 'utf8')).toBe('bait');
      expect(readdirSync(dir), 'nothing written at all').toEqual([file]);
    }
    const dangling = mkdtempSync(join(tmpdir(), 'gg-certs-'));
    symlinkSync(join(elsewhere, 'not-there-yet'), join(dangling, 'tls.key'));
    expect((await runCli(['certs', '--out', dangling])).code).toBe(1);
    expect(existsSync(join(elsewhere, 'not-there-yet'))).toBe(false);
    expect(readdirSync(dangling)).toEqual(['tls.key']);
  });

  it('gives every certificate a unique serial', () => {
    const serials = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const c = generateCertificates({ service: 's', namespace: 'n', days: 1 });
      serials.add(new X509Certificate(c.caCertPem).serialNumber);
      serials.add(new X509Certificate(c.certPem).serialNumber);
    }
    expect(serials.size).toBe(6);
  });

  it('rejects bad flags with one line and exit code 2', async () => {
    const unknown = await runCli(['certs', '--colour', 'red']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe("gitops-guard: Unknown option '--colour'\n");
    const days = await runCli(['certs', '--days', 'ten']);
    expect(days).toMatchObject({ code: 2, stderr: 'gitops-guard: --days must be a whole number, got "ten"\n' });
  });
});

describe('HTTPS server', () => {
  it('serves TLS that verifies as NAME.NS.svc against the generated CA, and refuses TLS 1.1', async () => {
    const dir = certDir();
    const server = await serve(dir);
    const ca = readFileSync(join(dir, 'ca.crt'));
    const res = await httpsRequest({ port: server.port, ca, method: 'POST', path: '/mutate', body: JSON.stringify(reviewFor(binding)) });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).response.allowed).toBe(true);
    await expect(httpsRequest({ port: server.port, ca, path: '/healthz', servername: 'evil.example.com' })).rejects.toThrow(/does not match|altnames/i);
    const otherCa = readFileSync(join(certDir(), 'ca.crt'));
    await expect(httpsRequest({ port: server.port, ca: otherCa, path: '/healthz' })).rejects.toThrow(/self[- ]signed|unable to verify|local issuer/i);
    await expect(httpsRequest({ port: server.port, ca, path: '/healthz', maxVersion: 'TLSv1.1', minVersion: 'TLSv1' })).rejects.toThrow();
  });

  it('picks up rotated certificates for new connections without dropping any', async () => {
    const dir = certDir();
    const server = await serve(dir);
    const oldCa = readFileSync(join(dir, 'ca.crt'));
    const oldFingerprint = new X509Certificate(readFileSync(join(dir, 'tls.crt'))).fingerprint256;
    // The new certificate is signed by a new CA: clients trust both during the rotation, like a caBundle with two CAs.
    const next = generateCertificates({ service: 'gitops-guard', namespace: 'gitops-guard', days: 60 });
    const bundle = Buffer.concat([oldCa, Buffer.from(next.caCertPem)]);
    const newFingerprint = new X509Certificate(next.certPem).fingerprint256;

    const seen: string[] = [];
    let rotating = true;
    const client = (async () => {
      while (rotating || !seen.includes(newFingerprint)) {
        const res = await httpsRequest({ port: server.port, ca: bundle, path: '/healthz' });
        expect(res.status).toBe(200);
        seen.push(res.peer.fingerprint256);
        if (seen.length > 5000) throw new Error('rotation never observed');
      }
    })();
    await new Promise((r) => setTimeout(r, 150));
    // Atomic renames, one file at a time: a mismatched pair exists briefly and must be tolerated.
    writeFileSync(join(dir, 'tls.crt.new'), next.certPem);
    writeFileSync(join(dir, 'tls.key.new'), next.keyPem);
    renameSync(join(dir, 'tls.crt.new'), join(dir, 'tls.crt'));
    await new Promise((r) => setTimeout(r, 120));
    renameSync(join(dir, 'tls.key.new'), join(dir, 'tls.key'));
    await new Promise((r) => setTimeout(r, 300));
    rotating = false;
    await client;
    expect(seen[0]).toBe(oldFingerprint);
    expect(seen.at(-1)).toBe(newFingerprint);
    expect(new Set(seen)).toEqual(new Set([oldFingerprint, newFingerprint]));
    const expiry = await server.metrics.registry.getSingleMetricAsString('gitops_guard_certificate_expiry_seconds');
    const seconds = Number(/^gitops_guard_certificate_expiry_seconds (\S+)$/m.exec(expiry)![1]);
    expect(seconds / 86_400).toBeGreaterThan(59);
    expect(await server.metrics.registry.getSingleMetricAsString('gitops_guard_certificate_reloads_total')).toMatch(/result="success"} [1-9]/);
  });

  it('reloads rules on change and keeps the last good rules when the file turns invalid', async () => {
    const dir = certDir();
    const rulesPath = join(dir, 'rules.yaml');
    writeFileSync(rulesPath, readFileSync(DEFAULT_RULES));
    const server = await serve(dir, { rulesPath });
    expect(server.rules.current.rules.map((r) => r.name)).toContain('tag-owner');
    writeFileSync(rulesPath, 'apiVersion: gitops-guard.dev/v1alpha1\nkind: RuleSet\nrules: []\n');
    await waitFor(() => server.rules.current.rules.length === 0);
    writeFileSync(rulesPath, 'apiVersion: gitops-guard.dev/v1alpha1\nkind: RuleSet\nrules: [{ name: x, match: {}, action: { type: nope } }]\n');
    await waitFor(async () => (await server.metrics.registry.getSingleMetricAsString('gitops_guard_rules_last_reload_success')).endsWith(' 0'));
    expect(server.rules.current.rules).toEqual([]);
  });

  it('on shutdown turns readiness off, finishes in-flight requests and stops accepting connections', async () => {
    const dir = certDir();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow: ActionDefinition = { name: 'slow', phase: 'mutate', paramsSchema: { type: 'object' }, run: async () => (await gate, {}) };
    const rulesPath = join(dir, 'rules.yaml');
    writeFileSync(rulesPath, 'apiVersion: gitops-guard.dev/v1alpha1\nkind: RuleSet\nrules:\n  - { name: slow, match: { kinds: [{ kind: ConfigMap }] }, action: { type: slow } }\n');
    const server = await serve(dir, { rulesPath, registry: createRegistry([...builtinActions, slow]), shutdownDelayMs: 200 });
    const ca = readFileSync(join(dir, 'ca.crt'));
    const inFlight = httpsRequest({ port: server.port, ca, method: 'POST', path: '/mutate', body: JSON.stringify(reviewFor({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 'n' } })) });
    await new Promise((r) => setTimeout(r, 50));
    const stopped = server.shutdown();
    const readyz = await httpsRequest({ port: server.port, ca, path: '/readyz' });
    expect(readyz.status).toBe(503);
    await new Promise((r) => setTimeout(r, 250));
    await expect(httpsRequest({ port: server.port, ca, path: '/healthz' })).rejects.toThrow(/ECONNREFUSED/);
    release();
    const answer = await inFlight;
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body).response.allowed).toBe(true);
    await stopped;
  });
});

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}
