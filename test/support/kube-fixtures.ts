import type { KubeObject } from '../../src/api/types.js';

/** Objects for tests, shaped as the API server stores them, and their URLs. */

export function configMap(
  namespace: string,
  name: string,
  data: Record<string, string> = {},
  binaryData?: Record<string, Buffer>,
): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace },
    data,
    ...(binaryData ? { binaryData: Object.fromEntries(Object.entries(binaryData).map(([k, v]) => [k, v.toString('base64')])) } : {}),
  };
}

export function secret(namespace: string, name: string, data: Record<string, string | Buffer> = {}): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace },
    type: 'Opaque',
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
  };
}

export function objectPath(kind: 'ConfigMap' | 'Secret', namespace: string, name: string): string {
  return `/api/v1/namespaces/${namespace}/${kind === 'Secret' ? 'secrets' : 'configmaps'}/${name}`;
}

/** A minimal apps/v1 Deployment around `podSpec`; `templateAnnotations` go on the pod template. */
export function deployment(
  namespace: string,
  name: string,
  podSpec: Record<string, unknown>,
  templateAnnotations?: Record<string, string>,
): KubeObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace, labels: { app: name } },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name }, ...(templateAnnotations ? { annotations: templateAnnotations } : {}) },
        spec: podSpec,
      },
    },
  };
}

/** The Argo Rollouts CRD as its install manifest defines it (schema left out). */
export function rolloutCrd(): KubeObject {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: 'rollouts.argoproj.io' },
    spec: {
      group: 'argoproj.io',
      names: { kind: 'Rollout', listKind: 'RolloutList', plural: 'rollouts', singular: 'rollout', shortNames: ['ro'] },
      scope: 'Namespaced',
      versions: [{ name: 'v1alpha1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
    },
  };
}
