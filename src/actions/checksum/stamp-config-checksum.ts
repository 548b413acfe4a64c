import { ownString, patchAt } from '../patch.js';
import type { ActionDefinition, ActionOutcome } from '../types.js';
import { DEFAULT_CHECKSUM_OPTIONS, computePodSpecChecksum, missingWarning } from './compute.js';
import { isChecksumValue } from './encoding.js';
import { locatePodTemplate, PodTemplateError } from './pod-template.js';
import { isPlainObject, type PlainObject } from '../../util/objects.js';

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

/** The template's annotation map, created in `template` when absent; throws if the fields are not maps. */
function annotationMap(template: PlainObject, create: boolean): Record<string, unknown> | undefined {
  let metadata = template['metadata'];
  if (metadata === undefined || metadata === null) {
    if (!create) return undefined;
    metadata = template['metadata'] = {};
  }
  if (!isPlainObject(metadata)) throw new PodTemplateError('pod template metadata is not an object');
  let annotations = metadata['annotations'];
  if (annotations === undefined || annotations === null) {
    if (!create) return undefined;
    annotations = metadata['annotations'] = {};
  }
  if (!isPlainObject(annotations)) throw new PodTemplateError('pod template annotations are not a map');
  return annotations;
}

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
  async run(params, { request, object, kube, settings, logger, signal, deadline }): Promise<ActionOutcome> {
    if (request.operation !== 'CREATE' && request.operation !== 'UPDATE') return {};
    if (!isValidAnnotationKey(params.annotation)) throw new Error(`invalid checksum annotation key ${JSON.stringify(params.annotation)}`);
    const namespace = request.namespace;
    if (!namespace) throw new Error('config checksum needs a namespaced workload');

    const location = locatePodTemplate(object);
    if (!location) return {};
    const current = ownString(annotationMap(location.template, false) ?? {}, params.annotation);
    if (current !== undefined && !isChecksumValue(current)) {
      // Someone else's annotation under this key: overwriting it would be a real GitOps diff.
      return { warnings: [`pod template annotation ${params.annotation} was not written by gitops-guard; checksum not stamped`] };
    }

    const result = await computePodSpecChecksum(location.podSpec, namespace, kube, settings.checksumKey, {
      ...readDeadlines(params, deadline),
      includeImagePullSecrets: params.includeImagePullSecrets,
      signal,
    });
    const warnings = result.missing.map((m) => missingWarning(m, namespace));
    logger.debug(
      { references: result.references.length, missing: result.missing.length, checksum: result.value, changed: current !== result.value },
      'config checksum computed',
    );
    if (result.value === current || (result.value === null && current === undefined)) return { warnings };

    // Only the pod template's annotations change: clone and diff just the template.
    const patch = patchAt(object, location.workload.templatePath, (template) => {
      if (result.value === null) delete annotationMap(template, false)![params.annotation];
      else annotationMap(template, true)![params.annotation] = result.value;
    });
    return { patch, warnings };
  },
};
