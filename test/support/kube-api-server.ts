import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { KubeObject } from '../../src/api/types.js';
import { parse as parseYaml } from 'yaml';
import { writeKubeconfig } from './kubeconfig.js';
import { DEFAULT_RESOURCES, expiredStatus, KubeStore, qualified, status, type ApiAnswer, type ResourceType, type StoredEvent, type Status } from './kube-store.js';
import { testTls } from './tls.js';

/**
 * A small HTTPS server that speaks the Kubernetes REST API for what gitops-guard uses, so tests
 * run the real @kubernetes/client-node against it: GET of namespaced objects (core and named
 * groups), LIST of namespaced and cluster-wide collections (with the list's resourceVersion;
 * paged with `limit`/`continue`, expired continue tokens answered `410 Expired`; equality label
 * selectors; `PartialObjectMetadataList` when the client asks for metadata only),
 * WATCH streams (newline-delimited events after a resourceVersion, from the store's bounded
 * history; an expired resourceVersion gets a `410 Expired` ERROR event like the real API server),
 * PATCH (JSON or strategic merge patch) with a `metadata.resourceVersion` precondition, server-side
 * apply (`application/apply-patch+yaml`, for objects one field manager owns whole), POST
 * (create, 409 AlreadyExists), PUT (replace, 409 Conflict on a stale resourceVersion) and DELETE,
 * API discovery (`/api` the core version, `/apis` the groups, `/api/v1` and `/apis/{group}/{version}`
 * exactly the resources served: enough for kubectl's resource mapping), bearer-token authentication, real `Status` bodies, programmable faults and a request
 * log. What it serves lives in a KubeStore (kube-store.ts: objects, resourceVersions, CRDs);
 * this file is the HTTP around it. `ARGOCD_CLUSTER_RESOURCES` shapes it like a cluster with Argo
 * CD but without Argo Rollouts.
 */

/** A PATCH the server applied (or refused), for assertions. */
export interface RecordedPatch {
  path: string;
  contentType: string;
  fieldManager?: string;
  body: unknown;
  /** HTTP status of the answer. */
  status: number;
  /** `force=true` (server-side apply). */
  force?: boolean;
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
  /** Common name of the verified client certificate the caller presented (servers started with `clientCaPem`). */
  clientCertificate?: string;
  /** Set when the client went away before the answer was complete (e.g. it timed out). */
  abandoned?: boolean;
  /** Request body (parsed JSON when it is JSON), for POST, PUT and PATCH. */
  body?: unknown;
  /** The Accept header, when one was sent. */
  accept?: string;
}

export interface KubeApiServerOptions {
  token?: string;
  resources?: readonly ResourceType[];
  /** How many store events WATCH can replay; older resourceVersions get 410 Expired (default 1000). */
  historyLimit?: number;
  /** Also authenticate callers by a client certificate this CA signed (as kube-apiserver's --client-ca-file). */
  clientCaPem?: string;
}

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

/** `/api/v1/...` (core group) or `/apis/{group}/{version}/...`: the group, version and the segments after the version. */
function splitApiPath(path: string): { group: string; version: string; rest: string[] } | undefined {
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'api' && parts[1] === 'v1') return { group: '', version: 'v1', rest: parts.slice(2) };
  if (parts[0] === 'apis' && parts.length >= 3) return { group: parts[1]!, version: parts[2]!, rest: parts.slice(3) };
  return undefined;
}

export class KubeApiServer {
  readonly requests: RecordedRequest[] = [];
  /** Everything the server serves. */
  readonly store: KubeStore;
  private readonly faults: ArmedFault[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly cleanups: (() => void)[] = [];
  private closing = false;
  private readonly watches = new Set<OpenWatch>();
  /** Every PATCH, in order. */
  readonly patches: RecordedPatch[] = [];

  private constructor(
    private readonly server: Server,
    readonly url: string,
    readonly token: string,
    readonly caPem: string,
    resources: readonly ResourceType[],
    historyLimit: number,
  ) {
    this.store = new KubeStore(resources, historyLimit);
    this.store.listen({
      changed: (event) => {
        for (const watch of this.watches) {
          if (watch.group === event.group && watch.plural === event.plural && (watch.namespace === undefined || watch.namespace === event.namespace)) {
            writeEvent(watch.res, event.type, event.object);
          }
        }
      },
      unserved: (resource) => {
        for (const watch of [...this.watches]) {
          if (watch.group !== resource.group || watch.plural !== resource.plural) continue;
          this.watches.delete(watch);
          watch.res.end();
        }
      },
    });
  }

  static async start(options: KubeApiServerOptions = {}): Promise<KubeApiServer> {
    const tls = testTls();
    const token = options.token ?? randomBytes(16).toString('hex');
    let instance: KubeApiServer | undefined;
    const clientAuth = options.clientCaPem ? { ca: options.clientCaPem, requestCert: true, rejectUnauthorized: false } : {};
    const server = createServer({ cert: tls.certPem, key: tls.keyPem, ...clientAuth }, (req, res) => instance!.handle(req, res));
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

  /** Creates or replaces an object; returns the stored copy (with resourceVersion, uid, creationTimestamp). */
  put(object: KubeObject): KubeObject {
    return this.store.put(object);
  }

  get(apiVersion: string, kind: string, namespace: string, name: string): KubeObject | undefined {
    return this.store.get(apiVersion, kind, namespace, name);
  }

  delete(apiVersion: string, kind: string, namespace: string, name: string): boolean {
    return this.store.delete(apiVersion, kind, namespace, name);
  }

  /** Every stored object of a kind (all namespaces unless one is given), sorted by namespace and name. */
  list(apiVersion: string, kind: string, namespace?: string): KubeObject[] {
    return this.store.list(apiVersion, kind, namespace);
  }

  /** The store's current resourceVersion (what a LIST reports). */
  get currentResourceVersion(): string {
    return this.store.currentResourceVersion;
  }

  /** The store's change history that WATCH replays (oldest first). */
  get events(): readonly StoredEvent[] {
    return this.store.events;
  }

  // ---- watch control ----

  /** Forgets the change history: a WATCH from any resourceVersion seen so far gets 410 Expired. */
  compact(): void {
    this.store.compact();
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
      writeEvent(watch.res, 'ERROR', expiredStatus(this.store.compactedBelow));
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
    const socket = req.socket as TLSSocket;
    // A resumed TLS session reports `authorized` without any certificate: a verified peer certificate counts, nothing else.
    const peer = socket.authorized ? socket.getPeerCertificate() : undefined;
    const clientCertificate = typeof peer?.subject?.CN === 'string' ? peer.subject.CN : undefined;
    const authorized = req.headers.authorization === `Bearer ${this.token}` || clientCertificate !== undefined;
    const record: RecordedRequest = {
      method,
      path: url.pathname,
      query: url.search,
      authorized,
      ...(clientCertificate ? { clientCertificate } : {}),
      ...(req.headers.accept ? { accept: req.headers.accept } : {}),
    };
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
          this.serveCollection(method, url, collection, body, req, res);
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

  /**
   * `/api/v1/namespaces/{ns}/{plural}/{name}`, `/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}`,
   * or `/apis/{group}/{version}/{plural}/{name}` for cluster-scoped resources.
   */
  private route(path: string): Target | undefined {
    const split = splitApiPath(path);
    if (!split) return undefined;
    const { group, version, rest } = split;
    if (rest.length === 2) {
      const resource = this.store.served(group, version, rest[0]!);
      return resource && !resource.namespaced ? { resource, namespace: '', name: rest[1]! } : undefined;
    }
    if (rest.length !== 4 || rest[0] !== 'namespaces') return undefined;
    const [, namespace, plural, name] = rest as [string, string, string, string];
    const resource = this.store.served(group, version, plural);
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
    const resource = this.store.served(group, version, plural);
    if (!resource || (namespace !== undefined && !resource.namespaced)) return undefined;
    return { resource, namespace };
  }

  /**
   * `/api`: the core group's one version (kubectl maps `v1` kinds, `List` included, only once it
   * has read it); `/apis`: every group served, with its versions; `/api/v1` and `/apis/{group}/{version}`: an
   * APIResourceList of exactly the resources served there (404 when none is).
   */
  private discovery(path: string): unknown {
    const parts = path.split('/').filter(Boolean);
    if (parts.length === 1 && parts[0] === 'api') {
      return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: new URL(this.url).host }] };
    }
    if (parts.length === 1 && parts[0] === 'apis') {
      return {
        kind: 'APIGroupList',
        apiVersion: 'v1',
        groups: [...this.store.servedGroups()].map(([name, versions]) => ({
          name,
          versions: versions.map((version) => ({ groupVersion: `${name}/${version}`, version })),
          preferredVersion: { groupVersion: `${name}/${versions[0]}`, version: versions[0] },
        })),
      };
    }
    if (parts.length === 2 && parts[0] === 'api' && parts[1] === 'v1') parts.splice(0, 2, 'apis', '', 'v1');
    if (parts.length !== 3 || parts[0] !== 'apis') return undefined;
    const [, group, version] = parts as [string, string, string];
    const resources = this.store.servedIn(group, version);
    if (resources.length === 0) return undefined;
    return {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: group ? `${group}/${version}` : version,
      resources: resources.map((r) => ({
        name: r.plural,
        singularName: r.kind.toLowerCase(),
        namespaced: r.namespaced,
        kind: r.kind,
        verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
      })),
    };
  }

  private serveCollection(method: string, url: URL, target: CollectionTarget, body: unknown, req: IncomingMessage, res: ServerResponse): void {
    const { resource, namespace } = target;
    if (method === 'GET' && ['true', '1'].includes(url.searchParams.get('watch') ?? '')) {
      this.serveWatch(url, target, res);
      return;
    }
    if (method === 'GET') {
      const limit = url.searchParams.get('limit');
      const accept = String(req.headers.accept ?? '');
      answer(
        res,
        this.store.listAnswer(resource, namespace, {
          ...(limit !== null ? { limit: Number(limit) } : {}),
          ...(url.searchParams.get('continue') ? { continue: url.searchParams.get('continue')! } : {}),
          ...(url.searchParams.get('labelSelector') ? { labelSelector: url.searchParams.get('labelSelector')! } : {}),
          // The first media type the client accepts decides, as the API server's negotiation does.
          metadataOnly: /^application\/json;[^,]*\bas=PartialObjectMetadataList\b/.test(accept),
        }),
      );
      return;
    }
    if (method === 'POST' && (namespace !== undefined || !resource.namespaced)) {
      answer(res, this.store.create(resource, namespace ?? '', body));
      return;
    }
    send(res, 405, status(405, 'the server does not allow this method on the requested resource'));
  }

  private serveWatch(url: URL, target: CollectionTarget, res: ServerResponse): void {
    const from = url.searchParams.get('resourceVersion');
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const { resource, namespace } = target;
    const matches = (e: StoredEvent) => e.group === resource.group && e.plural === resource.plural && (namespace === undefined || e.namespace === namespace);
    if (from && from !== '0') {
      const since = Number(from);
      if (!Number.isFinite(since) || since < this.store.compactedBelow) {
        writeEvent(res, 'ERROR', expiredStatus(this.store.compactedBelow));
        res.end();
        return;
      }
      for (const event of this.store.events) if (event.resourceVersion > since && matches(event)) writeEvent(res, event.type, event.object);
    } else {
      // No resourceVersion: the current state as ADDED events, then changes.
      for (const object of this.store.collection(resource, namespace)) writeEvent(res, 'ADDED', object);
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
    switch (method) {
      case 'GET':
        answer(res, this.store.read(resource, namespace, name));
        return;
      case 'PUT':
        answer(res, this.store.replace(resource, namespace, name, body));
        return;
      case 'PATCH': {
        const contentType = String(req.headers['content-type'] ?? '').split(';')[0]!.trim();
        const fieldManager = url.searchParams.get('fieldManager') ?? undefined;
        const recorded: RecordedPatch = { path, contentType, body, status: 0, ...(fieldManager ? { fieldManager } : {}), ...(url.searchParams.get('force') === 'true' ? { force: true } : {}) };
        this.patches.push(recorded);
        if (contentType === 'application/apply-patch+yaml') {
          let applied: unknown;
          try {
            applied = typeof body === 'string' ? parseYaml(body) : body;
          } catch {
            applied = undefined;
          }
          const result = this.store.serverSideApply(resource, namespace, name, applied, fieldManager);
          recorded.status = result.code;
          answer(res, result);
          return;
        }
        if (contentType !== 'application/merge-patch+json' && contentType !== 'application/strategic-merge-patch+json') {
          recorded.status = 415;
          send(res, 415, status(415, `the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json`));
          return;
        }
        const result = this.store.patch(resource, namespace, name, body);
        recorded.status = result.code;
        answer(res, result);
        return;
      }
      case 'DELETE':
        answer(res, this.store.remove(resource, namespace, name));
        return;
      default:
        send(res, 405, status(405, `the server does not allow this method on the requested resource`));
    }
  }
}

function writeEvent(res: ServerResponse, type: string, object: unknown): void {
  if (!res.writableEnded && !res.destroyed) res.write(`${JSON.stringify({ type, object })}\n`);
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

function answer(res: ServerResponse, result: ApiAnswer): void {
  send(res, result.code, result.body);
}
