import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { kubeconfigYaml } from '../../test/support/kubeconfig.js';
import { KubeConfigError, loadKubeConfig } from './kubeconfig.js';

const CA = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
let dir: string;

function file(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kubeconfig-test-'));
  mkdirSync(join(dir, 'home'));
  vi.stubEnv('HOME', join(dir, 'home'));
  vi.stubEnv('KUBECONFIG', '');
  vi.stubEnv('KUBERNETES_SERVICE_HOST', '');
});
afterEach(() => {
  vi.unstubAllEnvs();
  rmSync(dir, { recursive: true, force: true });
});

describe('loadKubeConfig', () => {
  it('loads an explicit file', () => {
    const path = file('kc', kubeconfigYaml({ server: 'https://10.0.0.1:6443', caPem: CA, token: 't' }));
    expect(loadKubeConfig(path)?.getCurrentCluster()?.server).toBe('https://10.0.0.1:6443');
  });

  it('names a missing explicit file', () => {
    const path = join(dir, 'missing');
    expect(() => loadKubeConfig(path)).toThrow(KubeConfigError);
    expect(() => loadKubeConfig(path)).toThrow(`kubeconfig ${path} does not exist`);
  });

  it('rejects an unparsable file without quoting it', () => {
    const path = file('bad', 'users: [{ name: x, user: { token: sekret-token-value }\n  : : :');
    let message = '';
    try {
      loadKubeConfig(path);
    } catch (error) {
      expect(error).toBeInstanceOf(KubeConfigError);
      message = (error as Error).message;
    }
    expect(message).toContain(path);
    expect(message).not.toContain('sekret-token-value');
  });

  it('rejects a file without a current context', () => {
    const path = file('nocontext', 'apiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts: []\n');
    expect(() => loadKubeConfig(path)).toThrow(/has no current context/);
  });

  it('uses the service account when running in a cluster', () => {
    vi.stubEnv('KUBERNETES_SERVICE_HOST', '10.96.0.1');
    vi.stubEnv('KUBERNETES_SERVICE_PORT', '443');
    vi.stubEnv('KUBECONFIG', file('ignored', kubeconfigYaml({ server: 'https://ignored:1', caPem: CA, token: 't' })));
    const kc = loadKubeConfig();
    expect(kc?.getCurrentCluster()?.server).toBe('https://10.96.0.1:443');
    expect(kc?.getCurrentUser()?.authProvider?.name).toBe('tokenFile');
  });

  it('prefers an explicit file over the in-cluster config', () => {
    vi.stubEnv('KUBERNETES_SERVICE_HOST', '10.96.0.1');
    const path = file('kc', kubeconfigYaml({ server: 'https://explicit:6443', caPem: CA, token: 't' }));
    expect(loadKubeConfig(path)?.getCurrentCluster()?.server).toBe('https://explicit:6443');
  });

  it('merges KUBECONFIG files like kubectl: the first file wins', () => {
    const first = file('a', kubeconfigYaml({ server: 'https://first:6443', caPem: CA, token: 'a' }));
    const second = file('b', kubeconfigYaml({ server: 'https://second:6443', caPem: CA, token: 'b' }));
    vi.stubEnv('KUBECONFIG', [first, second].join(delimiter));
    const kc = loadKubeConfig();
    expect(kc?.getCurrentCluster()?.server).toBe('https://first:6443');
    expect(kc?.getCurrentUser()?.token).toBe('a');
  });

  it('names a missing KUBECONFIG file', () => {
    vi.stubEnv('KUBECONFIG', join(dir, 'nope'));
    expect(() => loadKubeConfig()).toThrow(/kubeconfig .*nope does not exist/);
  });

  it('falls back to ~/.kube/config', () => {
    mkdirSync(join(dir, 'home', '.kube'));
    writeFileSync(join(dir, 'home', '.kube', 'config'), kubeconfigYaml({ server: 'https://home:6443', caPem: CA, token: 't' }));
    expect(loadKubeConfig()?.getCurrentCluster()?.server).toBe('https://home:6443');
  });

  it('returns null when nothing is configured', () => {
    expect(loadKubeConfig()).toBeNull();
  });
});
