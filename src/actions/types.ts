import type { Operation as PatchOperation } from 'fast-json-patch';
import type { Logger } from 'pino';
import type { AdmissionRequest, KubeObject, WebhookPhase } from '../admission/types.js';
import type { KubeReader } from '../kube/reader.js';

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
}

export interface ActionSettings {
  /** Cluster-local HMAC key for config checksums; absent means the checksum action cannot run. */
  checksumKey?: Buffer;
}

export interface ActionOutcome {
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
  run(params: Params, context: ActionContext): ActionOutcome | Promise<ActionOutcome>;
}
