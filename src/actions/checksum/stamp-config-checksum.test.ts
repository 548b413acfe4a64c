import { KubeConfig } from '@kubernetes/client-node';
import type { Operation as PatchOperation } from 'fast-json-patch';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { KubeObject, Operation } from '../../api/types.js';
import { ClientNodeReader } from '../../kube/client-node-reader.js';
import { createRegistry } from '../registry.js';
import { applyPatch } from '../patch.js';
import type { ActionContext, ActionResult } from '../types.js';
import { parseRuleSet, RuleSetError } from '../../rules/load.js';
import { configMap, deployment, objectPath, secret } from '../../../test/support/kube-fixtures.js';
import { KubeApiServer } from '../../../test/support/kube-api-server.js';
import { requestFor } from '../../../test/support/review.js';
import { rejectionOf } from '../../../test/support/rejection.js';
import { checksumV2, isChecksumValue, type SourceSnapshot } from './encoding.js';
import { DEFAULT_CHECKSUM_ANNOTATION, readDeadlines, stampConfigChecksum, type StampConfigChecksumParams } from './stamp-config-checksum.js';

const NS = 'team-a';
const KEY = Buffer.from('0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef');
const A = DEFAULT_CHECKSUM_ANNOTATION;
const DEFAULTS: StampConfigChecksumParams = { annotation: A, includeImagePullSecrets: false };

let api: KubeApiServer;
let kube: ClientNodeReader;

beforeAll(async () => {
  api = await KubeApiServer.start();
  const kc = new KubeConfig();
  kc.loadFromFile(api.writeKubeconfig());
  kube = new ClientNodeReader(kc);
});
afterAll(() => api.close());
beforeEach(() => {
  api.clearFaults();
  api.clearRequests();
});

interface RunOptions {
  operation?: Operation;
  oldObject?: KubeObject | null;
  params?: Partial<StampConfigChecksumParams>;
  key?: Buffer | undefined;
  namespace?: string;
  signal?: AbortSignal;
}

function run(object: KubeObject, options: RunOptions = {}): Promise<ActionResult> {
  const request = requestFor(object, { operation: options.operation ?? 'CREATE', oldObject: options.oldObject ?? null, namespace: options.namespace ?? NS });
  const context: ActionContext = {
    request,
    object,
    oldObject: options.oldObject ?? null,
    kube,
    settings: 'key' in options ? (options.key ? { checksumKey: options.key } : {}) : { checksumKey: KEY },
    logger: pino({ level: 'silent' }),
    signal: options.signal ?? new AbortController().signal,
  };
  return Promise.resolve(stampConfigChecksum.run({ ...DEFAULTS, ...options.params }, context));
}

const failure = (promise: Promise<unknown>): Promise<Error> => rejectionOf(promise, Error);

function stamped(object: KubeObject, patch: PatchOperation[] | undefined, path = ['spec', 'template']): string | undefined {
  let node: any = applyPatch(object, patch ?? []);
  for (const step of path) node = node?.[step];
  return node?.metadata?.annotations?.[A];
}

const content = (data: Record<string, string | Buffer>) => new Map(Object.entries(data).map(([k, v]) => [k, Buffer.from(v)]));

/** Every reference form, in containers and initContainers, plain and projected volumes. */
function everyFormPodSpec(): Record<string, unknown> {
  return {
    initContainers: [
      {
        name: 'migrate',
        image: 'app:1',
        envFrom: [{ configMapRef: { name: 'env-cm' } }],
        env: [{ name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } }],
      },
    ],
    containers: [
      {
        name: 'app',
        image: 'app:1',
        envFrom: [{ secretRef: { name: 'env-secret' } }],
        env: [
          { name: 'MODE', valueFrom: { configMapKeyRef: { name: 'shared', key: 'mode' } } },
          { name: 'TRACE', valueFrom: { configMapKeyRef: { name: 'maybe', key: 'trace', optional: true } } },
        ],
      },
    ],
    volumes: [
      { name: 'files', configMap: { name: 'files', items: [{ key: 'app.yaml', path: 'app.yaml' }] } },
      { name: 'certs', secret: { secretName: 'certs' } },
      {
        name: 'bundle',
        projected: {
          sources: [
            { configMap: { name: 'bundle-cm', items: [{ key: 'logo.png', path: 'logo.png' }] } },
            { secret: { name: 'bundle-secret', optional: true } },
          ],
        },
      },
    ],
  };
}

function putEveryFormObjects(): void {
  api.put(configMap(NS, 'env-cm', { A: '1', B: '2' }));
  api.put(secret(NS, 'db', { password: 'pw-1', user: 'app' }));
  api.put(secret(NS, 'env-secret', { TOKEN: 't' }));
  api.put(configMap(NS, 'shared', { mode: 'fast', unrelated: 'x' }));
  api.put(configMap(NS, 'files', { 'app.yaml': 'a: 1\n', 'other.yaml': 'b: 2\n' }));
  api.put(secret(NS, 'certs', { 'tls.crt': 'CRT', 'tls.key': 'KEY' }));
  api.put(configMap(NS, 'bundle-cm', {}, { 'logo.png': Buffer.from([0x89, 0x50, 0x4e, 0x47]) }));
  api.delete('v1', 'ConfigMap', NS, 'maybe');
  api.delete('v1', 'Secret', NS, 'bundle-secret');
}

/** The snapshot an independent reading of the pod spec gives, to check the action end to end. */
function everyFormSnapshot(): SourceSnapshot[] {
  return [
    { kind: 'ConfigMap', name: 'env-cm', keys: 'all', content: content({ A: '1', B: '2' }) },
    { kind: 'Secret', name: 'db', keys: new Set(['password']), content: content({ password: 'pw-1', user: 'app' }) },
    { kind: 'Secret', name: 'env-secret', keys: 'all', content: content({ TOKEN: 't' }) },
    { kind: 'ConfigMap', name: 'shared', keys: new Set(['mode']), content: content({ mode: 'fast' }) },
    { kind: 'ConfigMap', name: 'maybe', keys: new Set(['trace']), content: null },
    { kind: 'ConfigMap', name: 'files', keys: new Set(['app.yaml']), content: content({ 'app.yaml': 'a: 1\n' }) },
    { kind: 'Secret', name: 'certs', keys: 'all', content: content({ 'tls.crt': 'CRT', 'tls.key': 'KEY' }) },
    { kind: 'ConfigMap', name: 'bundle-cm', keys: new Set(['logo.png']), content: content({ 'logo.png': Buffer.from([0x89, 0x50, 0x4e, 0x47]) }) },
    { kind: 'Secret', name: 'bundle-secret', keys: 'all', content: null },
  ];
}

describe('stampConfigChecksum: what is hashed', () => {
  beforeEach(putEveryFormObjects);

  it('stamps the checksum of every reference form, reading each object once', async () => {
    const object = deployment(NS, 'web', everyFormPodSpec(), { 'checksum/config': 'chart-value' });
    const outcome = await run(object);
    expect(outcome.warnings).toEqual([]);
    expect(outcome.patch).toEqual([{ op: 'add', path: `/spec/template/metadata/annotations/${A.replace('/', '~1')}`, value: checksumV2(KEY, NS, everyFormSnapshot()) }]);
    const paths = api.requests.map((r) => r.path).sort();
    expect(paths).toEqual(
      [
        objectPath('ConfigMap', NS, 'bundle-cm'),
        objectPath('ConfigMap', NS, 'env-cm'),
        objectPath('ConfigMap', NS, 'files'),
        objectPath('ConfigMap', NS, 'maybe'),
        objectPath('ConfigMap', NS, 'shared'),
        objectPath('Secret', NS, 'bundle-secret'),
        objectPath('Secret', NS, 'certs'),
        objectPath('Secret', NS, 'db'),
        objectPath('Secret', NS, 'env-secret'),
      ].sort(),
    );
  });

  it('is the same whatever the order of containers, env entries, volumes and items', async () => {
    const base = stamped(deployment(NS, 'web', everyFormPodSpec()), (await run(deployment(NS, 'web', everyFormPodSpec()))).patch);
    const spec = everyFormPodSpec() as { containers: { env: unknown[] }[]; volumes: unknown[]; initContainers: unknown[] };
    spec.containers[0]!.env.reverse();
    spec.volumes.reverse();
    const shuffled = { ...spec, containers: spec.containers, initContainers: spec.initContainers };
    const object = deployment(NS, 'web', shuffled);
    expect(stamped(object, (await run(object)).patch)).toBe(base);
  });

  it.each([
    ['a key consumed through a key ref', () => api.put(configMap(NS, 'shared', { mode: 'slow', unrelated: 'x' }))],
    ['a key listed in items', () => api.put(configMap(NS, 'files', { 'app.yaml': 'a: 2\n', 'other.yaml': 'b: 2\n' }))],
    ['binaryData of a projected ConfigMap', () => api.put(configMap(NS, 'bundle-cm', {}, { 'logo.png': Buffer.from([0x89, 0x50]) }))],
    ['a Secret consumed through envFrom (new key)', () => api.put(secret(NS, 'env-secret', { TOKEN: 't', MORE: 'm' }))],
    ['an initContainer secretKeyRef', () => api.put(secret(NS, 'db', { password: 'pw-2', user: 'app' }))],
    ['a secret volume', () => api.put(secret(NS, 'certs', { 'tls.crt': 'CRT2', 'tls.key': 'KEY' }))],
    ['an optional object that appears', () => api.put(secret(NS, 'bundle-secret', {}))],
    ['an optional key that appears', () => api.put(configMap(NS, 'maybe', { trace: 'on' }))],
  ])('changes when %s changes', async (_what, change) => {
    const object = deployment(NS, 'web', everyFormPodSpec());
    const before = stamped(object, (await run(object)).patch);
    change();
    const after = stamped(object, (await run(object)).patch);
    expect(after).not.toBe(before);
    expect(isChecksumValue(after!)).toBe(true);
  });

  it.each([
    ['an unconsumed key of a shared ConfigMap', () => api.put(configMap(NS, 'shared', { mode: 'fast', unrelated: 'changed', added: '1' }))],
    ['a key not listed in items', () => api.put(configMap(NS, 'files', { 'app.yaml': 'a: 1\n', 'other.yaml': 'changed' }))],
    ['an unconsumed key next to a secretKeyRef', () => api.put(secret(NS, 'db', { password: 'pw-1', user: 'someone-else' }))],
    ['nothing (a re-apply bumps only the resourceVersion)', () => api.put(secret(NS, 'db', { password: 'pw-1', user: 'app' }))],
  ])('does not change when %s changes', async (_what, change) => {
    const object = deployment(NS, 'web', everyFormPodSpec());
    const before = stamped(object, (await run(object)).patch);
    change();
    expect(stamped(object, (await run(object)).patch)).toBe(before);
  });

  it('hashes imagePullSecrets only when asked', async () => {
    api.put(secret(NS, 'registry', { '.dockerconfigjson': '{}' }));
    const object = deployment(NS, 'web', { ...everyFormPodSpec(), imagePullSecrets: [{ name: 'registry' }] });
    const without = stamped(object, (await run(object)).patch);
    expect(api.requestsTo(objectPath('Secret', NS, 'registry'))).toHaveLength(0);
    expect(without).toBe(checksumV2(KEY, NS, everyFormSnapshot()));
    const withPull = stamped(object, (await run(object, { params: { includeImagePullSecrets: true } })).patch);
    expect(withPull).not.toBe(without);
    expect(api.requestsTo(objectPath('Secret', NS, 'registry'))).toHaveLength(1);
  });
});

describe('stampConfigChecksum: patches', () => {
  beforeEach(() => {
    api.put(configMap(NS, 'cfg', { 'app.conf': 'x=1' }));
  });
  const spec = () => ({ containers: [{ name: 'app', image: 'app:1', envFrom: [{ configMapRef: { name: 'cfg' } }] }] });
  const expected = () => checksumV2(KEY, NS, [{ kind: 'ConfigMap', name: 'cfg', keys: 'all', content: content({ 'app.conf': 'x=1' }) }]);

  it.each([
    ['apps/v1', 'StatefulSet', ['spec', 'template']],
    ['apps/v1', 'DaemonSet', ['spec', 'template']],
    ['argoproj.io/v1alpha1', 'Rollout', ['spec', 'template']],
    ['batch/v1', 'CronJob', ['spec', 'jobTemplate', 'spec', 'template']],
  ])('stamps the pod template of a %s %s', async (apiVersion, kind, path) => {
    const template = { metadata: { annotations: { keep: 'me' } }, spec: spec() };
    const body = kind === 'CronJob' ? { schedule: '* * * * *', jobTemplate: { spec: { template } } } : { template };
    const object: KubeObject = { apiVersion, kind, metadata: { name: 'w', namespace: NS }, spec: body };
    const outcome = await run(object);
    expect(outcome.patch).toEqual([{ op: 'add', path: `/${path.join('/')}/metadata/annotations/gitops-guard.dev~1config-checksum`, value: expected() }]);
    expect(stamped(object, outcome.patch, path)).toBe(expected());
  });

  it('creates missing metadata and annotations maps', async () => {
    const object = deployment(NS, 'web', spec());
    delete (object.spec as any).template.metadata;
    const outcome = await run(object);
    expect(outcome.patch).toEqual([{ op: 'add', path: '/spec/template/metadata', value: { annotations: { [A]: expected() } } }]);
  });

  it('never touches other annotations, e.g. a chart checksum', async () => {
    const object = deployment(NS, 'web', spec(), { 'checksum/config': 'abc', [`${A}-other`]: 'x' });
    const outcome = await run(object);
    expect(outcome.patch).toHaveLength(1);
    const annotations = (applyPatch(object, outcome.patch!) as any).spec.template.metadata.annotations;
    expect(annotations).toEqual({ 'checksum/config': 'abc', [`${A}-other`]: 'x', [A]: expected() });
  });

  it('is idempotent: applying the patch and sending again gives no patch', async () => {
    const object = deployment(NS, 'web', spec());
    const first = await run(object);
    const admitted = applyPatch(object, first.patch!);
    expect(await run(admitted, { operation: 'UPDATE', oldObject: admitted })).toEqual({ warnings: [] });
  });

  it('an UPDATE with unchanged config gives no patch; one that drops the annotation gets the same value back', async () => {
    const live = applyPatch(deployment(NS, 'web', spec()), (await run(deployment(NS, 'web', spec()))).patch!);
    expect((await run(live, { operation: 'UPDATE', oldObject: live })).patch).toBeUndefined();
    const replaced = deployment(NS, 'web', spec());
    const outcome = await run(replaced, { operation: 'UPDATE', oldObject: live });
    expect(stamped(replaced, outcome.patch)).toBe(stamped(live, []));
  });

  it('replaces an outdated value it wrote', async () => {
    const stale = deployment(NS, 'web', spec(), { [A]: `v1:${'0'.repeat(64)}` });
    const outcome = await run(stale, { operation: 'UPDATE', oldObject: stale });
    expect(outcome.patch).toEqual([{ op: 'replace', path: '/spec/template/metadata/annotations/gitops-guard.dev~1config-checksum', value: expected() }]);
  });

  it('leaves a value it did not write alone and says so', async () => {
    const object = deployment(NS, 'web', spec(), { [A]: 'set-by-hand' });
    const outcome = await run(object);
    expect(outcome.patch).toBeUndefined();
    expect(outcome.warnings).toEqual([`pod template annotation ${A} was not written by gitops-guard; checksum not stamped`]);
    expect(api.requests).toHaveLength(0);
  });

  it('uses the configured annotation key', async () => {
    const object = deployment(NS, 'web', spec());
    const outcome = await run(object, { params: { annotation: 'example.com/config-hash' } });
    expect((applyPatch(object, outcome.patch!) as any).spec.template.metadata.annotations).toEqual({ 'example.com/config-hash': expected() });
  });

  it('adds nothing to a workload that consumes no configuration, and removes its own stale value', async () => {
    const bare = deployment(NS, 'web', { containers: [{ name: 'app', image: 'app:1' }] });
    expect(await run(bare)).toEqual({ warnings: [] });
    expect(api.requests).toHaveLength(0);
    const leftover = deployment(NS, 'web', { containers: [{ name: 'app', image: 'app:1' }] }, { [A]: expected(), other: 'x' });
    expect((await run(leftover, { operation: 'UPDATE', oldObject: leftover })).patch).toEqual([
      { op: 'remove', path: '/spec/template/metadata/annotations/gitops-guard.dev~1config-checksum' },
    ]);
  });

  it('leaves a Rollout with workloadRef alone', async () => {
    const rollout: KubeObject = { apiVersion: 'argoproj.io/v1alpha1', kind: 'Rollout', metadata: { name: 'r', namespace: NS }, spec: { workloadRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web' } } };
    expect(await run(rollout)).toEqual({});
  });

  it('does nothing on DELETE', async () => {
    expect(await run(deployment(NS, 'web', spec()), { operation: 'DELETE' })).toEqual({});
  });

  it('throws clearly without a key, for garbage and for cluster-scoped requests', async () => {
    expect((await failure(run(deployment(NS, 'web', spec()), { key: undefined }))).message).toBe('no checksum key configured; config checksums cannot be computed');
    expect((await failure(run({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' }, spec: { template: 'oops' } }))).message).toBe(
      'Deployment has no pod template at .spec.template',
    );
    const badMeta = deployment(NS, 'web', spec());
    (badMeta.spec as any).template.metadata = { annotations: 'nope' };
    expect((await failure(run(badMeta))).message).toBe('pod template annotations are not a map');
    expect((await failure(run(deployment(NS, 'web', spec()), { namespace: '' }))).message).toBe('config checksum needs a namespaced workload');
    expect((await failure(run(deployment(NS, 'web', spec()), { params: { annotation: 'Bad Key!' } }))).message).toMatch(/invalid checksum annotation key/);
  });
});

describe('stampConfigChecksum: missing objects and keys', () => {
  it('stamps with a required object encoded as absent and warns that pods will not start', async () => {
    api.delete('v1', 'Secret', NS, 'absent');
    const object = deployment(NS, 'web', { containers: [{ name: 'app', envFrom: [{ secretRef: { name: 'absent' } }] }] });
    const outcome = await run(object);
    expect(stamped(object, outcome.patch)).toBe(checksumV2(KEY, NS, [{ kind: 'Secret', name: 'absent', keys: 'all', content: null }]));
    expect(outcome.warnings).toEqual([`Secret ${NS}/absent not found: pods will not start until it exists`]);
  });

  it('warns for required keys that are missing, but not for optional ones', async () => {
    api.put(configMap(NS, 'partial', { present: '1' }));
    const object = deployment(NS, 'web', {
      volumes: [{ name: 'v', configMap: { name: 'partial', items: [{ key: 'listed', path: 'l' }] } }],
      containers: [
        {
          name: 'app',
          env: [
            { name: 'A', valueFrom: { configMapKeyRef: { name: 'partial', key: 'needed' } } },
            { name: 'B', valueFrom: { configMapKeyRef: { name: 'partial', key: 'nice', optional: true } } },
            { name: 'C', valueFrom: { configMapKeyRef: { name: 'partial', key: 'present' } } },
          ],
        },
      ],
    });
    const outcome = await run(object);
    expect(outcome.warnings).toEqual([
      `ConfigMap ${NS}/partial has no key listed: pods will not start until it exists`,
      `ConfigMap ${NS}/partial has no key needed: pods will not start until it exists`,
    ]);
    expect(stamped(object, outcome.patch)).toBe(
      checksumV2(KEY, NS, [{ kind: 'ConfigMap', name: 'partial', keys: new Set(['listed', 'needed', 'nice', 'present']), content: content({ present: '1' }) }]),
    );
  });

  it('stamps optional missing objects without a warning', async () => {
    api.delete('v1', 'ConfigMap', NS, 'opt');
    const object = deployment(NS, 'web', { containers: [{ name: 'app', envFrom: [{ configMapRef: { name: 'opt', optional: true } }] }] });
    const outcome = await run(object);
    expect(outcome.warnings).toEqual([]);
    expect(isChecksumValue(stamped(object, outcome.patch)!)).toBe(true);
  });
});

describe('stampConfigChecksum: API failures', () => {
  const object = () =>
    deployment(NS, 'web', {
      containers: [{ name: 'app', envFrom: [{ configMapRef: { name: 'ok-cm' } }, { secretRef: { name: 'guarded' } }] }],
    });
  beforeEach(() => {
    api.put(configMap(NS, 'ok-cm', { a: '1' }));
    api.put(secret(NS, 'guarded', { token: 'value' }));
  });

  it.each([
    [403, `cannot read Secret ${NS}/guarded: forbidden (HTTP 403), gitops-guard needs get on secrets`],
    [500, `cannot read Secret ${NS}/guarded: API server error (HTTP 500): InternalError`],
    [503, `cannot read Secret ${NS}/guarded: API server error (HTTP 503): ServiceUnavailable`],
  ])('HTTP %i: throws (no partial checksum) with a message naming the object', async (status, message) => {
    api.fault({ path: objectPath('Secret', NS, 'guarded') }, { status });
    expect((await failure(run(object()))).message).toBe(message);
  });

  it('401: names the credentials problem', async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(api.writeKubeconfig('wrong-token'));
    const request = requestFor(object(), { namespace: NS });
    const error = await failure(
      Promise.resolve(
        stampConfigChecksum.run(DEFAULTS, {
          request,
          object: object(),
          oldObject: null,
          kube: new ClientNodeReader(kc),
          settings: { checksumKey: KEY },
          logger: pino({ level: 'silent' }),
          signal: new AbortController().signal,
        }),
      ),
    );
    expect(error.message).toMatch(/^cannot read (ConfigMap|Secret) team-a\/(ok-cm|guarded): unauthorized \(HTTP 401\), API server rejected gitops-guard's credentials$/);
  });

  it('a slow read: times out after readTimeoutMs', async () => {
    api.fault({ path: objectPath('Secret', NS, 'guarded') }, { latencyMs: 5000 });
    const started = performance.now();
    const error = await failure(run(object(), { params: { readTimeoutMs: 200, timeoutMs: 1000 } }));
    expect(performance.now() - started).toBeLessThan(700);
    expect(error.message).toBe(`cannot read Secret ${NS}/guarded: timed out after 200 ms`);
  });

  it('a slow API beyond the overall deadline: answers within the deadline', async () => {
    api.fault({ path: objectPath('Secret', NS, 'guarded') }, { latencyMs: 5000 });
    const started = performance.now();
    const error = await failure(run(object(), { params: { readTimeoutMs: 1500, timeoutMs: 300 } }));
    const elapsed = performance.now() - started;
    expect(elapsed).toBeLessThan(800);
    expect(error.message).toMatch(new RegExp(`^cannot read Secret ${NS}/guarded: (no answer within the 300 ms checksum deadline|timed out after 300 ms)$`));
  });

  it('with the default limits, a hanging API is given up on after the 1.5 s read timeout, inside the 2 s deadline', async () => {
    api.fault({ path: objectPath('Secret', NS, 'guarded') }, { latencyMs: 10_000 });
    const started = performance.now();
    await failure(run(object()));
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(1400);
    expect(elapsed).toBeLessThan(2600);
  });

  it('a dropped connection: API server unreachable', async () => {
    api.fault({ path: objectPath('Secret', NS, 'guarded') }, { destroy: true });
    expect((await failure(run(object()))).message).toMatch(new RegExp(`^cannot read Secret ${NS}/guarded: API server unreachable \\([A-Z_]+\\)$`));
  });

  it('the admission deadline aborts outstanding reads', async () => {
    api.fault({ path: objectPath('Secret', NS, 'guarded') }, { latencyMs: 5000 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const error = await failure(run(object(), { signal: controller.signal }));
    expect(error.message).toMatch(/abandoned/);
  });

  it('recovers once the fault is gone', async () => {
    api.fault({ path: objectPath('Secret', NS, 'guarded') }, { status: 500, times: 1 });
    await failure(run(object()));
    expect(isChecksumValue(stamped(object(), (await run(object())).patch)!)).toBe(true);
  });
});

describe('stampConfigChecksum: worked example from the field (Airflow webserver secret key)', () => {
  /** The chart's webserver Deployment, rendered: the Flask secret key comes from a secretKeyRef. */
  const webserver = (): KubeObject =>
    deployment(
      'airflow',
      'airflow-webserver',
      {
        initContainers: [{ name: 'wait-for-airflow-migrations', image: 'apache/airflow:2.10.5', args: ['airflow', 'db', 'check-migrations'] }],
        containers: [
          {
            name: 'webserver',
            image: 'apache/airflow:2.10.5',
            args: ['bash', '-c', 'exec airflow webserver'],
            env: [
              { name: 'AIRFLOW__WEBSERVER__SECRET_KEY', valueFrom: { secretKeyRef: { name: 'airflow-webserver-secret-key', key: 'webserver-secret-key' } } },
            ],
          },
        ],
      },
      // The chart's own checksum of its rendered template (random key on every render): never touched.
      { 'checksum/webserver-secret-key': 'f00dfeed' },
    );

  it('re-applying the same Secret value keeps the checksum; a new value changes it', async () => {
    api.put(secret('airflow', 'airflow-webserver-secret-key', { 'webserver-secret-key': 'first-key-value' }));
    const first = await run(webserver(), { namespace: 'airflow' });
    expect(first.warnings).toEqual([]);
    const live = applyPatch(webserver(), first.patch!);
    const value = stamped(live, []);

    // Argo CD re-applies the same Secret (new resourceVersion, same data), then the Deployment.
    api.put(secret('airflow', 'airflow-webserver-secret-key', { 'webserver-secret-key': 'first-key-value' }));
    expect(await run(live, { namespace: 'airflow', operation: 'UPDATE', oldObject: live })).toEqual({ warnings: [] });
    expect(stamped(webserver(), (await run(webserver(), { namespace: 'airflow', operation: 'UPDATE', oldObject: live })).patch)).toBe(value);

    // A new secret key value: the checksum changes and the pods roll.
    api.put(secret('airflow', 'airflow-webserver-secret-key', { 'webserver-secret-key': 'second-key-value' }));
    const rotated = await run(live, { namespace: 'airflow', operation: 'UPDATE', oldObject: live });
    expect(rotated.patch).toHaveLength(1);
    expect(rotated.patch![0]).toMatchObject({ op: 'replace' });
    const newValue = stamped(live, rotated.patch);
    expect(newValue).not.toBe(value);
    expect((applyPatch(live, rotated.patch!) as any).spec.template.metadata.annotations['checksum/webserver-secret-key']).toBe('f00dfeed');
  });
});

describe('stampConfigChecksum parameters', () => {
  const ruleSet = (params: string) => `apiVersion: gitops-guard.dev/v1alpha1
kind: RuleSet
rules:
  - name: stamp
    match: { kinds: [{ group: apps, kind: Deployment }] }
    action:
      type: stampConfigChecksum
${params}
`;

  it('fills in defaults; the read deadlines default to the admission deadline', () => {
    const parsed = parseRuleSet(ruleSet(''), 'test', createRegistry());
    expect(parsed.rules[0]!.action.params).toEqual(DEFAULTS);
    const deadline = Date.now() + 4000;
    const { timeoutMs, readTimeoutMs } = readDeadlines({}, deadline);
    // The admission's signal ends the reads at the deadline; the timers are a backstop just after it.
    expect(timeoutMs).toBeGreaterThan(4000);
    expect(timeoutMs).toBeLessThanOrEqual(4050);
    expect(readTimeoutMs).toBe(timeoutMs);
    // A rule's own limits can only shorten what the admission has left, never lengthen it.
    expect(readDeadlines({ timeoutMs: 1000, readTimeoutMs: 300 }, deadline)).toEqual({ timeoutMs: 1000, readTimeoutMs: 300 });
    expect(readDeadlines({ timeoutMs: 9000, readTimeoutMs: 9000 }, Date.now() + 500).timeoutMs).toBeLessThanOrEqual(550);
    // Outside an admission (audit, controller): the documented 2000/1500 ms.
    expect(readDeadlines({}, undefined)).toEqual({ timeoutMs: 2000, readTimeoutMs: 1500 });
  });

  it.each(['example.com/config-hash', 'config-hash', 'a.b-c.d/x_y.z', `${'a'.repeat(253)}/n`, `p/${'n'.repeat(63)}`])('accepts the annotation key %s', (key) => {
    expect(parseRuleSet(ruleSet(`      params: { annotation: "${key}" }`), 'test', createRegistry()).rules[0]!.action.params['annotation']).toBe(key);
  });

  it.each(['', 'has space', 'Upper.Case/x', '/name', 'prefix/', 'a/b/c', '-x', 'x-', `${'a'.repeat(254)}/n`, `p/${'n'.repeat(64)}`, 'bad_prefix/x'])(
    'refuses the annotation key %j',
    (key) => {
      expect(() => parseRuleSet(ruleSet(`      params: { annotation: ${JSON.stringify(key)} }`), 'test', createRegistry())).toThrow(RuleSetError);
    },
  );

  it('refuses unknown parameters and out-of-range timeouts', () => {
    expect(() => parseRuleSet(ruleSet('      params: { cache: true }'), 'test', createRegistry())).toThrow(/unknown field "cache"/);
    expect(() => parseRuleSet(ruleSet('      params: { timeoutMs: 0 }'), 'test', createRegistry())).toThrow(RuleSetError);
    expect(() => parseRuleSet(ruleSet('      params: { readTimeoutMs: 1.5 }'), 'test', createRegistry())).toThrow(RuleSetError);
  });
});
