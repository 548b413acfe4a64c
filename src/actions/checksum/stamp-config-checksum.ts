import { patchAt } from '../patch.js';
import type { ActionDefinition, ActionResult } from '../types.js';
import { DEFAULT_CHECKSUM_OPTIONS, computePodSpecChecksum, type ConfigChecksum, type MissingConfig } from './compute.js';
import { locatePodTemplate } from './pod-template.js';
import { ConfigReadError, type ConfigReadFailure } from './read.js';
import { canStamp, decideStamp, stampedChecksum, templateAnnotations, type StampDecision } from './stamp.js';
import type { ConfigSourceKind } from '../../kube/reader.js';

export const DEFAULT_CHECKSUM_ANNOTATION = 'gitops-guard.dev/config-checksum';

export interface StampConfigChecksumParams {
  /** Pod-template annotation that carries the checksum. */
  annotation: string;
  /** Overall deadline for reading every referenced object; default: what is left of the admission deadline. */
  timeoutMs?: number;
  /** Limit for each single read once sent; default: the overall deadline. */
  readTimeoutMs?: number;
  includeImagePullSecrets: boolean;
}

/**
 * What one stampConfigChecksum rule found out (RuleResult.details), for the audit, the controller
 * and the cluster scan. `checksum` is derived from Secret data: it is shown only where the
 * webhook's own annotation would show it (see docs/security.md).
 */
export interface ChecksumDetails {
  action: 'stampConfigChecksum';
  annotation: string;
  /** The value the pod template carried when the rule saw it (absent: none). */
  stamped?: string;
  /** What the rule decided; absent when it failed first, or the workload has no pod template of its own. */
  decision?: StampDecision['kind'];
  /** The checksum of what the pod template consumes now (null: nothing); absent when not computed. */
  checksum?: string | null;
  /** The ConfigMaps and Secrets it consumes (names only), when computed. */
  references?: { kind: ConfigSourceKind; name: string; optional: boolean }[];
  /** Required objects or keys that do not exist, when computed. */
  missing?: MissingConfig[];
  /** The object that could not be read, and why (the rule failed: no partial checksum). */
  unreadable?: { kind: ConfigSourceKind; name: string; reason: ConfigReadFailure };
}

/**
 * A Kubernetes annotation key: an optional DNS-subdomain prefix (at most 253 characters) and a
 * slash, then a name of at most 63 alphanumerics, '-', '_' and '.', starting and ending alphanumeric.
 */
export const ANNOTATION_KEY_PATTERN =
  '^(?:(?=[^/]{1,253}/)[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$';
const ANNOTATION_KEY = new RegExp(ANNOTATION_KEY_PATTERN);

export function isValidAnnotationKey(key: string): boolean {
  return ANNOTATION_KEY.test(key);
}

/**
 * Read deadlines: a slow API makes the admission slower, not unstamped. Reads may use what is
 * left of the admission deadline (the API server's own timeout for this call, less the time to
 * answer); a rule's `timeoutMs`/`readTimeoutMs` can only shorten that. Without limits of its
 * own, the admission's signal ends the reads (they fail as "no answer within the admission
 * deadline") and the timers here sit a little later as a backstop. Outside an admission (audit)
 * the documented defaults apply.
 */
export function readDeadlines(params: Pick<StampConfigChecksumParams, 'timeoutMs' | 'readTimeoutMs'>, deadline: number | undefined): { timeoutMs: number; readTimeoutMs: number } {
  if (deadline === undefined) {
    const timeoutMs = params.timeoutMs ?? DEFAULT_CHECKSUM_OPTIONS.timeoutMs;
    return { timeoutMs, readTimeoutMs: Math.min(params.readTimeoutMs ?? DEFAULT_CHECKSUM_OPTIONS.readTimeoutMs, timeoutMs) };
  }
  const backstop = Math.max(1, deadline - Date.now()) + ADMISSION_SIGNAL_FIRST_MS;
  const timeoutMs = Math.min(params.timeoutMs ?? backstop, backstop);
  return { timeoutMs, readTimeoutMs: Math.min(params.readTimeoutMs ?? timeoutMs, timeoutMs) };
}

/** How much later than the admission deadline the read timers fire when the rule sets none. */
const ADMISSION_SIGNAL_FIRST_MS = 50;

/**
 * Stamps a deterministic HMAC of every ConfigMap and Secret key the pod template consumes into
 * a pod-template annotation, so pods roll exactly when their configuration changes. See
 * docs/config-checksum.md.
 */
export const stampConfigChecksum: ActionDefinition<StampConfigChecksumParams> = {
  name: 'stampConfigChecksum',
  phase: 'mutate',
  paramsSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      annotation: {
        type: 'string',
        maxLength: 317,
        pattern: ANNOTATION_KEY_PATTERN,
        default: DEFAULT_CHECKSUM_ANNOTATION,
        description: 'Pod-template annotation key that carries the checksum.',
      },
      timeoutMs: {
        type: 'integer',
        minimum: 50,
        maximum: 25000,
        description: "Deadline for all reads together; unset, the reads may use the admission's whole deadline (the API server's timeout less the time to answer).",
      },
      readTimeoutMs: {
        type: 'integer',
        minimum: 50,
        maximum: 25000,
        description: 'Limit for a single ConfigMap or Secret read once it is sent; unset, only the overall deadline applies.',
      },
      includeImagePullSecrets: {
        type: 'boolean',
        default: DEFAULT_CHECKSUM_OPTIONS.includeImagePullSecrets,
        description: 'Also hash the Secrets named in imagePullSecrets.',
      },
    },
  },
  async run(params, { request, object, kube, settings, logger, signal, deadline, report }): Promise<ActionResult> {
    if (request.operation !== 'CREATE' && request.operation !== 'UPDATE') return {};
    const details: ChecksumDetails = { action: 'stampConfigChecksum', annotation: params.annotation };
    try {
      if (!isValidAnnotationKey(params.annotation)) throw new Error(`invalid checksum annotation key ${JSON.stringify(params.annotation)}`);
      const namespace = request.namespace;
      if (!namespace) throw new Error('config checksum needs a namespaced workload');

      const location = locatePodTemplate(object);
      if (!location) return {};
      const stamped = stampedChecksum(location.template, params.annotation);
      if (stamped !== undefined) details.stamped = stamped;
      let computed: ConfigChecksum | null = null;
      if (canStamp(stamped)) {
        computed = await computePodSpecChecksum(location.podSpec, namespace, kube, settings.checksumKey, {
          ...readDeadlines(params, deadline),
          includeImagePullSecrets: params.includeImagePullSecrets,
          signal,
        });
        details.checksum = computed.value;
        details.references = computed.references.map(({ kind, name, optional }) => ({ kind, name, optional }));
        details.missing = computed.missing;
        logger.debug({ references: computed.references.length, missing: computed.missing.length, checksum: computed.value, changed: stamped !== computed.value }, 'config checksum computed');
      }
      const decision = decideStamp(params.annotation, stamped, computed, namespace);
      details.decision = decision.kind;
      if (decision.kind !== 'stamp' && decision.kind !== 'remove') return { warnings: decision.warnings };

      // Only the pod template's annotations change: clone and diff just the template's metadata.
      const patch = patchAt(
        object,
        location.workload.templatePath,
        (template) => {
          if (decision.kind === 'remove') delete templateAnnotations(template, false)![params.annotation];
          else templateAnnotations(template, true)![params.annotation] = decision.checksum;
        },
        ['metadata'],
      );
      return { patch, warnings: decision.warnings };
    } catch (error) {
      if (error instanceof ConfigReadError) details.unreadable = { kind: error.ref.kind, name: error.ref.name, reason: error.reason };
      throw error;
    } finally {
      report?.(details);
    }
  },
};
