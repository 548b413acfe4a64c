import { createHmac } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AdmissionReview, KubeObject } from '../src/api/types.js';
import { encodeV2, type SourceSnapshot } from '../src/actions/checksum/encoding.js';
import { DEFAULT_CHECKSUM_ANNOTATION as A } from '../src/actions/checksum/stamp-config-checksum.js';
import { createRegistry } from '../src/actions/registry.js';
import { RolloutController } from '../src/controller/controller.js';
import { ClientNodeReader } from '../src/kube/client-node-reader.js';
import { loadRuleSetFile } from '../src/rules/load.js';
import type { RunningServer } from '../src/server/server.js';
import { capturingLogger, DEFAULT_RULES } from './support/app.js';
import { startGuardServer } from './support/guard-server.js';
import { httpsRequest } from './support/https-client.js';
import { deployment, secret } from './support/kube-fixtures.js';
import { KubeApiServer } from './support/kube-api-server.js';
import { applyResponsePatch, decodePatch, reviewFor } from './support/review.js';

/**
 * Config checksums v2 bind the namespace: the attack v1 allowed (render guesses of a Secret in a
 * namespace you control, compare checksums with a workload in someone else's) is performed here
 * over HTTPS against the real server, and fails; v1 values move to v2 once and never back.
 */

const CLUSTER_KEY = Buffer.from('oracle-test-cluster-key-0123456789abcdef', 'ascii');
const VICTIM = 'payments';
const ATTACKER = 'sandbox';
const PIN = '4711';
const GUESSES = Array.from({ length: 40 }, (_, i) => String(4690 + i));

let api: KubeApiServer;
let kubeConfig: KubeConfig;
let guard: RunningServer;
let ca: Buffer;

beforeAll(async () => {
  api = await KubeApiServer.start();
  kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(api.writeKubeconfig());
  ({ server: guard, ca } = await startGuardServer({ kube: new ClientNodeReader(kubeConfig), settings: { checksumKey: CLUSTER_KEY } }));
});
afterAll(async () => {
  await guard?.shutdown();
  await api?.close();
});

/** The workload shape both sides use: one low-entropy Secret key in an environment variable. */
const consumer = (namespace: string, name: string, templateAnnotations?: Record<string, string>) =>
  deployment(namespace, name, { containers: [{ name: 'app', image: 'app:1', env: [{ name: 'PIN', valueFrom: { secretKeyRef: { name: 'db', key: 'pin' } } }] }] }, templateAnnotations);

async function mutate(object: KubeObject, options: Parameters<typeof reviewFor>[1] = {}) {
  const res = await httpsRequest({ port: guard.port, ca, method: 'POST', path: '/mutate', body: JSON.stringify(reviewFor(object, options)) });
  expect(res.status).toBe(200);
  return (JSON.parse(res.body) as AdmissionReview).response!;
}

const stampedValue = (object: KubeObject) => (object as any).spec.template.metadata.annotations?.[A] as string | undefined;

/** What gitops-guard 0.1 stamped (v1: the cluster key itself, no namespace): to show the attack worked then. */
function v1Checksum(pin: string): string {
  const sources: SourceSnapshot[] = [{ kind: 'Secret', name: 'db', keys: new Set(['pin']), content: new Map([['pin', Buffer.from(pin)]]) }];
  const message = Buffer.concat([Buffer.from('gitops-guard/config-checksum/v1\n', 'ascii'), encodeV2(sources).subarray(32)]);
  return `v1:${createHmac('sha256', CLUSTER_KEY).update(message).digest('hex')}`;
}

describe('cross-namespace guessing of a Secret through checksums', () => {
  it('fails: dry-run workloads in the attacker namespace never reproduce the victim checksum, not even for the right guess', async () => {
    api.put(secret(VICTIM, 'db', { pin: PIN }));
    const victim = consumer(VICTIM, 'checkout');
    const victimChecksum = stampedValue(applyResponsePatch(victim, (await mutate(victim)).patch));
    expect(victimChecksum).toMatch(/^v2:[0-9a-f]{64}$/);

    // The attack: for every guess, a Secret with the guessed value in a namespace the attacker
    // controls and a dry-run Deployment consuming it, exactly like the victim's.
    const matches: string[] = [];
    const seen = new Set<string>();
    for (const guess of GUESSES) {
      api.put(secret(ATTACKER, 'db', { pin: guess }));
      const probe = consumer(ATTACKER, 'checkout');
      const answer = await mutate(probe, { dryRun: true });
      const value = stampedValue(applyResponsePatch(probe, answer.patch));
      expect(value).toMatch(/^v2:[0-9a-f]{64}$/);
      seen.add(value!);
      if (value === victimChecksum) matches.push(guess);
    }
    expect(GUESSES).toContain(PIN);
    expect(seen.size).toBe(GUESSES.length);
    expect(matches).toEqual([]);

    // Under v1 the same probe answered the question: the right guess reproduced the victim's value.
    expect(GUESSES.filter((guess) => v1Checksum(guess) === v1Checksum(PIN))).toEqual([PIN]);
  });

  it('within one namespace the value stays stable and shared, so rollouts keep working', async () => {
    api.put(secret(VICTIM, 'db', { pin: PIN }));
    const a = consumer(VICTIM, 'a');
    const b = consumer(VICTIM, 'b');
    const stampedA = stampedValue(applyResponsePatch(a, (await mutate(a)).patch));
    expect(stampedValue(applyResponsePatch(b, (await mutate(b)).patch))).toBe(stampedA);
    api.put(secret(VICTIM, 'db', { pin: '0000' }));
    expect(stampedValue(applyResponsePatch(a, (await mutate(a)).patch))).not.toBe(stampedA);
  });
});

describe('from v1 to v2', () => {
  it('the webhook replaces a v1 value with v2 at the next admission, then never changes it back', async () => {
    api.put(secret('migrate-webhook', 'db', { pin: PIN }));
    const legacy = consumer('migrate-webhook', 'web', { [A]: v1Checksum(PIN), 'checksum/chart': 'kept' });
    const first = await mutate(legacy, { operation: 'UPDATE', oldObject: legacy });
    expect(decodePatch(first.patch)).toEqual([
      { op: 'replace', path: `/spec/template/metadata/annotations/${A.replace('/', '~1')}`, value: expect.stringMatching(/^v2:[0-9a-f]{64}$/) },
    ]);
    expect(first.warnings).toBeUndefined();
    const migrated = applyResponsePatch(legacy, first.patch);
    expect((migrated as any).spec.template.metadata.annotations['checksum/chart']).toBe('kept');
    for (let i = 0; i < 3; i++) {
      const again = await mutate(migrated, { operation: 'UPDATE', oldObject: migrated });
      expect(again.patch).toBeUndefined();
    }
    // Reinvocation with the previous (v1) object as oldObject changes nothing either.
    expect((await mutate(migrated, { operation: 'UPDATE', oldObject: legacy })).patch).toBeUndefined();
  });

  it('the rollout controller moves a v1-stamped workload to the webhook\'s v2 value once, and is then in sync', async () => {
    const namespace = 'migrate-controller';
    api.put(secret(namespace, 'db', { pin: PIN }));
    api.put(consumer(namespace, 'web', { [A]: v1Checksum(PIN) }));
    const expected = stampedValue(applyResponsePatch(consumer(namespace, 'web'), (await mutate(consumer(namespace, 'web'))).patch));
    const rules = loadRuleSetFile(DEFAULT_RULES, createRegistry());
    const start = () =>
      new RolloutController({
        kubeConfig,
        namespaces: [namespace],
        rules: () => rules,
        checksumKey: CLUSTER_KEY,
        identity: 'migration-test',
        leaseName: 'gitops-guard-controller-migration',
        leaseNamespace: 'gitops-guard',
        leaseDurationMs: 1000,
        renewDeadlineMs: 700,
        retryPeriodMs: 100,
        coalesceMs: 50,
        maxDelayMs: 500,
        registry: new Registry(),
        logger: capturingLogger().logger,
      });
    const patchesOfWeb = () => api.patches.filter((p) => p.path.endsWith(`/namespaces/${namespace}/deployments/web`) && p.status === 200);

    for (const round of [1, 2]) {
      const controller = start();
      try {
        await controller.start();
        const deadline = Date.now() + 8000;
        while (!(controller.leading && stampedValue(api.get('apps/v1', 'Deployment', namespace, 'web')!) === expected)) {
          if (Date.now() > deadline) throw new Error(`round ${round}: controller did not bring the workload to v2`);
          await new Promise((resolve) => setTimeout(resolve, 25));
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
        await controller.idle();
      } finally {
        await controller.stop();
      }
      // One patch in the first round (v1 -> v2); a restart compares and writes nothing.
      expect(patchesOfWeb(), `round ${round}`).toHaveLength(1);
    }
    expect(stampedValue(api.get('apps/v1', 'Deployment', namespace, 'web')!)).toBe(expected);
  });
});
