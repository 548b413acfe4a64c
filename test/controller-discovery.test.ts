import { request } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { ApiextensionsV1Api, CustomObjectsApi, KubeConfig, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { KubeObject } from '../src/api/types.js';
import { runController, type RunningController } from '../src/cli/controller.js';
import { RolloutController, type ControllerConfig } from '../src/controller/controller.js';
import { capturingLogger, DEFAULT_RULES } from './support/app.js';
import { admit, CONTROLLER_TEST_KEY, defaultRules, FAST_CONTROLLER_TIMINGS, sleep, stampedValue, waitFor, webhookChecksum } from './support/controller.js';
import { configMap, deployment, rolloutCrd, secret } from './support/kube-fixtures.js';
import { KubeApiServer } from './support/kube-api-server.js';
import { ARGOCD_CLUSTER_RESOURCES, type ResourceType } from './support/kube-store.js';

/**
 * Which workload kinds the controller watches is decided per resource from discovery, at start-up
 * and again every discovery interval: against the test API server shaped like real clusters (Argo
 * CD without Argo Rollouts; Rollouts installed or removed at run time; a kind RBAC refuses).
 */

const running: RolloutController[] = [];
const servers: KubeApiServer[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((c) => c.stop()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

const NS = 'shop';
const ROLLOUTS_PATH = /\/apis\/argoproj\.io\/v1alpha1\/(namespaces\/[^/]+\/)?rollouts/;

async function cluster(resources?: readonly ResourceType[]): Promise<{ api: KubeApiServer; kubeConfig: KubeConfig }> {
  const api = await KubeApiServer.start(resources ? { resources } : {});
  servers.push(api);
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(api.writeKubeconfig());
  return { api, kubeConfig };
}

function startController(kubeConfig: KubeConfig, overrides: Partial<ControllerConfig> = {}): { controller: RolloutController; logs: string[] } {
  const { logger, lines } = capturingLogger('debug');
  const controller = new RolloutController({
    kubeConfig,
    namespaces: [NS],
    rules: () => defaultRules,
    checksumKey: CONTROLLER_TEST_KEY,
    identity: 'replica-a',
    leaseName: 'gitops-guard-controller',
    ...FAST_CONTROLLER_TIMINGS,
    discoveryIntervalMs: 200,
    registry: new Registry(),
    logger,
    ...overrides,
  });
  running.push(controller);
  return { controller, logs: lines };
}

const logged = (logs: string[], msg: string) => logs.map((l) => JSON.parse(l)).filter((l) => l.msg === msg);

const tokenEnv = [{ name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'token', key: 'value' } } }];
const webDeployment = () => deployment(NS, 'web', { containers: [{ name: 'web', image: 'web:1', envFrom: [{ configMapRef: { name: 'app-config' } }] }] });
const canary = (): KubeObject => ({
  apiVersion: 'argoproj.io/v1alpha1',
  kind: 'Rollout',
  metadata: { name: 'canary', namespace: NS },
  spec: { selector: { matchLabels: { app: 'canary' } }, template: { metadata: { labels: { app: 'canary' } }, spec: { containers: [{ name: 'canary', image: 'canary:1', env: tokenEnv }] } } },
});

const patchesTo = (api: KubeApiServer, kind: string, name: string) => api.patches.filter((p) => p.path.endsWith(`/${kind}/${name}`) && p.status === 200);

describe('rollout controller on a cluster with Argo CD and without Argo Rollouts', () => {
  it('becomes ready, leads and rolls Deployments; the Rollout CRD installed later is watched without a restart, a stale Rollout corrected, a later change rolls it', async () => {
    const { api, kubeConfig } = await cluster(ARGOCD_CLUSTER_RESOURCES);
    api.put(configMap(NS, 'app-config', { LOG_LEVEL: 'info' }));
    api.put(secret(NS, 'token', { value: 'one' }));
    await admit(api, kubeConfig, webDeployment());
    const { controller, logs } = startController(kubeConfig);

    await controller.start();
    expect(controller.ready).toBe(true);
    await waitFor('leadership', () => controller.leading);
    expect((api.get('coordination.k8s.io/v1', 'Lease', 'gitops-guard', 'gitops-guard-controller') as any).spec.holderIdentity).toBe('replica-a');
    const rollouts = () => controller.kindStatus().find((k) => k.resource === 'rollouts.argoproj.io')!;
    expect(rollouts()).toMatchObject({ watched: false, reason: 'not served: argoproj.io/v1alpha1 lists no rollouts (the Rollout CRD is not installed)' });
    expect(controller.kindStatus().filter((k) => k.watched).map((k) => k.resource)).toEqual([
      'configmaps',
      'secrets',
      'deployments.apps',
      'statefulsets.apps',
      'daemonsets.apps',
      'cronjobs.batch',
    ]);
    const [starting] = logged(logs, 'rollout controller starting');
    expect(starting.notWatched).toEqual({ 'rollouts.argoproj.io': rollouts().reason });
    expect(api.requests.filter((r) => ROLLOUTS_PATH.test(r.path)), 'argoproj.io/v1alpha1 is served, but rollouts are not asked for').toEqual([]);

    // A ConfigMap change rolls the Deployment.
    const web = api.get('apps/v1', 'Deployment', NS, 'web')!;
    api.put(configMap(NS, 'app-config', { LOG_LEVEL: 'debug' }));
    await waitFor('the Deployment rolled', () => patchesTo(api, 'deployments', 'web').length === 1);
    expect(stampedValue(api.get('apps/v1', 'Deployment', NS, 'web'))).toBe(await webhookChecksum(kubeConfig, web));

    // Argo Rollouts is installed an hour later; a Rollout arrives stamped with what its Secret held
    // before it changed (a value nothing will ever correct unless the new kind is compared).
    const stale = await webhookChecksum(kubeConfig, canary());
    api.put(secret(NS, 'token', { value: 'two' }));
    api.put(rolloutCrd());
    await admit(api, kubeConfig, canary(), stale);
    await waitFor('the stale Rollout corrected', () => patchesTo(api, 'rollouts', 'canary').length === 1, 5000);
    const corrected = api.get('argoproj.io/v1alpha1', 'Rollout', NS, 'canary')!;
    expect(stampedValue(corrected)).not.toBe(stale);
    expect(stampedValue(corrected)).toBe(await webhookChecksum(kubeConfig, corrected));
    expect(rollouts()).toMatchObject({ watched: true, listed: true });
    expect(logged(logs, 'resource served now: watching it').map((l) => l.resource)).toEqual(['rollouts.argoproj.io']);
    // Compared, never restarted: the Deployment, already right, was not touched again.
    await sleep(300);
    await controller.idle();
    expect(patchesTo(api, 'deployments', 'web')).toHaveLength(1);
    expect(controller.leading).toBe(true);

    // A later change of what it consumes rolls it like any watched kind.
    api.put(secret(NS, 'token', { value: 'three' }));
    await waitFor('the Rollout rolled', () => patchesTo(api, 'rollouts', 'canary').length === 2);
    const rolled = api.get('argoproj.io/v1alpha1', 'Rollout', NS, 'canary')!;
    expect(stampedValue(rolled)).toBe(await webhookChecksum(kubeConfig, rolled));

    // The CRD is removed: the informer stops cleanly (no restart loop against a 404), the rest carries on.
    api.delete('apiextensions.k8s.io/v1', 'CustomResourceDefinition', '', 'rollouts.argoproj.io');
    await waitFor('rollouts no longer watched', () => rollouts().watched === false && rollouts().reason!.startsWith('not served'), 5000);
    expect(api.openWatches('rollouts')).toBe(0);
    const requestsAfter = api.requests.length;
    await sleep(1000);
    expect(api.requests.slice(requestsAfter).filter((r) => ROLLOUTS_PATH.test(r.path))).toEqual([]);
    expect(logs.filter((l) => l.includes('watch failed; restarting') && l.includes('rollouts'))).toEqual([]);
    api.put(configMap(NS, 'app-config', { LOG_LEVEL: 'warn' }));
    await waitFor('the Deployment rolled again', () => patchesTo(api, 'deployments', 'web').length === 2);
    expect(controller.ready && controller.leading).toBe(true);
  });

  it('an optional kind whose list is refused (403) blocks neither readiness nor leadership, says why, and is watched once allowed', async () => {
    const { api, kubeConfig } = await cluster();
    api.put(configMap(NS, 'app-config', { LOG_LEVEL: 'info' }));
    api.put(secret(NS, 'token', { value: 'one' }));
    await admit(api, kubeConfig, webDeployment());
    const stale = await webhookChecksum(kubeConfig, canary());
    api.put(secret(NS, 'token', { value: 'two' }));
    await admit(api, kubeConfig, canary(), stale);
    // RBAC without the argoproj.io rule (someone trimmed the ClusterRole), and discovery of the group failing once.
    api.fault({ method: 'GET', path: `/apis/argoproj.io/v1alpha1/namespaces/${NS}/rollouts` }, { status: 403 });
    api.fault({ method: 'GET', path: '/apis/argoproj.io/v1alpha1' }, { status: 503, times: 1 });
    const { controller, logs } = startController(kubeConfig);
    const rollouts = () => controller.kindStatus().find((k) => k.resource === 'rollouts.argoproj.io')!;

    await controller.start();
    expect(controller.ready).toBe(true);
    expect(rollouts()).toMatchObject({ watched: false, reason: 'discovery of argoproj.io/v1alpha1 failed (HTTP 503 ServiceUnavailable); tried again at the next discovery' });
    await waitFor('leadership', () => controller.leading);
    await waitFor('the 403', () => rollouts().reason?.includes('HTTP 403') === true);
    expect(rollouts()).toMatchObject({ watched: false, reason: `cannot list and watch in namespace ${NS} (HTTP 403 Forbidden); tried again at the next discovery` });
    api.put(configMap(NS, 'app-config', { LOG_LEVEL: 'debug' }));
    await waitFor('the Deployment rolled', () => patchesTo(api, 'deployments', 'web').length === 1);
    // Retried at every discovery, reported once (then at debug level).
    const refusals = () => api.requests.filter((r) => r.path === `/apis/argoproj.io/v1alpha1/namespaces/${NS}/rollouts` && r.method === 'GET');
    await waitFor('three refused lists', () => refusals().length >= 3);
    const warnings = logged(logs, 'resource not watched');
    expect(warnings.filter((l) => l.level === 'warn')).toHaveLength(1);
    expect(warnings.length).toBeGreaterThanOrEqual(2);
    expect(patchesTo(api, 'rollouts', 'canary')).toEqual([]);
    expect((await controller.metrics.resourceWatched.get()).values).toContainEqual({ value: 0, labels: { resource: 'rollouts.argoproj.io' } });

    // RBAC fixed: the next discovery watches it and corrects the stale Rollout.
    api.clearFaults();
    await waitFor('the stale Rollout corrected', () => patchesTo(api, 'rollouts', 'canary').length === 1, 5000);
    expect(stampedValue(api.get('argoproj.io/v1alpha1', 'Rollout', NS, 'canary'))).toBe(await webhookChecksum(kubeConfig, canary()));
    expect(rollouts()).toMatchObject({ watched: true });
    expect((await controller.metrics.resourceWatched.get()).values).toContainEqual({ value: 1, labels: { resource: 'rollouts.argoproj.io' } });
  });

  it('with rollouts: true the kind is required: no Rollout CRD keeps the replica unready and passive until it is installed', async () => {
    const { api, kubeConfig } = await cluster(ARGOCD_CLUSTER_RESOURCES);
    const { controller } = startController(kubeConfig, { rollouts: true });
    const started = controller.start();
    await sleep(1000);
    expect(controller.ready).toBe(false);
    expect(controller.leading).toBe(false);
    expect(api.get('coordination.k8s.io/v1', 'Lease', 'gitops-guard', 'gitops-guard-controller')).toBeUndefined();
    expect(controller.kindStatus().find((k) => k.resource === 'rollouts.argoproj.io')).toMatchObject({ watched: true, listed: false, required: true });
    api.put(rolloutCrd());
    await started;
    expect(controller.ready).toBe(true);
    await waitFor('leadership', () => controller.leading);
  });

  it('with rollouts: false never asks for them, and says so', async () => {
    const { api, kubeConfig } = await cluster();
    const { controller } = startController(kubeConfig, { rollouts: false });
    await controller.start();
    await sleep(500);
    expect(controller.kindStatus().find((k) => k.resource === 'rollouts.argoproj.io')).toMatchObject({ watched: false, reason: '--rollouts=false' });
    expect(api.requests.filter((r) => r.path.startsWith('/apis/argoproj.io'))).toEqual([]);
  });
});

function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    })
      .on('error', reject)
      .end();
  });
}

describe('gitops-guard controller (CLI) on a cluster with Argo CD and without Argo Rollouts', () => {
  it('with the default --rollouts=auto: /readyz is 200 and says which kinds are watched and why rollouts are not; it leads and rolls', async () => {
    const { api, kubeConfig } = await cluster(ARGOCD_CLUSTER_RESOURCES);
    const dir = mkdtempSync(join(tmpdir(), 'gg-controller-argocd-'));
    const keyFile = join(dir, 'checksum.key');
    writeFileSync(keyFile, `${CONTROLLER_TEST_KEY.toString('utf8')}\n`, { mode: 0o600 });
    api.put(configMap(NS, 'app-config', { LOG_LEVEL: 'info' }));
    await admit(api, kubeConfig, webDeployment());
    let controller: RunningController | undefined;
    try {
      const result = await runController(
        [
          `--kubeconfig=${api.writeKubeconfig()}`,
          `--checksum-key=${keyFile}`,
          `--rules=${DEFAULT_RULES}`,
          '--metrics-port=0',
          '--metrics-host=127.0.0.1',
          '--lease-duration-ms=1000',
          '--renew-deadline-ms=700',
          '--retry-period-ms=100',
          '--coalesce-ms=100',
          '--max-delay-ms=1000',
          '--identity=cli-replica',
          '--log-level=silent',
        ],
        { stdin: new PassThrough(), stdout: new PassThrough(), stderr: new PassThrough() },
        { handleSignals: false },
      );
      controller = result as RunningController;
      const readyz = await httpGet(controller.port, '/readyz');
      expect(readyz.status).toBe(200);
      expect(readyz.body).toBe(
        [
          'ok',
          '[+] configmaps: watched',
          '[+] secrets: watched',
          '[+] deployments.apps: watched',
          '[+] statefulsets.apps: watched',
          '[+] daemonsets.apps: watched',
          '[+] cronjobs.batch: watched',
          '[-] rollouts.argoproj.io: not watched: not served: argoproj.io/v1alpha1 lists no rollouts (the Rollout CRD is not installed)',
          // For the cluster scan: a scan follows when an Application's claims change.
          '[+] applications.argoproj.io: watched',
          '',
        ].join('\n'),
      );
      await waitFor('leading', () => controller!.controller.leading);
      expect((api.get('coordination.k8s.io/v1', 'Lease', 'gitops-guard', 'gitops-guard-controller') as any).spec.holderIdentity).toBe('cli-replica');
      api.put(configMap(NS, 'app-config', { LOG_LEVEL: 'debug' }));
      await waitFor('the Deployment rolled', () => patchesTo(api, 'deployments', 'web').length === 1);
      const metrics = (await httpGet(controller.port, '/metrics')).body;
      expect(metrics).toMatch(/^gitops_guard_controller_resource_watched\{resource="rollouts\.argoproj\.io"\} 0$/m);
      expect(metrics).toMatch(/^gitops_guard_controller_resource_watched\{resource="deployments\.apps"\} 1$/m);
    } finally {
      await controller?.shutdown();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('test API server shaped like an Argo CD cluster', () => {
  it('serves argoproj.io/v1alpha1 without rollouts; a CRD created through the API adds them to discovery, deleting it removes them', async () => {
    const { api, kubeConfig } = await cluster(ARGOCD_CLUSTER_RESOURCES);
    const custom = kubeConfig.makeApiClient(CustomObjectsApi);
    const extensions = kubeConfig.makeApiClient(ApiextensionsV1Api);
    const plurals = async () => (await custom.getAPIResources({ group: 'argoproj.io', version: 'v1alpha1' })).resources.map((r) => r.name).sort();
    expect(await plurals()).toEqual(['applications', 'appprojects']);
    await expect(custom.listNamespacedCustomObject({ group: 'argoproj.io', version: 'v1alpha1', namespace: NS, plural: 'rollouts' })).rejects.toMatchObject({ code: 404 });

    await extensions.createCustomResourceDefinition({ body: rolloutCrd() as unknown as V1CustomResourceDefinition });
    expect(await plurals()).toEqual(['applications', 'appprojects', 'rollouts']);
    expect((await extensions.readCustomResourceDefinition({ name: 'rollouts.argoproj.io' })).spec.names.kind).toBe('Rollout');
    await custom.createNamespacedCustomObject({ group: 'argoproj.io', version: 'v1alpha1', namespace: NS, plural: 'rollouts', body: canary() });
    expect(((await custom.listNamespacedCustomObject({ group: 'argoproj.io', version: 'v1alpha1', namespace: NS, plural: 'rollouts' })) as { items: unknown[] }).items).toHaveLength(1);

    await extensions.deleteCustomResourceDefinition({ name: 'rollouts.argoproj.io' });
    expect(await plurals()).toEqual(['applications', 'appprojects']);
    expect(api.events.filter((e) => e.plural === 'rollouts').map((e) => e.type)).toEqual(['ADDED', 'DELETED']);
    await expect(custom.listNamespacedCustomObject({ group: 'argoproj.io', version: 'v1alpha1', namespace: NS, plural: 'rollouts' })).rejects.toMatchObject({ code: 404 });
  });
});
