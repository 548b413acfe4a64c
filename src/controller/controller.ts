import type { KubeConfig, KubernetesObject, ListWatch } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { KubeObject } from '../admission/types.js';
import { locatePodTemplate } from '../actions/checksum/pod-template.js';
import { collectReferences } from '../actions/checksum/references.js';
import { ClientNodeReader } from '../kube/client-node-reader.js';
import type { ConfigSourceKind, KubeReader } from '../kube/reader.js';
import type { RuleSet } from '../rules/types.js';
import { changedKeys, ConsumerIndex, sourceKey, type KeyDigests, type SourceKey, type WorkloadKey } from './consumers.js';
import { sourceInformers, workloadInformers, type InformerSpec, type SourceSummary } from './informers.js';
import { describeApiError, KubeLeaseClient, WORKLOAD_RESOURCES, WorkloadApi, type WorkloadRef, type WorkloadResource } from './kube-api.js';
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
  checksumKey: Buffer;
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
  /** Watch Argo Rollouts: `auto` when the argoproj.io/v1alpha1 API is served. */
  rollouts?: 'auto' | boolean;
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
  username: 'system:serviceaccount:gitops-guard:gitops-guard-controller',
} as const;

const MAX_RETRY_MS = 300_000;

interface Watched {
  spec: InformerSpec<any>;
  connects: number;
  restartTimer?: NodeJS.Timeout;
  /** Failures in a row (reset after a quiet minute): the restart delay doubles with each. */
  failures: number;
  lastFailureAt: number;
}

const MAX_WATCH_RESTART_MS = 30_000;

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
  private readonly watched: Watched[] = [];
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

  /** True once every informer has listed once. */
  get ready(): boolean {
    return this.synced;
  }

  get queueDepth(): number {
    return this.queue.depth;
  }

  /** Resolves when no workload is waiting or being reconciled (for tests and shutdown). */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  /** Starts the informers, waits until each has listed once, then campaigns for the lease. */
  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    const { kubeConfig, namespaces, logger } = this.config;
    const resources = [...WORKLOAD_RESOURCES.filter((r) => r.group !== 'argoproj.io')];
    const rollouts = WORKLOAD_RESOURCES.find((r) => r.group === 'argoproj.io')!;
    if (this.config.rollouts === true || ((this.config.rollouts ?? 'auto') === 'auto' && (await this.rolloutsServed(rollouts)))) resources.push(rollouts);

    for (const kind of ['ConfigMap', 'Secret'] as const) {
      for (const spec of sourceInformers(kubeConfig, kind, namespaces)) this.watch(spec, (type, object) => this.onSource(kind, type, object as SourceSummary));
    }
    for (const resource of resources) {
      for (const spec of workloadInformers(kubeConfig, resource, namespaces)) this.watch(spec, (type, object) => this.onWorkload(resource, type, object as KubeObject));
    }
    logger.info(
      { namespaces: namespaces ?? 'all', workloads: resources.map((r) => `${r.plural}.${r.group}`), identity: this.config.identity },
      'rollout controller starting',
    );
    await Promise.all(this.watched.map((w) => w.spec.informer.start()));
    await this.waitListed();
    if (this.stopped) return;
    this.synced = true;
    logger.info({ workloads: this.workloads.size, sources: this.digests.size, consumed: this.index.sources }, 'informers synced');
    this.elector.start();
  }

  /**
   * Stops acting at once, then stops campaigning and watching. `release: false` leaves the lease
   * to expire (what a crash does); the default hands it over immediately.
   */
  async stop({ release = true }: { release?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.resyncTimer);
    this.queue.pause();
    await this.elector.stop({ release });
    this.queue.clear();
    for (const watched of this.watched) {
      clearTimeout(watched.restartTimer);
      watched.spec.close();
    }
    this.watched.length = 0;
    this.synced = false;
    this.metrics.leader.set(0);
    // A later start() lists everything again.
    this.digests.clear();
    this.workloads.clear();
    this.attempts.clear();
    this.index.clear();
  }

  private async rolloutsServed(resource: WorkloadResource): Promise<boolean> {
    try {
      const served = await this.api.served(resource.group, resource.version);
      if (!served) this.config.logger.info(`${resource.group}/${resource.version} is not served: Argo Rollouts are not watched`);
      return served;
    } catch (error) {
      this.config.logger.warn({ err: describeApiError(error) }, `cannot discover ${resource.group}/${resource.version}: Argo Rollouts are not watched`);
      return false;
    }
  }

  private async waitListed(): Promise<void> {
    while (!this.stopped && this.watched.some((w) => (w.spec.informer as ListWatch<KubernetesObject>).latestResourceVersion() === '')) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  private watch(spec: InformerSpec<any>, handle: (type: 'add' | 'update' | 'delete', object: unknown) => void): void {
    const watched: Watched = { spec, connects: 0, failures: 0, lastFailureAt: 0 };
    this.watched.push(watched);
    const { informer, resource, namespace } = spec;
    for (const verb of ['add', 'update', 'delete'] as const) {
      informer.on(verb, (object: unknown) => {
        if (!this.stopped) handle(verb, object);
      });
    }
    informer.on('connect', () => {
      if (watched.connects++ > 0) this.metrics.watchRestarts.inc({ resource });
    });
    informer.on('error', (error: unknown) => {
      if (this.stopped) return;
      // client-node stops an informer whose list or watch failed (other than 410): start it again;
      // it resumes from the last resourceVersion it saw, or lists again if it never listed.
      const now = Date.now();
      if (now - watched.lastFailureAt > 60_000) watched.failures = 0;
      watched.failures++;
      watched.lastFailureAt = now;
      const delay = Math.min(this.settings.watchRestartDelayMs * 2 ** (watched.failures - 1), MAX_WATCH_RESTART_MS);
      this.config.logger.warn({ resource, namespace: namespace ?? 'all', err: describeApiError(error), retryInMs: delay }, 'watch failed; restarting');
      clearTimeout(watched.restartTimer);
      watched.restartTimer = setTimeout(() => {
        if (!this.stopped) void informer.start();
      }, delay);
    });
  }

  private get acting(): boolean {
    return this.synced && this.leaderSignal !== undefined && !this.leaderSignal.aborted;
  }

  private onSource(kind: ConfigSourceKind, type: 'add' | 'update' | 'delete', object: SourceSummary): void {
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

  private onWorkload(resource: WorkloadResource, type: 'add' | 'update' | 'delete', object: KubeObject): void {
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
