import type { Operation as PatchOperation } from 'fast-json-patch';
import type { Logger } from 'pino';
import type { AdmissionRequest, KubeObject, WebhookPhase } from '../api/types.js';
import type { KubeReader } from '../kube/reader.js';
import type { ChecksumDetails } from './checksum/stamp-config-checksum.js';
import type { OwnerDetails } from './owner/identity.js';

/** Everything an action may look at. Actions never do I/O except through `kube`. */
export interface ActionContext {
  request: AdmissionRequest;
  /** The object as earlier rules left it (never mutated in place). */
  object: KubeObject;
  oldObject: KubeObject | null;
  kube: KubeReader;
  /** Server-wide settings actions may need (e.g. the checksum HMAC key). */
  settings: ActionSettings;
  logger: Logger;
  /** Aborted when the admission deadline passes (reason: DeadlineExceededError) or the caller goes away. */
  signal: AbortSignal;
  /**
   * When the admission must be answered (epoch ms), derived from the API server's timeout for
   * this call; absent outside the webhook (audit). Actions that wait for I/O use what is left.
   */
  deadline?: number;
  /**
   * Records what the action found out (the rule's `details` in the engine's result), also when it
   * then throws. Absent when the action is run on its own (unit tests).
   */
  report?: (details: ActionDetails) => void;
}

export interface ActionSettings {
  /** Cluster-local HMAC key for config checksums; absent means the checksum action cannot run. */
  checksumKey?: Buffer;
}

/**
 * What a built-in action found out about the object, beyond its patch and denial: the checksum it
 * computed and which references were missing or unreadable, the owner it resolved and the one on
 * record. The offline audit and the cluster scan read these instead of working
 * them out again. Discriminated by `action`.
 */
export type ActionDetails = ChecksumDetails | OwnerDetails;

/** What an action answers; the engine turns it into the rule's RuleResult. */
export interface ActionResult {
  /** RFC 6902 operations against `context.object`, minimal (as `patchFrom` makes them): empty when nothing changes. */
  patch?: PatchOperation[];
  /** A reason to reject the request; set only by validating actions. */
  denial?: string;
  warnings?: string[];
  /** Keys are short suffixes; the engine prefixes them with the rule name. */
  auditAnnotations?: Record<string, string>;
}

export interface ActionDefinition<Params = Record<string, unknown>> {
  readonly name: string;
  readonly phase: WebhookPhase;
  /** JSON Schema of the action's parameters (validated at rule load, with defaults applied). */
  readonly paramsSchema: Record<string, unknown>;
  /**
   * The action looks at the object's metadata only (labels, annotations, name): a cluster scan
   * may hand it objects listed as metadata (PartialObjectMetadata) instead of whole objects.
   */
  readonly readsOnlyMetadata?: boolean;
  run(params: Params, context: ActionContext): ActionResult | Promise<ActionResult>;
}
