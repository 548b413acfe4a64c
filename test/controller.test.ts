import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoordinationV1Api, KubeConfig, Watch } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { locatePodTemplate } from '../src/actions/checksum/pod-template.js';
import { DEFAULT_CHECKSUM_ANNOTATION as A } from '../src/actions/checksum/stamp-config-checksum.js';
import type { KubeObject } from '../src/api/types.js';
import { runController, type RunningController } from '../src/cli/controller.js';
import { main } from '../src/cli/dispatch.js';
import { capturedIo as io } from './support/cli.js';
import { RolloutController, type ControllerConfig } from '../src/controller/controller.js';
import { ClientNodeReader } from '../src/kube/client-node-reader.js';
import type { KubeReader } from '../src/kube/reader.js';
import { capturingLogger, DEFAULT_RULES } from './support/app.js';
import { admit as admitTo, CONTROLLER_TEST_KEY, defaultRules, FAST_CONTROLLER_TIMINGS, sleep, waitFor, webhookChecksum as webhookChecksumWith } from './support/controller.js';
import { configMap, deployment, secret } from './support/kube-fixtures.js';
import { KubeApiServer, type RecordedPatch } from './support/kube-api-server.js';
import { DEFAULT_RESOURCES } from './support/kube-store.js';

/**
 * The rollout controller end to end: the real client-node informers, lease and patches against
 * the test API server, with the default rules and short timings (lease 1 s, retry 100 ms,
 * coalescing 100 ms).
 */

const KEY = CONTROLLER_TEST_KEY;
const rules = defaultRules;

let api: KubeApiServer;
let kubeConfig: KubeConfig;
const running: RolloutController[] = [];
const logs: string[] = [];
let testNumber = 0;

beforeAll(async () => {
  api = await KubeApiServer.start();
  kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(api.writeKubeconfig());
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((c) => c.stop()));
  api.clearFaults();
});
afterAll(async () => {
  const started = Date.now();
  await api.close();
  if (Date.now() - started > 1000) console.log('api.close took', Date.now() - started);
});

function startController(namespace: string, identity: string, overrides: Partial<ControllerConfig> = {}): RolloutController {
  const { logger, lines } = capturingLogger('debug');
  const controller = new RolloutController({
    kubeConfig,
    namespaces: [namespace],
    rules: () => rules,
    checksumKey: KEY,
    identity,
    leaseName: `gitops-guard-controller-${testNumber}`,
    ...FAST_CONTROLLER_TIMINGS,
    registry: new Registry(),
    logger,
    ...overrides,
  });
  // Every log line of every controller, to check no value ever appears in one.
  const push = lines.push.bind(lines);
  lines.push = (...items: string[]) => {
    logs.push(...items);
    return push(...items);
  };
  running.push(controller);
  return controller;
}

/** Started, leading, and done with the start-up comparison. */
async function leading(controller: RolloutController): Promise<void> {
  await controller.start();
  await waitFor('leadership', () => controller.leading);
  await sleep(150);
  await controller.idle();
}

const webhookChecksum = (object: KubeObject) => webhookChecksumWith(kubeConfig, object);
const admit = (object: KubeObject) => admitTo(api, kubeConfig, object);

function patchesIn(namespace: string): RecordedPatch[] {
  return api.patches.filter((p) => p.path.includes(`/namespaces/${namespace}/`));
}

function stampedOn(namespace: string, name: string): string | undefined {
  return (api.get('apps/v1', 'Deployment', namespace, name) as any)?.spec.template.metadata.annotations?.[A];
}

function eventsIn(namespace: string): any[] {
  return api.list('v1', 'Event', namespace);
}

function newNamespace(): string {
  testNumber++;
  return `ctl-${testNumber}`;
}

const envFrom = (key: string, configMapName: string) => ({ name: key, valueFrom: { configMapKeyRef: { name: configMapName, key } } });

describe('rollout controller', () => {
  it('rolls exactly the consuming workload, once, with the webhook\'s checksum; an unconsumed key rolls nothing', async () => {
    const ns = newNamespace();
    api.put(configMap(ns, 'app-config', { LOG_LEVEL: 'info', UNUSED: 'a' }));
    api.put(configMap(ns, 'other-config', { MODE: 'x' }));
    api.put(secret(ns, 'db', { password: 'hunter2-canary' }));
    await admit(deployment(ns, 'web', { containers: [{ name: 'web', image: 'web:1', env: [envFrom('LOG_LEVEL', 'app-config'), { name: 'PW', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } }] }] }));
    await admit(deployment(ns, 'worker', { containers: [{ name: 'worker', image: 'worker:1', envFrom: [{ configMapRef: { name: 'other-config' } }] }] }));
    const controller = startController(ns, 'replica-a');
    await leading(controller);
    expect(patchesIn(ns), 'everything in sync at start-up').toEqual([]);

    api.put(configMap(ns, 'app-config', { LOG_LEVEL: 'info', UNUSED: 'b' }));
    await sleep(400);
    await controller.idle();
    expect(patchesIn(ns), 'a key web does not consume').toEqual([]);

    const before = api.get('apps/v1', 'Deployment', ns, 'web')!;
    const oldChecksum = stampedOn(ns, 'web');
    api.put(configMap(ns, 'app-config', { LOG_LEVEL: 'debug', UNUSED: 'b' }));
    const expected = await webhookChecksum(before);
    expect(expected).not.toBe(oldChecksum);
    await waitFor('one patch', () => patchesIn(ns).length === 1);
    await sleep(400);
    await controller.idle();

    const patches = patchesIn(ns);
    expect(patches).toHaveLength(1);
    expect(patches[0]).toMatchObject({
      path: `/apis/apps/v1/namespaces/${ns}/deployments/web`,
      contentType: 'application/merge-patch+json',
      fieldManager: 'gitops-guard',
      status: 200,
      body: { metadata: { resourceVersion: before.metadata!.resourceVersion }, spec: { template: { metadata: { annotations: { [A]: expected } } } } },
    });
    expect(stampedOn(ns, 'web')).toBe(expected);
    // Nothing else of the workload changed; the other workload is untouched.
    const after = api.get('apps/v1', 'Deployment', ns, 'web') as any;
    expect({ ...after.spec, template: { ...after.spec.template, metadata: { ...after.spec.template.metadata, annotations: {} } } }).toEqual({
      ...(before as any).spec,
      template: { ...(before as any).spec.template, metadata: { ...(before as any).spec.template.metadata, annotations: {} } },
    });

    const events = eventsIn(ns);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      reason: 'ConfigChanged',
      type: 'Normal',
      involvedObject: { kind: 'Deployment', name: 'web', namespace: ns, apiVersion: 'apps/v1' },
      reportingInstance: 'replica-a',
    });
    expect(events[0].message).toContain('ConfigMap app-config changed');

    const metrics = await (controller.metrics.rollouts as any).get();
    expect(metrics.values).toEqual([{ value: 1, labels: { kind: 'Deployment' } }]);

    // A Secret change rolls it too; its value appears in no log, event or patch.
    api.put(secret(ns, 'db', { password: 'new-hunter2-canary' }));
    await waitFor('second patch', () => patchesIn(ns).length === 2);
    await waitFor('second event', () => eventsIn(ns).length === 2);
    expect(eventsIn(ns).map((e) => e.message).join('\n')).toContain('Secret db changed');
    const everything = JSON.stringify([logs, api.patches, eventsIn(ns)]);
    for (const value of ['hunter2-canary', Buffer.from('hunter2-canary').toString('base64')]) expect(everything).not.toContain(value);
  });

  it('restarted with everything in sync, patches nothing; what changed while it was down is rolled once', async () => {
    const ns = newNamespace();
    api.put(configMap(ns, 'app-config', { LOG_LEVEL: 'info' }));
    for (const name of ['a', 'b', 'c']) await admit(deployment(ns, name, { containers: [{ name, image: 'x:1', envFrom: [{ configMapRef: { name: 'app-config' } }] }] }));
    await admit(deployment(ns, 'd', { containers: [{ name: 'd', image: 'x:1' }] }));

    const first = startController(ns, 'replica-a');
    await leading(first);
    await first.stop();
    running.splice(running.indexOf(first), 1);
    const second = startController(ns, 'replica-b');
    await leading(second);
    expect(patchesIn(ns)).toEqual([]);
    await second.stop();
    running.splice(running.indexOf(second), 1);

    // Changed while no controller ran: the next one compares and rolls each consumer once.
    api.put(configMap(ns, 'app-config', { LOG_LEVEL: 'debug' }));
    const third = startController(ns, 'replica-c');
    await leading(third);
    await waitFor('three patches', () => patchesIn(ns).length === 3);
    await sleep(300);
    await third.idle();
    expect(patchesIn(ns).map((p) => p.path.split('/').at(-1)).sort()).toEqual(['a', 'b', 'c']);
  });

  it('coalesces a burst of five ConfigMap updates into one patch', async () => {
    const ns = newNamespace();
    const names = ['one', 'two', 'three', 'four', 'five'];
    for (const name of names) api.put(configMap(ns, name, { value: '1' }));
    await admit(deployment(ns, 'app', { containers: [{ name: 'app', image: 'x:1', envFrom: names.map((name) => ({ configMapRef: { name } })) }] }));
    const controller = startController(ns, 'replica-a', { coalesceMs: 200 });
    await leading(controller);

    const before = api.get('apps/v1', 'Deployment', ns, 'app')!;
    for (const name of names) {
      api.put(configMap(ns, name, { value: '2' }));
      await sleep(30);
    }
    const expected = await webhookChecksum(before);
    await waitFor('a patch', () => patchesIn(ns).length >= 1);
    await sleep(500);
    await controller.idle();
    expect(patchesIn(ns)).toHaveLength(1);
    expect(stampedOn(ns, 'app')).toBe(expected);
    expect(eventsIn(ns)[0].message).toContain('ConfigMap five, ConfigMap four, ConfigMap one, ConfigMap three, ConfigMap two changed');
  });

  it('two replicas: only the lease holder patches; when it dies the other takes over without a double patch', async () => {
    const ns = newNamespace();
    api.put(configMap(ns, 'app-config', { LOG_LEVEL: 'info' }));
    await admit(deployment(ns, 'web', { containers: [{ name: 'web', image: 'x:1', envFrom: [{ configMapRef: { name: 'app-config' } }] }] }));
    const a = startController(ns, 'replica-a');
    const b = startController(ns, 'replica-b');
    await Promise.all([a.start(), b.start()]);
    await waitFor('a leader', () => a.leading || b.leading);
    await sleep(300);
    expect([a.leading, b.leading].filter(Boolean)).toHaveLength(1);
    const [leader, follower] = a.leading ? [a, b] : [b, a];
    const leaderName = a.leading ? 'replica-a' : 'replica-b';

    api.put(configMap(ns, 'app-config', { LOG_LEVEL: 'debug' }));
    await waitFor('one patch', () => patchesIn(ns).length === 1);
    await sleep(300);
    expect(patchesIn(ns)).toHaveLength(1);
    expect(eventsIn(ns).map((e) => e.reportingInstance)).toEqual([leaderName]);
    expect(await (follower.metrics.leader as any).get()).toMatchObject({ values: [{ value: 0 }] });

    // The leader dies: it stops renewing without releasing the lease.
    await leader.stop({ release: false });
    await waitFor('takeover', () => follower.leading, 5000);
    await sleep(300);
    await follower.idle();
    expect(patchesIn(ns), 'the takeover compares, and everything is in sync').toHaveLength(1);

    api.put(configMap(ns, 'app-config', { LOG_LEVEL: 'warn' }));
    await waitFor('second patch', () => patchesIn(ns).length === 2);
    await sleep(300);
    expect(patchesIn(ns)).toHaveLength(2);
    expect(eventsIn(ns).map((e) => e.reportingInstance).sort()).toEqual(['replica-a', 'replica-b']);
    const lease = api.get('coordination.k8s.io/v1', 'Lease', 'gitops-guard', `gitops-guard-controller-${testNumber}`) as any;
    expect(lease.spec.holderIdentity).toBe(a.leading ? 'replica-a' : 'replica-b');
    expect(lease.spec.leaseTransitions).toBe(1);
  });

  it('a replica that loses its lease stops acting at once', async () => {
    const ns = newNamespace();
    api.put(configMap(ns, 'app-config', { LOG_LEVEL: 'info' }));
    await admit(deployment(ns, 'web', { containers: [{ name: 'web', image: 'x:1', envFrom: [{ configMapRef: { name: 'app-config' } }] }] }));
    const controller = startController(ns, 'replica-a');
    await leading(controller);
    // Someone else takes the lease (e.g. this replica was partitioned and another one won).
    const name = `gitops-guard-controller-${testNumber}`;
    const lease = api.get('coordination.k8s.io/v1', 'Lease', 'gitops-guard', name) as any;
    api.put({ ...lease, spec: { ...lease.spec, holderIdentity: 'replica-z', leaseDurationSeconds: 30 } });
    await waitFor('lost', () => !controller.leading);
    api.put(configMap(ns, 'app-config', { LOG_LEVEL: 'debug' }));
    await sleep(500);
    expect(patchesIn(ns)).toEqual([]);
  });

  it('aborts in-flight work when the lease is lost mid-reconcile: the patch is never sent', async () => {
    const ns = newNamespace();
    api.put(configMap(ns, 'app-config', { LOG_LEVEL: 'info' }));
    await admit(deployment(ns, 'web', { containers: [{ name: 'web', image: 'x:1', envFrom: [{ configMapRef: { name: 'app-config' } }] }] }));
    const controller = startController(ns, 'replica-a');
    await leading(controller);
    const readPath = `/api/v1/namespaces/${ns}/configmaps/app-config`;
    const readsBefore = api.requestsTo(readPath).length;
    api.fault({ method: 'GET', path: readPath }, { latencyMs: 1500 });
    api.put(configMap(ns, 'app-config', { LOG_LEVEL: 'debug' }));
    await waitFor('the checksum read in flight', () => api.requestsTo(readPath).length > readsBefore);
    const lease = api.get('coordination.k8s.io/v1', 'Lease', 'gitops-guard', `gitops-guard-controller-${testNumber}`) as any;
    api.put({ ...lease, spec: { ...lease.spec, holderIdentity: 'replica-z', leaseDurationSeconds: 30 } });
    await waitFor('lost', () => !controller.leading);
    await waitFor('read abandoned', () => api.requestsTo(readPath).at(-1)!.abandoned === true, 3000);
    await sleep(1800);
    expect(patchesIn(ns)).toEqual([]);
    const reconciles = await (controller.metrics.reconciles as any).get();
    expect(reconciles.values.find((v: any) => v.labels.result === 'aborted')?.value).toBe(1);
  });

  it('recovers from a dropped watch and from 410 Gone without missing a change', async () => {
    const ns = newNamespace();
    api.put(configMap(ns, 'app-config', { LOG_LEVEL: 'info' }));
    await admit(deployment(ns, 'web', { containers: [{ name: 'web', image: 'x:1', envFrom: [{ configMapRef: { name: 'app-config' } }] }] }));
    const controller = startController(ns, 'replica-a');
    await leading(controller);
    const watchPath = `/api/v1/namespaces/${ns}/configmaps`;
    await waitFor('watch open', () => api.openWatches('configmaps') > 0);

    // 1. The connection drops mid-stream; the change comes while it is down.
    api.fault({ method: 'GET', path: watchPath }, { status: 503, times: 2 });
    api.dropWatches();
    api.put(configMap(ns, 'app-config', { LOG_LEVEL: 'debug' }));
    await waitFor('patch after a dropped watch', () => patchesIn(ns).length === 1);
    expect(stampedOn(ns, 'web')).toBe(await webhookChecksum(api.get('apps/v1', 'Deployment', ns, 'web')!));
    // Let the controller see its own patch (a workload update it compares, in sync) first.
    await sleep(300);
    await controller.idle();

    // 2. Dropped again, the change lands, and the history is compacted: the resumed watch gets
    //    410 Expired, the informer lists again and still sees the change.
    await waitFor('watch open again', () => api.openWatches('configmaps') > 0);
    api.fault({ method: 'GET', path: watchPath }, { status: 503, times: 2 });
    api.dropWatches();
    api.put(configMap(ns, 'app-config', { LOG_LEVEL: 'warn' }));
    api.compact();
    await waitFor('patch after 410', () => patchesIn(ns).length === 2);
    const lists = api.requests.filter((r) => r.path === watchPath && !r.query.includes('watch=true'));
    expect(lists.length, 'listed again after 410').toBeGreaterThanOrEqual(2);

    // 3. A 410 ERROR event on an open stream (after compaction) and a graceful end: no change, no patch.
    await waitFor('watch open a third time', () => api.openWatches('configmaps') > 0);
    api.compact();
    api.expireWatches();
    await sleep(400);
    api.dropWatches(true);
    await sleep(400);
    await controller.idle();
    expect(patchesIn(ns)).toHaveLength(2);
    api.put(configMap(ns, 'app-config', { LOG_LEVEL: 'error' }));
    await waitFor('patch after the stream expired', () => patchesIn(ns).length === 3);

    const restarts = await (controller.metrics.watchRestarts as any).get();
    expect(restarts.values.find((v: any) => v.labels.resource === 'configmaps')?.value).toBeGreaterThanOrEqual(3);
  });

  it('leaves alone workloads that opted out or that the stamping rule does not select', async () => {
    const ns = newNamespace();
    api.put(configMap(ns, 'app-config', { LOG_LEVEL: 'info' }));
    const optedOut = deployment(ns, 'manual', { containers: [{ name: 'm', image: 'x:1', envFrom: [{ configMapRef: { name: 'app-config' } }] }] });
    optedOut.metadata!.annotations = { 'gitops-guard.dev/rollout': 'disabled' };
    await admit(optedOut);
    await admit(deployment(ns, 'web', { containers: [{ name: 'web', image: 'x:1', envFrom: [{ configMapRef: { name: 'app-config' } }] }] }));
    const auditRules = { ...rules, rules: rules.rules.map((r) => ({ ...r, mode: 'audit' as const })) };
    const controller = startController(ns, 'replica-a', { rules: () => auditRules });
    await leading(controller);
    api.put(configMap(ns, 'app-config', { LOG_LEVEL: 'debug' }));
    await sleep(400);
    await controller.idle();
    expect(patchesIn(ns), 'audit-mode stamping rule selects nothing').toEqual([]);

    const enforcing = startController(ns, 'replica-b', { rules: () => rules, leaseName: 'other-lease' });
    await leading(enforcing);
    await waitFor('patch', () => patchesIn(ns).length === 1);
    await sleep(300);
    expect(patchesIn(ns).map((p) => p.path.split('/').at(-1))).toEqual(['web']);
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


describe('rollout controller: workload kinds', () => {
  const podSpec = (name: string) => ({ containers: [{ name, image: 'x:1', env: [{ name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'token', key: 'value' } } }] }] });
  const template = (name: string) => ({ metadata: { labels: { app: name } }, spec: podSpec(name) });

  it('rolls StatefulSets, DaemonSets, CronJobs and Argo Rollouts at their own template paths', async () => {
    const ns = newNamespace();
    api.put(secret(ns, 'token', { value: 'one' }));
    const selector = (name: string) => ({ matchLabels: { app: name } });
    const workloads: KubeObject[] = [
      { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'db', namespace: ns }, spec: { serviceName: 'db', selector: selector('db'), template: template('db') } },
      { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'agent', namespace: ns }, spec: { selector: selector('agent'), template: template('agent') } },
      { apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name: 'report', namespace: ns }, spec: { schedule: '@daily', jobTemplate: { spec: { template: template('report') } } } },
      { apiVersion: 'argoproj.io/v1alpha1', kind: 'Rollout', metadata: { name: 'canary', namespace: ns }, spec: { selector: selector('canary'), template: template('canary') } },
    ];
    for (const workload of workloads) await admit(workload);
    const controller = startController(ns, 'replica-a');
    await leading(controller);
    expect(patchesIn(ns)).toEqual([]);

    api.put(secret(ns, 'token', { value: 'two' }));
    await waitFor('four patches', () => patchesIn(ns).length === 4);
    await sleep(300);
    await controller.idle();
    expect(patchesIn(ns).map((p) => p.path).sort()).toEqual([
      `/apis/apps/v1/namespaces/${ns}/daemonsets/agent`,
      `/apis/apps/v1/namespaces/${ns}/statefulsets/db`,
      `/apis/argoproj.io/v1alpha1/namespaces/${ns}/rollouts/canary`,
      `/apis/batch/v1/namespaces/${ns}/cronjobs/report`,
    ]);
    const cronPatch = patchesIn(ns).find((p) => p.path.endsWith('/report'))!.body as any;
    expect(Object.keys(cronPatch.spec)).toEqual(['jobTemplate']);
    for (const workload of workloads) {
      const stored = api.get(workload.apiVersion!, workload.kind!, ns, workload.metadata!.name!)!;
      const value = (locatePodTemplate(stored)!.template as any).metadata.annotations[A];
      expect(value, workload.kind).toMatch(/^v2:[0-9a-f]{64}$/);
      expect(value).toBe(await webhookChecksum(stored));
    }
  });

  it('does not watch Argo Rollouts when the argoproj.io API is not served', async () => {
    const bare = await KubeApiServer.start({ resources: DEFAULT_RESOURCES.filter((r) => r.group !== 'argoproj.io') });
    try {
      const config = new KubeConfig();
      config.loadFromFile(bare.writeKubeconfig());
      const controller = startController('plain', 'replica-a', { kubeConfig: config });
      await leading(controller);
      expect(bare.requestsTo('/apis/argoproj.io/v1alpha1')).toHaveLength(1);
      expect(bare.requests.filter((r) => r.path.includes('rollouts'))).toEqual([]);
      expect(bare.requests.filter((r) => r.path === '/apis/apps/v1/namespaces/plain/deployments').length).toBeGreaterThan(0);
      await controller.stop();
      running.splice(running.indexOf(controller), 1);
    } finally {
      await bare.close();
    }
  });
});

describe('rollout controller: workloads the webhook has not stamped, and audit mode', () => {
  it('leaves never-stamped workloads to the webhook unless stampUnstamped; dryRun writes nothing', async () => {
    const ns = newNamespace();
    api.put(configMap(ns, 'app-config', { LOG_LEVEL: 'info' }));
    // Admitted before gitops-guard was installed: no annotation.
    api.put(deployment(ns, 'old', { containers: [{ name: 'old', image: 'x:1', envFrom: [{ configMapRef: { name: 'app-config' } }] }] }));
    await admit(deployment(ns, 'web', { containers: [{ name: 'web', image: 'x:1', envFrom: [{ configMapRef: { name: 'app-config' } }] }] }));

    const audit = startController(ns, 'replica-a', { dryRun: true, stampUnstamped: true });
    await leading(audit);
    api.put(configMap(ns, 'app-config', { LOG_LEVEL: 'debug' }));
    await sleep(400);
    await audit.idle();
    expect(patchesIn(ns), 'dry run').toEqual([]);
    expect(logs.some((line) => line.includes('dry run: would roll workload') && line.includes(`Deployment ${ns}/web`))).toBe(true);
    await audit.stop();
    running.splice(running.indexOf(audit), 1);

    const keeper = startController(ns, 'replica-b');
    await leading(keeper);
    await waitFor('web patched', () => patchesIn(ns).length === 1);
    await sleep(300);
    await keeper.idle();
    expect(patchesIn(ns).map((p) => p.path.split('/').at(-1))).toEqual(['web']);
    expect(stampedOn(ns, 'old')).toBeUndefined();
    await keeper.stop();
    running.splice(running.indexOf(keeper), 1);

    const adopter = startController(ns, 'replica-c', { stampUnstamped: true });
    await leading(adopter);
    await waitFor('old stamped', () => patchesIn(ns).length === 2);
    expect(stampedOn(ns, 'old')).toBe(await webhookChecksum(api.get('apps/v1', 'Deployment', ns, 'old')!));
  });
});

describe('gitops-guard controller (CLI)', () => {
  it('prints its help and rejects bad flags with exit code 2', async () => {
    const help = io();
    expect(await main(['controller', '--help'], help.io)).toBe(0);
    expect(help.out()).toContain('Usage: gitops-guard controller [options]');
    expect(help.out()).toContain('--coalesce-ms');
    const bad = io();
    expect(await main(['controller', '--coalesce-ms', 'soon'], bad.io)).toBe(2);
    expect(bad.err()).toContain('--coalesce-ms must be a whole number');
    const order = io();
    expect(await main(['controller', '--lease-duration-ms', '1000', '--renew-deadline-ms', '2000'], order.io)).toBe(2);
    expect(order.err()).toContain('--retry-period-ms < --renew-deadline-ms < --lease-duration-ms');
  });

  it('runs the controller with /metrics, /healthz and /readyz, rolls a changed workload and releases its lease on shutdown', async () => {
    const ns = newNamespace();
    const dir = mkdtempSync(join(tmpdir(), 'gg-controller-'));
    const keyFile = join(dir, 'checksum.key');
    writeFileSync(keyFile, `${KEY.toString('utf8')}\n`, { mode: 0o600 });
    api.put(configMap(ns, 'app-config', { LOG_LEVEL: 'info' }));
    await admit(deployment(ns, 'web', { containers: [{ name: 'web', image: 'x:1', envFrom: [{ configMapRef: { name: 'app-config' } }] }] }));
    let running: RunningController | undefined;
    try {
      const result = await runController(
        [
          `--kubeconfig=${api.writeKubeconfig()}`,
          `--namespaces=${ns}`,
          `--checksum-key=${keyFile}`,
          `--rules=${DEFAULT_RULES}`,
          '--metrics-port=0',
          '--metrics-host=127.0.0.1',
          '--lease-name=cli-lease',
          '--lease-namespace=gitops-guard',
          '--lease-duration-ms=1000',
          '--renew-deadline-ms=700',
          '--retry-period-ms=100',
          '--coalesce-ms=100',
          '--max-delay-ms=1000',
          '--identity=cli-replica',
          '--log-level=silent',
        ],
        io().io,
        { handleSignals: false },
      );
      expect(typeof result).not.toBe('number');
      running = result as RunningController;
      await waitFor('leading', () => running!.controller.leading);
      expect((await httpGet(running.port, '/healthz')).status).toBe(200);
      expect((await httpGet(running.port, '/readyz')).status).toBe(200);

      api.put(configMap(ns, 'app-config', { LOG_LEVEL: 'debug' }));
      await waitFor('patch', () => patchesIn(ns).length === 1);
      let metrics = '';
      const start = Date.now();
      while (!/^gitops_guard_controller_rollouts_total\{kind="Deployment"\} 1$/m.test(metrics) && Date.now() - start < 5000) {
        metrics = (await httpGet(running.port, '/metrics')).body;
        await sleep(20);
      }
      expect(metrics).toMatch(/^gitops_guard_controller_rollouts_total\{kind="Deployment"\} 1$/m);
      expect(metrics).toMatch(/^gitops_guard_controller_leader 1$/m);
      expect(metrics).toMatch(/^gitops_guard_controller_queue_depth \d+$/m);
      expect(metrics).toContain('gitops_guard_controller_reconcile_errors_total');
      expect(metrics).toContain('gitops_guard_controller_watch_restarts_total');
    } finally {
      await running?.shutdown();
      rmSync(dir, { recursive: true, force: true });
    }
    const lease = api.get('coordination.k8s.io/v1', 'Lease', 'gitops-guard', 'cli-lease') as any;
    expect(lease.spec.holderIdentity).toBe('');
  });
});

describe('test API server: the parts the controller relies on', () => {
  it('WATCH replays from a bounded history and answers an expired resourceVersion with 410 Expired', async () => {
    const small = await KubeApiServer.start({ historyLimit: 3 });
    try {
      const config = new KubeConfig();
      config.loadFromFile(small.writeKubeconfig());
      const first = small.put(configMap('w', 'c0', { v: '0' }));
      for (let i = 1; i <= 4; i++) small.put(configMap('w', `c${i}`, { v: String(i) }));
      const events = (from: string) =>
        new Promise<{ type: string; object: any }[]>((resolve, reject) => {
          const seen: { type: string; object: any }[] = [];
          void new Watch(config)
            .watch('/api/v1/namespaces/w/configmaps', { resourceVersion: from }, (type, object) => {
              seen.push({ type, object });
              if (type === 'ERROR' || seen.length === 2) resolve(seen);
            }, (err) => (err ? reject(err) : resolve(seen)))
            .then((controller) => setTimeout(() => controller.abort(), 1000));
        });
      const recent = await events(String(Number(small.currentResourceVersion) - 2));
      expect(recent.map((e) => [e.type, e.object.metadata.name])).toEqual([
        ['ADDED', 'c3'],
        ['ADDED', 'c4'],
      ]);
      const expired = await events(first.metadata!.resourceVersion!);
      expect(expired).toEqual([{ type: 'ERROR', object: expect.objectContaining({ kind: 'Status', code: 410, reason: 'Expired' }) }]);
      expect(small.list('v1', 'ConfigMap', 'w').map((o) => o.metadata!.name)).toEqual(['c0', 'c1', 'c2', 'c3', 'c4']);
    } finally {
      await small.close();
    }
  });

  it('leases: create refuses duplicates (409 AlreadyExists), replace refuses a stale resourceVersion (409 Conflict)', async () => {
    const leases = kubeConfig.makeApiClient(CoordinationV1Api);
    const body = { metadata: { name: 'probe', namespace: 'leases' }, spec: { holderIdentity: 'a', leaseDurationSeconds: 1 } };
    const created = await leases.createNamespacedLease({ namespace: 'leases', body });
    await expect(leases.createNamespacedLease({ namespace: 'leases', body })).rejects.toMatchObject({ code: 409 });
    const replaced = await leases.replaceNamespacedLease({ name: 'probe', namespace: 'leases', body: { ...body, metadata: { ...body.metadata, resourceVersion: created.metadata!.resourceVersion } } });
    expect(replaced.metadata!.resourceVersion).not.toBe(created.metadata!.resourceVersion);
    await expect(
      leases.replaceNamespacedLease({ name: 'probe', namespace: 'leases', body: { ...body, metadata: { ...body.metadata, resourceVersion: created.metadata!.resourceVersion } } }),
    ).rejects.toMatchObject({ code: 409 });
  });
});

describe('rollout controller resync', () => {
  it('catches a change no watch delivered, on the periodic comparison, and only then', async () => {
    const ns = newNamespace();
    api.put(configMap(ns, 'settings', { greeting: 'hello' }));
    await admit(deployment(ns, 'web', { containers: [{ name: 'web', image: 'nginx', env: [envFrom('greeting', 'settings')] }] }));
    // What the API answers to a GET, while the watch stays silent (a hung or broken watch).
    let missed = false;
    const live = new ClientNodeReader(kubeConfig);
    const kube: KubeReader = {
      async readConfigSource(ref, options) {
        const result = await live.readConfigSource(ref, options);
        if (!missed || !result.found || ref.name !== 'settings') return result;
        return { found: true, content: new Map([...result.content, ['greeting', Buffer.from('bonjour')]]) };
      },
    };
    const controller = startController(ns, 'resync', { kube, resyncIntervalMs: 300 });
    await leading(controller);
    await sleep(400);
    expect(patchesIn(ns)).toHaveLength(0);
    missed = true;
    await waitFor('the resync patch', () => patchesIn(ns).length === 1);
    await sleep(700);
    expect(patchesIn(ns)).toHaveLength(1);
  });
});

