/**
 * Opt-in end-to-end tier for the rollout controller: it runs against the same API as the tier
 * (`npm run test:e2e:peer` starts one; on a real cluster install the controller overlay and set
 * GITOPS_GUARD_E2E_CONTROLLER=1). Its patches go through the API server's admission chain, so the
 * webhook sees them too. Creates a throw-away namespace; installs the Argo Rollouts CRD only where
 * it is missing (and removes it again).
 */
import { randomBytes } from 'node:crypto';
import {
  ApiextensionsV1Api,
  ApiException,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type V1CustomResourceDefinition,
  type V1Deployment,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isChecksumValue } from '../../src/actions/checksum/encoding.js';
import { controllerReadyz, e2eKubeConfig } from './context.js';

const kubeConfig = e2eKubeConfig();
const core = kubeConfig.makeApiClient(CoreV1Api);
const apps = kubeConfig.makeApiClient(AppsV1Api);
const custom = kubeConfig.makeApiClient(CustomObjectsApi);
const extensions = kubeConfig.makeApiClient(ApiextensionsV1Api);
const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

const namespace = `gitops-guard-e2e-ctl-${randomBytes(3).toString('hex')}`;
const CHECKSUM = 'gitops-guard.dev/config-checksum';
const ROLLOUT_CRD = 'rollouts.argoproj.io';
let createdCrd = false;

const podTemplate = (app: string) => ({
  metadata: { labels: { app } },
  spec: { containers: [{ name: app, image: 'registry.k8s.io/pause:3.9', env: [{ name: 'LEVEL', valueFrom: { configMapKeyRef: { name: 'settings', key: 'level' } } }] }] },
});

function deployment(): V1Deployment {
  return { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace }, spec: { replicas: 1, selector: { matchLabels: { app: 'web' } }, template: podTemplate('web') } };
}

async function until<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(value)})`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

const deploymentChecksum = async () => (await apps.readNamespacedDeployment({ name: 'web', namespace })).spec?.template.metadata?.annotations?.[CHECKSUM];
const rolloutChecksum = async () =>
  ((await custom.getNamespacedCustomObject({ group: 'argoproj.io', version: 'v1alpha1', namespace, plural: 'rollouts', name: 'canary' })) as { spec?: { template?: { metadata?: { annotations?: Record<string, string> } } } }).spec
    ?.template?.metadata?.annotations?.[CHECKSUM];
const setLevel = (level: string) => core.patchNamespacedConfigMap({ name: 'settings', namespace, body: { data: { level } } }, MERGE_PATCH);

function rolloutCrd(): V1CustomResourceDefinition {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: ROLLOUT_CRD },
    spec: {
      group: 'argoproj.io',
      names: { kind: 'Rollout', listKind: 'RolloutList', plural: 'rollouts', singular: 'rollout', shortNames: ['ro'] },
      scope: 'Namespaced',
      versions: [{ name: 'v1alpha1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', x_kubernetes_preserve_unknown_fields: true } } }],
    },
  };
}

describe('the rollout controller on a cluster', () => {
  beforeAll(async () => {
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'settings' }, data: { level: 'info', unused: 'a' } } });
  });

  afterAll(async () => {
    await core.deleteNamespace({ name: namespace }).catch(() => undefined);
    if (createdCrd) await extensions.deleteCustomResourceDefinition({ name: ROLLOUT_CRD }).catch(() => undefined);
  });

  it('rolls the consumer of a ConfigMap-only change, once, to the value the webhook stamps', async () => {
    await apps.createNamespacedDeployment({ namespace, body: deployment() });
    const first = await deploymentChecksum();
    expect(isChecksumValue(first ?? '')).toBe(true);

    await setLevel('debug');
    const rolled = await until('the controller to roll the Deployment', deploymentChecksum, (value) => value !== first);
    expect(isChecksumValue(rolled ?? '')).toBe(true);
    const live = await apps.readNamespacedDeployment({ name: 'web', namespace });
    expect(live.metadata?.managedFields?.some((f) => f.manager === 'gitops-guard')).toBe(true);
    const rolledEvents = async () => (await core.listNamespacedEvent({ namespace })).items.filter((e) => e.reason === 'ConfigChanged' && e.involvedObject.name === 'web');
    const events = await until('the ConfigChanged Event', rolledEvents, (list) => list.length > 0);
    expect(events[0]!.message).toContain('ConfigMap settings changed');
    // Once: nothing rolls it again (the webhook's re-admission of the patch changes nothing).
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(await rolledEvents()).toHaveLength(1);
    expect(await deploymentChecksum()).toBe(rolled);

    // The webhook agrees: re-applying the unchanged manifest keeps the controller's value.
    await apps.replaceNamespacedDeployment({ name: 'web', namespace, body: { ...deployment(), metadata: { ...deployment().metadata, resourceVersion: live.metadata?.resourceVersion } } });
    expect(await deploymentChecksum()).toBe(rolled);
  });

  it('watches Argo Rollouts installed while it runs, without a restart, and rolls them', async () => {
    const exists = await extensions.readCustomResourceDefinition({ name: ROLLOUT_CRD }).then(
      () => true,
      (error: unknown) => {
        if (error instanceof ApiException && error.code === 404) return false;
        throw error;
      },
    );
    if (!exists) {
      // A cluster with Argo CD but without Argo Rollouts: the controller is ready and says why it does not watch them.
      const before = await controllerReadyz();
      if (before !== undefined) expect(before).toMatch(/^\[-\] rollouts\.argoproj\.io: not watched: not served: argoproj\.io\/v1alpha1 lists no rollouts/m);
      await extensions.createCustomResourceDefinition({ body: rolloutCrd() });
      createdCrd = true;
    }
    const body = { apiVersion: 'argoproj.io/v1alpha1', kind: 'Rollout', metadata: { name: 'canary', namespace }, spec: { selector: { matchLabels: { app: 'canary' } }, template: podTemplate('canary') } };
    // Right after the CRD is established the API may still answer 404 for a moment.
    await until('the Rollout created', () => custom.createNamespacedCustomObject({ group: 'argoproj.io', version: 'v1alpha1', namespace, plural: 'rollouts', body }).then(() => true, () => false), (ok) => ok, 30_000);
    const stamped = await rolloutChecksum();
    expect(isChecksumValue(stamped ?? ''), 'the webhook stamps Rollouts too').toBe(true);

    // A change while the controller may not watch Rollouts yet: it compares them once it does.
    await setLevel('warn');
    const rolled = await until('the controller to roll the Rollout', rolloutChecksum, (value) => value !== stamped, 75_000);
    expect(rolled).toBe(await deploymentChecksum());
    const after = await controllerReadyz();
    if (after !== undefined) expect(after).toMatch(/^\[\+\] rollouts\.argoproj\.io: watched$/m);
  }, 120_000);
});
