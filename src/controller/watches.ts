import type { Logger } from 'pino';
import type { ApiDiscovery } from '../kube/discovery.js';
import type { KubeApiError } from '../kube/errors.js';
import type { Informer, InformerEvent } from '../kube/informers.js';
import type { ApiResource } from '../kube/resources.js';
import { KindWatch, servedBy, type DiscoveryAnswer, type KindStatus } from './kinds.js';
import type { ControllerMetrics } from './metrics.js';

/** A resource discovery decides about: built-in kinds are watched even when discovery fails at start-up. */
export interface WatchedResource extends ApiResource {
  builtIn: boolean;
}

/** A resource kind the controller may watch. */
export interface WatchedKindSpec {
  /** `configmaps`, `deployments.apps`. */
  name: string;
  /** The resource (a workload kind, Argo CD's Applications); undefined for ConfigMaps and Secrets. */
  resource?: WatchedResource;
  required: boolean;
  /** Discovery decides whether it is watched (otherwise it is always watched, or never: `disabled`). */
  discovered: boolean;
  disabled: boolean;
  informers: () => Informer<unknown>[];
  handle: (type: InformerEvent, object: unknown) => void;
}

interface WatchedKind extends WatchedKindSpec {
  watch: KindWatch;
  /** The last reason it stopped itself for (a repeat is logged at debug level only). */
  lastFailure?: string;
}

export interface ResourceWatchesOptions {
  discovery: ApiDiscovery;
  logger: Logger;
  metrics: ControllerMetrics;
  /** First wait before restarting a failed watch. */
  watchRestartDelayMs: number;
  /** How often discovery is asked again; 0: only at start-up. */
  discoveryIntervalMs: number;
  /** A kind is no longer watched: what is known about its objects can no longer be kept current. */
  onDropped: (resource: WatchedResource) => void;
}

/**
 * The resource kinds the controller watches and the discovery rounds that decide which of the
 * optional ones are served: each kind's informers are started, restarted (KindWatch) and stopped
 * here; events go to each kind's `handle`.
 */
export class ResourceWatches {
  /** By resource name, in a stable order. */
  private readonly kinds = new Map<string, WatchedKind>();
  private discoveryTimer: NodeJS.Timeout | undefined;
  private readonly abort = new AbortController();
  private stopped = false;

  constructor(private readonly options: ResourceWatchesOptions) {}

  add(spec: WatchedKindSpec): void {
    const kind: WatchedKind = {
      ...spec,
      watch: new KindWatch(
        {
          name: spec.name,
          required: spec.required,
          restartDelayMs: this.options.watchRestartDelayMs,
          logger: this.options.logger,
          metrics: this.options.metrics,
          handle: (type, object) => {
            if (!this.stopped) spec.handle(type, object);
          },
          onUnavailable: (reason, error) => this.unavailable(kind, reason, error),
          retryNote: this.retryNote,
        },
        spec.disabled ? '--rollouts=false' : 'waiting for discovery',
      ),
    };
    this.kinds.set(spec.name, kind);
  }

  /** Asks discovery which optional kinds are served, then starts those and every kind discovery does not decide. */
  async start(): Promise<void> {
    await this.discover(true);
    if (this.stopped) return;
    await Promise.all([...this.kinds.values()].filter((k) => !k.discovered && !k.disabled).map((k) => k.watch.start(k.informers())));
  }

  /** Resolves once every required kind that is watched has listed once. */
  async listed(): Promise<void> {
    while (!this.stopped && [...this.kinds.values()].some((k) => k.watch.required && k.watch.watching && !k.watch.listed)) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Keeps asking discovery, every discoveryIntervalMs. */
  keepDiscovering(): void {
    const intervalMs = this.options.discoveryIntervalMs;
    if (intervalMs <= 0 || this.stopped) return;
    this.discoveryTimer = setTimeout(() => {
      this.discover(false).then(
        () => this.keepDiscovering(),
        (error: unknown) => {
          this.options.logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'discovery round failed');
          this.keepDiscovering();
        },
      );
    }, intervalMs);
    this.discoveryTimer.unref();
  }

  /** Every resource kind, watched or not, and why not. */
  status(): KindStatus[] {
    return [...this.kinds.values()].map(({ watch }) => ({
      resource: watch.name,
      watched: watch.watching,
      listed: watch.listed,
      required: watch.required,
      ...(watch.reason !== undefined ? { reason: watch.reason } : {}),
    }));
  }

  /** Stops every watch for good. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.discoveryTimer);
    this.abort.abort();
    for (const kind of this.kinds.values()) if (kind.watch.watching) kind.watch.stop('controller stopped');
  }

  /** What becomes of a kind discovery could not settle, or that stopped itself. */
  private get retryNote(): string {
    return this.options.discoveryIntervalMs > 0 ? 'tried again at the next discovery' : 'not tried again (--discovery-interval-ms=0)';
  }

  /**
   * An optional kind stopped itself. 403 is an installation problem (RBAC without that kind):
   * a warning, once. 404 usually means its CRD was just removed: information.
   */
  private unavailable(kind: WatchedKind, reason: string, error: KubeApiError): void {
    if (kind.resource) this.options.onDropped(kind.resource);
    const repeated = kind.lastFailure === reason;
    kind.lastFailure = reason;
    this.options.logger[repeated ? 'debug' : error.reason === 'forbidden' ? 'warn' : 'info']({ resource: kind.watch.name, reason }, 'resource not watched');
  }

  /**
   * One discovery round: a GET per group-version of the discovered kinds, then per resource: start
   * watching what is served and not watched yet (workloads it lists are compared like at
   * start-up), stop watching what is no longer served. A failed GET changes nothing, except at
   * start-up, where built-in kinds are watched anyway (every Kubernetes serves them).
   */
  private async discover(initial: boolean): Promise<void> {
    const kinds = [...this.kinds.values()].filter((k) => k.discovered && k.resource);
    const groupVersions = [...new Set(kinds.map((k) => `${k.resource!.group}/${k.resource!.version}`))];
    const answers = new Map<string, DiscoveryAnswer>();
    const { logger } = this.options;
    await Promise.all(
      groupVersions.map(async (groupVersion) => {
        const [group, version] = groupVersion.split('/') as [string, string];
        try {
          answers.set(groupVersion, { resources: await this.options.discovery.resources(group, version, this.abort.signal) });
        } catch (error) {
          const why = error instanceof Error ? error.message : String(error);
          answers.set(groupVersion, { error: why });
          if (!this.stopped) logger.warn({ groupVersion, err: why }, 'discovery failed; the kinds it serves keep their current state');
        }
      }),
    );
    if (this.stopped) return;
    const starts: Promise<void>[] = [];
    for (const kind of kinds) {
      const { watch } = kind;
      const resource = kind.resource!;
      const served = servedBy(resource, answers.get(`${resource.group}/${resource.version}`)!);
      if (served.served === true) {
        if (watch.watching) continue;
        if (!initial) logger.info({ resource: watch.name }, 'resource served now: watching it');
        starts.push(watch.start(kind.informers()));
      } else if (served.served === 'unknown') {
        if (watch.watching) continue;
        // Every Kubernetes serves the built-in kinds; an optional one waits for an answer.
        if (initial && resource.builtIn) starts.push(watch.start(kind.informers()));
        else if (initial) watch.notWatched(`${served.reason}; ${this.retryNote}`);
      } else if (watch.watching) {
        watch.stop(served.reason);
        this.options.onDropped(resource);
        logger.info({ resource: watch.name, reason: served.reason }, 'resource no longer served: stopped watching it');
      } else {
        watch.notWatched(served.reason);
      }
    }
    await Promise.all(starts);
  }
}
