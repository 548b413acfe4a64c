import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments, stringify } from 'yaml';
import type { AdmissionReview, KubeObject } from '../src/api/types.js';
import { computeWorkloadChecksum, DEFAULT_CHECKSUM_OPTIONS } from '../src/actions/checksum/compute.js';
import { DEFAULT_CHECKSUM_ANNOTATION } from '../src/actions/checksum/stamp-config-checksum.js';
import { configContent } from '../src/kube/config-data.js';
import type { KubeReader } from '../src/kube/reader.js';
import { configMap, secret } from '../test/support/kube-fixtures.js';
import type { WebhookName } from '../test/support/deployed.js';
import { reviewFor, type ReviewOptions } from '../test/support/review.js';
import { CORPUS_DIR } from './paths.js';

/**
 * The bench scenarios: AdmissionReview bodies built from the real manifests in
 * test/fixtures/corpus, shaped the way the API server sends them (compact JSON, server-populated
 * metadata and managedFields, `oldObject` on UPDATE), plus what each answer must look like.
 */

export type ScenarioId = 'owner' | 'checksum' | 'fastpath' | 'large' | 'xlarge';
export const SCENARIO_IDS: readonly ScenarioId[] = ['owner', 'checksum', 'fastpath', 'large', 'xlarge'];

/** What a correct answer to one request looks like; anything else counts as an error. */
export interface Expectation {
  /** The answer carries a JSON patch. */
  patch: boolean;
}

export interface BenchRequest {
  path: '/mutate' | '/validate';
  /** The webhook configuration that sends this request in a cluster (its timeoutSeconds is the URL's `?timeout=`). */
  webhook: WebhookName;
  /** The exact request body (compact JSON). */
  body: string;
  expect: Expectation;
}

export interface Scenario {
  id: ScenarioId;
  title: string;
  /** Requests one connection sends in turn (one admission may be a mutate and a validate call). */
  requests: BenchRequest[];
  /** ConfigMap/Secret GETs the webhook makes per cycle of `requests`. */
  apiReadsPerCycle: number;
  /** Concurrency points run when `--concurrency` is not given. */
  defaultConcurrency: number[];
}

// ---- corpus access (same parsing as test/support/corpus.ts, rooted at the checkout) ----

function corpusObjects(file: string): KubeObject[] {
  return parseAllDocuments(readFileSync(join(CORPUS_DIR, file), 'utf8'))
    .map((doc) => doc.toJS() as KubeObject | null)
    .filter((o): o is KubeObject => !!o && typeof o === 'object' && typeof o.kind === 'string');
}

function corpusObject(file: string, kind: string, name: string): KubeObject {
  const found = corpusObjects(file).find((o) => o.kind === kind && o.metadata?.name === name);
  if (!found) throw new Error(`bench: ${kind}/${name} not in ${file}`);
  return found;
}

// ---- what the API server adds to objects ----

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isMap(value: unknown): value is Record<string, Json> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A deterministic UUID-shaped id, so bodies are byte-identical from run to run. */
function stableUid(seed: string): string {
  const hex = createHash('sha256').update(seed).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** A `fieldsV1` trie for `value`, as server-side apply records it (list items keyed by name). */
function fieldsV1(value: Json): Record<string, Json> {
  const out: Record<string, Json> = {};
  if (isMap(value)) {
    for (const [key, child] of Object.entries(value)) {
      out[`f:${key}`] = isMap(child) || (Array.isArray(child) && child.some(isMap)) ? fieldsV1(child) : {};
    }
  } else if (Array.isArray(value)) {
    value.forEach((item, index) => {
      if (!isMap(item)) return;
      const key = typeof item['name'] === 'string' ? `k:${JSON.stringify({ name: item['name'] })}` : `i:${index}`;
      out[key] = { '.': {}, ...fieldsV1(item) };
    });
  }
  return out;
}

const SERVER_METADATA = new Set(['uid', 'resourceVersion', 'generation', 'creationTimestamp', 'managedFields']);

/** The object as stored: uid, resourceVersion, creationTimestamp and one managedFields entry. */
export function asStored(object: KubeObject, manager: string, resourceVersion: number): KubeObject {
  const stored = structuredClone(object) as KubeObject & Record<string, Json>;
  const metadata = (stored.metadata ?? {}) as Record<string, Json>;
  const applied: Record<string, Json> = {};
  for (const [key, value] of Object.entries(stored as Record<string, Json>)) {
    if (key === 'status' || key === 'apiVersion' || key === 'kind') continue;
    if (key === 'metadata' && isMap(value)) {
      applied[key] = Object.fromEntries(Object.entries(value).filter(([k]) => !SERVER_METADATA.has(k)));
    } else {
      applied[key] = value;
    }
  }
  stored.metadata = {
    ...metadata,
    uid: stableUid(`${object.kind}/${object.metadata?.namespace ?? ''}/${object.metadata?.name}`),
    resourceVersion: String(resourceVersion),
    generation: 1,
    creationTimestamp: '2026-01-12T09:30:00Z',
    managedFields: [
      {
        manager,
        operation: 'Apply',
        apiVersion: object.apiVersion ?? 'v1',
        time: '2026-01-12T09:30:00Z',
        fieldsType: 'FieldsV1',
        fieldsV1: fieldsV1(applied),
      },
    ],
  } as KubeObject['metadata'];
  return stored;
}

function withAnnotations(object: KubeObject, annotations: Record<string, string>, labels: Record<string, string> = {}): KubeObject {
  const copy = structuredClone(object);
  copy.metadata = {
    ...copy.metadata,
    labels: { ...(copy.metadata?.labels ?? {}), ...labels },
    annotations: { ...(copy.metadata?.annotations ?? {}), ...annotations },
  };
  return copy;
}

function body(object: KubeObject, options: ReviewOptions & { seed: string }): string {
  const review: AdmissionReview = reviewFor(object, { ...options, uid: stableUid(options.seed) });
  return JSON.stringify(review);
}

const TRACKING = 'argocd.argoproj.io/tracking-id';
const OWNER = 'gitops-guard.dev/owner';
const ARGO_MANAGER = 'argocd-controller';

/**
 * An Argo CD sync (server-side apply) of a cluster-scoped object gitops-guard already tagged:
 * the applied object carries Argo CD's tracking id but not gitops-guard's owner annotation
 * (Argo CD's field set does not include it), so tagOwner re-adds it from the live object, and
 * the validating call sees the mutated object with the same owner. Returns [mutate, validate].
 */
export function ownedUpdate(desired: KubeObject, app: string, seed: string): BenchRequest[] {
  const group = desired.apiVersion?.includes('/') ? desired.apiVersion.split('/')[0] : '';
  const tracking = `${app}:${group}/${desired.kind}:${app}/${desired.metadata?.name}`;
  const applied = withAnnotations(desired, { [TRACKING]: tracking });
  const live = asStored(withAnnotations(applied, { [OWNER]: `argocd:${app}` }, { 'app.kubernetes.io/instance': app }), ARGO_MANAGER, 48_211);
  if (desired.kind === 'CustomResourceDefinition') {
    (live as Record<string, Json>)['status'] = crdStatus(desired);
  }
  // The API server merges the apply into the live object: server metadata and status stay.
  const object = structuredClone(live);
  delete object.metadata!.annotations![OWNER];
  delete object.metadata!.labels!['app.kubernetes.io/instance'];
  const mutated = withAnnotations(object, { [OWNER]: `argocd:${app}` }, { 'app.kubernetes.io/instance': app });
  return [
    { path: '/mutate', webhook: 'owners', body: body(object, { operation: 'UPDATE', oldObject: live, seed: `${seed}/mutate` }), expect: { patch: true } },
    { path: '/validate', webhook: 'owners', body: body(mutated, { operation: 'UPDATE', oldObject: live, seed: `${seed}/validate` }), expect: { patch: false } },
  ];
}

function crdStatus(crd: KubeObject): Json {
  const spec = (crd as Record<string, Json>)['spec'] as Record<string, Json>;
  const names = spec['names'] as Json;
  const versions = (spec['versions'] as Record<string, Json>[]).map((v) => v['name'] as string);
  return {
    acceptedNames: names,
    conditions: [
      { type: 'NamesAccepted', status: 'True', reason: 'NoConflicts', message: 'no conflicts found', lastTransitionTime: '2026-01-12T09:30:00Z' },
      { type: 'Established', status: 'True', reason: 'InitialNamesAccepted', message: 'the initial names have been accepted', lastTransitionTime: '2026-01-12T09:30:00Z' },
    ],
    storedVersions: versions,
  };
}

// ---- scenario 2: the workload and the objects it consumes ----

export const CHECKSUM_NAMESPACE = 'kube-system';

/** What the test API server holds for scenario 2: three objects, realistic sizes, fixed content. */
export function checksumApiObjects(): KubeObject[] {
  const metricsConfig = [
    'kind: CustomResourceStateMetrics',
    'spec:',
    '  resources:',
    ...Array.from({ length: 12 }, (_, i) =>
      [
        `    - groupVersionKind: { group: example.dev, version: v1, kind: Widget${i} }`,
        `      labelsFromPath: { name: [metadata, name], namespace: [metadata, namespace] }`,
        `      metrics:`,
        `        - name: widget${i}_ready`,
        `          help: "Whether widget ${i} is ready"`,
        `          each: { type: Gauge, gauge: { path: [status, conditions], labelsFromPath: { type: [type] }, valueFrom: [status] } }`,
      ].join('\n'),
    ),
  ].join('\n');
  return [
    configMap(CHECKSUM_NAMESPACE, 'kube-state-metrics-config', { 'custom-resource-state.yaml': `${metricsConfig}\n` }),
    configMap(CHECKSUM_NAMESPACE, 'kube-state-metrics-env', {
      KSM_LOG_LEVEL: 'info',
      KSM_METRIC_LABELS_ALLOWLIST: 'pods=[app.kubernetes.io/name,app.kubernetes.io/instance],deployments=[*]',
      KSM_RESOURCES: 'configmaps,cronjobs,daemonsets,deployments,jobs,namespaces,nodes,pods,replicasets,secrets,services,statefulsets',
    }),
    secret(CHECKSUM_NAMESPACE, 'kube-state-metrics-auth', {
      'tls.crt': `-----BEGIN CERTIFICATE-----\n${'MIIDBTCCAe2gAwIBAgIUQ0fJ3n2b5f3lX8bN0mJ2zq6kJ8swDQYJKoZIhvcNAQEL\n'.repeat(16)}-----END CERTIFICATE-----\n`,
      // Filler of a private key's size (no real key material, and not PEM-framed so it is never mistaken for one).
      'tls.key': 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7o4qne60TB3wo\n'.repeat(26),
      'bearer-token': 'c2VjcmV0LXRva2VuLWZvci1iZW5jaG1hcmtzLW9ubHk',
    }),
  ];
}

/** kube-state-metrics' Deployment consuming those three objects in the three usual ways. */
function checksumDeployment(): KubeObject {
  const deployment = corpusObject('kube-state-metrics-standard/deployment.yaml', 'Deployment', 'kube-state-metrics');
  const spec = (deployment as Record<string, Json>)['spec'] as Record<string, Json>;
  const podSpec = (spec['template'] as Record<string, Json>)['spec'] as Record<string, Json>;
  const container = (podSpec['containers'] as Record<string, Json>[])[0]!;
  container['args'] = ['--custom-resource-state-config-file=/etc/ksm/custom-resource-state.yaml', '--tls-config=/etc/ksm-tls/web.yaml'];
  container['env'] = [
    { name: 'KSM_LOG_LEVEL', valueFrom: { configMapKeyRef: { name: 'kube-state-metrics-env', key: 'KSM_LOG_LEVEL' } } },
    { name: 'KSM_RESOURCES', valueFrom: { configMapKeyRef: { name: 'kube-state-metrics-env', key: 'KSM_RESOURCES' } } },
  ];
  container['envFrom'] = [{ secretRef: { name: 'kube-state-metrics-auth' } }];
  container['volumeMounts'] = [{ name: 'config', mountPath: '/etc/ksm', readOnly: true }];
  podSpec['volumes'] = [{ name: 'config', configMap: { name: 'kube-state-metrics-config' } }];
  return withAnnotations(deployment, {
    [TRACKING]: `monitoring:apps/Deployment:${CHECKSUM_NAMESPACE}/kube-state-metrics`,
  });
}

// ---- the controller scenario: many workloads, each with its own ConfigMap and Secret ----

/**
 * `count` Deployments (kube-state-metrics' Deployment as the template, ~4 KiB each) in 100
 * namespaces, each consuming its own ConfigMap (4 keys, envFrom) and Secret (2 keys, a volume),
 * stamped with the checksum the webhook would have written under `key`: a cluster in sync, as
 * the controller finds it after the webhook ran for a while.
 */
export async function controllerWorkloads(count: number, key: Buffer): Promise<KubeObject[]> {
  const template = corpusObject('kube-state-metrics-standard/deployment.yaml', 'Deployment', 'kube-state-metrics');
  const objects: KubeObject[] = [];
  const sources = new Map<string, KubeObject>();
  for (let i = 0; i < count; i++) {
    const namespace = `team-${i % 100}`;
    const config = configMap(namespace, `app-config-${i}`, {
      LOG_LEVEL: 'info',
      DATABASE_URL: `postgres://app-${i}.${namespace}.svc:5432/app`,
      FEATURE_FLAGS: 'checkout-v2,search-ranking,recommendations',
      'app.yaml': `server:\n  port: 8080\n  workers: ${(i % 8) + 1}\ncache:\n  ttl: 300s\n${'# padding\n'.repeat(60)}`,
    });
    const creds = secret(namespace, `app-secret-${i}`, { username: `app-${i}`, password: `p4ss-${i}-${'x'.repeat(24)}` });
    const workload = structuredClone(template) as KubeObject & Record<string, Json>;
    workload.metadata = { ...workload.metadata, name: `app-${i}`, namespace, labels: { 'app.kubernetes.io/name': `app-${i}` } };
    const spec = workload['spec'] as Record<string, Json>;
    spec['selector'] = { matchLabels: { 'app.kubernetes.io/name': `app-${i}` } };
    const podTemplate = spec['template'] as Record<string, Json>;
    podTemplate['metadata'] = { labels: { 'app.kubernetes.io/name': `app-${i}` } };
    const podSpec = podTemplate['spec'] as Record<string, Json>;
    const container = (podSpec['containers'] as Record<string, Json>[])[0]!;
    container['envFrom'] = [{ configMapRef: { name: `app-config-${i}` } }];
    container['volumeMounts'] = [{ name: 'creds', mountPath: '/etc/creds', readOnly: true }];
    podSpec['volumes'] = [{ name: 'creds', secret: { secretName: `app-secret-${i}` } }];
    sources.set(`ConfigMap/${namespace}/app-config-${i}`, config);
    sources.set(`Secret/${namespace}/app-secret-${i}`, creds);
    objects.push(config, creds, workload);
  }
  const reader: KubeReader = {
    async readConfigSource(ref) {
      const object = sources.get(`${ref.kind}/${ref.namespace}/${ref.name}`);
      return object ? { found: true, content: configContent(ref, object as { data?: unknown; binaryData?: unknown }) } : { found: false };
    },
  };
  for (const workload of objects.filter((o) => o.kind === 'Deployment')) {
    const { value } = await computeWorkloadChecksum(workload, workload.metadata!.namespace!, reader, key, { ...DEFAULT_CHECKSUM_OPTIONS });
    const podTemplate = (workload as Record<string, Json>)['spec'] as Record<string, Record<string, Record<string, Json>>>;
    podTemplate['template']!['metadata']!['annotations'] = { [DEFAULT_CHECKSUM_ANNOTATION]: value! };
  }
  return objects;
}

// ---- the scenarios ----

/**
 * The applicationsets CRD as a CRD that has accumulated served versions: its schema repeated for
 * `v1alpha1` (stored), `v1beta1` and `v1` (as multi-version CRDs carry one schema per version).
 * With the managedFields of the Argo CD apply that makes a 1.5 MiB object, etcd's object limit,
 * so its UPDATE review (object and oldObject) is the largest the API server sends: ~3 MiB.
 */
function multiVersionCrd(crd: KubeObject): KubeObject {
  const copy = structuredClone(crd) as KubeObject & Record<string, Json>;
  const spec = copy['spec'] as Record<string, Json>;
  const [first] = spec['versions'] as Record<string, Json>[];
  spec['versions'] = ['v1alpha1', 'v1beta1', 'v1'].map((name) => ({ ...structuredClone(first!), name, storage: name === 'v1alpha1', served: true }));
  return copy;
}

export function buildScenarios(): Scenario[] {
  const crb = corpusObject('argocd-install.yaml', 'ClusterRoleBinding', 'argocd-application-controller');
  const deployment = asStored(checksumDeployment(), ARGO_MANAGER, 51_007);
  const service = corpusObject('kube-state-metrics-standard/service.yaml', 'Service', 'kube-state-metrics');
  const crd = corpusObject('argocd-install.yaml', 'CustomResourceDefinition', 'applicationsets.argoproj.io');
  return [
    {
      id: 'owner',
      title: 'ClusterRoleBinding UPDATE: tagOwner (mutate) + denyDuplicateOwner (validate)',
      requests: ownedUpdate(crb, 'argocd', 'owner'),
      apiReadsPerCycle: 0,
      defaultConcurrency: [50, 200, 500],
    },
    {
      id: 'checksum',
      title: 'Deployment CREATE: stampConfigChecksum over 2 ConfigMaps + 1 Secret (3 API reads)',
      requests: [
        {
          path: '/mutate',
          webhook: 'workloads',
          body: body(deployment, { operation: 'CREATE', namespace: CHECKSUM_NAMESPACE, seed: 'checksum' }),
          expect: { patch: true },
        },
      ],
      apiReadsPerCycle: 3,
      defaultConcurrency: [50, 200, 500],
    },
    {
      id: 'fastpath',
      title: 'Service CREATE: no rule matches (fast path)',
      requests: [
        {
          path: '/mutate',
          // No shipped webhook sends Services: the call stands for any request no rule selects.
          webhook: 'owners',
          body: body(asStored(service, ARGO_MANAGER, 51_100), { operation: 'CREATE', seed: 'fastpath' }),
          expect: { patch: false },
        },
      ],
      apiReadsPerCycle: 0,
      defaultConcurrency: [50, 200, 500],
    },
    {
      id: 'large',
      title: 'CustomResourceDefinition UPDATE (applicationsets.argoproj.io, managedFields, status): mutate + validate',
      requests: ownedUpdate(crd, 'argocd', 'large'),
      apiReadsPerCycle: 0,
      // An Argo CD sync of many big CRDs at once; more connections only queue longer.
      defaultConcurrency: [50, 200],
    },
    {
      id: 'xlarge',
      title: 'CustomResourceDefinition UPDATE of a 1.5 MiB object (applicationsets.argoproj.io served in 3 versions): mutate + validate',
      requests: ownedUpdate(multiVersionCrd(crd), 'argocd', 'xlarge'),
      apiReadsPerCycle: 0,
      defaultConcurrency: [20],
    },
  ];
}

// ---- rules ----

export interface BenchRules {
  text: string;
  /** Set when the default rules had no stampConfigChecksum rule and the bench added one. */
  addedChecksumRule: boolean;
}

/** The stamp-config-checksum rule docs/config-checksum.md describes. */
const CHECKSUM_RULE = {
  name: 'stamp-config-checksum',
  match: {
    kinds: [
      { group: 'apps', kind: 'Deployment' },
      { group: 'apps', kind: 'StatefulSet' },
      { group: 'apps', kind: 'DaemonSet' },
      { group: 'batch', kind: 'CronJob' },
      { group: 'argoproj.io', kind: 'Rollout' },
    ],
    operations: ['CREATE', 'UPDATE'],
  },
  action: { type: 'stampConfigChecksum' },
  mode: 'enforce',
  onError: 'allow',
};

/**
 * The shipped default rules, unchanged when they already stamp config checksums; otherwise with
 * the documented stamp-config-checksum rule appended (scenario 2 needs it).
 */
export function benchRules(defaultRulesText: string): BenchRules {
  const doc = parse(defaultRulesText) as { rules?: { action?: { type?: string } }[] };
  if (doc.rules?.some((rule) => rule.action?.type === 'stampConfigChecksum')) return { text: defaultRulesText, addedChecksumRule: false };
  return { text: stringify({ ...doc, rules: [...(doc.rules ?? []), CHECKSUM_RULE] }), addedChecksumRule: true };
}

/** The wgpolicyk8s.io report CRDs (unmodified corpus copies), so the controller's leader writes reports as on a Kyverno cluster. */
export function reportCrds(): KubeObject[] {
  return ['wgpolicyk8s.io_clusterpolicyreports.yaml', 'wgpolicyk8s.io_policyreports.yaml'].map(
    (file) => parse(readFileSync(join(CORPUS_DIR, 'report-crds', file), 'utf8')) as KubeObject,
  );
}

/**
 * What the cluster scan reads besides the workloads, shaped like an Argo CD cluster: one
 * Application per namespace (in `argocd`) whose `status.resources` lists that namespace's
 * Deployments, ConfigMaps and Secrets, and one ClusterRoleBinding every Application renders, so
 * the scan's claims index holds every workload and the shared-object check has its seed case.
 */
export function controllerScanObjects(workloads: readonly KubeObject[]): KubeObject[] {
  const byNamespace = new Map<string, Record<string, string>[]>();
  for (const object of workloads) {
    const namespace = object.metadata!.namespace!;
    const [group, version] = object.apiVersion!.includes('/') ? object.apiVersion!.split('/') : ['', object.apiVersion!];
    const entries = byNamespace.get(namespace) ?? [];
    entries.push({ group: group!, version: version!, kind: object.kind!, namespace, name: object.metadata!.name!, status: 'Synced' });
    byNamespace.set(namespace, entries);
  }
  const shared = { group: 'rbac.authorization.k8s.io', version: 'v1', kind: 'ClusterRoleBinding', name: 'pre-checker-binding', status: 'Synced' };
  const applications: KubeObject[] = [...byNamespace].map(([namespace, resources]) => ({
    apiVersion: 'argoproj.io/v1alpha1',
    kind: 'Application',
    metadata: { name: namespace, namespace: 'argocd' },
    spec: { project: 'default', destination: { server: 'https://kubernetes.default.svc', namespace }, source: { repoURL: 'https://git.example/apps.git', path: namespace } },
    status: { sync: { status: 'Synced' }, resources: [...resources, shared] },
  }) as KubeObject);
  const binding: KubeObject = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: 'pre-checker-binding', annotations: { 'argocd.argoproj.io/tracking-id': `team-0:rbac.authorization.k8s.io/ClusterRoleBinding:team-0/pre-checker-binding` } },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' },
    subjects: [{ kind: 'ServiceAccount', name: 'default', namespace: 'team-0' }],
  } as KubeObject;
  return [...applications, binding];
}
