import type { AdmissionRequest } from '../../admission/types.js';
import type { ActionDefinition, ActionOutcome } from '../types.js';
import { annotationsOf, ownString } from '../patch.js';
import {
  HANDOVER_ANNOTATION,
  ownerResolutionParamsSchema,
  recordedOwner,
  resolveOwner,
  targetOf,
  type OwnerResolution,
} from './identity.js';

export type DenyDuplicateOwnerParams = OwnerResolution;

function kubectlResource(request: AdmissionRequest): string {
  const { resource, group } = request.resource;
  return group ? `${resource}.${group}` : resource;
}

export function duplicateOwnerMessage(request: AdmissionRequest, current: string, incoming: string): string {
  const name = request.name ?? '';
  const where = request.namespace ? ` -n ${request.namespace}` : '';
  const object = `${request.kind.kind}/${name}${request.namespace ? ` in namespace ${request.namespace}` : ''}`;
  return (
    `${object} is owned by ${current}; ${incoming} may not take it over. ` +
    `Keep one owner: render it in a single shared app/release and disable it in the other, ` +
    `or have ${current} hand it over: kubectl annotate ${kubectlResource(request)} ${name}${where} ` +
    `${HANDOVER_ANNOTATION}=${incoming}`
  );
}

/**
 * Stops a second GitOps owner from silently taking over an object (Argo CD's SharedResourceWarning,
 * made a hard stop). Runs on the final object in the validating webhook.
 */
export const denyDuplicateOwner: ActionDefinition<DenyDuplicateOwnerParams> = {
  name: 'denyDuplicateOwner',
  phase: 'validate',
  paramsSchema: {
    type: 'object',
    additionalProperties: false,
    properties: { ...ownerResolutionParamsSchema },
  },
  run(params, { request, object, oldObject }): ActionOutcome {
    if (request.operation !== 'UPDATE') return {};
    const target = targetOf(request, object);
    const current = recordedOwner(oldObject, target, params);
    const incoming = resolveOwner(object, target, params)?.id;
    if (!current || !incoming || current === incoming) return {};
    if (ownString(annotationsOf(oldObject), HANDOVER_ANNOTATION) === incoming) {
      return { auditAnnotations: { handover: `${current} -> ${incoming}` } };
    }
    return {
      denial: duplicateOwnerMessage(request, current, incoming),
      auditAnnotations: { 'duplicate-owner': `${current} vs ${incoming}` },
    };
  },
};
