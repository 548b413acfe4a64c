import { KubeConfig } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { RequestCredentials, type AppliedOptions } from './request-credentials.js';

/** A kubeconfig whose authentication is counted and can be changed or made to fail. */
class CountingKubeConfig extends KubeConfig {
  calls = 0;
  token = 'first';
  failNext = false;
  override async applyToHTTPSOptions(options: AppliedOptions): Promise<void> {
    this.calls++;
    await new Promise((resolve) => setImmediate(resolve));
    if (this.failNext) {
      this.failNext = false;
      throw new Error('exec plugin failed');
    }
    options.headers['Authorization'] = `Bearer ${this.token}`;
  }
}

function setup(ttlMs = 1000) {
  const kubeConfig = new CountingKubeConfig();
  let now = 1_000_000;
  const credentials = new RequestCredentials(kubeConfig, ttlMs, () => now);
  return { kubeConfig, credentials, advance: (ms: number) => (now += ms) };
}

describe('RequestCredentials', () => {
  it('resolves once per TTL: reads within it share the resolution, the next one after it resolves afresh', async () => {
    const { kubeConfig, credentials, advance } = setup();
    const first = await credentials.current();
    advance(999);
    expect(await credentials.current()).toBe(first);
    expect(kubeConfig.calls).toBe(1);
    kubeConfig.token = 'rotated';
    advance(1);
    expect((await credentials.current()).headers['Authorization']).toBe('Bearer rotated');
    expect(kubeConfig.calls).toBe(2);
  });

  it('concurrent callers share one resolution', async () => {
    const { kubeConfig, credentials } = setup();
    const all = await Promise.all(Array.from({ length: 50 }, () => credentials.current()));
    expect(new Set(all).size).toBe(1);
    expect(kubeConfig.calls).toBe(1);
  });

  it('a failed resolution is not kept: the next caller tries again', async () => {
    const { kubeConfig, credentials } = setup();
    kubeConfig.failNext = true;
    await expect(credentials.current()).rejects.toThrow('exec plugin failed');
    expect((await credentials.current()).headers['Authorization']).toBe('Bearer first');
    expect(kubeConfig.calls).toBe(2);
  });

  it('invalidate (after a 401) makes the next caller resolve afresh, within the TTL', async () => {
    const { kubeConfig, credentials } = setup();
    await credentials.current();
    kubeConfig.token = 'rotated';
    credentials.invalidate();
    expect((await credentials.current()).headers['Authorization']).toBe('Bearer rotated');
    expect(kubeConfig.calls).toBe(2);
  });

  it('fresh() hands out resolved credentials without waiting, only while they are kept', async () => {
    const { credentials, advance } = setup();
    expect(credentials.fresh()).toBeUndefined();
    const pending = credentials.current();
    // Resolving, not resolved: the caller has to wait.
    expect(credentials.fresh()).toBeUndefined();
    const resolved = await pending;
    expect(credentials.fresh()).toBe(resolved);
    advance(1000);
    expect(credentials.fresh()).toBeUndefined();
    await credentials.current();
    credentials.invalidate();
    expect(credentials.fresh()).toBeUndefined();
  });
});
