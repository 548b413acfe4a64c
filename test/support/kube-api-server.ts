import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KubeObject } from '../../src/api/types.js';
import { writeKubeconfig } from './kubeconfig.js';
import { testTls } from './tls.js';

/**
 * A small HTTPS server that speaks the Kubernetes REST API for what gitops-guard uses, so tests
 * run the real @kubernetes/client-node against it: GET of namespaced objects (core and named
 * groups), LIST of namespaced and cluster-wide collections (with the list's resourceVersion),
 * WATCH streams (newline-delimited events after a resourceVersion, from a bounded history; an
 * expired resourceVersion gets a `410 Expired` ERROR event like the real API server), PATCH
 * (JSON merge patch; a strategic merge patch is treated the same, which is exact for the maps
 * gitops-guard patches) with a `metadata.resourceVersion` precondition, POST (create, 409
 * AlreadyExists) and PUT (replace, 409 Conflict on a stale resourceVersion), API group discovery
 * per group-version (`/apis/{group}/{version}` lists exactly the resources served),
 * CustomResourceDefinitions that add (and, deleted, remove) resources at run time like the API
 * server's apiextensions, bearer-token authentication, real `Status` bodies, programmable faults
 * and a request log. Objects live in one generic store keyed by group, resource, namespace and
 * name, with a cluster-wide resourceVersion counter. `ARGOCD_CLUSTER_RESOURCES` shapes it like a
 * cluster with Argo CD but without Argo Rollouts.
 */

/** A resource type the server knows: how kinds map to URL plurals. */
export interface ResourceType {
  group: string;
  /** Default: the group's version in GROUP_VERSIONS (v1 when absent). */
  version?: string;
  kind: string;
  plural: string;
  namespaced: boolean;
}

export const DEFAULT_RESOURCES: readonly ResourceType[] = [
  { group: '', kind: 'ConfigMap', plural: 'configmaps', namespaced: true },
  { group: '', kind: 'Secret', plural: 'secrets', namespaced: true },
  { group: 'apps', kind: 'Deployment', plural: 'deployments', namespaced: true },
  { group: 'apps', kind: 'StatefulSet', plural: 'statefulsets', namespaced: true },
  { group: 'apps', kind: 'DaemonSet', plural: 'daemonsets', namespaced: true },
  { group: 'batch', kind: 'CronJob', plural: 'cronjobs', namespaced: true },
  { group: 'argoproj.io', kind: 'Rollout', plural: 'rollouts', namespaced: true },
  { group: 'coordination.k8s.io', kind: 'Lease', plural: 'leases', namespaced: true },
  { group: '', kind: 'Event', plural: 'events', namespaced: true },
];

/** The version of each group's built-in resources (discovery and list `apiVersion`). */
const GROUP_VERSIONS: Record<string, string> = {
  '': 'v1',
  apps: 'v1',
  batch: 'v1',
  'argoproj.io': 'v1alpha1',
  'coordination.k8s.io': 'v1',
  'events.k8s.io': 'v1',
  'apiextensions.k8s.io': 'v1',
};

function versionOf(resource: ResourceType): string {
  return resource.version ?? GROUP_VERSIONS[resource.group] ?? 'v1';
}

function apiVersionOf(resource: ResourceType): string {
  return resource.group ? `${resource.group}/${versionOf(resource)}` : versionOf(resource);
}

export const CRD_RESOURCE: ResourceType = { group: 'apiextensions.k8s.io', kind: 'CustomResourceDefinition', plural: 'customresourcedefinitions', namespaced: false };

/**
 * A cluster with Argo CD installed and no Argo Rollouts: `argoproj.io/v1alpha1` is served (with
 * Applications and AppProjects) but lists no `rollouts`; CRDs can be created at run time.
 */
export const ARGOCD_CLUSTER_RESOURCES: readonly ResourceType[] = [
  ...DEFAULT_RESOURCES.filter((r) => r.kind !== 'Rollout'),
  { group: 'argoproj.io', kind: 'Application', plural: 'applications', namespaced: true },
  { group: 'argoproj.io', kind: 'AppProject', plural: 'appprojects', namespaced: true },
  CRD_RESOURCE,
];

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

/** The resource types a CustomResourceDefinition serves (one per served version). */
function crdResources(crd: KubeObject): ResourceType[] {
  const spec = (crd['spec'] ?? {}) as { group?: unknown; scope?: unknown; names?: { kind?: unknown; plural?: unknown }; versions?: { name?: unknown; served?: unknown }[] };
  const { group, names } = spec;
  if (typeof group !== 'string' || typeof names?.kind !== 'string' || typeof names.plural !== 'string' || !Array.isArray(spec.versions)) {
    throw new Error('test API server: a CustomResourceDefinition needs spec.group, spec.names.kind/plural and spec.versions');
  }
  return spec.versions
    .filter((v) => v.served !== false && typeof v.name === 'string')
    .map((v) => ({ group, version: v.name as string, kind: names.kind as string, plural: names.plural as string, namespaced: spec.scope !== 'Cluster' }));
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** One change in the store, as WATCH streams it. */
export interface StoredEvent {
  type: WatchEventType;
  resourceVersion: number;
  group: string;
  plural: string;
  namespace: string;
  object: KubeObject;
}

/** A PATCH the server applied (or refused), for assertions. */
export interface RecordedPatch {
  path: string;
  contentType: string;
  fieldManager?: string;
  body: unknown;
  /** HTTP status of the answer. */
  status: number;
}

/** What to do to matching requests instead of (or before) answering normally. */
export interface Fault {
  /** Answer with this HTTP status and a matching `Status` body. */
  status?: number;
  /** Wait this long first (then answer normally, or with `status`). */
  latencyMs?: number;
  /** Drop the connection without an answer (after `latencyMs`). */
  destroy?: boolean;
  /** Send this JSON body instead of the stored object or the Status (with `status`, default 200). */
  body?: unknown;
  /** Apply to this many matching requests, then disappear (default: until cleared). */
  times?: number;
}

export interface FaultMatch {
  method?: string;
  /** Exact request path (no query), or a pattern tested against it. */
  path: string | RegExp;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: string;
  authorized: boolean;
  /** Set when the client went away before the answer was complete (e.g. it timed out). */
  abandoned?: boolean;
  /** Request body (parsed JSON when it is JSON), for POST, PUT and PATCH. */
  body?: unknown;
}

export interface KubeApiServerOptions {
  token?: string;
  resources?: readonly ResourceType[];
  /** How many store events WATCH can replay; older resourceVersions get 410 Expired (default 1000). */
  historyLimit?: number;
}

export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure';
  message: string;
  reason: string;
  details?: { name?: string; group?: string; kind?: string };
  code: number;
}

const STATUS_REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  410: 'Expired',
  415: 'UnsupportedMediaType',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

interface Target {
  resource: ResourceType;
  namespace: string;
  name: string;
}

/** A collection: `namespace` undefined means all namespaces. */
interface CollectionTarget {
  resource: ResourceType;
  namespace: string | undefined;
}

interface OpenWatch {
  res: ServerResponse;
  group: string;
  plural: string;
  namespace: string | undefined;
}

interface ArmedFault extends Fault {
  match: FaultMatch;
  remaining: number;
}

function storeKey(group: string, plural: string, namespace: string, name: string): string {
  return `${group}/${plural}/${namespace}/${name}`;
}

function groupOf(apiVersion: string): string {
  const slash = apiVersion.indexOf('/');
  return slash === -1 ? '' : apiVersion.slice(0, slash);
}

/** `/api/v1/...` (core group) or `/apis/{group}/{version}/...`: the group, version and the segments after the version. */
function splitApiPath(path: string): { group: string; version: string; rest: string[] } | undefined {
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'api' && parts[1] === 'v1') return { group: '', version: 'v1', rest: parts.slice(2) };
  if (parts[0] === 'apis' && parts.length >= 3) return { group: parts[1]!, version: parts[2]!, rest: parts.slice(3) };
  return undefined;
}

export class KubeApiServer {
  readonly requests: RecordedRequest[] = [];
  /** The resource types served now (CRDs add and remove some at run time). */
  private readonly resources: ResourceType[];
  private readonly objects = new Map<string, KubeObject>();
  private readonly faults: ArmedFault[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly cleanups: (() => void)[] = [];
  private resourceVersion = 1000;
  private closing = false;
  /** Recent store changes, oldest first; WATCH replays from here. */
  private readonly history: StoredEvent[] = [];
  /** Watches from a resourceVersion below this get 410 Expired. */
  private compactedBelow = 0;
  private readonly watches = new Set<OpenWatch>();
  /** Every PATCH, in order. */
  readonly patches: RecordedPatch[] = [];

  private constructor(
    private readonly server: Server,
    readonly url: string,
    readonly token: string,
    readonly caPem: string,
    resources: readonly ResourceType[],
    private readonly historyLimit: number,
  ) {
    this.resources = [...resources];
  }

  static async start(options: KubeApiServerOptions = {}): Promise<KubeApiServer> {
    const tls = testTls();
    const token = options.token ?? randomBytes(16).toString('hex');
    let instance: KubeApiServer | undefined;
    const server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => instance!.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    instance = new KubeApiServer(server, `https://127.0.0.1:${port}`, token, tls.caPem, options.resources ?? DEFAULT_RESOURCES, options.historyLimit ?? 1000);
    return instance;
  }

  /** Writes a kubeconfig for this server (CA data and bearer token); removed on close(). */
  writeKubeconfig(token = this.token): string {
    const { path, cleanup } = writeKubeconfig({ server: this.url, caPem: this.caPem, token });
    this.cleanups.push(cleanup);
    return path;
  }

  // ---- the store ----

  private resourceFor(apiVersion: string | undefined, kind: string | undefined): ResourceType {
    const group = groupOf(apiVersion ?? '');
    const resource = this.resources.find((r) => r.group === group && r.kind === kind);
    if (!resource) throw new Error(`test API server: unknown kind ${apiVersion}/${kind}`);
    return resource;
  }

  /** Creates or replaces an object; returns the stored copy (with resourceVersion, uid, creationTimestamp). */
  put(object: KubeObject): KubeObject {
    const resource = this.resourceFor(object.apiVersion, object.kind);
    const name = object.metadata?.name;
    const namespace = resource.namespaced ? object.metadata?.namespace : '';
    if (!name || namespace === undefined) throw new Error('test API server: objects need metadata.name (and namespace)');
    const key = storeKey(resource.group, resource.plural, namespace, name);
    const previous = this.objects.get(key);
    const stored = structuredClone(object);
    const metadata: Record<string, unknown> = {
      ...stored.metadata,
      uid: previous?.metadata?.uid ?? randomUUID(),
      creationTimestamp: previous?.metadata?.['creationTimestamp'] ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      resourceVersion: String(++this.resourceVersion),
    };
    if (stored['spec'] !== undefined) {
      // Like the API server: generation counts spec changes (status and metadata do not count).
      const before = previous?.metadata?.['generation'];
      const changed = previous === undefined || JSON.stringify(previous['spec']) !== JSON.stringify(stored['spec']);
      metadata['generation'] = typeof before === 'number' ? before + (changed ? 1 : 0) : 1;
    }
    stored.metadata = metadata;
    const served = resource.group === CRD_RESOURCE.group && resource.plural === CRD_RESOURCE.plural ? crdResources(stored) : undefined;
    this.objects.set(key, stored);
    this.record(previous ? 'MODIFIED' : 'ADDED', resource, namespace, stored);
    // Like apiextensions once the CRD is Established: its resources are served (and discovered) from now on.
    if (served) this.serveCrd(name, served);
    return structuredClone(stored);
  }

  /** CRD name -> the resource types it added. */
  private readonly crdServes = new Map<string, ResourceType[]>();

  private serveCrd(name: string, served: ResourceType[]): void {
    this.stopServingCrd(name, served);
    for (const resource of served) {
      if (this.resources.some((r) => r.group === resource.group && versionOf(r) === versionOf(resource) && r.plural === resource.plural)) continue;
      this.resources.push(resource);
    }
    this.crdServes.set(name, served);
  }

  /**
   * A CRD deleted (or changed to serve other versions): its objects are deleted (DELETED events,
   * as the CRD's cleanup finalizer does), its open watches end, and discovery no longer lists it.
   */
  private stopServingCrd(name: string, keep: readonly ResourceType[] = []): void {
    const before = this.crdServes.get(name) ?? [];
    this.crdServes.delete(name);
    const same = (a: ResourceType, b: ResourceType) => a.group === b.group && versionOf(a) === versionOf(b) && a.plural === b.plural;
    for (const resource of before.filter((r) => !keep.some((k) => same(k, r)))) {
      const index = this.resources.findIndex((r) => same(r, resource));
      if (index !== -1) this.resources.splice(index, 1);
      if (this.resources.some((r) => r.group === resource.group && r.plural === resource.plural)) continue;
      for (const object of this.collection(resource, undefined)) this.delete(object.apiVersion ?? apiVersionOf(resource), resource.kind, object.metadata?.namespace ?? '', object.metadata?.name ?? '', resource);
      for (const watch of [...this.watches]) {
        if (watch.group !== resource.group || watch.plural !== resource.plural) continue;
        this.watches.delete(watch);
        watch.res.end();
      }
    }
  }

  get(apiVersion: string, kind: string, namespace: string, name: string): KubeObject | undefined {
    const resource = this.resourceFor(apiVersion, kind);
    const stored = this.objects.get(storeKey(resource.group, resource.plural, resource.namespaced ? namespace : '', name));
    return stored && structuredClone(stored);
  }

  delete(apiVersion: string, kind: string, namespace: string, name: string, known?: ResourceType): boolean {
    const resource = known ?? this.resourceFor(apiVersion, kind);
    const ns = resource.namespaced ? namespace : '';
    const key = storeKey(resource.group, resource.plural, ns, name);
    const previous = this.objects.get(key);
    if (!previous) return false;
    this.objects.delete(key);
    const gone = structuredClone(previous);
    gone.metadata = { ...gone.metadata, resourceVersion: String(++this.resourceVersion) };
    this.record('DELETED', resource, ns, gone);
    if (resource.group === CRD_RESOURCE.group && resource.plural === CRD_RESOURCE.plural) this.stopServingCrd(name);
    return true;
  }

  /** Every stored object of a kind (all namespaces unless one is given), sorted by namespace and name. */
  list(apiVersion: string, kind: string, namespace?: string): KubeObject[] {
    const resource = this.resourceFor(apiVersion, kind);
    return this.collection(resource, namespace).map((o) => structuredClone(o));
  }

  /** The store's current resourceVersion (what a LIST reports). */
  get currentResourceVersion(): string {
    return String(this.resourceVersion);
  }

  /** The store's change history that WATCH replays (oldest first). */
  get events(): readonly StoredEvent[] {
    return this.history;
  }

  private collection(resource: ResourceType, namespace: string | undefined): KubeObject[] {
    const prefix = `${resource.group}/${resource.plural}/${namespace === undefined ? '' : `${namespace}/`}`;
    return [...this.objects.entries()]
      .filter(([key]) => key.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, object]) => object);
  }

  private record(type: WatchEventType, resource: ResourceType, namespace: string, object: KubeObject): void {
    const event: StoredEvent = { type, resourceVersion: this.resourceVersion, group: resource.group, plural: resource.plural, namespace, object: structuredClone(object) };
    this.history.push(event);
    while (this.history.length > this.historyLimit) {
      const dropped = this.history.shift()!;
      this.compactedBelow = dropped.resourceVersion;
    }
    for (const watch of this.watches) {
      if (watch.group === event.group && watch.plural === event.plural && (watch.namespace === undefined || watch.namespace === namespace)) {
        writeEvent(watch.res, event.type, event.object);
      }
    }
  }

  // ---- watch control ----

  /** Forgets the change history: a WATCH from any resourceVersion seen so far gets 410 Expired. */
  compact(): void {
    this.history.length = 0;
    this.compactedBelow = this.resourceVersion;
  }

  /** Open WATCH streams (optionally only those on one resource plural). */
  openWatches(plural?: string): number {
    return [...this.watches].filter((w) => plural === undefined || w.plural === plural).length;
  }

  /**
   * Ends every open WATCH stream: `graceful` ends the response like an API server's watch timeout;
   * otherwise the connection is destroyed mid-stream (a dropped connection).
   */
  dropWatches(graceful = false): number {
    const open = [...this.watches];
    this.watches.clear();
    for (const watch of open) {
      if (graceful) watch.res.end();
      else watch.res.socket?.destroy();
    }
    return open.length;
  }

  /** Sends a `410 Expired` ERROR event on every open WATCH stream and ends it, as an API server does after compaction. */
  expireWatches(): number {
    const open = [...this.watches];
    this.watches.clear();
    for (const watch of open) {
      writeEvent(watch.res, 'ERROR', expiredStatus(this.compactedBelow));
      watch.res.end();
    }
    return open.length;
  }

  // ---- faults and the request log ----

  fault(match: FaultMatch, fault: Fault): void {
    this.faults.push({ ...fault, match, remaining: fault.times ?? Number.POSITIVE_INFINITY });
  }

  clearFaults(): void {
    this.faults.length = 0;
  }

  clearRequests(): void {
    this.requests.length = 0;
  }

  /** Requests with this method and path (default GET). */
  requestsTo(path: string, method = 'GET'): RecordedRequest[] {
    return this.requests.filter((r) => r.path === path && r.method === method);
  }

  async close(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.closing = true;
    this.dropWatches();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const cleanup of this.cleanups.splice(0)) cleanup();
  }

  // ---- HTTP ----

  private takeFault(method: string, path: string): ArmedFault | undefined {
    const fault = this.faults.find(
      (f) =>
        f.remaining > 0 &&
        (f.match.method ?? method) === method &&
        (typeof f.match.path === 'string' ? f.match.path === path : f.match.path.test(path)),
    );
    if (fault) fault.remaining--;
    return fault;
  }

  private later(ms: number, run: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      run();
    }, ms);
    this.timers.add(timer);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    if (this.closing) {
      req.socket.destroy();
      return;
    }
    const url = new URL(req.url ?? '/', 'https://localhost');
    const method = req.method ?? 'GET';
    const authorized = req.headers.authorization === `Bearer ${this.token}`;
    const record: RecordedRequest = { method, path: url.pathname, query: url.search, authorized };
    this.requests.push(record);
    res.on('close', () => {
      if (!res.writableFinished) record.abandoned = true;
    });
    if (method === 'GET' || method === 'DELETE' || method === 'HEAD') {
      req.resume();
      this.dispatch(req, res, url, method, authorized, undefined);
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = text;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        // kept as text; answered 400 where JSON is required
      }
      record.body = body;
      this.dispatch(req, res, url, method, authorized, body);
    });
  }

  private dispatch(req: IncomingMessage, res: ServerResponse, url: URL, method: string, authorized: boolean, body: unknown): void {
    if (!authorized) {
      send(res, 401, status(401, 'Unauthorized'));
      return;
    }
    const fault = this.takeFault(method, url.pathname);
    const answer = (): void => {
      if (res.destroyed || res.writableEnded) return;
      if (fault?.destroy) {
        req.socket.destroy();
        return;
      }
      const target = this.route(url.pathname);
      if (fault?.body !== undefined) {
        send(res, fault.status ?? 200, fault.body);
        return;
      }
      if (fault?.status) {
        send(res, fault.status, faultStatus(fault.status, method, target));
        return;
      }
      if (!target) {
        const collection = this.routeCollection(url.pathname);
        if (collection) {
          this.serveCollection(method, url, collection, body, res);
          return;
        }
        const discovery = this.discovery(url.pathname);
        if (discovery && method === 'GET') {
          send(res, 200, discovery);
          return;
        }
      }
      try {
        this.serve(method, url, target, body, req, res);
      } catch (error) {
        send(res, 500, status(500, `test API server: ${error instanceof Error ? error.message : String(error)}`));
      }
    };
    if (fault?.latencyMs) this.later(fault.latencyMs, answer);
    else answer();
  }

  /** A resource served at this group and version. */
  private served(group: string, version: string, plural: string): ResourceType | undefined {
    return this.resources.find((r) => r.group === group && versionOf(r) === version && r.plural === plural);
  }

  /**
   * `/api/v1/namespaces/{ns}/{plural}/{name}`, `/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}`,
   * or `/apis/{group}/{version}/{plural}/{name}` for cluster-scoped resources.
   */
  private route(path: string): Target | undefined {
    const split = splitApiPath(path);
    if (!split) return undefined;
    const { group, version, rest } = split;
    if (rest.length === 2) {
      const resource = this.served(group, version, rest[0]!);
      return resource && !resource.namespaced ? { resource, namespace: '', name: rest[1]! } : undefined;
    }
    if (rest.length !== 4 || rest[0] !== 'namespaces') return undefined;
    const [, namespace, plural, name] = rest as [string, string, string, string];
    const resource = this.served(group, version, plural);
    return resource?.namespaced ? { resource, namespace, name } : undefined;
  }

  /** `/api/v1[/namespaces/{ns}]/{plural}` or `/apis/{group}/{version}[/namespaces/{ns}]/{plural}`. */
  private routeCollection(path: string): CollectionTarget | undefined {
    const split = splitApiPath(path);
    if (!split) return undefined;
    const { group, version, rest } = split;
    let namespace: string | undefined;
    let plural: string;
    if (rest.length === 3 && rest[0] === 'namespaces') {
      namespace = rest[1]!;
      plural = rest[2]!;
    } else if (rest.length === 1) {
      plural = rest[0]!;
    } else {
      return undefined;
    }
    const resource = this.served(group, version, plural);
    if (!resource || (namespace !== undefined && !resource.namespaced)) return undefined;
    return { resource, namespace };
  }

  /** `/apis/{group}/{version}`: an APIResourceList of exactly the resources served there (404 when none is). */
  private discovery(path: string): unknown {
    const parts = path.split('/').filter(Boolean);
    if (parts.length !== 3 || parts[0] !== 'apis') return undefined;
    const [, group, version] = parts as [string, string, string];
    const resources = this.resources.filter((r) => r.group === group && versionOf(r) === version);
    if (resources.length === 0) return undefined;
    return {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: `${group}/${version}`,
      resources: resources.map((r) => ({
        name: r.plural,
        singularName: r.kind.toLowerCase(),
        namespaced: r.namespaced,
        kind: r.kind,
        verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
      })),
    };
  }

  private serveCollection(method: string, url: URL, target: CollectionTarget, body: unknown, res: ServerResponse): void {
    const { resource, namespace } = target;
    if (method === 'GET' && ['true', '1'].includes(url.searchParams.get('watch') ?? '')) {
      this.serveWatch(url, target, res);
      return;
    }
    if (method === 'GET') {
      send(res, 200, {
        kind: `${resource.kind}List`,
        apiVersion: apiVersionOf(resource),
        metadata: { resourceVersion: String(this.resourceVersion) },
        items: this.collection(resource, namespace),
      });
      return;
    }
    if (method === 'POST' && (namespace !== undefined || !resource.namespaced)) {
      this.create(resource, namespace ?? '', body, res);
      return;
    }
    send(res, 405, status(405, 'the server does not allow this method on the requested resource'));
  }

  private create(resource: ResourceType, namespace: string, body: unknown, res: ServerResponse): void {
    if (!isObject(body)) {
      send(res, 400, status(400, 'the body of the request was not a JSON object'));
      return;
    }
    const object = structuredClone(body) as KubeObject;
    const metadata = { ...(object.metadata ?? {}) };
    if (!metadata.name && typeof metadata.generateName === 'string') metadata.name = `${metadata.generateName}${randomBytes(3).toString('hex').slice(0, 5)}`;
    if (!metadata.name) {
      send(res, 422, status(422, `${resource.kind} "" is invalid: metadata.name: Required value: name or generateName is required`));
      return;
    }
    if (resource.namespaced && metadata.namespace !== undefined && metadata.namespace !== namespace) {
      send(res, 400, status(400, 'the namespace of the provided object does not match the namespace sent on the request'));
      return;
    }
    const name = metadata.name;
    if (this.objects.has(storeKey(resource.group, resource.plural, namespace, name))) {
      const body409 = status(409, `${qualified(resource)} "${name}" already exists`, { name, group: resource.group, kind: resource.plural });
      body409.reason = 'AlreadyExists';
      send(res, 409, body409);
      return;
    }
    delete metadata.resourceVersion;
    if (resource.namespaced) metadata.namespace = namespace;
    else delete metadata.namespace;
    send(res, 201, this.put({ ...object, apiVersion: object.apiVersion ?? apiVersionOf(resource), kind: resource.kind, metadata }));
  }

  private serveWatch(url: URL, target: CollectionTarget, res: ServerResponse): void {
    const from = url.searchParams.get('resourceVersion');
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const { resource, namespace } = target;
    const matches = (e: StoredEvent) => e.group === resource.group && e.plural === resource.plural && (namespace === undefined || e.namespace === namespace);
    if (from && from !== '0') {
      const since = Number(from);
      if (!Number.isFinite(since) || since < this.compactedBelow) {
        writeEvent(res, 'ERROR', expiredStatus(this.compactedBelow));
        res.end();
        return;
      }
      for (const event of this.history) if (event.resourceVersion > since && matches(event)) writeEvent(res, event.type, event.object);
    } else {
      // No resourceVersion: the current state as ADDED events, then changes.
      for (const object of this.collection(resource, namespace)) writeEvent(res, 'ADDED', object);
    }
    const watch: OpenWatch = { res, group: resource.group, plural: resource.plural, namespace };
    this.watches.add(watch);
    res.on('close', () => this.watches.delete(watch));
  }

  private serve(method: string, url: URL, target: Target | undefined, body: unknown, req: IncomingMessage, res: ServerResponse): void {
    const path = url.pathname;
    if (!target) {
      send(res, 404, status(404, `the server could not find the requested resource (${method} ${path})`));
      return;
    }
    const { resource, namespace, name } = target;
    const key = storeKey(resource.group, resource.plural, namespace, name);
    const object = this.objects.get(key);
    const notFound = () => send(res, 404, status(404, `${qualified(resource)} "${name}" not found`, { name, group: resource.group, kind: resource.plural }));
    const conflict = () =>
      send(
        res,
        409,
        status(409, `Operation cannot be fulfilled on ${qualified(resource)} "${name}": the object has been modified; please apply your changes to the latest version and try again`, {
          name,
          group: resource.group,
          kind: resource.plural,
        }),
      );
    switch (method) {
      case 'GET':
        if (!object) notFound();
        else send(res, 200, object);
        return;
      case 'PUT': {
        if (!isObject(body)) {
          send(res, 400, status(400, 'the body of the request was not a JSON object'));
          return;
        }
        if (!object) {
          notFound();
          return;
        }
        const replacement = structuredClone(body) as KubeObject;
        const sent = replacement.metadata?.resourceVersion;
        if (sent !== undefined && sent !== object.metadata?.resourceVersion) {
          conflict();
          return;
        }
        send(res, 200, this.put({ ...replacement, apiVersion: object.apiVersion, kind: resource.kind, metadata: { ...replacement.metadata, name, ...(resource.namespaced ? { namespace } : {}) } }));
        return;
      }
      case 'PATCH': {
        const contentType = String(req.headers['content-type'] ?? '').split(';')[0]!.trim();
        const recorded: RecordedPatch = { path, contentType, body, status: 0, ...(url.searchParams.get('fieldManager') ? { fieldManager: url.searchParams.get('fieldManager')! } : {}) };
        this.patches.push(recorded);
        const answer = (code: number, value: unknown) => {
          recorded.status = code;
          send(res, code, value);
        };
        if (contentType !== 'application/merge-patch+json' && contentType !== 'application/strategic-merge-patch+json') {
          answer(415, status(415, `the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json`));
          return;
        }
        if (!isObject(body)) {
          answer(400, status(400, 'the body of the request was not a JSON object'));
          return;
        }
        if (!object) {
          answer(404, status(404, `${qualified(resource)} "${name}" not found`, { name, group: resource.group, kind: resource.plural }));
          return;
        }
        const precondition = isObject(body['metadata']) ? body['metadata']['resourceVersion'] : undefined;
        if (precondition !== undefined && precondition !== object.metadata?.resourceVersion) {
          recorded.status = 409;
          conflict();
          return;
        }
        const merged = mergePatch(structuredClone(object), body) as KubeObject;
        merged.metadata = { ...merged.metadata, name, ...(resource.namespaced ? { namespace } : {}) };
        answer(200, this.put(merged));
        return;
      }
      case 'DELETE':
        if (!object) notFound();
        else {
          this.delete(object.apiVersion ?? '', resource.kind, namespace, name);
          send(res, 200, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name, group: resource.group, kind: resource.plural } });
        }
        return;
      default:
        send(res, 405, status(405, `the server does not allow this method on the requested resource`));
    }
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return structuredClone(patch);
  const result: Record<string, unknown> = isObject(target) ? target : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

function writeEvent(res: ServerResponse, type: string, object: unknown): void {
  if (!res.writableEnded && !res.destroyed) res.write(`${JSON.stringify({ type, object })}\n`);
}

function expiredStatus(oldest: number): Status {
  const body = status(410, `too old resource version: requested is older than ${oldest}`);
  body.reason = 'Expired';
  return body;
}

function qualified(resource: ResourceType): string {
  return resource.group ? `${resource.plural}.${resource.group}` : resource.plural;
}

function status(code: number, message: string, details?: { name: string; group: string; kind: string }): Status {
  const body: Status = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason: STATUS_REASONS[code] ?? 'Unknown', code };
  if (details) {
    // The API server leaves out an empty group.
    body.details = { name: details.name, ...(details.group ? { group: details.group } : {}), kind: details.kind };
  }
  return body;
}

/** The Status the real API server sends for these codes. */
function faultStatus(code: number, method: string, target: Target | undefined): Status {
  const name = target?.name ?? '';
  const resource = target ? qualified(target.resource) : 'resource';
  const details = target ? { name, group: target.resource.group, kind: target.resource.plural } : undefined;
  switch (code) {
    case 401:
      return status(401, 'Unauthorized');
    case 403:
      return status(
        403,
        `${resource} "${name}" is forbidden: User "system:serviceaccount:gitops-guard:gitops-guard" cannot ${method.toLowerCase()} resource "${target?.resource.plural ?? ''}" in API group "${target?.resource.group ?? ''}" in the namespace "${target?.namespace ?? ''}"`,
        details,
      );
    case 404:
      return status(404, `${resource} "${name}" not found`, details);
    case 429:
      return status(429, 'Too many requests, please try again later.', details);
    case 500:
      return status(500, 'Internal error occurred: etcdserver: request timed out', details);
    case 503:
      return status(503, 'The server is currently unable to handle the request', details);
    case 504:
      return status(504, 'Timeout: request did not complete within requested timeout - context deadline exceeded', details);
    default:
      return status(code, `HTTP ${code}`, details);
  }
}

function send(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

// ---- object builders ----

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
