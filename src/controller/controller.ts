import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { KubeObject } from '../admission/types.js';
import { locatePodTemplate } from '../actions/checksum/pod-template.js';
import { collectReferences } from '../actions/checksum/references.js';
import { describeApiError } from '../kube/api-error.js';
import { ClientNodeReader } from '../kube/client-node-reader.js';
import { ApiDiscovery } from '../kube/discovery.js';
import type { ConfigSourceKind, KubeReader } from '../kube/reader.js';
import type { RuleSet } from '../rules/types.js';
import { changedKeys, ConsumerIndex, sourceKey, type KeyDigests, type SourceKey, type WorkloadKey } from './consumers.js';
import { sourceInformers, workloadInformers, type InformerSpec, type SourceSummary } from './informers.js';
import { KubeLeaseClient, resourceName, WORKLOAD_RESOURCES, WorkloadApi, type WorkloadRef, type WorkloadResource } from './kube-api.js';
import { KindWatch, servedBy, type DiscoveryAnswer, type InformerEvent, type KindStatus } from './kinds.js';
import { LeaderElector, type LeaseClient } from './leader.js';
import { createControllerMetrics, type ControllerMetrics } from './metrics.js';
import { CoalescingQueue } from './queue.js';
import { LeadershipLostError, reconcileWorkload, workloadKey, WorkloadConflictError, type ReconcileDeps } from './reconcile.js';

export interface ControllerConfig {
  kubeConfig: KubeConfig;
  /** Namespaces to watch; undefined watches all namespaces. */
  namespaces?: readonly string[];
  /** The rules in use (the stamping rule selects what the controller may touch). */
  rules: () => RuleSet;
  /** The webhook's key; absent only while the rules stamp nothing (a rules check keeps it so). */
  checksumKey: Buffer | undefined;
  /** This replica's name in the Lease and in Events (the pod name). */
  identity: string;
  leaseName: string;
  leaseNamespace: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** Quiet period that merges a burst of changes into one reconcile per workload. */
  coalesceMs?: number;
  /** Longest wait after the first change of a burst. */
  maxDelayMs?: number;
  concurrency?: number;
  /** Wait before re-establishing a watch that failed. */
  watchRestartDelayMs?: number;
  /** First retry delay after a failed reconcile (doubles, up to 5 minutes). */
  retryBaseMs?: number;
  /** User of the synthetic UPDATE request the rules are matched against. */
  username?: string;
  /**
   * Watch Argo Rollouts: `auto` while discovery lists `rollouts` in argoproj.io/v1alpha1 (picked
   * up and dropped at run time, never holding readiness back); `true` always, as a required kind;
   * `false` never.
   */
  rollouts?: 'auto' | boolean;
  /**
   * How often discovery is asked again which workload resources are served (kinds installed or
   * removed at run time). 0: only at start-up.
   */
  discoveryIntervalMs?: number;
  registry: Registry;
  logger: Logger;
  /** ConfigMap/Secret reads for checksums (default: live GETs through client-node, as the webhook). */
  kube?: KubeReader;
  /** Lease access (default: coordination.k8s.io/v1 through client-node). */
  leaseClient?: LeaseClient;
  /** Also stamp workloads without a checksum yet (default false: only keep stamped values current). */
  stampUnstamped?: boolean;
  /** Compute and report only, never patch (pairs with the webhook's audit mode). */
  dryRun?: boolean;
  /**
   * Every this often the leader compares every known workload again, a safety net for a change a
   * watch never delivered (a hung connection, a bug). Comparison only: right values are not
   * touched. 0 turns it off.
   */
  resyncIntervalMs?: number;
}

export const CONTROLLER_DEFAULTS = {
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
  coalesceMs: 2_000,
  maxDelayMs: 10_000,
  concurrency: 4,
  watchRestartDelayMs: 1_000,
  retryBaseMs: 1_000,
  resyncIntervalMs: 600_000,
  discoveryIntervalMs: 30_000,
  username: 'system:serviceaccount:gitops-guard:gitops-guard-controller',
} as const;

const MAX_RETRY_MS = 300_000;

/** A resource kind the controller may watch: how to start its informers, and whether discovery decides. */
interface Kind {
  watch: KindWatch;
  /** The workload type (undefined for ConfigMaps and Secrets). */
  resource?: WorkloadResource;
  informers: () => InformerSpec<any>[];
  /** Discovery decides whether it is watched (otherwise it is always watched, or never: `disabled`). */
  discovered: boolean;
  disabled: boolean;
  /** The last reason it stopped itself for (a repeat is logged at debug level only). */
  lastFailure?: string;
}

/**
 * The rollout controller: informers on ConfigMaps, Secrets and the stamped workload kinds in every
 * replica (warm caches), a consumer index from each ConfigMap/Secret to the workloads that consume
 * it, and, in the one replica that holds the Lease, a coalescing queue of workloads to reconcile.
 * See docs/controller.md.
 */
export class RolloutController {
  readonly metrics: ControllerMetrics;
  readonly index = new ConsumerIndex();
  private readonly queue: CoalescingQueue<WorkloadKey>;
  private readonly elector: LeaderElector;
  private readonly api: WorkloadApi;
  private readonly deps: ReconcileDeps;
  private readonly discovery: ApiDiscovery;
  /** By resource name (`configmaps`, `deployments.apps`), in a stable order. */
  private readonly kinds = new Map<string, Kind>();
  private discoveryTimer: NodeJS.Timeout | undefined;
  private discoveryAbort: AbortController | undefined;
  /** Per-key digests of every ConfigMap/Secret seen: to tell which keys a change touched. */
  private readonly digests = new Map<SourceKey, KeyDigests>();
  private readonly workloads = new Map<WorkloadKey, { ref: WorkloadRef; generation: unknown }>();
  private readonly attempts = new Map<WorkloadKey, number>();
  private leaderSignal: AbortSignal | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private synced = false;
  private stopped = true;
  private readonly settings: Required<Pick<ControllerConfig, 'coalesceMs' | 'maxDelayMs' | 'concurrency' | 'watchRestartDelayMs' | 'retryBaseMs'>>;

  constructor(private readonly config: ControllerConfig) {
    this.settings = {
      coalesceMs: config.coalesceMs ?? CONTROLLER_DEFAULTS.coalesceMs,
      maxDelayMs: config.maxDelayMs ?? Math.max(CONTROLLER_DEFAULTS.maxDelayMs, config.coalesceMs ?? 0),
      concurrency: config.concurrency ?? CONTROLLER_DEFAULTS.concurrency,
      watchRestartDelayMs: config.watchRestartDelayMs ?? CONTROLLER_DEFAULTS.watchRestartDelayMs,
      retryBaseMs: config.retryBaseMs ?? CONTROLLER_DEFAULTS.retryBaseMs,
    };
    this.queue = new CoalescingQueue<WorkloadKey>({ coalesceMs: this.settings.coalesceMs, maxDelayMs: this.settings.maxDelayMs, concurrency: this.settings.concurrency });
    this.metrics = createControllerMetrics(config.registry, () => this.queue.depth);
    this.api = new WorkloadApi(config.kubeConfig);
    this.discovery = new ApiDiscovery(config.kubeConfig);
    this.elector = new LeaderElector(config.leaseClient ?? new KubeLeaseClient(config.kubeConfig, config.leaseNamespace, config.leaseName), {
      identity: config.identity,
      leaseDurationMs: config.leaseDurationMs ?? CONTROLLER_DEFAULTS.leaseDurationMs,
      renewDeadlineMs: config.renewDeadlineMs ?? CONTROLLER_DEFAULTS.renewDeadlineMs,
      retryPeriodMs: config.retryPeriodMs ?? CONTROLLER_DEFAULTS.retryPeriodMs,
      onStartedLeading: (signal) => this.startedLeading(signal),
      onStoppedLeading: () => this.stoppedLeading(),
      onNewLeader: (identity) => config.logger.info({ leader: identity }, 'another replica leads'),
      logger: config.logger,
    });
    this.deps = {
      kube: config.kube ?? new ClientNodeReader(config.kubeConfig),
      api: this.api,
      rules: config.rules,
      checksumKey: config.checksumKey,
      username: config.username ?? CONTROLLER_DEFAULTS.username,
      isLeader: () => this.elector.isLeader(),
      identity: config.identity,
      logger: config.logger,
      stampUnstamped: config.stampUnstamped ?? false,
      dryRun: config.dryRun ?? false,
    };
  }

  /** True while this replica holds the lease. */
  get leading(): boolean {
    return this.elector.isLeader();
  }

  /** True once every required informer has listed once (optional kinds never hold it back). */
  get ready(): boolean {
    return this.synced;
  }

  /** Every resource kind, watched or not, and why not. */
  kindStatus(): KindStatus[] {
    return [...this.kinds.values()].map(({ watch }) => ({
      resource: watch.name,
      watched: watch.watching,
      listed: watch.listed,
      required: watch.required,
      ...(watch.reason !== undefined ? { reason: watch.reason } : {}),
    }));
  }

  get queueDepth(): number {
    return this.queue.depth;
  }

  /** Resolves when no workload is waiting or being reconciled (for tests and shutdown). */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  /**
   * Asks discovery which workload resources are served, starts the informers of those, waits until
   * the required ones have listed once, then campaigns for the lease and keeps asking discovery.
   */
  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    this.discoveryAbort = new AbortController();
    const { kubeConfig, namespaces, logger } = this.config;
    this.kinds.clear();
    for (const kind of ['ConfigMap', 'Secret'] as const) {
      const name = kind === 'Secret' ? 'secrets' : 'configmaps';
      this.addKind({ name, required: true, discovered: false, disabled: false, informers: () => sourceInformers(kubeConfig, kind, namespaces) }, (type, object) =>
        this.onSource(kind, type, object as SourceSummary),
      );
    }
    const rollouts = this.config.rollouts ?? 'auto';
    for (const resource of WORKLOAD_RESOURCES) {
      const forced = !resource.builtIn && rollouts !== 'auto';
      this.addKind(
        {
          name: resourceName(resource),
          resource,
          required: resource.builtIn || rollouts === true,
          discovered: !forced,
          disabled: !resource.builtIn && rollouts === false,
          informers: () => workloadInformers(kubeConfig, resource, namespaces),
        },
        (type, object) => this.onWorkload(resource, type, object as KubeObject),
      );
    }

    await this.discover(true);
    if (this.stopped) return;
    await Promise.all([...this.kinds.values()].filter((k) => !k.discovered && !k.disabled).map((k) => this.startKind(k)));
    if (this.stopped) return;
    const status = this.kindStatus();
    logger.info(
      {
        namespaces: namespaces ?? 'all',
        watched: status.filter((k) => k.watched).map((k) => k.resource),
        notWatched: Object.fromEntries(status.filter((k) => !k.watched).map((k) => [k.resource, k.reason])),
        identity: this.config.identity,
      },
      'rollout controller starting',
    );
    await this.waitListed();
    if (this.stopped) return;
    this.synced = true;
    logger.info({ workloads: this.workloads.size, sources: this.digests.size, consumed: this.index.sources }, 'informers synced');
    this.elector.start();
    this.scheduleDiscovery();
  }

  /**
   * Stops acting at once, then stops campaigning and watching. `release: false` leaves the lease
   * to expire (what a crash does); the default hands it over immediately.
   */
  async stop({ release = true }: { release?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.resyncTimer);
    clearTimeout(this.discoveryTimer);
    this.discoveryAbort?.abort();
    this.queue.pause();
    await this.elector.stop({ release });
    this.queue.clear();
    for (const kind of this.kinds.values()) if (kind.watch.watching) kind.watch.stop('controller stopped');
    this.synced = false;
    this.metrics.leader.set(0);
    // A later start() lists everything again.
    this.digests.clear();
    this.workloads.clear();
    this.attempts.clear();
    this.index.clear();
  }

  private addKind(
    kind: { name: string; resource?: WorkloadResource; required: boolean; discovered: boolean; disabled: boolean; informers: () => InformerSpec<any>[] },
    handle: (type: InformerEvent, object: unknown) => void,
  ): void {
    const entry: Kind = {
      resource: kind.resource,
      informers: kind.informers,
      discovered: kind.discovered,
      disabled: kind.disabled,
      watch: new KindWatch(
        {
          name: kind.name,
          required: kind.required,
          restartDelayMs: this.settings.watchRestartDelayMs,
          logger: this.config.logger,
          metrics: this.metrics,
          handle: (type, object) => {
            if (!this.stopped) handle(type, object);
          },
          onUnavailable: (reason, status) => this.kindUnavailable(entry, reason, status),
          retryNote: this.retryNote,
        },
        kind.disabled ? '--rollouts=false' : 'waiting for discovery',
      ),
    };
    this.kinds.set(kind.name, entry);
  }

  private async startKind(kind: Kind): Promise<void> {
    await kind.watch.start(kind.informers());
  }

  /** Forgets the workloads of a kind no longer watched (their state can no longer be kept current). */
  private dropWorkloads(resource: WorkloadResource | undefined): void {
    if (!resource) return;
    for (const [key, known] of this.workloads) {
      if (known.ref.resource !== resource) continue;
      this.index.removeWorkload(key);
      this.workloads.delete(key);
      this.attempts.delete(key);
    }
  }

  /** What becomes of a kind discovery could not settle, or that stopped itself. */
  private get retryNote(): string {
    const intervalMs = this.config.discoveryIntervalMs ?? CONTROLLER_DEFAULTS.discoveryIntervalMs;
    return intervalMs > 0 ? 'tried again at the next discovery' : 'not tried again (--discovery-interval-ms=0)';
  }

  /**
   * An optional kind stopped itself. 403 is an installation problem (RBAC without that kind):
   * a warning, once. 404 usually means its CRD was just removed: information.
   */
  private kindUnavailable(kind: Kind, reason: string, status: number): void {
    this.dropWorkloads(kind.resource);
    const repeated = kind.lastFailure === reason;
    kind.lastFailure = reason;
    this.config.logger[repeated ? 'debug' : status === 403 ? 'warn' : 'info']({ resource: kind.watch.name, reason }, 'resource not watched');
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
    const signal = this.discoveryAbort?.signal;
    const answers = new Map<string, DiscoveryAnswer>();
    const { logger } = this.config;
    await Promise.all(
      groupVersions.map(async (groupVersion) => {
        const [group, version] = groupVersion.split('/') as [string, string];
        try {
          answers.set(groupVersion, { resources: await this.discovery.resources(group, version, signal) });
        } catch (error) {
          answers.set(groupVersion, { error: describeApiError(error) });
          if (!this.stopped) logger.warn({ groupVersion, err: describeApiError(error) }, 'discovery failed; the kinds it serves keep their current state');
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
        starts.push(this.startKind(kind));
      } else if (served.served === 'unknown') {
        if (watch.watching) continue;
        // Every Kubernetes serves the built-in kinds; an optional one waits for an answer.
        if (initial && resource.builtIn) starts.push(this.startKind(kind));
        else if (initial) watch.notWatched(`${served.reason}; ${this.retryNote}`);
      } else if (watch.watching) {
        watch.stop(served.reason);
        this.dropWorkloads(resource);
        logger.info({ resource: watch.name, reason: served.reason }, 'resource no longer served: stopped watching it');
      } else {
        watch.notWatched(served.reason);
      }
    }
    await Promise.all(starts);
  }

  private scheduleDiscovery(): void {
    const intervalMs = this.config.discoveryIntervalMs ?? CONTROLLER_DEFAULTS.discoveryIntervalMs;
    if (intervalMs <= 0 || this.stopped) return;
    this.discoveryTimer = setTimeout(() => {
      this.discover(false).then(
        () => this.scheduleDiscovery(),
        (error: unknown) => {
          this.config.logger.warn({ err: describeApiError(error) }, 'discovery round failed');
          this.scheduleDiscovery();
        },
      );
    }, intervalMs);
    this.discoveryTimer.unref();
  }

  private async waitListed(): Promise<void> {
    while (!this.stopped && [...this.kinds.values()].some((k) => k.watch.required && k.watch.watching && !k.watch.listed)) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  private get acting(): boolean {
    return this.synced && this.leaderSignal !== undefined && !this.leaderSignal.aborted;
  }

  private onSource(kind: ConfigSourceKind, type: InformerEvent, object: SourceSummary): void {
    const { name, namespace } = object.metadata;
    const key = sourceKey(kind, namespace, name);
    const before = this.digests.get(key);
    // Undecodable data cannot be compared: treat it as a change of every key.
    const after = type === 'delete' ? undefined : object.digests ?? { '': `malformed:${object.metadata.resourceVersion ?? ''}` };
    if (after === undefined) this.digests.delete(key);
    else this.digests.set(key, after);
    if (!this.acting) return;
    const change = changedKeys(before, after);
    for (const workload of this.index.affected(kind, namespace, name, change)) this.queue.add(workload, `${kind} ${name}`);
  }

  private onWorkload(resource: WorkloadResource, type: InformerEvent, object: KubeObject): void {
    const namespace = object.metadata?.namespace ?? '';
    const name = object.metadata?.name ?? '';
    const key = workloadKey(resource, namespace, name);
    if (type === 'delete') {
      this.index.removeWorkload(key);
      this.workloads.delete(key);
      this.attempts.delete(key);
      return;
    }
    let references: ReturnType<typeof collectReferences> = [];
    try {
      const location = locatePodTemplate(object);
      // A superset (image pull secrets too): the index only decides what to look at again.
      if (location) references = collectReferences(location.podSpec, { includeImagePullSecrets: true });
    } catch {
      references = [];
    }
    this.index.setWorkload(key, namespace, references);
    const previous = this.workloads.get(key);
    const generation = object.metadata?.['generation'];
    this.workloads.set(key, { ref: { resource, namespace, name }, generation });
    // New workloads and spec changes (not status updates) are compared once; the webhook has
    // usually stamped them already, and then nothing is written.
    if (this.acting && (previous === undefined || previous.generation !== generation || generation === undefined)) this.queue.add(key);
  }

  private startedLeading(signal: AbortSignal): void {
    this.leaderSignal = signal;
    this.metrics.leader.set(1);
    // Reconcile by comparison: every known workload once; those already right are not touched.
    for (const key of this.workloads.keys()) this.queue.add(key);
    this.config.logger.info({ workloads: this.workloads.size }, 'leading: comparing every workload');
    this.queue.start((key, reasons) => this.reconcile(key, reasons));
    const resyncIntervalMs = this.config.resyncIntervalMs ?? CONTROLLER_DEFAULTS.resyncIntervalMs;
    if (resyncIntervalMs > 0) {
      this.resyncTimer = setInterval(() => {
        this.config.logger.debug({ workloads: this.workloads.size }, 'resync: comparing every workload');
        for (const key of this.workloads.keys()) this.queue.add(key);
      }, resyncIntervalMs);
      this.resyncTimer.unref();
    }
  }

  private stoppedLeading(): void {
    clearInterval(this.resyncTimer);
    this.resyncTimer = undefined;
    this.leaderSignal = undefined;
    this.metrics.leader.set(0);
    this.queue.pause();
    this.queue.clear();
    this.attempts.clear();
  }

  private async reconcile(key: WorkloadKey, reasons: ReadonlySet<string>): Promise<void> {
    const signal = this.leaderSignal;
    const known = this.workloads.get(key);
    if (!known || !signal || signal.aborted) return;
    const { ref } = known;
    const what = `${ref.resource.kind} ${ref.namespace}/${ref.name}`;
    try {
      const outcome = await reconcileWorkload(ref, [...reasons].sort(), this.deps, signal);
      this.attempts.delete(key);
      this.metrics.reconciles.inc({ result: outcome.result });
      if (outcome.result === 'patched') {
        this.metrics.rollouts.inc({ kind: ref.resource.kind });
        this.config.logger.info({ workload: what, changed: outcome.sources, checksum: outcome.checksum, previous: outcome.previous ?? null }, 'config changed: rolling workload');
      } else if (outcome.result === 'would-patch') {
        this.config.logger.info({ workload: what, changed: outcome.sources, checksum: outcome.checksum, previous: outcome.previous ?? null }, 'dry run: would roll workload');
      } else if (outcome.result === 'skipped') {
        this.config.logger.debug({ workload: what, reason: outcome.reason }, 'workload skipped');
      }
    } catch (error) {
      if (signal.aborted || error instanceof LeadershipLostError) {
        this.metrics.reconciles.inc({ result: 'aborted' });
        return; // the next leader compares everything again
      }
      const reason = error instanceof WorkloadConflictError ? 'conflict' : error instanceof Error && error.name === 'ConfigReadError' ? 'read' : 'api';
      this.metrics.reconciles.inc({ result: 'error' });
      this.metrics.reconcileErrors.inc({ reason });
      const attempt = (this.attempts.get(key) ?? 0) + 1;
      this.attempts.set(key, attempt);
      const delay = reason === 'conflict' ? this.settings.coalesceMs : Math.min(this.settings.retryBaseMs * 2 ** (attempt - 1), MAX_RETRY_MS);
      this.config.logger.warn({ workload: what, reason, err: error instanceof Error && error.name !== 'ApiException' ? error.message : describeApiError(error), retryInMs: delay }, 'reconcile failed');
      for (const source of reasons.size > 0 ? reasons : [undefined]) this.queue.add(key, source, delay);
    }
  }
}
