import { describe, expect, it, vi } from 'vitest';
import { KubeReadError } from '../kube/errors.js';
import type { KubeReader, ObjectRef } from '../kube/reader.js';
import { decodeConfigData } from '../kube/config-data.js';
import { BundleReader, CachingReader, ConfigBundle, OFFLINE_ABSENT } from './bundle-reader.js';

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
const text = (content: ReadonlyMap<string, Buffer> | undefined) =>
  Object.fromEntries([...(content ?? new Map())].map(([k, v]) => [k, v.toString('utf8')]));
const opts = { timeoutMs: 1000 };
const ref = (kind: 'ConfigMap' | 'Secret', name: string, namespace = 'ns'): ObjectRef => ({ kind, namespace, name });

describe('decodeConfigData', () => {
  it('decodes Secret data from base64 and lets stringData win, as the API server merges them', () => {
    const { content, problems } = decodeConfigData('Secret', {
      data: { user: b64('admin'), password: b64('old') },
      stringData: { password: 'new' },
    });
    expect(text(content)).toEqual({ user: 'admin', password: 'new' });
    expect(problems).toEqual([]);
  });

  it('reads ConfigMap data as UTF-8 and binaryData as base64', () => {
    const { content } = decodeConfigData('ConfigMap', { data: { 'a.conf': 'x = 1\n' }, binaryData: { blob: Buffer.from([0, 255]).toString('base64') } });
    expect(content.get('a.conf')?.toString()).toBe('x = 1\n');
    expect([...content.get('blob')!]).toEqual([0, 255]);
  });

  it('leaves out and reports values the API server would reject', () => {
    const { content, problems } = decodeConfigData('Secret', { data: { ok: b64('x'), bad: 'not base64!', num: 5 } });
    expect([...content.keys()]).toEqual(['ok']);
    expect(problems).toEqual(['data.bad is not valid base64', 'data.num is not a string']);
    expect(decodeConfigData('ConfigMap', { data: ['x'] }).problems).toEqual(['data is not a map']);
  });
});

describe('BundleReader', () => {
  const bundle = new ConfigBundle();
  bundle.add({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'shared', namespace: 'ns' }, data: { from: 'first' } }, 'a');
  bundle.add({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'shared', namespace: 'ns' }, data: { from: 'second' } }, 'b');
  bundle.add({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'ns' }, stringData: { k: 'v' } });
  bundle.add({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'ignored', namespace: 'ns' } });

  it('serves ConfigMaps and Secrets from the input, preferring the same app', async () => {
    expect(bundle.size).toBe(2);
    const forB = new BundleReader(bundle, undefined, 'b');
    const read = await forB.readConfigSource(ref('ConfigMap', 'shared'), opts);
    expect(read.found && text(read.content)).toEqual({ from: 'second' });
    const forOther = new BundleReader(bundle, undefined, 'c');
    const other = await forOther.readConfigSource(ref('ConfigMap', 'shared'), opts);
    expect(other.found && text(other.content)).toEqual({ from: 'first' });
    expect(forB.lookups).toEqual([{ kind: 'ConfigMap', namespace: 'ns', name: 'shared', from: 'input' }]);
  });

  it('offline, treats sources that are not in the input as absent and says so', async () => {
    const reader = new BundleReader(bundle);
    await expect(reader.readConfigSource(ref('Secret', 'elsewhere'), opts)).resolves.toEqual({ found: false });
    await expect(reader.readConfigSource(ref('Secret', 's', 'other-ns'), opts)).resolves.toEqual({ found: false });
    expect(reader.lookups).toEqual([
      { kind: 'Secret', namespace: 'ns', name: 'elsewhere', from: 'absent', detail: OFFLINE_ABSENT },
      { kind: 'Secret', namespace: 'other-ns', name: 's', from: 'absent', detail: OFFLINE_ABSENT },
    ]);
  });

  it('falls back to the cluster and records what it answered; failures stay failures', async () => {
    const cluster: KubeReader = {
      async readConfigSource(r) {
        if (r.name === 'live') return { found: true, content: new Map([['k', Buffer.from('live')]]) };
        if (r.name === 'gone') return { found: false };
        throw new KubeReadError(r, 'forbidden', 'Forbidden', 403);
      },
    };
    const reader = new BundleReader(bundle, cluster);
    await expect(reader.readConfigSource(ref('ConfigMap', 'shared'), opts)).resolves.toMatchObject({ found: true });
    await expect(reader.readConfigSource(ref('ConfigMap', 'live'), opts)).resolves.toMatchObject({ found: true });
    await expect(reader.readConfigSource(ref('ConfigMap', 'gone'), opts)).resolves.toEqual({ found: false });
    await expect(reader.readConfigSource(ref('Secret', 'locked'), opts)).rejects.toBeInstanceOf(KubeReadError);
    expect(reader.lookups.map((l) => [l.name, l.from, l.detail])).toEqual([
      ['shared', 'input', undefined],
      ['live', 'cluster', undefined],
      ['gone', 'absent', 'not in the input nor in the cluster'],
      ['locked', 'unresolved', 'cluster read failed: forbidden (HTTP 403): Forbidden'],
    ]);
  });
});

describe('CachingReader', () => {
  it('reads each object from the cluster once, including failures', async () => {
    const read = vi.fn(async (r: ObjectRef) => {
      if (r.name === 'bad') throw new KubeReadError(r, 'timeout', 'slow');
      return { found: false as const };
    });
    const cache = new CachingReader({ readConfigSource: read });
    await cache.readConfigSource(ref('ConfigMap', 'x'), opts);
    await cache.readConfigSource(ref('ConfigMap', 'x'), opts);
    await cache.readConfigSource(ref('Secret', 'x'), opts);
    await expect(cache.readConfigSource(ref('Secret', 'bad'), opts)).rejects.toThrow('slow');
    await expect(cache.readConfigSource(ref('Secret', 'bad'), opts)).rejects.toThrow('slow');
    expect(read).toHaveBeenCalledTimes(3);
  });
});
