import type { Logger } from 'pino';
import type { UserInfo } from '../api/types.js';
import type { ActionRegistry } from '../actions/registry.js';
import type { ActionSettings } from '../actions/types.js';
import type { ObjectReader } from '../kube/objects.js';
import type { KubeReader } from '../kube/reader.js';
import type { AdmissionResult } from '../rules/result.js';
import type { RuleMode, RuleSet } from '../rules/types.js';
import type { ConfigLookup } from './bundle-reader.js';
import type { DuplicateFinding } from './duplicates.js';
import type { InputProblem, InputSpec, InputStats, SourceLocation } from './input.js';

/** What `runAuditCore` takes and returns; the JSON report (docs/audit-output.schema.json) is built from these. */

export interface ClusterAccess {
  /** ConfigMaps and Secrets not found in the input. */
  configs: KubeReader;
  /** Live objects, so existing objects are audited as UPDATEs. */
  objects: ObjectReader;
  /** A short description for the report (the API server URL), never credentials. */
  description: string;
}

export interface AuditOptions {
  inputs: readonly InputSpec[];
  ruleSet: RuleSet;
  registry: ActionRegistry;
  settings: ActionSettings;
  logger: Logger;
  /** Namespace for namespaced objects without one (`kubectl apply -n`). */
  namespace: string;
  userInfo?: UserInfo;
  stdin?: NodeJS.ReadableStream;
  cluster?: ClusterAccess;
  modeOverride?: RuleMode;
  /** Objects evaluated at the same time (only matters when the cluster is read). */
  concurrency?: number;
  signal?: AbortSignal;
}

export type OldObjectSource = 'none' | 'cluster' | 'input';

export type ChecksumStatus = 'stamped' | 'current' | 'removed' | 'failed';

export interface ChecksumFinding {
  rule: string;
  mode: RuleMode;
  annotation: string;
  status: ChecksumStatus;
  value?: string;
  reason?: string;
}

/**
 * One rendering as admitted: the engine's AdmissionResult (whether the API server would accept
 * it, the mutating webhook's patch against the object as sent, each phase's rule results) without
 * the admitted object, which is only carried to the next rendering of the same object.
 */
export interface RenderingResult extends Omit<AdmissionResult, 'object'> {
  index: number;
  source: SourceLocation;
  app?: string;
  owner: string | null;
  operation: 'CREATE' | 'UPDATE';
  oldObject: OldObjectSource;
  /** From the stampConfigChecksum rules' details. */
  checksums: ChecksumFinding[];
  configSources: ConfigLookup[];
  notes: string[];
}

export interface ObjectResult {
  key: string;
  apiVersion: string;
  group: string;
  version: string;
  kind: string;
  name?: string;
  namespace?: string;
  scope: 'Cluster' | 'Namespaced';
  scopeKnown: boolean;
  renderings: RenderingResult[];
  duplicate?: DuplicateFinding;
}

export interface AuditSummary {
  exitCode: 0 | 1 | 2;
  files: number;
  documents: number;
  objects: number;
  distinctObjects: number;
  skipped: { empty: number; notKubernetes: number };
  inputErrors: number;
  mutated: number;
  denied: number;
  auditFindings: number;
  warnings: number;
  ruleErrors: number;
  duplicates: { error: number; warning: number };
  checksums: { stamped: number; current: number; failed: number };
}

export interface AuditResult {
  namespace: string;
  cluster?: string;
  stats: InputStats;
  inputErrors: InputProblem[];
  objects: ObjectResult[];
  duplicates: DuplicateFinding[];
  summary: AuditSummary;
}
