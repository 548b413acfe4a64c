/** The rollout controller's public surface. See docs/controller.md. */
export { RolloutController, CONTROLLER_DEFAULTS, type ControllerConfig } from './controller.js';
export { ConsumerIndex, changedKeys, sourceKey, type KeyChange, type KeyDigests, type SourceKey, type WorkloadKey } from './consumers.js';
export { CoalescingQueue, type QueueOptions, type QueueHandler } from './queue.js';
export { LeaderElector, LeaseConflictError, type LeaseClient, type LeaseRecord, type LeaseSpec, type LeaderElectionOptions } from './leader.js';
export { KubeLeaseClient, WorkloadApi, WORKLOAD_RESOURCES, FIELD_MANAGER, resourceName, type WorkloadRef, type WorkloadResource } from './kube-api.js';
export { KindWatch, readinessReport, servedBy, type DiscoveryAnswer, type KindStatus, type Served } from './kinds.js';
export { summarise, slimWorkload, makeTransformingInformer, sourceInformers, workloadInformers, type SourceSummary } from './informers.js';
export {
  reconcileWorkload,
  stampingParams,
  syntheticRequest,
  annotationPatch,
  optedOut,
  workloadKey,
  ROLLOUT_OPT_OUT_ANNOTATION,
  ROLLOUT_OPT_OUT_VALUE,
  EVENT_REASON,
  type ReconcileDeps,
  type ReconcileOutcome,
} from './reconcile.js';
export { createControllerMetrics, type ControllerMetrics } from './metrics.js';
export { createScanMetrics, MAX_CHECK_RULES, type ScanMetrics, type ScanRun } from './scan-metrics.js';
