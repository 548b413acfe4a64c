import { randomBytes, randomUUID } from 'node:crypto';
import type { KubeObject } from '../../src/api/types.js';

/**
 * The object store behind the test API server (kube-api-server.ts) and the in-memory fakes
 * (fake-kube.ts): objects of every served resource keyed by group, resource, namespace and name,
 * with a cluster-wide resourceVersion counter, `generation` counting spec changes, a bounded
 * change history (what WATCH replays; older resourceVersions are `410 Expired`), and
 * CustomResourceDefinitions that add (and, deleted, remove) resources at run time like the API
 * server's apiextensions. Its API operations answer like the API server does — status code and
 * object or `Status` — whatever transport carries them (HTTP, or a fake client in process).
 */

/** A resource type the store knows: how kinds map to URL plurals. */
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
  'rbac.authorization.k8s.io': 'v1',
  'admissionregistration.k8s.io': 'v1',
  'scheduling.k8s.io': 'v1',
  'storage.k8s.io': 'v1',
  'networking.k8s.io': 'v1',
};

export function versionOf(resource: ResourceType): string {
  return resource.version ?? GROUP_VERSIONS[resource.group] ?? 'v1';
}

export function apiVersionOf(resource: ResourceType): string {
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

/**
 * The cluster-scoped kinds gitops-guard's owner rules select (the shipped default rules), as a
 * cluster serves them: what a cluster scan lists besides workloads.
 */
export const OWNER_RULE_RESOURCES: readonly ResourceType[] = [
  { group: 'rbac.authorization.k8s.io', kind: 'ClusterRole', plural: 'clusterroles', namespaced: false },
  { group: 'rbac.authorization.k8s.io', kind: 'ClusterRoleBinding', plural: 'clusterrolebindings', namespaced: false },
  { group: 'admissionregistration.k8s.io', kind: 'MutatingWebhookConfiguration', plural: 'mutatingwebhookconfigurations', namespaced: false },
  { group: 'admissionregistration.k8s.io', kind: 'ValidatingWebhookConfiguration', plural: 'validatingwebhookconfigurations', namespaced: false },
  { group: 'scheduling.k8s.io', kind: 'PriorityClass', plural: 'priorityclasses', namespaced: false },
  { group: 'storage.k8s.io', kind: 'StorageClass', plural: 'storageclasses', namespaced: false },
  { group: 'networking.k8s.io', kind: 'IngressClass', plural: 'ingressclasses', namespaced: false },
];

/**
 * A cluster with Argo CD (Applications in any namespace), the kinds the default rules select,
 * CRDs that can be installed at run time (the policy report CRDs, say), and no Argo Rollouts:
 * what a cluster scan reads.
 */
export const SCANNED_CLUSTER_RESOURCES: readonly ResourceType[] = [...ARGOCD_CLUSTER_RESOURCES, ...OWNER_RULE_RESOURCES];

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

/** A `Status` body as the API server sends it. */
export function status(code: number, message: string, details?: { name: string; group: string; kind: string }): Status {
  const body: Status = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason: STATUS_REASONS[code] ?? 'Unknown', code };
  if (details) {
    // The API server leaves out an empty group.
    body.details = { name: details.name, ...(details.group ? { group: details.group } : {}), kind: details.kind };
  }
  return body;
}

export function expiredStatus(oldest: number): Status {
  const body = status(410, `too old resource version: requested is older than ${oldest}`);
  body.reason = 'Expired';
  return body;
}

/** `deployments.apps`: how the API server names a resource in messages. */
export function qualified(resource: ResourceType): string {
  return resource.group ? `${resource.plural}.${resource.group}` : resource.plural;
}

export function isObject(value: unknown): value is Record<string, unknown> {
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

function storeKey(group: string, plural: string, namespace: string, name: string): string {
  return `${group}/${plural}/${namespace}/${name}`;
}

function groupOf(apiVersion: string): string {
  const slash = apiVersion.indexOf('/');
  return slash === -1 ? '' : apiVersion.slice(0, slash);
}

/** The query of a LIST. */
export interface ListQuery {
  limit?: number;
  continue?: string;
  labelSelector?: string;
  /** `Accept: ...;as=PartialObjectMetadataList`: metadata only. */
  metadataOnly?: boolean;
}

/** What an API operation answers: an HTTP status code and its body (the object, or a Status). */
export interface ApiAnswer {
  code: number;
  body: unknown;
}

export interface StoreListener {
  /** Every change, as WATCH streams it. */
  changed?(event: StoredEvent): void;
  /** A resource is no longer served (its CRD was deleted): its watches end. */
  unserved?(resource: ResourceType): void;
}

export class KubeStore {
  /** The resource types served now (CRDs add and remove some at run time). */
  private readonly resources: ResourceType[];
  private readonly objects = new Map<string, KubeObject>();
  private resourceVersion = 1000;
  /** Recent store changes, oldest first; WATCH replays from here. */
  private readonly history: StoredEvent[] = [];
  /** Watches from a resourceVersion below this get 410 Expired. */
  private compactedBelowVersion = 0;
  private readonly listeners = new Set<StoreListener>();
  /** CRD name -> the resource types it added. */
  private readonly crdServes = new Map<string, ResourceType[]>();

  constructor(
    resources: readonly ResourceType[] = DEFAULT_RESOURCES,
    private readonly historyLimit = 1000,
  ) {
    this.resources = [...resources];
  }

  listen(listener: StoreListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // ---- resources ----

  resourceFor(apiVersion: string | undefined, kind: string | undefined): ResourceType {
    const group = groupOf(apiVersion ?? '');
    const resource = this.resources.find((r) => r.group === group && r.kind === kind);
    if (!resource) throw new Error(`test API server: unknown kind ${apiVersion}/${kind}`);
    return resource;
  }

  /** A resource served at this group and version. */
  served(group: string, version: string, plural: string): ResourceType | undefined {
    return this.resources.find((r) => r.group === group && versionOf(r) === version && r.plural === plural);
  }

  /** Every API group served (the core group left out), with its versions. */
  servedGroups(): Map<string, string[]> {
    const groups = new Map<string, string[]>();
    for (const resource of this.resources) {
      if (resource.group === '') continue;
      const versions = groups.get(resource.group) ?? [];
      if (!versions.includes(versionOf(resource))) versions.push(versionOf(resource));
      groups.set(resource.group, versions);
    }
    return groups;
  }

  /** Every resource served at this group and version. */
  servedIn(group: string, version: string): ResourceType[] {
    return this.resources.filter((r) => r.group === group && versionOf(r) === version);
  }

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
      for (const listener of this.listeners) listener.unserved?.(resource);
    }
  }

  // ---- objects ----

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

  get(apiVersion: string, kind: string, namespace: string, name: string): KubeObject | undefined {
    const resource = this.resourceFor(apiVersion, kind);
    const stored = this.find(resource, namespace, name);
    return stored && structuredClone(stored);
  }

  /** The stored object itself (not a copy). */
  private find(resource: ResourceType, namespace: string, name: string): KubeObject | undefined {
    return this.objects.get(storeKey(resource.group, resource.plural, resource.namespaced ? namespace : '', name));
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

  /** The stored objects of a collection (not copies), sorted by namespace and name. */
  collection(resource: ResourceType, namespace: string | undefined): KubeObject[] {
    const prefix = `${resource.group}/${resource.plural}/${namespace === undefined ? '' : `${namespace}/`}`;
    return [...this.objects.entries()]
      .filter(([key]) => key.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, object]) => object);
  }

  /** The store's current resourceVersion (what a LIST reports). */
  get currentResourceVersion(): string {
    return String(this.resourceVersion);
  }

  /** The store's change history that WATCH replays (oldest first). */
  get events(): readonly StoredEvent[] {
    return this.history;
  }

  /** Watches from a resourceVersion below this are expired. */
  get compactedBelow(): number {
    return this.compactedBelowVersion;
  }

  /** Forgets the change history: a WATCH from any resourceVersion seen so far gets 410 Expired. */
  compact(): void {
    this.history.length = 0;
    this.compactedBelowVersion = this.resourceVersion;
  }

  private record(type: WatchEventType, resource: ResourceType, namespace: string, object: KubeObject): void {
    const event: StoredEvent = { type, resourceVersion: this.resourceVersion, group: resource.group, plural: resource.plural, namespace, object: structuredClone(object) };
    this.history.push(event);
    while (this.history.length > this.historyLimit) {
      const dropped = this.history.shift()!;
      this.compactedBelowVersion = dropped.resourceVersion;
    }
    for (const listener of this.listeners) listener.changed?.(event);
  }

  // ---- API operations: what the API server answers ----

  private notFound(resource: ResourceType, name: string): ApiAnswer {
    return { code: 404, body: status(404, `${qualified(resource)} "${name}" not found`, { name, group: resource.group, kind: resource.plural }) };
  }

  private conflict(resource: ResourceType, name: string): ApiAnswer {
    return {
      code: 409,
      body: status(409, `Operation cannot be fulfilled on ${qualified(resource)} "${name}": the object has been modified; please apply your changes to the latest version and try again`, {
        name,
        group: resource.group,
        kind: resource.plural,
      }),
    };
  }

  /** GET of one object. */
  read(resource: ResourceType, namespace: string, name: string): ApiAnswer {
    const object = this.find(resource, namespace, name);
    return object ? { code: 200, body: object } : this.notFound(resource, name);
  }

  /**
   * GET of a collection (all namespaces when `namespace` is undefined), with the list's
   * resourceVersion; paged like the API server with `limit` and `continue` (objects in key order,
   * `remainingItemCount`), filtered by an equality `labelSelector` (`a=b,c=d`), and as
   * `PartialObjectMetadataList` when `metadataOnly`. A continue token issued before
   * `expireContinueTokens()` is answered `410 Expired`, with an inconsistent-continuation token in
   * the Status's `metadata.continue` unless that was turned off.
   */
  listAnswer(resource: ResourceType, namespace: string | undefined, options: ListQuery = {}): ApiAnswer {
    let objects = this.collection(resource, namespace);
    if (options.labelSelector) {
      const wanted = options.labelSelector.split(',').map((term) => term.split('=') as [string, string]);
      if (wanted.some((term) => term.length !== 2 || term[0] === '')) return { code: 400, body: status(400, `unable to parse requirement: ${options.labelSelector}`) };
      objects = objects.filter((o) => wanted.every(([key, value]) => o.metadata?.labels?.[key] === value));
    }
    let after: string | undefined;
    if (options.continue !== undefined) {
      let token: { k?: unknown; e?: unknown };
      try {
        token = JSON.parse(Buffer.from(options.continue, 'base64url').toString('utf8')) as { k?: unknown; e?: unknown };
      } catch {
        return { code: 400, body: status(400, 'continue key is not valid') };
      }
      if (typeof token.k !== 'string') return { code: 400, body: status(400, 'continue key is not valid') };
      if (token.e !== this.continueEpoch) {
        const body = expiredStatus(this.compactedBelowVersion);
        body.message = 'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results.';
        if (this.offerInconsistentContinue) (body as Status & { metadata: { continue?: string } }).metadata = { continue: this.continueToken(token.k) } as never;
        return { code: 410, body };
      }
      after = token.k;
    }
    const keyOf = (o: KubeObject) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
    if (after !== undefined) objects = objects.filter((o) => keyOf(o) > after!);
    const limit = options.limit && options.limit > 0 ? options.limit : objects.length;
    const page = objects.slice(0, limit);
    const rest = objects.length - page.length;
    const metadata: Record<string, unknown> = { resourceVersion: String(this.resourceVersion) };
    if (rest > 0) {
      metadata['continue'] = this.continueToken(keyOf(page.at(-1)!));
      metadata['remainingItemCount'] = rest;
    }
    const items = options.metadataOnly
      ? page.map((o) => ({ apiVersion: 'meta.k8s.io/v1', kind: 'PartialObjectMetadata', metadata: o.metadata }))
      : page;
    return {
      code: 200,
      body: options.metadataOnly
        ? { kind: 'PartialObjectMetadataList', apiVersion: 'meta.k8s.io/v1', metadata, items }
        : { kind: `${resource.kind}List`, apiVersion: apiVersionOf(resource), metadata, items },
    };
  }

  private continueEpoch = 0;
  private offerInconsistentContinue = true;

  private continueToken(lastKey: string): string {
    return Buffer.from(JSON.stringify({ k: lastKey, e: this.continueEpoch })).toString('base64url');
  }

  /**
   * Expires every continue token handed out so far, as etcd compaction does after about five
   * minutes. `offerContinue: false` answers like an API server that offers no way to carry on.
   */
  expireContinueTokens(offerContinue = true): void {
    this.continueEpoch++;
    this.offerInconsistentContinue = offerContinue;
  }

  /** The last object each field manager applied (server-side apply), by object. */
  private readonly applied = new Map<string, KubeObject>();

  /**
   * PATCH with `application/apply-patch+yaml` (server-side apply) for objects one field manager
   * owns whole, which is how gitops-guard writes its reports: creates the object when it is
   * missing (201); otherwise the fields this manager applied before and leaves out now are
   * removed, labels and annotations others set are kept, and everything applied is set. An apply
   * that changes nothing writes nothing (same resourceVersion, no watch event). Conflicts with
   * other managers' fields are not modelled (gitops-guard applies with force).
   */
  serverSideApply(resource: ResourceType, namespace: string, name: string, body: unknown, fieldManager: string | undefined): ApiAnswer {
    if (!fieldManager) return { code: 400, body: status(400, 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch') };
    if (!isObject(body)) return { code: 400, body: status(400, 'the body of the request was not a JSON or YAML object') };
    const applied = structuredClone(body) as KubeObject;
    const appliedMeta = applied.metadata ?? {};
    if (appliedMeta.name !== name || (resource.namespaced && appliedMeta.namespace !== undefined && appliedMeta.namespace !== namespace)) {
      return { code: 400, body: status(400, 'the name or namespace of the object does not match the request') };
    }
    const key = `${storeKey(resource.group, resource.plural, resource.namespaced ? namespace : '', name)}@${fieldManager}`;
    const live = this.find(resource, namespace, name);
    const previous = live ? this.applied.get(key) : undefined;
    const next: KubeObject = live ? structuredClone(live) : { apiVersion: applied.apiVersion, kind: resource.kind, metadata: { name, ...(resource.namespaced ? { namespace } : {}) } };
    for (const field of Object.keys(previous ?? {})) if (field !== 'metadata' && !(field in applied)) delete next[field];
    for (const [field, value] of Object.entries(applied)) if (field !== 'metadata') next[field] = value;
    const metadata = { ...next.metadata } as Record<string, unknown>;
    for (const map of ['labels', 'annotations'] as const) {
      const merged = { ...((metadata[map] as Record<string, string> | undefined) ?? {}) };
      for (const k of Object.keys((previous?.metadata?.[map] as Record<string, string> | undefined) ?? {})) if (!(k in ((appliedMeta[map] as object | undefined) ?? {}))) delete merged[k];
      Object.assign(merged, (appliedMeta[map] as Record<string, string> | undefined) ?? {});
      if (Object.keys(merged).length > 0) metadata[map] = merged;
      else delete metadata[map];
    }
    next.metadata = metadata;
    this.applied.set(key, applied);
    if (live && JSON.stringify(next) === JSON.stringify(live)) return { code: 200, body: live };
    return { code: live ? 200 : 201, body: this.put(next) };
  }

  /** POST: 409 AlreadyExists for a name in use; `generateName` is honoured. */
  create(resource: ResourceType, namespace: string, body: unknown): ApiAnswer {
    if (!isObject(body)) return { code: 400, body: status(400, 'the body of the request was not a JSON object') };
    const object = structuredClone(body) as KubeObject;
    const metadata = { ...(object.metadata ?? {}) };
    if (!metadata.name && typeof metadata.generateName === 'string') metadata.name = `${metadata.generateName}${randomBytes(3).toString('hex').slice(0, 5)}`;
    if (!metadata.name) return { code: 422, body: status(422, `${resource.kind} "" is invalid: metadata.name: Required value: name or generateName is required`) };
    if (resource.namespaced && metadata.namespace !== undefined && metadata.namespace !== namespace) {
      return { code: 400, body: status(400, 'the namespace of the provided object does not match the namespace sent on the request') };
    }
    const name = metadata.name;
    if (this.find(resource, namespace, name)) {
      const body409 = status(409, `${qualified(resource)} "${name}" already exists`, { name, group: resource.group, kind: resource.plural });
      body409.reason = 'AlreadyExists';
      return { code: 409, body: body409 };
    }
    delete metadata.resourceVersion;
    if (resource.namespaced) metadata.namespace = namespace;
    else delete metadata.namespace;
    return { code: 201, body: this.put({ ...object, apiVersion: object.apiVersion ?? apiVersionOf(resource), kind: resource.kind, metadata }) };
  }

  /** PUT: 409 Conflict on a stale `metadata.resourceVersion`. */
  replace(resource: ResourceType, namespace: string, name: string, body: unknown): ApiAnswer {
    if (!isObject(body)) return { code: 400, body: status(400, 'the body of the request was not a JSON object') };
    const object = this.find(resource, namespace, name);
    if (!object) return this.notFound(resource, name);
    const replacement = structuredClone(body) as KubeObject;
    const sent = replacement.metadata?.resourceVersion;
    if (sent !== undefined && sent !== object.metadata?.resourceVersion) return this.conflict(resource, name);
    return {
      code: 200,
      body: this.put({ ...replacement, apiVersion: object.apiVersion, kind: resource.kind, metadata: { ...replacement.metadata, name, ...(resource.namespaced ? { namespace } : {}) } }),
    };
  }

  /**
   * PATCH with a JSON merge patch (a strategic merge patch is treated the same, which is exact for
   * the maps gitops-guard patches), honouring a `metadata.resourceVersion` precondition.
   */
  patch(resource: ResourceType, namespace: string, name: string, body: unknown): ApiAnswer {
    if (!isObject(body)) return { code: 400, body: status(400, 'the body of the request was not a JSON object') };
    const object = this.find(resource, namespace, name);
    if (!object) return this.notFound(resource, name);
    const precondition = isObject(body['metadata']) ? body['metadata']['resourceVersion'] : undefined;
    if (precondition !== undefined && precondition !== object.metadata?.resourceVersion) return this.conflict(resource, name);
    const merged = mergePatch(structuredClone(object), body) as KubeObject;
    merged.metadata = { ...merged.metadata, name, ...(resource.namespaced ? { namespace } : {}) };
    return { code: 200, body: this.put(merged) };
  }

  /** DELETE of one object. */
  remove(resource: ResourceType, namespace: string, name: string): ApiAnswer {
    const object = this.find(resource, namespace, name);
    if (!object) return this.notFound(resource, name);
    this.delete(object.apiVersion ?? '', resource.kind, namespace, name, resource);
    return { code: 200, body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name, group: resource.group, kind: resource.plural } } };
  }
}
