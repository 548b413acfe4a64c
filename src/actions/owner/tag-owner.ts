import type { ActionDefinition, ActionOutcome } from '../types.js';
import type { KubeObject } from '../../admission/types.js';
import { annotationsOf, labelsOf, metadataMap, ownString, patchAt, patchFrom } from '../patch.js';
import { isValidLabelValue } from '../../util/text.js';
import {
  HANDOVER_ANNOTATION,
  OWNER_ANNOTATION,
  ownerResolutionParamsSchema,
  resolveOwner,
  targetOf,
  type OwnerResolution,
} from './identity.js';
import { isPlainObject } from '../../util/objects.js';

export interface TagOwnerParams extends OwnerResolution {
  /** Label set to the instance name when absent; empty string turns labelling off. */
  instanceLabel: string;
}

/**
 * Records the owning instance on the object. It only ever adds: a value the user (or a chart)
 * set is never overwritten, because overwriting it would show up as a real diff in Argo CD.
 */
export const tagOwner: ActionDefinition<TagOwnerParams> = {
  name: 'tagOwner',
  phase: 'mutate',
  paramsSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      ...ownerResolutionParamsSchema,
      instanceLabel: {
        type: 'string',
        default: 'app.kubernetes.io/instance',
        description: 'Label to set to the instance name when absent ("" to never set a label).',
      },
    },
  },
  run(params, { request, object, oldObject }): ActionOutcome {
    if (request.operation !== 'CREATE' && request.operation !== 'UPDATE') return {};
    const owner = resolveOwner(object, targetOf(request, object), params);
    if (!owner) return {};

    const warnings: string[] = [];
    const auditAnnotations: Record<string, string> = {};
    const recordedOnObject = ownString(annotationsOf(object), OWNER_ANNOTATION);
    const recordedOnLive = ownString(annotationsOf(oldObject), OWNER_ANNOTATION);
    const handoverTo = ownString(annotationsOf(oldObject), HANDOVER_ANNOTATION);

    let ownerValue = recordedOnObject;
    let dropHandover = false;
    if (request.operation === 'UPDATE' && handoverTo === owner.id && recordedOnLive !== owner.id) {
      // The recorded owner handed the object over; this is the new owner's first write.
      ownerValue = owner.id;
      dropHandover = ownString(annotationsOf(object), HANDOVER_ANNOTATION) !== undefined;
      auditAnnotations['handover'] = `${recordedOnLive ?? 'none'} -> ${owner.id}`;
      warnings.push(`gitops-guard: ownership handed over from ${recordedOnLive ?? 'none'} to ${owner.id}`);
    } else if (ownerValue === undefined) {
      // A replace or server-side apply may drop the annotation; the live record wins over the newcomer.
      ownerValue = recordedOnLive ?? owner.id;
    }

    const currentLabel = params.instanceLabel ? ownString(labelsOf(object), params.instanceLabel) : undefined;
    const setLabel =
      params.instanceLabel !== '' && currentLabel === undefined && isValidLabelValue(owner.instance);
    if (currentLabel !== undefined && currentLabel !== owner.instance) {
      warnings.push(
        `gitops-guard: label ${params.instanceLabel}=${currentLabel} disagrees with owner ${owner.id}; left unchanged`,
      );
    }

    const edit = (draft: KubeObject) => {
      if (ownerValue !== recordedOnObject) metadataMap(draft, 'annotations')[OWNER_ANNOTATION] = ownerValue!;
      if (dropHandover) delete metadataMap(draft, 'annotations')[HANDOVER_ANNOTATION];
      if (setLabel) metadataMap(draft, 'labels')[params.instanceLabel] = owner.instance;
    };
    // Only labels and annotations change: clone and diff just those (the object may be a 1.5 MiB
    // CRD whose metadata is mostly managedFields).
    const patch = isPlainObject(object.metadata)
      ? patchAt(object, ['metadata'], (metadata) => edit({ metadata }), ['labels', 'annotations'])
      : patchFrom(object, (draft) => edit(draft));
    return { patch, warnings, auditAnnotations };
  },
};
