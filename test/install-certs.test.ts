import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI } from './support/cli.js';
import { type Overlay, ROOT, type Webhook, buildOverlays, webhookConfig } from './support/manifests.js';

/** hack/install-certs.sh against a fake kubectl: Secrets created once, caBundle set, CA rotation. */

beforeAll(buildOverlays);

/**
 * A stand-in for kubectl that implements exactly the calls hack/install-certs.sh makes, over a
 * JSON file of objects, and records every call. Anything else fails loudly.
 */
const FAKE_KUBECTL = String.raw`
const fs = require('node:fs');
const statePath = process.env.FAKE_KUBECTL_STATE;
const state = JSON.parse(fs.readFileSync(statePath, 'utf8'));
let argv = process.argv.slice(2);
state.calls.push(argv.join(' '));
let namespace = '';
const n = argv.indexOf('-n');
if (n >= 0) { namespace = argv[n + 1]; argv.splice(n, 2); }
const save = () => fs.writeFileSync(statePath, JSON.stringify(state, null, 2));
const fail = (message, code = 1) => { save(); process.stderr.write(message + '\n'); process.exit(code); };
const kinds = { namespace: 'Namespace', secret: 'Secret', mutatingwebhookconfiguration: 'MutatingWebhookConfiguration', validatingwebhookconfiguration: 'ValidatingWebhookConfiguration' };
const key = (kind, ns, name) => kind + '/' + (kind === 'Secret' ? ns : '') + '/' + name;
const option = (name) => { const a = argv.find((x) => x.startsWith(name + '=')); return a === undefined ? undefined : a.slice(name.length + 1); };
function jsonpath(object, expression) {
  const body = /^\{(.*)\}$/.exec(expression)[1];
  if (body === '.webhooks[*].name') return (object.webhooks || []).map((w) => w.name).join(' ');
  const parts = body.slice(1).split(/(?<!\\)\./).map((p) => p.replace(/\\\./g, '.'));
  let value = object;
  for (const part of parts) value = value == null ? undefined : value[part];
  return value === undefined ? '' : String(value);
}
const [verb, what, name] = argv;
if (verb === 'get' && kinds[what]) {
  const object = state.objects[key(kinds[what], namespace, name)];
  if (!object) fail('Error from server (NotFound): ' + what + ' "' + name + '" not found');
  const output = option('-o') ?? argv[argv.indexOf('-o') + 1];
  if (output === 'name') process.stdout.write(what + '/' + name + '\n');
  else if (output.startsWith('jsonpath=')) process.stdout.write(jsonpath(object, output.slice('jsonpath='.length)));
  else fail('fake kubectl: unsupported output ' + output, 3);
} else if (verb === 'create' && what === 'namespace') {
  state.objects[key('Namespace', '', name)] = { apiVersion: 'v1', kind: 'Namespace', metadata: { name } };
} else if (verb === 'create' && what === 'secret' && name === 'generic') {
  const secretName = argv[3];
  const data = {};
  for (const arg of argv.filter((a) => a.startsWith('--from-file='))) {
    const [k, path] = arg.slice('--from-file='.length).split(/=(.*)/s);
    data[k] = fs.readFileSync(path).toString('base64');
  }
  const object = { apiVersion: 'v1', kind: 'Secret', metadata: { name: secretName, namespace }, type: option('--type') ?? 'Opaque', data };
  if (option('--dry-run') === 'client') {
    if (argv[argv.indexOf('-o') + 1] !== 'json') fail('fake kubectl: dry-run needs -o json', 3);
    process.stdout.write(JSON.stringify(object));
  } else {
    if (state.objects[key('Secret', namespace, secretName)]) fail('Error from server (AlreadyExists): secrets "' + secretName + '" already exists');
    state.objects[key('Secret', namespace, secretName)] = object;
  }
} else if ((verb === 'create' || verb === 'replace') && what === '-f') {
  const object = JSON.parse(fs.readFileSync(name, 'utf8'));
  const k = key(object.kind, object.metadata.namespace || namespace, object.metadata.name);
  if (verb === 'create' && state.objects[k]) fail('Error from server (AlreadyExists)');
  if (verb === 'replace' && !state.objects[k]) fail('Error from server (NotFound)');
  state.objects[k] = object;
} else if (verb === 'patch' && kinds[what]) {
  const object = state.objects[key(kinds[what], namespace, name)];
  if (!object) fail('Error from server (NotFound)');
  if (option('--type') !== 'json') fail('fake kubectl: only --type=json', 3);
  const ops = JSON.parse(argv[argv.indexOf('-p') + 1]);
  for (const op of ops) {
    if (op.op !== 'add' && op.op !== 'replace') fail('fake kubectl: unsupported op ' + op.op, 3);
    const parts = op.path.split('/').slice(1);
    let target = object;
    for (const part of parts.slice(0, -1)) {
      if (target[part] === undefined) fail('The request is invalid: missing ' + op.path);
      target = target[part];
    }
    target[parts[parts.length - 1]] = op.value;
  }
} else {
  fail('fake kubectl: unsupported call: ' + process.argv.slice(2).join(' '), 3);
}
save();
`;

describe('hack/install-certs.sh', () => {
  const SCRIPT = join(ROOT, 'hack', 'install-certs.sh');

  function fakeCluster(overlay: Overlay): { dir: string; statePath: string; run: (args?: string[]) => { status: number | null; stdout: string; stderr: string }; state: () => any } {
    const dir = mkdtempSync(join(tmpdir(), 'gg-install-certs-'));
    const kubectl = join(dir, 'kubectl');
    writeFileSync(kubectl, `#!${process.execPath}\n${FAKE_KUBECTL}`);
    chmodSync(kubectl, 0o755);
    const statePath = join(dir, 'state.json');
    const objectsByKey: Record<string, unknown> = {};
    for (const phase of ['mutate', 'validate'] as const) {
      const config = webhookConfig(overlay, phase);
      objectsByKey[`${config.kind}//${config.metadata!.name}`] = config;
    }
    writeFileSync(statePath, JSON.stringify({ objects: objectsByKey, calls: [] }));
    return {
      dir,
      statePath,
      state: () => JSON.parse(readFileSync(statePath, 'utf8')),
      run: (args = []) => {
        const result = spawnSync('bash', [SCRIPT, ...args], {
          encoding: 'utf8',
          timeout: 60_000,
          env: { ...process.env, KUBECTL: kubectl, FAKE_KUBECTL_STATE: statePath, GITOPS_GUARD: `${process.execPath} ${CLI}` },
        });
        return { status: result.status, stdout: result.stdout, stderr: result.stderr };
      },
    };
  }

  const caBundles = (state: any) =>
    ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration'].flatMap((kind) =>
      (state.objects[`${kind}//gitops-guard`].webhooks as Webhook[]).map((w) => w.clientConfig.caBundle),
    );
  const certsIn = (pem: string) => pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];

  it('creates both Secrets once, patches every caBundle, and changes nothing when run again', () => {
    const cluster = fakeCluster('enforce');
    const first = cluster.run();
    expect(first.status, first.stderr).toBe(0);
    let state = cluster.state();
    expect(state.objects['Namespace//gitops-guard']).toBeDefined();
    const key = state.objects['Secret/gitops-guard/gitops-guard-checksum-key'];
    const keyText = Buffer.from(key.data['checksum.key'], 'base64').toString('utf8');
    expect(keyText).toMatch(/^[0-9a-f]{64}$/);
    const tls = state.objects['Secret/gitops-guard/gitops-guard-tls'];
    expect(tls.type).toBe('kubernetes.io/tls');
    expect(Object.keys(tls.data).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
    const ca = new X509Certificate(Buffer.from(tls.data['ca.crt'], 'base64'));
    const cert = new X509Certificate(Buffer.from(tls.data['tls.crt'], 'base64'));
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkHost('gitops-guard.gitops-guard.svc')).toBe('gitops-guard.gitops-guard.svc');
    const bundles = caBundles(state);
    expect(bundles).toHaveLength(3);
    for (const bundle of bundles) expect(bundle).toBe(tls.data['ca.crt']);

    const callsBefore = (state.calls as string[]).length;
    const second = cluster.run();
    expect(second.status, second.stderr).toBe(0);
    expect(second.stdout).toContain('kept secret gitops-guard/gitops-guard-checksum-key');
    expect(second.stdout).toContain('kept secret gitops-guard/gitops-guard-tls');
    state = cluster.state();
    expect(state.objects['Secret/gitops-guard/gitops-guard-checksum-key']).toEqual(key);
    expect(state.objects['Secret/gitops-guard/gitops-guard-tls']).toEqual(tls);
    expect(caBundles(state)).toEqual(bundles);
    const writes = (state.calls as string[]).slice(callsBefore).filter((c) => /^(-n \S+ )?(create|replace|delete|apply)\b/.test(c));
    expect(writes, 'the second run creates and replaces nothing').toEqual([]);
  });

  it('--rotate keeps the checksum key, trusts old and new CA during the switch, and the next run drops the old CA', () => {
    const cluster = fakeCluster('enforce');
    expect(cluster.run().status).toBe(0);
    const before = cluster.state();
    const oldCa = Buffer.from(before.objects['Secret/gitops-guard/gitops-guard-tls'].data['ca.crt'], 'base64').toString('utf8');

    const rotate = cluster.run(['--rotate']);
    expect(rotate.status, rotate.stderr).toBe(0);
    const during = cluster.state();
    expect(during.objects['Secret/gitops-guard/gitops-guard-checksum-key']).toEqual(before.objects['Secret/gitops-guard/gitops-guard-checksum-key']);
    const newCa = Buffer.from(during.objects['Secret/gitops-guard/gitops-guard-tls'].data['ca.crt'], 'base64').toString('utf8');
    expect(newCa).not.toBe(oldCa);
    for (const bundle of caBundles(during)) {
      const pems = certsIn(Buffer.from(bundle!, 'base64').toString('utf8'));
      expect(pems).toEqual([certsIn(newCa)[0], certsIn(oldCa)[0]]);
    }
    // caBundle is patched before the Secret is replaced.
    const calls = during.calls as string[];
    const lastPatch = calls.map((c, i) => (c.startsWith('patch ') ? i : -1)).reduce((a, b) => Math.max(a, b));
    expect(calls.findIndex((c) => c.includes('replace -f'))).toBeGreaterThan(lastPatch);

    expect(cluster.run().status).toBe(0);
    for (const bundle of caBundles(cluster.state())) expect(Buffer.from(bundle!, 'base64').toString('utf8')).toBe(newCa);
  });

  it('--checksum-key-only leaves the TLS Secret and cert-manager-injected caBundles to cert-manager', () => {
    const cluster = fakeCluster('enforce-cert-manager');
    const result = cluster.run(['--checksum-key-only']);
    expect(result.status, result.stderr).toBe(0);
    const state = cluster.state();
    expect(state.objects['Secret/gitops-guard/gitops-guard-checksum-key']).toBeDefined();
    expect(state.objects['Secret/gitops-guard/gitops-guard-tls']).toBeUndefined();
    expect(caBundles(state)).toEqual([undefined, undefined, undefined]);
    expect((state.calls as string[]).some((c) => c.startsWith('patch'))).toBe(false);

    // Even a full run does not fight cert-manager's CA injector over caBundle.
    const full = cluster.run();
    expect(full.status, full.stderr).toBe(0);
    expect(full.stderr).toMatch(/managed by cert-manager/);
    expect(caBundles(cluster.state())).toEqual([undefined, undefined, undefined]);
  });

  it('refuses unknown arguments', () => {
    const result = fakeCluster('enforce').run(['--colour']);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/unknown argument --colour/);
  });
});

