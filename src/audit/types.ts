import type { Operation as PatchOperation } from 'fast-json-patch';
import type { Logger } from 'pino';
import type { UserInfo } from '../admission/types.js';
import type { ActionRegistry } from '../actions/registry.js';
import type { ActionSettings } from '../actions/types.js';
import type { KubeReader } from '../kube/reader.js';
import type { Evaluation } from '../rules/engine.js';
import type { RuleMode, RuleSet } from '../rules/types.js';
import type { ConfigLookup } from './bundle-reader.js';
import type { DuplicateFinding } from './duplicates.js';
import type { InputProblem, InputSpec, InputStats, SourceLocation } from './input.js';
import type { LiveObjectReader } from './live.js';

/** What `runAuditCore` takes and returns; the JSON report (docs/audit-output.schema.json) is built from these. */

export interface ClusterAccess {
  /** ConfigMaps and Secrets not found in the input. */
  configs: KubeReader;
  /** Live objects, so existing objects are audited as UPDATEs. */
  objects: LiveObjectReader;
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

export interface PhaseResult {
  phase: 'mutate' | 'validate';
  evaluation: Evaluation;
}

export interface RenderingResult {
  index: number;
  source: SourceLocation;
  app?: string;
  owner: string | null;
  operation: 'CREATE' | 'UPDATE';
  oldObject: OldObjectSource;
  /** Whether the API server would accept it (enforce-mode rules only). */
  allowed: boolean;
  /** The mutating webhook's patch (enforce-mode rules), against the object as sent. */
  patch: PatchOperation[];
  phases: PhaseResult[];
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
