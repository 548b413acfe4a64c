import { describe, expect, it } from 'vitest';
import { collectReferences } from '../actions/checksum/references.js';
import { changedKeys, ConsumerIndex } from './consumers.js';
import { slimWorkload, summarise } from './cache.js';

const refs = (podSpec: Record<string, unknown>) => collectReferences(podSpec, { includeImagePullSecrets: true });

describe('changedKeys', () => {
  it('names added, removed and changed keys; appearing or disappearing is a change of everything', () => {
    expect(changedKeys({ a: '1', b: '2' }, { a: '1', b: '3', c: '4' })).toEqual(new Set(['b', 'c']));
    expect(changedKeys({ a: '1', b: '2' }, { a: '1' })).toEqual(new Set(['b']));
    expect(changedKeys({ a: '1' }, { a: '1' })).toEqual(new Set());
    expect(changedKeys(undefined, { a: '1' })).toBe('all');
    expect(changedKeys({ a: '1' }, undefined)).toBe('all');
    expect(changedKeys(undefined, undefined)).toEqual(new Set());
  });
});

describe('ConsumerIndex', () => {
  const web = refs({
    containers: [
      { env: [{ name: 'L', valueFrom: { configMapKeyRef: { name: 'app', key: 'LOG_LEVEL' } } }], envFrom: [{ secretRef: { name: 'db' } }] },
    ],
    volumes: [{ name: 'v', configMap: { name: 'files', items: [{ key: 'a.conf', path: 'a' }] } }],
  });
  const worker = refs({ containers: [{ envFrom: [{ configMapRef: { name: 'app' } }] }] });

  it('maps each ConfigMap/Secret to its consumers and the keys they consume', () => {
    const index = new ConsumerIndex();
    index.setWorkload('apps/Deployment/ns/web', 'ns', web);
    index.setWorkload('apps/Deployment/ns/worker', 'ns', worker);
    expect(index.consumersOf('ConfigMap', 'ns', 'app')).toEqual(
      new Map<string, unknown>([
        ['apps/Deployment/ns/web', new Set(['LOG_LEVEL'])],
        ['apps/Deployment/ns/worker', 'all'],
      ]),
    );
    expect(index.affected('ConfigMap', 'ns', 'app', new Set(['LOG_LEVEL']))).toEqual(['apps/Deployment/ns/web', 'apps/Deployment/ns/worker']);
    expect(index.affected('ConfigMap', 'ns', 'app', new Set(['OTHER']))).toEqual(['apps/Deployment/ns/worker']);
    expect(index.affected('ConfigMap', 'ns', 'files', new Set(['b.conf']))).toEqual([]);
    expect(index.affected('ConfigMap', 'ns', 'files', 'all')).toEqual(['apps/Deployment/ns/web']);
    expect(index.affected('Secret', 'ns', 'db', new Set(['x']))).toEqual(['apps/Deployment/ns/web']);
    expect(index.affected('ConfigMap', 'ns', 'app', new Set())).toEqual([]);
    // Same name in another namespace, or the other kind: nobody.
    expect(index.affected('ConfigMap', 'other', 'app', 'all')).toEqual([]);
    expect(index.affected('Secret', 'ns', 'app', 'all')).toEqual([]);
    expect(index.sources).toBe(3);
    expect(index.workloads).toBe(2);
  });

  it('is rebuilt per workload on update and forgets it on delete', () => {
    const index = new ConsumerIndex();
    index.setWorkload('w', 'ns', web);
    index.setWorkload('w', 'ns', worker);
    expect(index.sourcesOf('w')).toEqual(['ConfigMap/ns/app']);
    expect(index.affected('Secret', 'ns', 'db', 'all')).toEqual([]);
    expect(index.affected('ConfigMap', 'ns', 'app', new Set(['ANY']))).toEqual(['w']);
    index.removeWorkload('w');
    expect(index.sources).toBe(0);
    expect(index.workloads).toBe(0);
    index.setWorkload('w', 'ns', []);
    expect(index.workloads).toBe(0);
  });
});

describe('what the informer caches keep', () => {
  it('ConfigMaps and Secrets: names and per-key digests, never values', () => {
    const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db', namespace: 'ns', resourceVersion: '7', annotations: { a: 'b' } }, data: { password: Buffer.from('hunter2').toString('base64'), user: Buffer.from('app').toString('base64') } };
    const summary = summarise('Secret', secret);
    expect(summary.metadata).toEqual({ name: 'db', namespace: 'ns', resourceVersion: '7' });
    expect(Object.keys(summary.digests!)).toEqual(['password', 'user']);
    expect(JSON.stringify(summary)).not.toContain(secret.data.password);
    expect(JSON.stringify(summary)).not.toContain('hunter2');
    // Same value, same digest (within this process); another value, another digest.
    expect(summarise('Secret', secret).digests).toEqual(summary.digests);
    const changed = summarise('Secret', { ...secret, data: { ...secret.data, password: Buffer.from('hunter3').toString('base64') } });
    expect(changedKeys(summary.digests, changed.digests)).toEqual(new Set(['password']));
    // ConfigMap data and binaryData are both covered; malformed data cannot be compared.
    const cm = summarise('ConfigMap', { metadata: { name: 'c', namespace: 'ns' }, data: { a: 'x' }, binaryData: { b: Buffer.from('y').toString('base64') } });
    expect(Object.keys(cm.digests!)).toEqual(['a', 'b']);
    expect(summarise('ConfigMap', { metadata: { name: 'c', namespace: 'ns' }, data: { a: 1 } } as any).digests).toBeUndefined();
  });

  it('workloads: without status, managedFields and the last-applied copy', () => {
    const slim = slimWorkload({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'w', managedFields: [{}], annotations: { keep: 'me', 'kubectl.kubernetes.io/last-applied-configuration': '{}' } },
      spec: { template: {} },
      status: { replicas: 1 },
    });
    expect(slim).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'w', annotations: { keep: 'me' } }, spec: { template: {} } });
  });
});
