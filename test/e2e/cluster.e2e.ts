/**
 * Opt-in end-to-end tier: the webhooks as the API server calls them. Runs with `npm run test:e2e`
 * against a real cluster where gitops-guard is installed (docs/install.md, KUBECONFIG), or with
 * `npm run test:e2e:peer` against apiserver-peer, which starts everything itself; `npm test`
 * never runs it. It creates a throw-away namespace and cluster-scoped objects named
 * gitops-guard-e2e-*, and removes them.
 */
import { randomBytes } from 'node:crypto';
import {
  ApiException,
  AppsV1Api,
  CoreV1Api,
  PatchStrategy,
  RbacAuthorizationV1Api,
  setHeaderOptions,
  type V1ClusterRoleBinding,
  type V1Deployment,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { e2eKubeConfig } from './context.js';

const kubeConfig = e2eKubeConfig();
const core = kubeConfig.makeApiClient(CoreV1Api);
const apps = kubeConfig.makeApiClient(AppsV1Api);
const rbac = kubeConfig.makeApiClient(RbacAuthorizationV1Api);
/** client-node 1.x sends application/json-patch+json unless told otherwise; these bodies are merge patches. */
const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

const suffix = randomBytes(3).toString('hex');
const namespace = `gitops-guard-e2e-${suffix}`;
const bindingName = `gitops-guard-e2e-${suffix}`;
const CHECKSUM = 'gitops-guard.dev/config-checksum';

function deployment(): V1Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: 'web' } },
      template: {
        metadata: { labels: { app: 'web' } },
        spec: {
          containers: [
            {
              name: 'web',
              image: 'registry.k8s.io/pause:3.9',
              env: [{ name: 'GREETING', valueFrom: { configMapKeyRef: { name: 'settings', key: 'greeting' } } }],
            },
          ],
        },
      },
    },
  };
}

async function stampedChecksum(): Promise<string | undefined> {
  const live = await apps.readNamespacedDeployment({ name: 'web', namespace });
  return live.spec?.template.metadata?.annotations?.[CHECKSUM];
}

/** `kubectl apply` of the unchanged manifest: an UPDATE the webhook stamps again (retried on a 409, as kubectl does). */
async function reapplyDeployment(): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const live = await apps.readNamespacedDeployment({ name: 'web', namespace });
    try {
      await apps.replaceNamespacedDeployment({ name: 'web', namespace, body: { ...deployment(), metadata: { ...deployment().metadata, resourceVersion: live.metadata?.resourceVersion } } });
      return;
    } catch (error) {
      // The rollout controller, where it runs, may have patched it in between.
      if (!(error instanceof ApiException && error.code === 409) || attempt === 3) throw error;
    }
  }
}

function binding(app: string): V1ClusterRoleBinding {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: bindingName, labels: { 'app.kubernetes.io/instance': app } },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' },
    subjects: [{ kind: 'ServiceAccount', name: 'default', namespace }],
  };
}

describe('gitops-guard on a real cluster', () => {
  beforeAll(async () => {
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'settings' }, data: { greeting: 'hello', unused: 'a' } } });
  });

  afterAll(async () => {
    await rbac.deleteClusterRoleBinding({ name: bindingName }).catch(() => undefined);
    await core.deleteNamespace({ name: namespace }).catch(() => undefined);
  });

  it('stamps a checksum that follows consumed config only', async () => {
    await apps.createNamespacedDeployment({ namespace, body: deployment() });
    const first = await stampedChecksum();
    expect(first).toMatch(/^v2:[0-9a-f]{64}$/);

    await core.patchNamespacedConfigMap({ name: 'settings', namespace, body: { data: { unused: 'b' } } }, MERGE_PATCH);
    await reapplyDeployment();
    expect(await stampedChecksum()).toBe(first);

    await core.patchNamespacedConfigMap({ name: 'settings', namespace, body: { data: { greeting: 'bonjour' } } }, MERGE_PATCH);
    await reapplyDeployment();
    const changed = await stampedChecksum();
    expect(changed).toMatch(/^v2:[0-9a-f]{64}$/);
    expect(changed).not.toBe(first);
  });

  it('answers a server-side dry run like a real request, without persisting it', async () => {
    const dry = await apps.createNamespacedDeployment({ namespace, body: { ...deployment(), metadata: { name: 'dry', namespace } }, dryRun: 'All' });
    expect(dry.spec?.template.metadata?.annotations?.[CHECKSUM]).toBe(await stampedChecksum());
    await expect(apps.readNamespacedDeployment({ name: 'dry', namespace })).rejects.toMatchObject({ code: 404 });
  });

  it('records the first owner of a cluster-scoped object and denies a second one', async () => {
    const created = await rbac.createClusterRoleBinding({ body: binding('e2e-first') });
    expect(created.metadata?.annotations?.['gitops-guard.dev/owner']).toBe('argocd:e2e-first');
    const live = await rbac.readClusterRoleBinding({ name: bindingName });
    const takeover = binding('e2e-second');
    takeover.metadata = { ...takeover.metadata, annotations: live.metadata?.annotations, resourceVersion: live.metadata?.resourceVersion };
    await expect(rbac.replaceClusterRoleBinding({ name: bindingName, body: takeover })).rejects.toMatchObject({
      code: 403,
      body: expect.stringContaining('is owned by argocd:e2e-first; argocd:e2e-second may not take it over'),
    });
  });
});
