import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { MAX_RULES_FILE_BYTES } from '../src/rules/load.js';
import { MAX_RULES } from '../src/rules/schema.js';
import { DEFAULT_RULES } from './support/app.js';
import { runCli } from './support/cli.js';
import { httpsRequest } from './support/https-client.js';
import { ROOT } from './support/manifests.js';
import { killServers, startServe } from './support/serve.js';

/**
 * A rules file comes from a ConfigMap (up to 1 MiB) that more people may be able to edit than the
 * server's Deployment. `serve`, at the heap size the manifests give it, refuses oversized and
 * pathological rules files with a clear message and, on reload, keeps serving the last good rules.
 */

afterEach(killServers);

/** The NODE_OPTIONS the shipped Deployment runs the server with. */
function shippedNodeOptions(): string {
  const deployment = parse(readFileSync(join(ROOT, 'manifests', 'base', 'deployment.yaml'), 'utf8')) as any;
  const value = deployment.spec.template.spec.containers[0].env.find((e: { name: string }) => e.name === 'NODE_OPTIONS').value as string;
  expect(value).toMatch(/--max-old-space-size=\d+/);
  return value;
}

const HEAD = 'apiVersion: gitops-guard.dev/v1alpha1\nkind: RuleSet\nrules:\n';
const rule = (i: number) => `  - name: rule-${i}\n    match: { kinds: [{ group: rbac.authorization.k8s.io, kind: ClusterRole }] }\n    action: { type: tagOwner }\n`;
/** Valid rules, as many as fit into `bytes`. */
function rulesOfSize(bytes: number): string {
  let text = HEAD;
  for (let i = 0; text.length + rule(i).length <= bytes; i++) text += rule(i);
  return text;
}

const CONFIGMAP_SIZED = rulesOfSize(1024 * 1024 - 1024);
/** Pathological documents that stay within the size limit. */
const PATHOLOGICAL: Record<string, string> = {
  'deeply nested flow collections': `${HEAD.trimEnd()} ${'['.repeat(MAX_RULES_FILE_BYTES - HEAD.length - 8)}`,
  'a flow sequence of tiny items': `${HEAD.trimEnd()} [${'0,'.repeat((MAX_RULES_FILE_BYTES - HEAD.length) / 2 - 8)}]\n`,
  'more rules than allowed': rulesOfSize(MAX_RULES_FILE_BYTES),
  'an alias bomb': `${HEAD}  []\nx: &a [${'1,'.repeat(9)}1]\n${Array.from({ length: 8 }, (_, i) => `x${i}: &a${i} [${Array(10).fill(i === 0 ? '*a' : `*a${i - 1}`).join(',')}]`).join('\n')}\n`,
};

describe('rules file bounds', () => {
  it('the pathological documents are what they claim', () => {
    expect(Buffer.byteLength(CONFIGMAP_SIZED)).toBeGreaterThan(1000 * 1024);
    for (const [name, text] of Object.entries(PATHOLOGICAL)) expect(Buffer.byteLength(text), name).toBeLessThanOrEqual(MAX_RULES_FILE_BYTES);
    expect(PATHOLOGICAL['more rules than allowed']!.match(/- name:/g)!.length).toBeGreaterThan(MAX_RULES);
  });

  it('serve refuses a ConfigMap-sized rules file at start-up, with one line, at the shipped heap size', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'gg-big-rules-'));
    writeFileSync(join(cwd, 'rules.yaml'), CONFIGMAP_SIZED);
    const { code, stderr } = await runCli(['serve', '--port', '0', '--dev-certs', '--rules', 'rules.yaml'], {
      cwd,
      env: { KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '', NODE_OPTIONS: shippedNodeOptions() },
    });
    expect(code).toBe(1);
    expect(stderr).toMatch(/gitops-guard: rules\.yaml: invalid rules: \/: larger than 64 KiB \(65536 bytes\), the limit for a rules file\n$/);
  });

  it('a running serve refuses oversized and pathological reloads, keeps the last good rules and stays ready', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'gg-reload-rules-'));
    const rulesPath = join(cwd, 'rules.yaml');
    writeFileSync(rulesPath, readFileSync(DEFAULT_RULES));
    const serve = await startServe(['--port', '0', '--dev-certs', '--rules', 'rules.yaml', '--reload-interval-ms', '50'], {
      cwd,
      env: { NODE_OPTIONS: shippedNodeOptions() },
    });
    const ca = readFileSync(join(cwd, 'certs', 'ca.crt'));
    const metric = async (name: string) => {
      const body = (await httpsRequest({ port: serve.port, ca, servername: 'localhost', path: '/metrics' })).body;
      return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(body)?.[1]);
    };
    const replace = (text: string) => {
      writeFileSync(join(cwd, 'rules.next'), text);
      renameSync(join(cwd, 'rules.next'), rulesPath);
    };
    const failures = () => serve.logs.filter((l) => l.includes('rules reload failed')).length;
    let expectedFailures = 0;
    for (const [name, text] of [['ConfigMap-sized', CONFIGMAP_SIZED], ...Object.entries(PATHOLOGICAL)] as const) {
      replace(text);
      expectedFailures++;
      const deadline = Date.now() + 10_000;
      while (failures() < expectedFailures) {
        if (Date.now() > deadline) throw new Error(`${name}: no reload failure logged`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      expect((await httpsRequest({ port: serve.port, ca, servername: 'localhost', path: '/readyz' })).status, name).toBe(200);
      expect(await metric('gitops_guard_rules_last_reload_success'), name).toBe(0);
      expect(await metric('gitops_guard_rules_loaded'), name).toBe(3);
    }
    replace(readFileSync(DEFAULT_RULES, 'utf8').replace('name: tag-owner', 'name: tag-owners'));
    const deadline = Date.now() + 10_000;
    while ((await metric('gitops_guard_rules_last_reload_success')) !== 1) {
      if (Date.now() > deadline) throw new Error('the good file was never loaded');
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    expect(serve.child.exitCode).toBeNull();
  }, 60_000);
});
