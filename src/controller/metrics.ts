import { Counter, Gauge, type Registry } from 'prom-client';
import { createScanMetrics, type ScanMetrics } from './scan-metrics.js';

export interface ControllerMetrics {
  rollouts: Counter<'kind'>;
  reconcileErrors: Counter<'reason'>;
  reconciles: Counter<'result'>;
  queueDepth: Gauge;
  watchRestarts: Counter<'resource'>;
  resourceWatched: Gauge<'resource'>;
  leader: Gauge;
  /** The latest cluster scan's results (scan-metrics.ts); set by the leader's scan. */
  scan: ScanMetrics;
}

/** The controller's metrics, on the registry given (the controller pod's /metrics). */
export function createControllerMetrics(registry: Registry, queueDepth: () => number): ControllerMetrics {
  const registers = [registry];
  return {
    rollouts: new Counter({
      name: 'gitops_guard_controller_rollouts_total',
      help: 'Workloads whose pod-template checksum the controller patched (each starts a rollout), by kind.',
      labelNames: ['kind'],
      registers,
    }),
    reconcileErrors: new Counter({
      name: 'gitops_guard_controller_reconcile_errors_total',
      help: 'Reconciles that failed and were retried, by reason (read: a ConfigMap/Secret read failed; conflict: the workload changed meanwhile; api: any other API failure).',
      labelNames: ['reason'],
      registers,
    }),
    reconciles: new Counter({
      name: 'gitops_guard_controller_reconciles_total',
      help: 'Reconciles by result (patched, would-patch, in-sync, skipped, error, aborted).',
      labelNames: ['result'],
      registers,
    }),
    queueDepth: new Gauge({
      name: 'gitops_guard_controller_queue_depth',
      help: 'Workloads waiting to be reconciled.',
      registers,
      collect() {
        this.set(queueDepth());
      },
    }),
    watchRestarts: new Counter({
      name: 'gitops_guard_controller_watch_restarts_total',
      help: 'Watches re-established after they ended, failed or expired (410 Gone), by resource.',
      labelNames: ['resource'],
      registers,
    }),
    resourceWatched: new Gauge({
      name: 'gitops_guard_controller_resource_watched',
      help: '1 while the resource is watched, 0 while it is not (not served by the API, or its list is refused); /readyz says why.',
      labelNames: ['resource'],
      registers,
    }),
    leader: new Gauge({ name: 'gitops_guard_controller_leader', help: '1 while this replica holds the leader lease.', registers }),
    scan: createScanMetrics(registry),
  };
}
