import type { ActionDefinition, ActionResult } from '../types.js';
import type { KubeObject } from '../../api/types.js';
import { metadataMap, patchAt, patchFrom } from '../patch.js';
import { isValidLabelValue } from '../../util/text.js';
import {
  HANDOVER_ANNOTATION,
  OWNER_ANNOTATION,
  ownerResolutionParamsSchema,
  recordedOwner,
  resolveOwner,
  sameOwner,
  targetOf,
  type OwnerResolution,
} from './identity.js';
import { annotationsOf, isPlainObject, labelsOf, ownString } from '../../util/objects.js';

export interface TagOwnerParams extends OwnerResolution {
  /** Label set to the instance name when absent; empty string turns labelling off. */
  instanceLabel: string;
}

/**
 * Records the owning instance on the object. It only ever adds: a value the user (or a chart)
 * set is never overwritten, because overwriting it would show up as a real diff in Argo CD. The
 * owner record itself is gitops-guard's: once an object has an owner, an update that drops the
 * record gets it back from the live object, and it changes only through a handover (an update
 * that changes it otherwise is left for denyDuplicateOwner to deny).
 */
export const tagOwner: ActionDefinition<TagOwnerParams> = {
  name: 'tagOwner',
  readsOnlyMetadata: true,
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
  run(params, { request, object, oldObject, report }): ActionResult {
    if (request.operation !== 'CREATE' && request.operation !== 'UPDATE') return {};
    const target = targetOf(request, object);
    const owner = resolveOwner(object, target, params);
    const recordedOnObject = ownString(annotationsOf(object), OWNER_ANNOTATION);
    // The live record: the annotation, or for an object that predates gitops-guard its tracking owner.
    const live = request.operation === 'UPDATE' ? recordedOwner(oldObject, target, params) : null;
    const handoverTo = ownString(annotationsOf(oldObject), HANDOVER_ANNOTATION);

    const warnings: string[] = [];
    const auditAnnotations: Record<string, string> = {};
    let ownerValue = recordedOnObject;
    let dropHandover = false;
    if (live === null) {
      // CREATE, or the first owner of an object nobody owned.
      ownerValue = recordedOnObject ?? owner?.id;
    } else if (owner && handoverTo === owner.id && !sameOwner(live, owner.id, params)) {
      // The recorded owner handed the object over; this is the new owner's first write.
      ownerValue = owner.id;
      dropHandover = ownString(annotationsOf(object), HANDOVER_ANNOTATION) !== undefined;
      auditAnnotations['handover'] = `${live} -> ${owner.id} by ${request.userInfo.username ?? 'unknown'}`;
      warnings.push(`gitops-guard: ownership handed over from ${live} to ${owner.id}`);
    } else if (owner && owner.id !== live && sameOwner(live, owner.id, params) && recordedOnObject !== owner.id) {
      // Recorded before the Argo CD installation had an id: the same owner, now named in full.
      ownerValue = owner.id;
    } else if (recordedOnObject === undefined) {
      // A replace, a server-side apply by a new field manager, or someone stripping metadata may
      // drop the annotation: the live record wins over whatever the update says.
      ownerValue = live;
    }

    report?.({ action: 'tagOwner', owner, recorded: live, ...(ownerValue !== undefined ? { record: ownerValue } : {}) });
    const currentLabel = params.instanceLabel ? ownString(labelsOf(object), params.instanceLabel) : undefined;
    const setLabel = owner !== null && params.instanceLabel !== '' && currentLabel === undefined && isValidLabelValue(owner.instance);
    if (owner && currentLabel !== undefined && currentLabel !== owner.instance) {
      warnings.push(
        `gitops-guard: label ${params.instanceLabel}=${currentLabel} disagrees with owner ${owner.id}; left unchanged`,
      );
    }
    if (ownerValue === recordedOnObject && !dropHandover && !setLabel) return { warnings, auditAnnotations };

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
