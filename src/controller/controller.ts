import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { KubeObject } from '../api/types.js';
import { WORKLOAD_KINDS, type WorkloadKind } from '../actions/checksum/pod-template.js';
import { ConfigReadError } from '../actions/checksum/read.js';
import { ClientNodeReader } from '../kube/client-node-reader.js';
import { createRegistry } from '../actions/registry.js';
import { ClientNodeObjectApplier, type ObjectApplier } from '../kube/apply.js';
import { ApiDiscovery } from '../kube/discovery.js';
import { configSourceInformers, resourceInformers } from '../kube/informers.js';
import type { KubeConfig } from '../kube/kubeconfig.js';
import { KubeLeaseClient, type LeaseClient } from '../kube/leases.js';
import { ClientNodeObjectLister, type ObjectLister } from '../kube/list.js';
import type { KubeReader } from '../kube/reader.js';
import { resourceName } from '../kube/resources.js';
import { ClientNodeWorkloadClient, type WorkloadClient } from '../kube/workloads.js';
import type { RuleSet } from '../rules/types.js';
import { claimsDigest } from '../scan/claims.js';
import { APPLICATIONS } from '../scan/plan.js';
import type { ReportsSetting } from '../scan/report-writer.js';
import { slimWorkload, summarise, type SourceSummary } from './cache.js';
import type { ConsumerIndex, WorkloadKey } from './consumers.js';
import type { KindStatus } from './kinds.js';
import { LeaderElector } from './leader.js';
import { createControllerMetrics, type ControllerMetrics } from './metrics.js';
import { CoalescingQueue, type QueueResult } from './queue.js';
import { LeadershipLostError, reconcileWorkload, type ReconcileDeps } from './reconcile.js';
import { ClusterScan } from './cluster-scan.js';
import { ChangeTracker } from './tracker.js';
import { ResourceWatches, type WatchedResource } from './watches.js';

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
  /** Workload reads, patches and Events (default: through client-node). */
  workloads?: WorkloadClient;
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
  /**
   * The cluster scan the leader runs (docs/scan.md), writing policy reports and the scan metrics;
   * absent: no scan. Its Argo CD Applications are watched (while served) to notice changed claims.
   */
  scan?: ControllerScanConfig;
}

export interface ControllerScanConfig {
  /** Every this often (default 10 minutes); 0: only after changes. */
  intervalMs?: number;
  /** Quiet period after a relevant change (default 60 s); a burst of changes is one scan, at most 5 × this after the first. */
  coalesceMs?: number;
  /** Which report API to write (default auto: what the cluster serves). */
  reports?: ReportsSetting;
  /** Paged lists (default: through client-node). */
  lister?: ObjectLister;
  /** Server-side apply of the reports (default: through client-node). */
  applier?: ObjectApplier;
  /** First retry after a failed scan (default 30 s; doubles up to the interval). */
  retryBaseMs?: number;
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
  scanIntervalMs: 600_000,
  scanCoalesceMs: 60_000,
  username: 'system:serviceaccount:gitops-guard:gitops-guard-controller',
} as const;

const MAX_RETRY_MS = 300_000;

/** Why a reconcile failed, for the `reason` label of gitops_guard_controller_reconcile_errors_total. */
function failureReason(error: unknown): 'read' | 'api' {
  return error instanceof ConfigReadError ? 'read' : 'api';
}

/** What the controller keeps of an Argo CD Application: its name and a digest of what it claims. */
interface SlimApplication {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  claims: string;
}

function slimApplication(object: KubeObject): SlimApplication {
  return {
    metadata: { name: object.metadata?.name ?? '', namespace: object.metadata?.namespace ?? '', ...(object.metadata?.resourceVersion ? { resourceVersion: object.metadata.resourceVersion } : {}) },
    claims: claimsDigest(object),
  };
}

/**
 * The rollout controller: informers on ConfigMaps, Secrets and the stamped workload kinds in every
 * replica (warm caches), a consumer index from each ConfigMap/Secret to the workloads that consume
 * it, and, in the one replica that holds the Lease, a coalescing queue of workloads to reconcile.
 * This class wires them together: watches (watches.ts) feed the change tracker (tracker.ts), whose
 * answers the leader queues (queue.ts, which owns retries); reconcile (reconcile.ts) decides one
 * workload. See docs/controller.md.
 */
export class RolloutController {
  readonly metrics: ControllerMetrics;
  private readonly tracker = new ChangeTracker();
  private readonly queue: CoalescingQueue<WorkloadKey>;
  private readonly elector: LeaderElector;
  private readonly deps: ReconcileDeps;
  private readonly discovery: ApiDiscovery;
  private watches: ResourceWatches | undefined;
  private readonly clusterScan: ClusterScan | undefined;
  /** Argo CD Application → the digest of what it claims (a scan follows when one changes). */
  private readonly claims = new Map<string, string>();
  private leaderSignal: AbortSignal | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private synced = false;
  private stopped = true;

  constructor(private readonly config: ControllerConfig) {
    const coalesceMs = config.coalesceMs ?? CONTROLLER_DEFAULTS.coalesceMs;
    this.queue = new CoalescingQueue<WorkloadKey>({
      coalesceMs,
      maxDelayMs: config.maxDelayMs ?? Math.max(CONTROLLER_DEFAULTS.maxDelayMs, coalesceMs),
      concurrency: config.concurrency ?? CONTROLLER_DEFAULTS.concurrency,
      retryBaseMs: config.retryBaseMs ?? CONTROLLER_DEFAULTS.retryBaseMs,
      maxRetryMs: MAX_RETRY_MS,
      onRetry: (key, error, retryInMs) => this.failed(key, error, retryInMs),
    });
    this.metrics = createControllerMetrics(config.registry, () => this.queue.depth);
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
      workloads: config.workloads ?? new ClientNodeWorkloadClient(config.kubeConfig),
      rules: config.rules,
      checksumKey: config.checksumKey,
      username: config.username ?? CONTROLLER_DEFAULTS.username,
      isLeader: () => this.elector.isLeader(),
      identity: config.identity,
      logger: config.logger,
      stampUnstamped: config.stampUnstamped ?? false,
      dryRun: config.dryRun ?? false,
      conflictRequeueMs: coalesceMs,
    };
    if (config.scan) {
      this.clusterScan = new ClusterScan({
        lister: config.scan.lister ?? new ClientNodeObjectLister(config.kubeConfig),
        applier: config.scan.applier ?? new ClientNodeObjectApplier(config.kubeConfig),
        discovery: this.discovery,
        kube: this.deps.kube,
        registry: createRegistry(),
        rules: config.rules,
        checksumKey: config.checksumKey,
        ...(config.namespaces ? { namespaces: config.namespaces } : {}),
        intervalMs: config.scan.intervalMs ?? CONTROLLER_DEFAULTS.scanIntervalMs,
        coalesceMs: config.scan.coalesceMs ?? CONTROLLER_DEFAULTS.scanCoalesceMs,
        reports: config.scan.reports ?? 'auto',
        metrics: this.metrics.scan,
        logger: config.logger.child({ component: 'scan' }),
        ...(config.scan.retryBaseMs !== undefined ? { retryBaseMs: config.scan.retryBaseMs } : {}),
      });
    }
  }

  /** Resolves when no cluster scan is waiting or running (for tests). */
  scanIdle(): Promise<void> {
    return this.clusterScan?.idle() ?? Promise.resolve();
  }

  /** Cluster scans completed by this replica. */
  get scansCompleted(): number {
    return this.clusterScan?.completed ?? 0;
  }

  /** True while this replica holds the lease. */
  get leading(): boolean {
    return this.elector.isLeader();
  }

  /** True once every required informer has listed once (optional kinds never hold it back). */
  get ready(): boolean {
    return this.synced;
  }

  /** From each ConfigMap/Secret to the workloads that consume it. */
  get index(): ConsumerIndex {
    return this.tracker.index;
  }

  /** Every resource kind, watched or not, and why not. */
  kindStatus(): KindStatus[] {
    return this.watches?.status() ?? [];
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
    const { kubeConfig, namespaces, logger } = this.config;
    const watches = new ResourceWatches({
      discovery: this.discovery,
      logger,
      metrics: this.metrics,
      watchRestartDelayMs: this.config.watchRestartDelayMs ?? CONTROLLER_DEFAULTS.watchRestartDelayMs,
      discoveryIntervalMs: this.config.discoveryIntervalMs ?? CONTROLLER_DEFAULTS.discoveryIntervalMs,
      onDropped: (resource) => this.forgetKind(resource),
    });
    this.watches = watches;
    for (const kind of ['ConfigMap', 'Secret'] as const) {
      watches.add({
        name: kind === 'Secret' ? 'secrets' : 'configmaps',
        required: true,
        discovered: false,
        disabled: false,
        informers: () => configSourceInformers(kubeConfig, kind, namespaces, (object) => summarise(kind, object)),
        handle: (type, object) => {
          const source = object as SourceSummary;
          const affected = this.tracker.sourceChanged(kind, type, source, this.acting);
          for (const workload of affected) this.queue.add(workload, `${kind} ${source.metadata.name}`);
          if (affected.length > 0) this.clusterScan?.changed(`${kind} ${source.metadata.namespace}/${source.metadata.name}`);
        },
      });
    }
    const rollouts = this.config.rollouts ?? 'auto';
    for (const resource of WORKLOAD_KINDS) {
      const forced = !resource.builtIn && rollouts !== 'auto';
      watches.add({
        name: resourceName(resource),
        resource,
        required: resource.builtIn || rollouts === true,
        discovered: !forced,
        disabled: !resource.builtIn && rollouts === false,
        informers: () => resourceInformers(kubeConfig, resource, namespaces, slimWorkload),
        handle: (type, object) => {
          const { key, compare } = this.tracker.workloadChanged(resource, type, object as KubeObject);
          if (type === 'delete') this.queue.forget(key);
          else if (compare && this.acting) this.queue.add(key);
          if (type === 'delete' || compare) this.clusterScan?.changed(`${resource.kind} ${key}`);
        },
      });
    }
    if (this.clusterScan) {
      // What Argo CD Applications claim: a scan follows when a claim changes (not status or health).
      watches.add({
        name: resourceName(APPLICATIONS),
        resource: { ...APPLICATIONS, builtIn: false },
        required: false,
        discovered: true,
        disabled: false,
        informers: () => resourceInformers(kubeConfig, APPLICATIONS, undefined, slimApplication),
        handle: (type, object) => this.applicationChanged(type, object as SlimApplication),
      });
    }

    await watches.start();
    if (this.stopped) return;
    const status = watches.status();
    logger.info(
      {
        namespaces: namespaces ?? 'all',
        watched: status.filter((k) => k.watched).map((k) => k.resource),
        notWatched: Object.fromEntries(status.filter((k) => !k.watched).map((k) => [k.resource, k.reason])),
        identity: this.config.identity,
      },
      'rollout controller starting',
    );
    await watches.listed();
    if (this.stopped) return;
    this.synced = true;
    logger.info({ workloads: this.tracker.workloadCount, sources: this.tracker.sourceCount, consumed: this.tracker.index.sources }, 'informers synced');
    this.elector.start();
    watches.keepDiscovering();
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
    this.watches?.stop();
    this.synced = false;
    this.metrics.leader.set(0);
    this.clusterScan?.stopLeading();
    // A later start() lists everything again.
    this.tracker.clear();
    this.claims.clear();
  }

  private get acting(): boolean {
    return this.synced && this.leaderSignal !== undefined && !this.leaderSignal.aborted;
  }

  /** A kind no longer watched: what is known of its objects is forgotten (it can no longer be kept current). */
  private forgetKind(resource: WatchedResource): void {
    const workload = WORKLOAD_KINDS.find((w) => w === resource);
    if (workload) for (const key of this.tracker.dropKind(workload)) this.queue.forget(key);
    else if (resource.group === APPLICATIONS.group && resource.plural === APPLICATIONS.plural) {
      this.claims.clear();
      this.clusterScan?.changed('Argo CD Applications no longer served');
    }
  }

  private applicationChanged(type: 'add' | 'update' | 'delete', application: SlimApplication): void {
    const key = `${application.metadata.namespace}/${application.metadata.name}`;
    const before = this.claims.get(key);
    if (type === 'delete') this.claims.delete(key);
    else this.claims.set(key, application.claims);
    if (before !== (type === 'delete' ? undefined : application.claims)) this.clusterScan?.changed(`Application ${key}`);
  }

  private startedLeading(signal: AbortSignal): void {
    this.leaderSignal = signal;
    this.metrics.leader.set(1);
    // Reconcile by comparison: every known workload once; those already right are not touched.
    for (const key of this.tracker.keys()) this.queue.add(key);
    this.config.logger.info({ workloads: this.tracker.workloadCount }, 'leading: comparing every workload');
    this.queue.start((key, reasons) => this.reconcile(key, reasons));
    this.clusterScan?.startLeading(signal);
    const resyncIntervalMs = this.config.resyncIntervalMs ?? CONTROLLER_DEFAULTS.resyncIntervalMs;
    if (resyncIntervalMs > 0) {
      this.resyncTimer = setInterval(() => {
        this.config.logger.debug({ workloads: this.tracker.workloadCount }, 'resync: comparing every workload');
        for (const key of this.tracker.keys()) this.queue.add(key);
      }, resyncIntervalMs);
      this.resyncTimer.unref();
    }
  }

  private stoppedLeading(): void {
    this.clusterScan?.stopLeading();
    clearInterval(this.resyncTimer);
    this.resyncTimer = undefined;
    this.leaderSignal = undefined;
    this.metrics.leader.set(0);
    this.queue.pause();
    this.queue.clear();
  }

  private describe(key: WorkloadKey): string {
    const ref = this.tracker.ref(key);
    return ref ? `${ref.resource.kind} ${ref.namespace}/${ref.name}` : key;
  }

  /**
   * One queued workload: reconciled, counted and logged. A conflict comes back after its own delay;
   * a failure is thrown to the queue, which retries it with back-off (and reports it to `failed`).
   */
  private async reconcile(key: WorkloadKey, reasons: ReadonlySet<string>): Promise<QueueResult | void> {
    const signal = this.leaderSignal;
    const ref = this.tracker.ref(key);
    if (!ref || !signal || signal.aborted) return;
    const what = this.describe(key);
    let outcome;
    try {
      outcome = await reconcileWorkload(ref, [...reasons].sort(), this.deps, signal);
    } catch (error) {
      if (signal.aborted || error instanceof LeadershipLostError) {
        this.metrics.reconciles.inc({ result: 'aborted' });
        return; // the next leader compares everything again
      }
      throw error;
    }
    const { logger } = this.config;
    switch (outcome.result) {
      case 'conflict':
        this.metrics.reconciles.inc({ result: 'error' });
        this.metrics.reconcileErrors.inc({ reason: 'conflict' });
        logger.warn({ workload: what, reason: 'conflict', err: outcome.reason, retryInMs: outcome.requeueAfterMs }, 'reconcile failed');
        return { requeueAfterMs: outcome.requeueAfterMs };
      case 'patched':
        this.metrics.reconciles.inc({ result: outcome.result });
        this.metrics.rollouts.inc({ kind: ref.resource.kind });
        logger.info({ workload: what, changed: outcome.sources, checksum: outcome.checksum, previous: outcome.previous ?? null }, 'config changed: rolling workload');
        return;
      case 'would-patch':
        this.metrics.reconciles.inc({ result: outcome.result });
        logger.info({ workload: what, changed: outcome.sources, checksum: outcome.checksum, previous: outcome.previous ?? null }, 'dry run: would roll workload');
        return;
      case 'skipped':
        this.metrics.reconciles.inc({ result: outcome.result });
        logger.debug({ workload: what, reason: outcome.reason }, 'workload skipped');
        return;
      case 'in-sync':
        this.metrics.reconciles.inc({ result: outcome.result });
        return;
    }
  }

  /** A reconcile failed; the queue tries it again in `retryInMs`. */
  private failed(key: WorkloadKey, error: unknown, retryInMs: number): void {
    const reason = failureReason(error);
    this.metrics.reconciles.inc({ result: 'error' });
    this.metrics.reconcileErrors.inc({ reason });
    this.config.logger.warn({ workload: this.describe(key), reason, err: error instanceof Error ? error.message : String(error), retryInMs }, 'reconcile failed');
  }
}
