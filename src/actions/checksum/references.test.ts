import { describe, expect, it } from 'vitest';
import type { KubeObject } from '../../api/types.js';
import { corpusObjects } from '../../../test/support/corpus.js';
import { locatePodTemplate } from './pod-template.js';
import type { PlainObject } from '../../util/objects.js';
import { collectReferences, type ConfigReference } from './references.js';

const noPull = { includeImagePullSecrets: false };

/** References in a compact, comparable form. */
function summary(refs: ConfigReference[]): Record<string, { keys: string[] | 'all'; optional: boolean; required: string[] }> {
  return Object.fromEntries(
    refs.map((r) => [
      `${r.kind}/${r.name}`,
      { keys: r.keys === 'all' ? 'all' : [...r.keys].sort(), optional: r.optional, required: [...r.requiredKeys].sort() },
    ]),
  );
}

const parsed = new Map<string, KubeObject[]>();

function podSpecOf(file: string, kind: string, name: string): PlainObject {
  if (!parsed.has(file)) parsed.set(file, corpusObjects(file));
  const object = parsed.get(file)!.find((o) => o.kind === kind && o.metadata?.name === name);
  if (!object) throw new Error(`${kind}/${name} not in ${file}`);
  return locatePodTemplate(object)!.podSpec;
}

describe('collectReferences: every reference form', () => {
  it('volumes: configMap and secret, all keys or only the items', () => {
    const refs = collectReferences(
      {
        volumes: [
          { name: 'a', configMap: { name: 'cm-all' } },
          { name: 'b', configMap: { name: 'cm-items', items: [{ key: 'x', path: 'x' }, { key: 'y', path: 'y' }] } },
          { name: 'c', secret: { secretName: 's-all', optional: true } },
          { name: 'd', secret: { secretName: 's-items', items: [{ key: 'tls.crt', path: 'c' }], optional: true } },
          { name: 'e', configMap: { name: 'cm-empty-items', items: [] } },
          { name: 'f', emptyDir: {} },
        ],
        containers: [{ name: 'app' }],
      },
      noPull,
    );
    expect(summary(refs)).toEqual({
      'ConfigMap/cm-all': { keys: 'all', optional: false, required: [] },
      'ConfigMap/cm-empty-items': { keys: 'all', optional: false, required: [] },
      'ConfigMap/cm-items': { keys: ['x', 'y'], optional: false, required: ['x', 'y'] },
      'Secret/s-all': { keys: 'all', optional: true, required: [] },
      'Secret/s-items': { keys: ['tls.crt'], optional: true, required: [] },
    });
  });

  it('projected volumes: configMap and secret sources, items and optional', () => {
    const refs = collectReferences(
      {
        volumes: [
          {
            name: 'p',
            projected: {
              sources: [
                { configMap: { name: 'p-cm', items: [{ key: 'k', path: 'k' }] } },
                { secret: { name: 'p-sec', optional: true } },
                { serviceAccountToken: { path: 'token' } },
                { downwardAPI: { items: [] } },
              ],
            },
          },
        ],
      },
      noPull,
    );
    expect(summary(refs)).toEqual({
      'ConfigMap/p-cm': { keys: ['k'], optional: false, required: ['k'] },
      'Secret/p-sec': { keys: 'all', optional: true, required: [] },
    });
  });

  it('envFrom and env.valueFrom in containers and initContainers', () => {
    const refs = collectReferences(
      {
        initContainers: [
          { name: 'init', envFrom: [{ configMapRef: { name: 'init-env' } }, { secretRef: { name: 'init-secret', optional: true }, prefix: 'S_' }] },
        ],
        containers: [
          {
            name: 'app',
            env: [
              { name: 'A', value: 'literal' },
              { name: 'B', valueFrom: { configMapKeyRef: { name: 'app-cm', key: 'b' } } },
              { name: 'C', valueFrom: { secretKeyRef: { name: 'app-sec', key: 'c', optional: true } } },
              { name: 'D', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
            ],
          },
        ],
      },
      noPull,
    );
    expect(summary(refs)).toEqual({
      'ConfigMap/app-cm': { keys: ['b'], optional: false, required: ['b'] },
      'ConfigMap/init-env': { keys: 'all', optional: false, required: [] },
      'Secret/app-sec': { keys: ['c'], optional: true, required: [] },
      'Secret/init-secret': { keys: 'all', optional: true, required: [] },
    });
  });

  it('merges references to one object: key union, all wins, required wins', () => {
    const refs = collectReferences(
      {
        volumes: [{ name: 'v', configMap: { name: 'shared', items: [{ key: 'file', path: 'f' }], optional: true } }],
        initContainers: [{ name: 'i', env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'shared', key: 'x' } } }] }],
        containers: [
          { name: 'a', env: [{ name: 'Y', valueFrom: { configMapKeyRef: { name: 'shared', key: 'y', optional: true } } }] },
          { name: 'b', envFrom: [{ secretRef: { name: 'mixed', optional: true } }] },
          { name: 'c', env: [{ name: 'Z', valueFrom: { secretKeyRef: { name: 'mixed', key: 'z' } } }] },
        ],
      },
      noPull,
    );
    expect(summary(refs)).toEqual({
      'ConfigMap/shared': { keys: ['file', 'x', 'y'], optional: false, required: ['x'] },
      'Secret/mixed': { keys: 'all', optional: false, required: ['z'] },
    });
    expect(refs).toHaveLength(2);
  });

  it('a ConfigMap and a Secret with the same name are different objects', () => {
    const refs = collectReferences(
      { containers: [{ name: 'a', envFrom: [{ configMapRef: { name: 'same' } }, { secretRef: { name: 'same' } }] }] },
      noPull,
    );
    expect(refs.map((r) => `${r.kind}/${r.name}`)).toEqual(['ConfigMap/same', 'Secret/same']);
  });

  it('imagePullSecrets only when asked, and never required', () => {
    const podSpec = { imagePullSecrets: [{ name: 'registry' }, { name: '' }, {}], containers: [{ name: 'a' }] };
    expect(collectReferences(podSpec, noPull)).toEqual([]);
    expect(summary(collectReferences(podSpec, { includeImagePullSecrets: true }))).toEqual({
      'Secret/registry': { keys: 'all', optional: true, required: [] },
    });
  });

  it('is sorted and independent of the order of containers, env entries and volumes', () => {
    const a = { name: 'a', env: [{ name: 'X', valueFrom: { secretKeyRef: { name: 's', key: 'x' } } }] };
    const b = { name: 'b', envFrom: [{ configMapRef: { name: 'c2' } }, { configMapRef: { name: 'c1' } }] };
    const v1 = { name: 'v1', secret: { secretName: 's', items: [{ key: 'y', path: 'y' }] } };
    const v2 = { name: 'v2', configMap: { name: 'c0' } };
    const one = collectReferences({ volumes: [v1, v2], containers: [a, b] }, noPull);
    const two = collectReferences({ volumes: [v2, v1], containers: [b, a] }, noPull);
    expect(summary(two)).toEqual(summary(one));
    expect(two.map((r) => r.name)).toEqual(['c0', 'c1', 'c2', 's']);
  });

  it('ignores garbage instead of failing', () => {
    const refs = collectReferences(
      {
        volumes: 'nope',
        containers: [
          null,
          'x',
          { envFrom: [null, { configMapRef: 'x' }, { configMapRef: { name: 7 } }, { secretRef: {} }] },
          { env: [{ valueFrom: null }, { valueFrom: { configMapKeyRef: { name: 'n' } } }, { valueFrom: { secretKeyRef: { key: 'k' } } }] },
        ],
        initContainers: { not: 'a list' },
      },
      noPull,
    );
    expect(refs).toEqual([]);
  });
});

describe('collectReferences on real manifests', () => {
  it('argocd-server: 48 optional configMapKeyRefs to one ConfigMap, items-limited optional Secret volumes, a required key', () => {
    const refs = summary(collectReferences(podSpecOf('argocd-install.yaml', 'Deployment', 'argocd-server'), noPull));
    expect(refs['ConfigMap/argocd-cmd-params-cm']).toMatchObject({ optional: true, required: [] });
    expect(refs['ConfigMap/argocd-cmd-params-cm']!.keys).toHaveLength(48);
    expect(refs['ConfigMap/argocd-cmd-params-cm']!.keys).toContain('server.insecure');
    expect(refs['Secret/argocd-redis']).toEqual({ keys: ['auth'], optional: false, required: ['auth'] });
    expect(refs['Secret/argocd-repo-server-tls']).toEqual({ keys: ['ca.crt', 'tls.crt', 'tls.key'], optional: true, required: [] });
    expect(refs['ConfigMap/argocd-tls-certs-cm']).toEqual({ keys: 'all', optional: false, required: [] });
  });

  it('argocd-application-controller StatefulSet', () => {
    const refs = summary(collectReferences(podSpecOf('argocd-install.yaml', 'StatefulSet', 'argocd-application-controller'), noPull));
    expect(Object.keys(refs)).toEqual(['ConfigMap/argocd-cm', 'ConfigMap/argocd-cmd-params-cm', 'Secret/argocd-redis', 'Secret/argocd-repo-server-tls']);
    expect(refs['ConfigMap/argocd-cmd-params-cm']!.keys).toHaveLength(40);
  });

  it('calico-node: configMapKeyRefs from init and main containers, an optional envFrom, a secret volume', () => {
    const refs = summary(collectReferences(podSpecOf('calico-etcd.yaml', 'DaemonSet', 'calico-node'), noPull));
    expect(refs).toEqual({
      'ConfigMap/calico-config': {
        keys: ['calico_backend', 'cni_network_config', 'etcd_ca', 'etcd_cert', 'etcd_endpoints', 'etcd_key', 'veth_mtu'],
        optional: false,
        required: ['calico_backend', 'cni_network_config', 'etcd_ca', 'etcd_cert', 'etcd_endpoints', 'etcd_key', 'veth_mtu'],
      },
      'ConfigMap/kubernetes-services-endpoint': { keys: 'all', optional: true, required: [] },
      'Secret/calico-etcd-secrets': { keys: 'all', optional: false, required: [] },
    });
  });

  it('metallb speaker: a secretKeyRef to a Secret the manifest does not contain', () => {
    const refs = summary(collectReferences(podSpecOf('metallb-native.yaml', 'DaemonSet', 'speaker'), noPull));
    expect(refs).toEqual({ 'Secret/memberlist': { keys: ['secretkey'], optional: false, required: ['secretkey'] } });
  });
});
