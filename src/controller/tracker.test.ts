import { describe, expect, it } from 'vitest';
import type { KubeObject } from '../api/types.js';
import { WORKLOAD_KINDS } from '../actions/checksum/pod-template.js';
import { configMap, deployment, secret } from '../../test/support/kube-fixtures.js';
import { summarise } from './cache.js';
import { ChangeTracker, workloadKey } from './tracker.js';

const Deployment = WORKLOAD_KINDS.find((k) => k.kind === 'Deployment')!;
const StatefulSet = WORKLOAD_KINDS.find((k) => k.kind === 'StatefulSet')!;
const NS = 'shop';

/** A Deployment reading key `mode` of ConfigMap `settings` and all of Secret `db`. */
function web(generation: number, extra: Record<string, unknown> = {}): KubeObject {
  const object = deployment(NS, 'web', {
    containers: [{ name: 'app', env: [{ name: 'MODE', valueFrom: { configMapKeyRef: { name: 'settings', key: 'mode' } } }], envFrom: [{ secretRef: { name: 'db' } }] }],
  });
  return { ...object, metadata: { ...object.metadata, generation }, ...extra };
}

const source = (object: KubeObject) => summarise(object.kind as 'ConfigMap' | 'Secret', object);

describe('ChangeTracker: from informer events to the workloads to compare', () => {
  const key = workloadKey(Deployment, NS, 'web');

  it('names a workload by group, kind, namespace and name', () => {
    expect(key).toBe('apps/Deployment/shop/web');
  });

  it('compares a new workload and a spec change, not a status update, and forgets a deleted one', () => {
    const tracker = new ChangeTracker();
    expect(tracker.workloadChanged(Deployment, 'add', web(1))).toEqual({ key, compare: true });
    expect(tracker.workloadChanged(Deployment, 'update', web(1, { status: { replicas: 2 } }))).toEqual({ key, compare: false });
    expect(tracker.workloadChanged(Deployment, 'update', web(2))).toEqual({ key, compare: true });
    expect(tracker.ref(key)).toEqual({ resource: Deployment, namespace: NS, name: 'web' });
    expect(tracker.workloadChanged(Deployment, 'delete', web(2))).toEqual({ key, compare: false });
    expect(tracker.ref(key)).toBeUndefined();
    expect(tracker.index.sourcesOf(key)).toEqual([]);
  });

  it('a ConfigMap or Secret change reaches the workloads that consume a changed key, and only those', () => {
    const tracker = new ChangeTracker();
    tracker.sourceChanged('ConfigMap', 'add', source(configMap(NS, 'settings', { mode: 'fast', unused: 'x' })));
    tracker.sourceChanged('Secret', 'add', source(secret(NS, 'db', { password: 'a' })));
    tracker.workloadChanged(Deployment, 'add', web(1));
    expect(tracker.sourceChanged('ConfigMap', 'update', source(configMap(NS, 'settings', { mode: 'fast', unused: 'y' })))).toEqual([]);
    expect(tracker.sourceChanged('ConfigMap', 'update', source(configMap(NS, 'settings', { mode: 'slow', unused: 'y' })))).toEqual([key]);
    expect(tracker.sourceChanged('Secret', 'update', source(secret(NS, 'db', { password: 'b' })))).toEqual([key]);
    expect(tracker.sourceChanged('Secret', 'delete', source(secret(NS, 'db', { password: 'b' })))).toEqual([key]);
    expect(tracker.sourceChanged('ConfigMap', 'update', source(configMap('elsewhere', 'settings', { mode: 'x' })))).toEqual([]);
  });

  it('only records digests when asked for no answer (a replica that does not lead)', () => {
    const tracker = new ChangeTracker();
    tracker.workloadChanged(Deployment, 'add', web(1));
    tracker.sourceChanged('ConfigMap', 'add', source(configMap(NS, 'settings', { mode: 'fast' })));
    expect(tracker.sourceChanged('ConfigMap', 'update', source(configMap(NS, 'settings', { mode: 'slow' })), false)).toEqual([]);
    expect(tracker.sourceCount).toBe(1);
    // The digest was kept: the same content again is no change.
    expect(tracker.sourceChanged('ConfigMap', 'update', source(configMap(NS, 'settings', { mode: 'slow' })))).toEqual([]);
  });

  it('drops the workloads of a kind that is no longer watched, keeping the others', () => {
    const tracker = new ChangeTracker();
    tracker.workloadChanged(Deployment, 'add', web(1));
    const db = { ...web(1), kind: 'StatefulSet', metadata: { name: 'db', namespace: NS, generation: 1 } };
    tracker.workloadChanged(StatefulSet, 'add', db);
    expect(tracker.dropKind(Deployment)).toEqual([key]);
    expect([...tracker.keys()]).toEqual([workloadKey(StatefulSet, NS, 'db')]);
    expect(tracker.index.affected('Secret', NS, 'db', 'all')).toEqual([workloadKey(StatefulSet, NS, 'db')]);
  });
});
