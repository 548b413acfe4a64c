import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KubeObject } from '../../src/admission/types.js';
import { writeKubeconfig } from './kubeconfig.js';
import { testTls } from './tls.js';

/**
 * A small HTTPS server that speaks the Kubernetes REST API for what gitops-guard uses, so tests
 * run the real @kubernetes/client-node against it. Today: GET of namespaced objects (core and
 * named groups), bearer-token authentication, real `Status` bodies, programmable faults and a
 * request log. Objects live in one generic store keyed by group, resource, namespace and name,
 * with a cluster-wide resourceVersion counter, so LIST, WATCH and PATCH can be added on top.
 */

/** A resource type the server knows: how kinds map to URL plurals. */
export interface ResourceType {
  group: string;
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
];

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
}

export interface KubeApiServerOptions {
  token?: string;
  resources?: readonly ResourceType[];
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

export class KubeApiServer {
  readonly requests: RecordedRequest[] = [];
  private readonly objects = new Map<string, KubeObject>();
  private readonly faults: ArmedFault[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly cleanups: (() => void)[] = [];
  private resourceVersion = 1000;

  private constructor(
    private readonly server: Server,
    readonly url: string,
    readonly token: string,
    readonly caPem: string,
    private readonly resources: readonly ResourceType[],
  ) {}

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
    instance = new KubeApiServer(server, `https://127.0.0.1:${port}`, token, tls.caPem, options.resources ?? DEFAULT_RESOURCES);
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
    stored.metadata = {
      ...stored.metadata,
      uid: previous?.metadata?.uid ?? randomUUID(),
      creationTimestamp: previous?.metadata?.['creationTimestamp'] ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      resourceVersion: String(++this.resourceVersion),
    };
    this.objects.set(key, stored);
    return structuredClone(stored);
  }

  get(apiVersion: string, kind: string, namespace: string, name: string): KubeObject | undefined {
    const resource = this.resourceFor(apiVersion, kind);
    const stored = this.objects.get(storeKey(resource.group, resource.plural, resource.namespaced ? namespace : '', name));
    return stored && structuredClone(stored);
  }

  delete(apiVersion: string, kind: string, namespace: string, name: string): boolean {
    const resource = this.resourceFor(apiVersion, kind);
    const deleted = this.objects.delete(storeKey(resource.group, resource.plural, resource.namespaced ? namespace : '', name));
    if (deleted) this.resourceVersion++;
    return deleted;
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
    const url = new URL(req.url ?? '/', 'https://localhost');
    const method = req.method ?? 'GET';
    const authorized = req.headers.authorization === `Bearer ${this.token}`;
    const record: RecordedRequest = { method, path: url.pathname, query: url.search, authorized };
    this.requests.push(record);
    res.on('close', () => {
      if (!res.writableFinished) record.abandoned = true;
    });
    req.resume();
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
      this.serve(method, url.pathname, target, res);
    };
    if (fault?.latencyMs) this.later(fault.latencyMs, answer);
    else answer();
  }

  /** `/api/v1/namespaces/{ns}/{plural}/{name}` or `/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}`. */
  private route(path: string): Target | undefined {
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    let group: string;
    let rest: string[];
    if (parts[0] === 'api' && parts[1] === 'v1') {
      group = '';
      rest = parts.slice(2);
    } else if (parts[0] === 'apis' && parts.length >= 3) {
      group = parts[1]!;
      rest = parts.slice(3);
    } else {
      return undefined;
    }
    if (rest.length !== 4 || rest[0] !== 'namespaces') return undefined;
    const [, namespace, plural, name] = rest as [string, string, string, string];
    const resource = this.resources.find((r) => r.group === group && r.plural === plural && r.namespaced);
    return resource ? { resource, namespace, name } : undefined;
  }

  private serve(method: string, path: string, target: Target | undefined, res: ServerResponse): void {
    if (!target) {
      send(res, 404, status(404, `the server could not find the requested resource (${method} ${path})`));
      return;
    }
    if (method !== 'GET') {
      send(res, 405, status(405, `the server does not allow this method on the requested resource`));
      return;
    }
    const { resource, namespace, name } = target;
    const object = this.objects.get(storeKey(resource.group, resource.plural, namespace, name));
    if (!object) {
      send(res, 404, status(404, `${qualified(resource)} "${name}" not found`, { name, group: resource.group, kind: resource.plural }));
      return;
    }
    send(res, 200, object);
  }
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
