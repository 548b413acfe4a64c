import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import * as clientNode from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateCertificates, generateClientCertificates, serviceDnsNames } from '../src/certs/generate.js';
import { WORKLOAD_KINDS } from '../src/actions/checksum/pod-template.js';
import { WEBHOOK_PATHS } from '../src/server/app.js';
import { CONFIG_SOURCE_RESOURCES } from '../src/kube/client-node-reader.js';
import { CLI } from './support/cli.js';
import { httpsRequest } from './support/https-client.js';
import { configMap, deployment as kubeDeployment, rolloutCrd, secret } from './support/kube-fixtures.js';
import { KubeApiServer } from './support/kube-api-server.js';
import { DEFAULT_RESOURCES, SCANNED_CLUSTER_RESOURCES } from './support/kube-store.js';
import { CORPUS_DIR } from './support/corpus.js';
import { parse as parseYaml } from 'yaml';
import { REPORT_APIS } from '../src/report/index.js';
import { APPLICATIONS } from '../src/scan/plan.js';
import { REPORT_VERBS } from '../src/scan/report-writer.js';
import { reviewFor } from './support/review.js';
import { killServers, startServe } from './support/serve.js';
import {
  CONTROLLER,
  CONTROLLER_OVERLAYS,
  type Container,
  LEADER_ELECTION,
  OVERLAYS,
  type Overlay,
  type PodSpec,
  ROOT,
  buildOverlays,
  containerOf,
  controllerContainerOf,
  controllerDeploymentOf,
  controllerPodSpecOf,
  deploymentOf,
  flag,
  hasController,
  objects,
  only,
  podSpecOf,
  usesClientAuth,
} from './support/manifests.js';

/**
 * RBAC against the code (what the server and the controller really call, and what a running
 * server and controller really request), and both started exactly as the manifests start them.
 */

beforeAll(buildOverlays);
afterEach(() => killServers());

/** A command's own imports, from its CLI module down (relative imports only). */
function importGraph(entry: string): string[] {
  const seen = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      queue.push(join(dirname(file), match[1]!.replace(/\.js$/, '.ts')));
    }
  }
  return [...seen];
}
/** The server's own imports, from `gitops-guard serve` down. */
const serveImportGraph = () => importGraph(join(ROOT, 'src', 'cli', 'serve.ts'));

const API_METHOD = /\.(read|list|watch|create|patch|replace|delete|connect)(Namespaced)?([A-Z][A-Za-z]*?)(Status|Scale)?\(/g;
const VERBS: Record<string, string> = { read: 'get', list: 'list', watch: 'watch', create: 'create', patch: 'patch', replace: 'update', delete: 'delete', connect: 'create' };
const CORE_PLURALS: Record<string, string> = { ConfigMap: 'configmaps', Secret: 'secrets' };

/**
 * GETs sent straight over node:https (ApiGetClient, src/kube/api-get.ts) instead of through
 * client-node's API classes: the files that make them, with the resources their paths name.
 * Any other file that makes such requests fails the tests until it is added here (and to RBAC).
 */
const DIRECT_GET_FILES: Record<string, readonly string[]> = {
  [join('src', 'kube', 'client-node-reader.ts')]: Object.values(CONFIG_SOURCE_RESOURCES),
};
/** `get <resource>` for each resource a file's direct GETs reach (none when it makes none). */
function directGets(file: string, text: string): string[] {
  const where = relative(ROOT, file);
  if (where === join('src', 'kube', 'api-get.ts')) {
    // The client itself: GET only, and only paths its callers give it.
    expect([...text.matchAll(/method:\s*'([A-Z]+)'/g)].map((m) => m[1]), where).toEqual(['GET']);
    return [];
  }
  if (!/\bApiGetClient\b/.test(text)) return [];
  const resources = DIRECT_GET_FILES[where];
  expect(resources, `${where} makes direct GETs: add it and the resources it reads to this test and the RBAC`).toBeDefined();
  // Its one path: a named object of a resource from CONFIG_SOURCE_RESOURCES, no subresource.
  const paths = [...text.matchAll(/`(\/apis?\/[^`]*)`/g)].map((m) => m[1]);
  expect(paths, where).toEqual(['/api/v1/namespaces/${encodeURIComponent(ref.namespace)}/${CONFIG_SOURCE_RESOURCES[ref.kind]}/${encodeURIComponent(ref.name)}']);
  return resources!.map((resource) => `get ${resource}`);
}

interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}
const granted = (rules: PolicyRule[], group: string, resource: string, verb: string) =>
  rules.some((r) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb) && !r.resourceNames);
/** Every (verb, group, resource) a list of rules grants, as `verb group/resource` (core group: `/resource`). */
const grants = (rules: PolicyRule[]) =>
  rules.flatMap((r) => r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${v} ${g}/${res}`))));
/** The plural of each report kind, from the report CRDs (the fixtures' unmodified copies). */
const REPORT_RESOURCES = Object.values(REPORT_APIS).flatMap((api) =>
  [api.namespacedKind, api.clusterKind].map((kind) => {
    const group = api.apiVersion.split('/')[0]!;
    const file = join(CORPUS_DIR, 'report-crds', `${group}_${kind.toLowerCase()}s.yaml`);
    const crd = parseYaml(readFileSync(file, 'utf8')) as { spec: { group: string; names: { kind: string; plural: string } } };
    expect([crd.spec.group, crd.spec.names.kind]).toEqual([group, kind]);
    return `${group}/${crd.spec.names.plural}`;
  }),
);
const CONTROLLER_CLUSTER_GRANTS = [
  ...['configmaps', 'secrets'].flatMap((r) => ['get', 'list', 'watch'].map((v) => `${v} /${r}`)),
  'create /events',
  ...['apps/deployments', 'apps/statefulsets', 'apps/daemonsets', 'batch/cronjobs', 'argoproj.io/rollouts'].flatMap((r) => ['get', 'list', 'watch', 'patch'].map((v) => `${v} ${r}`)),
  // The cluster scan: the owner kinds the default rules select are only listed; Argo CD's
  // Applications listed and watched; the report kinds of both APIs listed, created and patched.
  ...[
    'rbac.authorization.k8s.io/clusterroles',
    'rbac.authorization.k8s.io/clusterrolebindings',
    'apiextensions.k8s.io/customresourcedefinitions',
    'admissionregistration.k8s.io/mutatingwebhookconfigurations',
    'admissionregistration.k8s.io/validatingwebhookconfigurations',
    'scheduling.k8s.io/priorityclasses',
    'storage.k8s.io/storageclasses',
    'networking.k8s.io/ingressclasses',
  ].map((r) => `list ${r}`),
  'list argoproj.io/applications',
  'watch argoproj.io/applications',
  ...['wgpolicyk8s.io/policyreports', 'wgpolicyk8s.io/clusterpolicyreports', 'openreports.io/reports', 'openreports.io/clusterreports'].flatMap((r) => ['list', 'create', 'patch'].map((v) => `${v} ${r}`)),
];
const CONTROLLER_LEASE_GRANTS = ['get', 'create', 'update'].map((v) => `${v} coordination.k8s.io/leases`);

/** @kubernetes/client-node API classes the controller may use, with the API group each reaches. */
const CONTROLLER_API_CLASSES: Record<string, string | 'custom-objects' | 'discovery'> = {
  ApisApi: 'discovery',
  CoreV1Api: '',
  CoordinationV1Api: 'coordination.k8s.io',
  CustomObjectsApi: 'custom-objects',
};
/** Method name -> client-node API classes (`*Api` exports) that have a method of that name. */
function clientNodeApiMethods(): Map<string, string[]> {
  const methods = new Map<string, string[]>();
  for (const [name, value] of Object.entries(clientNode)) {
    // KubernetesObjectApi's generic get/list/delete... would match any such call; its use is refused below.
    if (!/Api$/.test(name) || name === 'KubernetesObjectApi' || typeof value !== 'function' || !(value as { prototype?: object }).prototype) continue;
    for (const method of Object.getOwnPropertyNames((value as { prototype: object }).prototype)) {
      if (method === 'constructor') continue;
      methods.set(method, [...(methods.get(method) ?? []), name]);
    }
  }
  return methods;
}
const CONTROLLER_METHOD = /^(get|read|list|watch|create|patch|replace|delete|deleteCollection|connect)(Namespaced|Cluster)?([A-Z][A-Za-z]*?)(ForAllNamespaces)?(Status|Scale)?(WithHttpInfo)?$/;
const CONTROLLER_VERBS: Record<string, string> = { ...VERBS, get: 'get', deleteCollection: 'deletecollection' };
const CONTROLLER_PLURALS: Record<string, string> = { ...CORE_PLURALS, Event: 'events', Lease: 'leases' };

const resourceOf = (r: { group: string; plural: string }) => `${r.group}/${r.plural}`;

/** The (verb, group/resource) an API request needs, or 'discovery' for `/api`, `/api/v1`, `/apis` and `/apis/{group}/{version}`. */
function requestGrant(request: { method: string; path: string; query: string }): string | 'discovery' {
  if (/^\/api(\/v1)?$|^\/apis(\/[^/]+\/[^/]+)?$/.test(request.path) && request.method === 'GET') return 'discovery';
  const match = /^\/(?:api\/v1|apis\/([^/]+)\/[^/]+)(?:\/namespaces\/[^/]+)?\/([a-z]+)(?:\/([^/]+))?$/.exec(request.path);
  expect(match, `${request.method} ${request.path}: a resource path without subresource`).not.toBeNull();
  const [, group = '', resource, name] = match!;
  const watch = /(^|&)watch=(true|1)(&|$)/.test(request.query.replace(/^\?/, ''));
  const verb = { GET: name ? 'get' : watch ? 'watch' : 'list', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: name ? 'delete' : 'deletecollection' }[request.method];
  expect(verb, `${request.method} ${request.path}`).toBeDefined();
  return `${verb} ${group}/${resource}`;
}

describe('RBAC', () => {
  it('grants exactly get on configmaps and secrets, to the Deployment\'s service account', () => {
    for (const overlay of OVERLAYS) {
      const role = only(overlay, 'ClusterRole', 'gitops-guard');
      expect(role.rules).toEqual([{ apiGroups: [''], resources: ['configmaps', 'secrets'], verbs: ['get'] }]);
      expect(role.aggregationRule).toBeUndefined();
      const binding = only(overlay, 'ClusterRoleBinding', 'gitops-guard');
      expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata.name });
      const account = only(overlay, 'ServiceAccount', 'gitops-guard');
      expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: account.metadata.name, namespace: account.metadata.namespace }]);
      expect(podSpecOf(overlay).serviceAccountName).toBe(account.metadata.name);
      expect(account.metadata.namespace).toBe(deploymentOf(overlay).metadata.namespace);
      // No Role/RoleBinding anywhere but the controller's leader election: the server needs nothing else.
      const namespaced = objects(overlay).filter((o) => o.kind === 'Role' || o.kind === 'RoleBinding');
      expect(namespaced.map((o) => `${o.kind}/${o.metadata!.namespace}/${o.metadata!.name}`).sort(), overlay).toEqual(
        hasController(overlay) ? [`Role/gitops-guard/${LEADER_ELECTION}`, `RoleBinding/gitops-guard/${LEADER_ELECTION}`] : [],
      );
      // ...and nothing else is bound to the webhook's service account.
      for (const object of objects(overlay).filter((o) => o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding')) {
        if (object === binding) continue;
        expect((object as any).subjects, `${object.kind}/${object.metadata!.name}`).not.toContainEqual(expect.objectContaining({ name: account.metadata.name, namespace: account.metadata.namespace }));
      }
    }
  });

  it('grants the controller exactly its watches, patches, events, its Lease and the cluster scan\'s lists and reports, to the controller\'s service account', () => {
    for (const overlay of CONTROLLER_OVERLAYS) {
      const account = only(overlay, 'ServiceAccount', CONTROLLER);
      expect(account.metadata.namespace).toBe('gitops-guard');
      expect(controllerPodSpecOf(overlay).serviceAccountName).toBe(account.metadata.name);
      const subjects = [{ kind: 'ServiceAccount', name: account.metadata.name, namespace: account.metadata.namespace }];

      const role = only(overlay, 'ClusterRole', CONTROLLER);
      expect(role.aggregationRule).toBeUndefined();
      expect(new Set(grants(role.rules))).toEqual(new Set(CONTROLLER_CLUSTER_GRANTS));
      expect(grants(role.rules), 'no grant repeated').toHaveLength(CONTROLLER_CLUSTER_GRANTS.length);
      expect(role.rules.some((r: PolicyRule) => r.resourceNames || (r as any).nonResourceURLs)).toBe(false);
      const binding = only(overlay, 'ClusterRoleBinding', CONTROLLER);
      expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata.name });
      expect(binding.subjects).toEqual(subjects);

      // Leader election: a Role in gitops-guard's namespace (where POD_NAMESPACE puts the Lease),
      // leases only, and nothing but get/create/update.
      const leader = only(overlay, 'Role', LEADER_ELECTION);
      expect(leader.metadata.namespace).toBe(controllerDeploymentOf(overlay).metadata.namespace);
      expect(leader.rules).toEqual([{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] }]);
      expect(new Set(grants(leader.rules))).toEqual(new Set(CONTROLLER_LEASE_GRANTS));
      const leaderBinding = only(overlay, 'RoleBinding', LEADER_ELECTION);
      expect(leaderBinding.metadata.namespace).toBe(leader.metadata.namespace);
      expect(leaderBinding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: leader.metadata.name });
      expect(leaderBinding.subjects).toEqual(subjects);
    }
  });

  it('covers every Kubernetes API call in the server\'s code', () => {
    const role = only('enforce', 'ClusterRole', 'gitops-guard');
    const files = serveImportGraph();
    expect(files.map((f) => relative(ROOT, f))).toContain(join('src', 'kube', 'client-node-reader.ts'));
    const calls: string[] = [];
    for (const file of files) {
      // Comments may name APIs the code does not call.
      const text = readFileSync(file, 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/^\s*\/\/.*$/gm, '');
      if (!text.includes("'@kubernetes/client-node'")) continue;
      calls.push(...directGets(file, text));
      for (const unsupported of ['KubernetesObjectApi', 'makeInformer', 'new Watch', 'ListWatch', 'Exec(', 'PortForward']) {
        expect(text.includes(unsupported), `${relative(ROOT, file)} uses ${unsupported}: extend this test and the ClusterRole`).toBe(false);
      }
      for (const api of text.matchAll(/\b([A-Z][A-Za-z]*V\d+(?:alpha\d+|beta\d+)?Api)\b/g)) {
        expect(api[1], `${relative(ROOT, file)} uses ${api[1]}: only CoreV1Api is expected; extend this test and the ClusterRole`).toBe('CoreV1Api');
      }
      for (const [, action, , kind, subresource] of text.matchAll(API_METHOD)) {
        const resource = CORE_PLURALS[kind!];
        expect(resource, `${relative(ROOT, file)} calls ${action}${kind}: add its resource to this test and the ClusterRole`).toBeDefined();
        expect(subresource, 'no subresources').toBeUndefined();
        calls.push(`${VERBS[action!]} ${resource}`);
        expect(granted(role.rules, '', resource!, VERBS[action!]!), `ClusterRole grants ${VERBS[action!]} ${resource}`).toBe(true);
      }
    }
    expect(new Set(calls)).toEqual(new Set(['get configmaps', 'get secrets']));
  });

  it('covers every Kubernetes API call in the controller\'s code, and grants nothing it does not call', () => {
    const files = importGraph(join(ROOT, 'src', 'cli', 'controller.ts'));
    for (const file of ['leader.ts', 'reconcile.ts', 'controller.ts']) expect(files).toContain(join(ROOT, 'src', 'controller', file));
    for (const file of ['workloads.ts', 'informers.ts', 'leases.ts', 'discovery.ts', 'client-node-reader.ts']) expect(files).toContain(join(ROOT, 'src', 'kube', file));
    const apiMethods = clientNodeApiMethods();
    expect(apiMethods.get('listConfigMapForAllNamespaces')).toEqual(['CoreV1Api']);
    const workloads = WORKLOAD_KINDS.map((r) => `${r.group}/${r.plural}`);
    const calls = new Set<string>();
    const methodsSeen = new Set<string>();
    for (const file of files) {
      const where = relative(ROOT, file);
      // Comments may name APIs the code does not call.
      const text = readFileSync(file, 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/^\s*\/\/.*$/gm, '');
      if (!text.includes("'@kubernetes/client-node'")) continue;
      for (const call of directGets(file, text)) calls.add(call.replace(' ', ' /'));
      for (const unsupported of ['KubernetesObjectApi', 'makeInformer', 'new Exec(', 'new Attach(', 'new PortForward(', 'new Log(', 'new Metrics(', 'new Cp(']) {
        expect(text.includes(unsupported), `${where} uses ${unsupported}: extend this test and the controller's RBAC`).toBe(false);
      }
      for (const api of text.matchAll(/\b([A-Z][A-Za-z0-9]*Api)\b/g)) {
        if (!(api[1]! in clientNode)) continue; // gitops-guard's own classes
        expect(Object.keys(CONTROLLER_API_CLASSES), `${where} uses ${api[1]}: extend this test and the controller's RBAC`).toContain(api[1]);
      }
      const resourcesListed: string[] = [];
      for (const [, method] of text.matchAll(/\.([a-zA-Z]+)\(/g)) {
        const classes = apiMethods.get(method!);
        if (!classes) continue;
        methodsSeen.add(method!);
        if (method === 'getAPIResources' || method === 'getAPIVersions') continue; // discovery: every authenticated user may read it
        const api = classes.find((c) => c in CONTROLLER_API_CLASSES);
        expect(api, `${where} calls ${method} of ${classes.join('/')}: extend this test and the controller's RBAC`).toBeDefined();
        const parts = CONTROLLER_METHOD.exec(method!);
        expect(parts, `${where}: ${method} is not a resource call this test understands`).not.toBeNull();
        const [, action, , kind, , subresource, withHttpInfo] = parts!;
        expect(subresource, `${where}: ${method}: no subresources`).toBeUndefined();
        expect(withHttpInfo).toBeUndefined();
        const verb = CONTROLLER_VERBS[action!]!;
        let resources: string[];
        if (CONTROLLER_API_CLASSES[api!] === 'custom-objects') {
          expect(kind, method).toBe('CustomObject');
          // The generic API, called with the plurals of WORKLOAD_KINDS; Argo CD's Applications
          // are only listed and watched through it (an informer, to notice changed claims).
          resources = verb === 'list' ? [...workloads, resourceOf(APPLICATIONS)] : workloads;
        } else {
          const plural = CONTROLLER_PLURALS[kind!];
          expect(plural, `${where} calls ${method}: add its resource to this test and the controller's RBAC`).toBeDefined();
          resources = [`${CONTROLLER_API_CLASSES[api!]}/${plural}`];
        }
        for (const resource of resources) calls.add(`${verb} ${resource}`);
        if (verb === 'list') resourcesListed.push(...resources);
      }
      // An informer (ListWatch over a Watch) watches what its list function lists.
      if (/\bnew ListWatch\b/.test(text)) {
        expect(text, `${where}: the informer's Watch`).toMatch(/\b(new Watch|extends Watch)\b/);
        expect(resourcesListed.length, `${where}: informers list something`).toBeGreaterThan(0);
        for (const resource of resourcesListed) calls.add(`watch ${resource}`);
      } else {
        expect(text, `${where} watches outside an informer: extend this test`).not.toMatch(/\bnew (ListWatch|Watch)\b|\bextends Watch\b/);
      }
    }
    // Calls by URL (src/kube/raw.ts): the cluster scan's paged lists and the reports' server-side
    // apply. Which resources they reach is not in the code but in the rules and the report APIs,
    // so they are computed here: the kinds the shipped rules select (listed by the scan), Argo CD's
    // Applications, and the report kinds (REPORT_VERBS, the writer's own list).
    const read = (file: string) => readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
    const rawTransport = files.filter((f) => /\bnew RawApiClient\(/.test(read(f))).map((f) => relative(ROOT, f));
    expect(rawTransport.sort()).toEqual(['apply.ts', 'list.ts', 'objects.ts'].map((f) => join('src', 'kube', f)));
    const constructed = new Set(files.flatMap((f) => [...read(f).matchAll(/\bnew (ClientNodeObject[A-Za-z]*)\(/g)].map((m) => m[1])));
    expect(constructed, 'the controller lists and applies by URL; it reads no object by URL').toEqual(new Set(['ClientNodeObjectLister', 'ClientNodeObjectApplier']));
    const rulesMap = controllerPodSpecOf('controller').volumes!.find((v) => v.name === 'rules')!.configMap!.name;
    const rulesYaml = (only('controller', 'ConfigMap', rulesMap) as { data: Record<string, string> }).data['rules.yaml']!;
    const kinds = (parseYaml(rulesYaml) as { rules: { match: { kinds: { group: string; kind: string }[] } }[] }).rules.flatMap((r) => r.match.kinds);
    for (const { group, kind } of kinds) {
      const resource = [...DEFAULT_RESOURCES, ...SCANNED_CLUSTER_RESOURCES].find((r) => r.group === group && r.kind === kind);
      expect(resource, `the plural of ${kind}.${group}`).toBeDefined();
      calls.add(`list ${resourceOf(resource!)}`);
    }
    calls.add(`list ${resourceOf(APPLICATIONS)}`);
    for (const resource of REPORT_RESOURCES) for (const verb of REPORT_VERBS) calls.add(`${verb} ${resource}`);
    // The calls this test knows the controller makes: a rename or a new call shows up here first.
    expect([...methodsSeen].sort()).toEqual([
      'createNamespacedEvent',
      'createNamespacedLease',
      'getAPIResources',
      'getAPIVersions',
      'getNamespacedCustomObject',
      'listClusterCustomObject',
      'listConfigMapForAllNamespaces',
      'listNamespacedConfigMap',
      'listNamespacedCustomObject',
      'listNamespacedSecret',
      'listSecretForAllNamespaces',
      'patchNamespacedCustomObject',
      'readNamespacedLease',
      'replaceNamespacedLease',
    ]);
    for (const overlay of CONTROLLER_OVERLAYS) {
      const role = only(overlay, 'ClusterRole', CONTROLLER);
      const leader = only(overlay, 'Role', LEADER_ELECTION);
      for (const call of calls) {
        const [verb, groupResource] = call.split(' ') as [string, string];
        const [group, resource] = groupResource.split('/') as [string, string];
        // The Lease lives in gitops-guard's namespace: the namespaced Role, not the ClusterRole, grants it.
        const rules = group === 'coordination.k8s.io' ? leader.rules : role.rules;
        expect(granted(rules, group, resource, verb), `${overlay}: ${call} is granted`).toBe(true);
      }
      const everyGrant = [...grants(role.rules), ...grants(leader.rules)];
      expect(everyGrant.filter((g) => !calls.has(g)), `${overlay}: granted but never called`).toEqual([]);
    }
    expect(new Set(calls)).toEqual(new Set([...CONTROLLER_CLUSTER_GRANTS, ...CONTROLLER_LEASE_GRANTS]));
  });
});

// ---------------------------------------------------------------------------------------------

/** Files the Deployment mounts, written under `root` exactly where the pod would see them. */
function materialise(
  overlay: Overlay,
  root: string,
  tls: { certPem: string; keyPem: string; clientCaPem?: string },
  pod: { spec: PodSpec; container: Container; fieldRefs?: Record<string, string> } = { spec: podSpecOf(overlay), container: containerOf(overlay) },
): { args: string[]; env: Record<string, string> } {
  const { spec, container } = pod;
  const configMaps = new Map(objects(overlay).filter((o) => o.kind === 'ConfigMap').map((o) => [o.metadata!.name!, (o as any).data as Record<string, string>]));
  const secrets: Record<string, Record<string, string>> = {
    'gitops-guard-tls': { 'tls.crt': tls.certPem, 'tls.key': tls.keyPem, 'ca.crt': '' },
    'gitops-guard-checksum-key': { 'checksum.key': `${randomBytes(32).toString('hex')}\n` },
    ...(tls.clientCaPem ? { 'gitops-guard-client-ca': { 'ca.crt': tls.clientCaPem } } : {}),
  };
  const mounts = container.volumeMounts ?? [];
  for (const mount of mounts) {
    const volume = spec.volumes!.find((v) => v.name === mount.name)!;
    const data = volume.secret ? secrets[volume.secret.secretName] : configMaps.get(volume.configMap!.name);
    expect(data, `data for volume ${mount.name}`).toBeDefined();
    const items = (volume.secret ?? volume.configMap)!.items ?? Object.keys(data!).map((key) => ({ key, path: key }));
    // The kubelet's atomic-writer layout: files in a timestamped directory with the volume's
    // defaultMode (0644 when unset), `..data` linking to it, and each file linked from the mount.
    const mode = (volume.secret ?? volume.configMap)!.defaultMode ?? 0o644;
    const dir = join(root, mount.mountPath);
    const generation = '..2026_01_01_00_00_00.000000001';
    for (const item of items) {
      const file = join(dir, generation, item.path);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, data![item.key]!);
      chmodSync(file, mode);
      symlinkSync(join('..data', item.path), join(dir, item.path));
    }
    symlinkSync(generation, join(dir, '..data'));
  }
  // Absolute paths under a mount point are rewritten into `root`; the port is picked freely.
  const args = (container.args ?? []).map((arg) => {
    if (arg.startsWith('--port=')) return '--port=0';
    if (arg.startsWith('--metrics-port=')) return '--metrics-port=0';
    const [name, value] = arg.split(/=(.*)/s) as [string, string | undefined];
    if (value && mounts.some((m) => value.startsWith(`${m.mountPath}/`))) return `${name}=${join(root, value)}`;
    return arg;
  });
  const env = Object.fromEntries(
    (container.env ?? []).map((e) => {
      const fieldPath = e.valueFrom?.fieldRef?.fieldPath;
      if (fieldPath !== undefined) expect(pod.fieldRefs?.[fieldPath], `env ${e.name} from ${fieldPath}`).toBeDefined();
      return [e.name, fieldPath !== undefined ? pod.fieldRefs![fieldPath]! : (e.value ?? '')];
    }),
  );
  return { args, env };
}

describe('the server started as the manifests start it', () => {
  let api: KubeApiServer;
  beforeAll(async () => {
    api = await KubeApiServer.start();
  });
  afterAll(async () => {
    await api?.close();
  });

  const entrypoint = () => {
    const line = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
    expect(line, 'the Dockerfile has an exec-form ENTRYPOINT').not.toBeNull();
    return JSON.parse(line![1]!) as string[];
  };

  for (const overlay of ['enforce', 'audit', 'enforce-client-auth'] as const) {
    it(`comes up ready with the ${overlay} overlay's args, env and mounted files, and reads only what RBAC grants`, async () => {
      const image = entrypoint();
      expect(image.at(-1), 'the image runs `gitops-guard serve`').toBe('serve');
      expect(image.at(-2)).toMatch(/(^|\/)dist\/cli\/main\.js$/);
      const root = mkdtempSync(join(tmpdir(), 'gg-manifests-'));
      const service = only(overlay, 'Service', 'gitops-guard');
      const certs = generateCertificates({ service: service.metadata.name, namespace: service.metadata.namespace, days: 1 });
      // With caller authentication, the API server presents its client certificate; probes and Prometheus do not.
      const client = usesClientAuth(overlay) ? generateClientCertificates({ service: service.metadata.name, namespace: service.metadata.namespace, days: 1 }) : undefined;
      const { args, env } = materialise(overlay, root, { ...certs, ...(client ? { clientCaPem: client.clientCaPem } : {}) });
      const asApiServer = client ? { cert: client.certPem, key: client.keyPem } : {};
      // In-cluster credentials stand in for the Deployment's service account token.
      const server = await startServe(args, { cwd: root, env: { ...env, GITOPS_GUARD_KUBECONFIG: api.writeKubeconfig() } });

      const servername = `${service.metadata.name}.${service.metadata.namespace}.svc`;
      expect(serviceDnsNames(service.metadata.name, service.metadata.namespace)).toContain(servername);
      const container = containerOf(overlay);
      for (const probe of [container.readinessProbe!, container.livenessProbe!]) {
        const answer = await httpsRequest({ port: server.port, ca: certs.caCertPem, servername, path: probe.httpGet!.path });
        expect(answer.status, probe.httpGet!.path).toBe(200);
      }
      const metrics = await httpsRequest({ port: server.port, ca: certs.caCertPem, servername, path: '/metrics' });
      expect(metrics.body).toMatch(/^gitops_guard_certificate_expiry_seconds \d/m);
      expect(metrics.body).toMatch(/^gitops_guard_rules_loaded [1-9]/m);

      const namespace = `ns-${overlay}`;
      api.put(configMap(namespace, 'app-config', { LOG_LEVEL: 'debug' }));
      api.put(secret(namespace, 'db', { password: 'hunter2' }));
      api.clearRequests();
      const workload = {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'app', namespace },
        spec: {
          selector: { matchLabels: { app: 'app' } },
          template: {
            metadata: { labels: { app: 'app' } },
            spec: {
              containers: [
                {
                  name: 'app',
                  image: 'app:1',
                  envFrom: [{ configMapRef: { name: 'app-config' } }],
                  env: [{ name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } }],
                },
              ],
            },
          },
        },
      };
      const review = reviewFor(workload);
      if (client) {
        const refused = await httpsRequest({ port: server.port, ca: certs.caCertPem, servername, method: 'POST', path: WEBHOOK_PATHS.mutate, body: JSON.stringify(review) });
        expect(refused.status, 'a caller without the client certificate').toBe(401);
        expect(api.requests).toEqual([]);
      }
      const answer = await httpsRequest({ port: server.port, ca: certs.caCertPem, servername, method: 'POST', path: WEBHOOK_PATHS.mutate, body: JSON.stringify(review), ...asApiServer });
      const response = JSON.parse(answer.body).response;
      expect(response.allowed).toBe(true);
      if (overlay !== 'audit') {
        const patch = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8'));
        expect(JSON.stringify(patch)).toMatch(/gitops-guard\.dev(~1|\/)config-checksum.*v2:[0-9a-f]{64}/);
      } else {
        expect(response.patch, 'audit mode changes nothing').toBeUndefined();
      }

      // Every API request the server made is one the ClusterRole grants.
      const role = only(overlay, 'ClusterRole', 'gitops-guard');
      expect(api.requests.length).toBeGreaterThanOrEqual(2);
      for (const request of api.requests) {
        const match = /^\/api\/v1\/namespaces\/[^/]+\/([a-z]+)\/[^/]+$/.exec(request.path);
        expect(match, `${request.method} ${request.path} is a namespaced core GET by name`).not.toBeNull();
        expect(request.method).toBe('GET');
        expect(granted(role.rules, '', match![1]!, 'get'), `${request.method} ${request.path}`).toBe(true);
      }

      server.child.kill('SIGTERM');
      expect(await server.exited).toBe(0);
    }, 30_000);
  }
});

describe('the controller started as the manifests start it', () => {
  let api: KubeApiServer;
  let child: ChildProcess | undefined;
  beforeAll(async () => {
    // The cluster people run it on: Argo CD installed (argoproj.io/v1alpha1 served), Argo Rollouts
    // not yet, the kinds the owner rules select, and the policy report CRDs (both APIs).
    api = await KubeApiServer.start({ resources: SCANNED_CLUSTER_RESOURCES });
    for (const file of ['wgpolicyk8s.io_policyreports.yaml', 'wgpolicyk8s.io_clusterpolicyreports.yaml', 'openreports.io_reports.yaml', 'openreports.io_clusterreports.yaml']) {
      api.put(parseYaml(readFileSync(join(CORPUS_DIR, 'report-crds', file), 'utf8')));
    }
  });
  afterEach(() => {
    child?.kill('SIGKILL');
    child = undefined;
  });
  afterAll(async () => {
    await api?.close();
  });

  const httpGet = (port: number, path: string) =>
    new Promise<number>((resolve, reject) => {
      httpRequest({ host: '127.0.0.1', port, path }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      })
        .on('error', reject)
        .end();
    });
  const waitFor = async (what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 15_000) => {
    const started = Date.now();
    while (!(await condition())) {
      if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  for (const overlay of CONTROLLER_OVERLAYS) {
    it(`comes up ready with the ${overlay} overlay's command, args, env and mounted files, leads, rolls, and calls only what RBAC grants`, async () => {
      const deployment = controllerDeploymentOf(overlay);
      const container = controllerContainerOf(overlay);
      // Same program as the image's entrypoint, its `controller` command.
      const entrypoint = JSON.parse(/^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))![1]!) as string[];
      expect(container.command).toEqual([...entrypoint.slice(0, -1), 'controller']);
      expect(container.command![1]).toMatch(/(^|\/)dist\/cli\/main\.js$/);

      const root = mkdtempSync(join(tmpdir(), 'gg-manifests-controller-'));
      const podName = `${CONTROLLER}-7d9f8c6b5-x2x4q`;
      const namespace = deployment.metadata.namespace as string;
      const { args, env } = materialise(overlay, root, { certPem: '', keyPem: '' }, {
        spec: controllerPodSpecOf(overlay),
        container,
        fieldRefs: { 'metadata.namespace': namespace, 'metadata.name': podName },
      });

      // A workload the stamping rule selects, stamped with a checksum that does not match what it
      // consumes: the leader rolls it (get, patch, event).
      const ns = `ns-${overlay}-controller`;
      api.put(configMap(ns, 'app-config', { LOG_LEVEL: 'debug' }));
      api.put(secret(ns, 'db', { password: 'hunter2' }));
      api.put(
        kubeDeployment(
          ns,
          'app',
          { containers: [{ name: 'app', image: 'app:1', envFrom: [{ configMapRef: { name: 'app-config' } }], env: [{ name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } }] }] },
          { 'gitops-guard.dev/config-checksum': `v1:${'0'.repeat(64)}` },
        ),
      );
      api.clearRequests();

      expect(args.some((a) => a.startsWith('--discovery-interval-ms')), 'the manifests keep the default discovery interval').toBe(false);
      expect(args.some((a) => a.startsWith('--scan-')), 'the manifests keep the default scan interval and quiet period').toBe(false);
      child = spawn(process.execPath, [CLI, 'controller', ...args], {
        cwd: root,
        // Discovery every 200 ms instead of 30 s, so the Rollout CRD installed below is picked up
        // quickly; the first cluster scan after 100 ms instead of a minute.
        env: { ...process.env, KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '', HOME: root, ...env, GITOPS_GUARD_KUBECONFIG: api.writeKubeconfig(), GITOPS_GUARD_DISCOVERY_INTERVAL_MS: '200', GITOPS_GUARD_SCAN_COALESCE_MS: '100' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const exited = new Promise<number | null>((resolve) => child!.on('exit', (code) => resolve(code)));
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (c) => (stdout += c));
      child.stderr!.on('data', (c) => (stderr += c));
      let port = 0;
      await waitFor(`the metrics port (${stderr})`, () => {
        const line = stdout.split('\n').find((l) => l.includes('"controller metrics listening"'));
        port = line ? (JSON.parse(line) as { port: number }).port : 0;
        return port > 0;
      });

      await waitFor('/readyz 200', async () => (await httpGet(port, container.readinessProbe!.httpGet!.path)) === 200);
      expect(await httpGet(port, container.livenessProbe!.httpGet!.path)).toBe(200);
      // It leads through the Lease its Role is for: POD_NAMESPACE, --lease-name, the pod's name.
      const leaseName = flag(container, 'lease-name')!;
      await waitFor('the lease', () => (api.get('coordination.k8s.io/v1', 'Lease', namespace, leaseName) as any)?.spec?.holderIdentity === podName);
      expect(only(overlay, 'Role', LEADER_ELECTION).metadata.namespace).toBe(namespace);
      await waitFor('the rollout', () => api.patches.some((p) => p.path === `/apis/apps/v1/namespaces/${ns}/deployments/app` && p.status === 200));
      await waitFor('the event', () => api.requests.some((r) => r.method === 'POST' && r.path === `/api/v1/namespaces/${ns}/events`));
      // Argo Rollouts installed while it runs: a Rollout stamped with a wrong value is corrected.
      api.put(rolloutCrd());
      api.put({
        apiVersion: 'argoproj.io/v1alpha1',
        kind: 'Rollout',
        metadata: { name: 'canary', namespace: ns },
        spec: {
          selector: { matchLabels: { app: 'canary' } },
          template: {
            metadata: { labels: { app: 'canary' }, annotations: { 'gitops-guard.dev/config-checksum': `v1:${'0'.repeat(64)}` } },
            spec: { containers: [{ name: 'canary', image: 'canary:1', envFrom: [{ configMapRef: { name: 'app-config' } }] }] },
          },
        },
      });
      await waitFor('the Rollout rolled', () => api.patches.some((p) => p.path === `/apis/argoproj.io/v1alpha1/namespaces/${ns}/rollouts/canary` && p.status === 200));
      // The leader's cluster scan wrote its reports (wgpolicyk8s.io, preferred when both are served).
      await waitFor('the cluster report', () => api.get('wgpolicyk8s.io/v1alpha2', 'ClusterPolicyReport', '', 'gitops-guard') !== undefined);
      await waitFor('the namespace\'s report', () => api.get('wgpolicyk8s.io/v1alpha2', 'PolicyReport', ns, 'gitops-guard') !== undefined);

      // Every API request it made is one its ClusterRole (or, for the Lease, its Role) grants.
      const role = only(overlay, 'ClusterRole', CONTROLLER);
      const leader = only(overlay, 'Role', LEADER_ELECTION);
      const needed = new Set<string>();
      for (const request of api.requests) {
        expect(request.authorized, `${request.method} ${request.path}`).toBe(true);
        const grant = requestGrant(request);
        if (grant === 'discovery') continue;
        needed.add(grant);
        const [verb, groupResource] = grant.split(' ') as [string, string];
        const [group, resource] = groupResource.split('/') as [string, string];
        if (group === 'coordination.k8s.io') expect(request.path, 'the Lease is in the Role\'s namespace').toMatch(new RegExp(`^/apis/coordination\\.k8s\\.io/v1/namespaces/${leader.metadata.namespace}/leases(/|$)`));
        expect(granted(group === 'coordination.k8s.io' ? leader.rules : role.rules, group, resource, verb), `${request.method} ${request.path}${request.query} needs ${grant}`).toBe(true);
      }
      // A server-side apply that creates the object is authorized as a create too.
      for (const patch of api.patches.filter((p) => p.contentType === 'application/apply-patch+yaml' && p.status === 201)) {
        const grant = requestGrant({ method: 'PATCH', path: patch.path, query: '' }).replace(/^patch /, 'create ');
        needed.add(grant);
        const [verb, groupResource] = grant.split(' ') as [string, string];
        const [group, resource] = groupResource.split('/') as [string, string];
        expect(granted(role.rules, group, resource, verb), `${patch.path}: an apply that creates needs ${grant}`).toBe(true);
      }
      // The run exercised every kind of call the static check above found.
      for (const call of [
        'list /configmaps',
        'watch /configmaps',
        'list /secrets',
        'watch /secrets',
        'watch apps/deployments',
        'get apps/deployments',
        'patch apps/deployments',
        'list argoproj.io/rollouts',
        'watch argoproj.io/rollouts',
        'get argoproj.io/rollouts',
        'patch argoproj.io/rollouts',
        'create /events',
        'list rbac.authorization.k8s.io/clusterrolebindings',
        'list apiextensions.k8s.io/customresourcedefinitions',
        'list argoproj.io/applications',
        'watch argoproj.io/applications',
        'list wgpolicyk8s.io/policyreports',
        'list wgpolicyk8s.io/clusterpolicyreports',
        'patch wgpolicyk8s.io/policyreports',
        'create wgpolicyk8s.io/policyreports',
        'patch wgpolicyk8s.io/clusterpolicyreports',
        'create wgpolicyk8s.io/clusterpolicyreports',
        'get coordination.k8s.io/leases',
        'create coordination.k8s.io/leases',
      ]) {
        expect(needed, call).toContain(call);
      }

      child.kill('SIGTERM');
      expect(await exited, stderr).toBe(0);
      child = undefined;
      // A normal stop hands the Lease over at once.
      expect((api.get('coordination.k8s.io/v1', 'Lease', namespace, leaseName) as any).spec.holderIdentity).toBe('');
    }, 45_000);
  }
});

