import type { Logger } from 'pino';
import type { ServedResources } from '../kube/discovery.js';
import type { KubeApiError } from '../kube/errors.js';
import type { Informer, InformerEvent } from '../kube/informers.js';
import type { ApiResource } from '../kube/resources.js';
import type { ControllerMetrics } from './metrics.js';

/** What one discovery GET of a group-version answered: its resources (null: not served), or why it failed. */
export type DiscoveryAnswer = { resources: ServedResources | null } | { error: string };

/** Whether discovery says a resource is served, and if not, why. `unknown`: discovery failed. */
export type Served = { served: true } | { served: false; reason: string } | { served: 'unknown'; reason: string };

/**
 * Decides per resource, never per group-version: a cluster with Argo CD serves
 * argoproj.io/v1alpha1 (Applications, AppProjects) whether or not Argo Rollouts is installed.
 */
export function servedBy(resource: ApiResource, answer: DiscoveryAnswer): Served {
  const groupVersion = `${resource.group}/${resource.version}`;
  if ('error' in answer) return { served: 'unknown', reason: `discovery of ${groupVersion} failed (${answer.error})` };
  if (answer.resources === null) return { served: false, reason: `not served: the API does not serve ${groupVersion}` };
  const verbs = answer.resources.get(resource.plural);
  if (!verbs) return { served: false, reason: `not served: ${groupVersion} lists no ${resource.plural} (the ${resource.kind} CRD is not installed)` };
  const missing = ['list', 'watch'].filter((verb) => !verbs.has(verb));
  if (missing.length > 0) return { served: false, reason: `not served for ${missing.join(' and ')} in ${groupVersion}` };
  return { served: true };
}

export interface KindWatchOptions {
  /** `configmaps`, `deployments.apps`: in logs, metrics and /readyz. */
  name: string;
  /**
   * A required kind restarts a failing list or watch with back-off forever and holds readiness
   * back until it has listed. An optional kind whose list or watch is refused (403) or not found
   * (404) stops instead, so it never blocks the others; discovery starts it again later.
   */
  required: boolean;
  /** First wait before restarting a failed watch (doubles per failure in a row, up to 30 s). */
  restartDelayMs: number;
  logger: Logger;
  metrics: ControllerMetrics;
  /** Every informer event, while the kind is watched. */
  handle: (type: InformerEvent, object: unknown) => void;
  /** An optional kind stopped itself: its list or watch was refused (403) or not found (404). */
  onUnavailable: (reason: string, error: KubeApiError) => void;
  /** What happens next to a kind that stopped itself, for its reason (e.g. `tried again at the next discovery`). */
  retryNote: string;
}

interface Watched {
  informer: Informer<unknown>;
  connects: number;
  restartTimer?: NodeJS.Timeout;
  /** Failures in a row (reset after a quiet minute): the restart delay doubles with each. */
  failures: number;
  lastFailureAt: number;
  /** Listed at least once (sticky: a 410 re-list empties the resourceVersion for a moment). */
  listed: boolean;
  /** Stopped for good: its late callbacks are ignored. */
  closed: boolean;
}

const MAX_WATCH_RESTART_MS = 30_000;

/** One resource kind the controller watches: its informers (one per watched namespace) and its state. */
export class KindWatch {
  private informers: Watched[] = [];
  private whyNot: string | undefined;

  constructor(
    private readonly options: KindWatchOptions,
    notWatchedReason: string,
  ) {
    this.whyNot = notWatchedReason;
    options.metrics.resourceWatched.set({ resource: options.name }, 0);
  }

  get name(): string {
    return this.options.name;
  }

  get required(): boolean {
    return this.options.required;
  }

  get watching(): boolean {
    return this.informers.length > 0;
  }

  /** Why it is not watched (undefined while it is). */
  get reason(): string | undefined {
    return this.whyNot;
  }

  /** True once every informer has listed once; false while not watched. */
  get listed(): boolean {
    if (!this.watching) return false;
    for (const watched of this.informers) watched.listed ||= watched.informer.listed;
    return this.informers.every((w) => w.listed);
  }

  /** Starts the informers (one per watched namespace); resolves once each has sent its first list request. */
  async start(informers: Informer<unknown>[]): Promise<void> {
    this.close();
    this.whyNot = undefined;
    this.options.metrics.resourceWatched.set({ resource: this.name }, 1);
    this.informers = informers.map((informer) => this.attach(informer));
    await Promise.all(this.informers.map((w) => w.informer.start()));
  }

  /** Stops its informers for good (no watch is opened afterwards); `reason` is reported from now on. */
  stop(reason: string): void {
    this.close();
    this.notWatched(reason);
  }

  /** Records why it is not watched (it must not be watching). */
  notWatched(reason: string): void {
    if (this.watching) throw new Error(`${this.name} is watched`);
    this.whyNot = reason;
    this.options.metrics.resourceWatched.set({ resource: this.name }, 0);
  }

  private close(): void {
    for (const watched of this.informers) {
      watched.closed = true;
      clearTimeout(watched.restartTimer);
      watched.informer.close();
    }
    this.informers = [];
  }

  private attach(informer: Informer<unknown>): Watched {
    const watched: Watched = { informer, connects: 0, failures: 0, lastFailureAt: 0, listed: false, closed: false };
    const { resource, namespace } = informer;
    const { logger, metrics } = this.options;
    for (const verb of ['add', 'update', 'delete'] as const) {
      informer.on(verb, (object: unknown) => {
        if (!watched.closed) this.options.handle(verb, object);
      });
    }
    informer.onConnect(() => {
      if (!watched.closed && watched.connects++ > 0) metrics.watchRestarts.inc({ resource });
    });
    informer.onError((error: KubeApiError) => {
      if (watched.closed) return;
      if (!this.options.required && (error.reason === 'forbidden' || error.reason === 'not-found')) {
        const where = namespace === undefined ? '' : ` in namespace ${namespace}`;
        const reason = `cannot list and watch${where} (${error.message}); ${this.options.retryNote}`;
        this.stop(reason);
        this.options.onUnavailable(reason, error);
        return;
      }
      // client-node stops an informer whose list or watch failed (other than 410): start it again;
      // it resumes from the last resourceVersion it saw, or lists again if it never listed.
      const now = Date.now();
      if (now - watched.lastFailureAt > 60_000) watched.failures = 0;
      watched.failures++;
      watched.lastFailureAt = now;
      const delay = Math.min(this.options.restartDelayMs * 2 ** (watched.failures - 1), MAX_WATCH_RESTART_MS);
      logger.warn({ resource, namespace: namespace ?? 'all', err: error.message, retryInMs: delay }, 'watch failed; restarting');
      clearTimeout(watched.restartTimer);
      watched.restartTimer = setTimeout(() => {
        if (!watched.closed) void informer.start();
      }, delay);
    });
    return watched;
  }
}

export interface KindStatus {
  resource: string;
  watched: boolean;
  /** Every informer of it has listed once. */
  listed: boolean;
  required: boolean;
  reason?: string;
}

/**
 * The /readyz body: the verdict, then one line per resource (`[+]` watched and listed, `[ ]`
 * watched and waiting for its first list, `[-]` not watched, with why).
 */
export function readinessReport(ready: boolean, kinds: readonly KindStatus[]): string {
  const pending = kinds.filter((k) => k.required && k.watched && !k.listed).map((k) => k.resource);
  const verdict = ready ? 'ok' : `not ready: ${pending.length > 0 ? `waiting for the first list of ${pending.join(', ')}` : 'starting'}`;
  const lines = kinds.map((k) => (k.watched ? `[${k.listed ? '+' : ' '}] ${k.resource}: watched${k.listed ? '' : ', first list pending'}` : `[-] ${k.resource}: not watched: ${k.reason ?? 'unknown'}`));
  return `${verdict}\n${lines.join('\n')}\n`;
}
