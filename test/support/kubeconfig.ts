import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';

export interface KubeconfigOptions {
  server: string;
  caPem: string;
  token: string;
  namespace?: string;
}

/** A kubeconfig document with one cluster (inline CA), one bearer-token user and a current context. */
export function kubeconfigYaml({ server, caPem, token, namespace = 'default' }: KubeconfigOptions): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'test', cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } }],
    users: [{ name: 'test', user: { token } }],
    contexts: [{ name: 'test', context: { cluster: 'test', user: 'test', namespace } }],
    'current-context': 'test',
  });
}

/** Writes a kubeconfig to a fresh temporary directory; `cleanup` removes it. */
export function writeKubeconfig(options: KubeconfigOptions): { path: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'gitops-guard-kubeconfig-'));
  const path = join(dir, 'kubeconfig');
  writeFileSync(path, kubeconfigYaml(options), { mode: 0o600 });
  return { path, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
