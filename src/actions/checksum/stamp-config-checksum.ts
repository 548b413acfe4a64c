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
  /** Overall deadline for reading every referenced object. */
  timeoutMs: number;
  /** Limit for each single read. */
  readTimeoutMs: number;
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
        default: DEFAULT_CHECKSUM_OPTIONS.timeoutMs,
        description: "Deadline for all reads together; keep it well inside the webhook's timeoutSeconds.",
      },
      readTimeoutMs: {
        type: 'integer',
        minimum: 50,
        maximum: 25000,
        default: DEFAULT_CHECKSUM_OPTIONS.readTimeoutMs,
        description: 'Limit for a single ConfigMap or Secret read.',
      },
      includeImagePullSecrets: {
        type: 'boolean',
        default: DEFAULT_CHECKSUM_OPTIONS.includeImagePullSecrets,
        description: 'Also hash the Secrets named in imagePullSecrets.',
      },
    },
  },
  async run(params, { request, object, kube, settings, logger, signal }): Promise<ActionOutcome> {
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
      timeoutMs: params.timeoutMs,
      readTimeoutMs: params.readTimeoutMs,
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
