import { describe, expect, it } from 'vitest';
import { collectReferences } from '../actions/checksum/references.js';
import { changedKeys, ConsumerIndex } from './consumers.js';

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
