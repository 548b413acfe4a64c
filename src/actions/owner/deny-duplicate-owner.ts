import type { AdmissionRequest } from '../../api/types.js';
import type { ActionDefinition, ActionResult } from '../types.js';
import { annotationsOf, ownString } from '../../util/objects.js';
import { handoverPolicyParamsSchema, handoverRefusal, type HandoverPolicy } from './handover-policy.js';
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

export type DenyDuplicateOwnerParams = OwnerResolution & HandoverPolicy;

function kubectlResource(request: AdmissionRequest): string {
  const { resource, group } = request.resource;
  return group ? `${resource}.${group}` : resource;
}

function objectName(request: AdmissionRequest): string {
  return `${request.kind.kind}/${request.name ?? ''}${request.namespace ? ` in namespace ${request.namespace}` : ''}`;
}

function handoverCommand(request: AdmissionRequest, to: string): string {
  const where = request.namespace ? ` -n ${request.namespace}` : '';
  return `kubectl annotate ${kubectlResource(request)} ${request.name ?? ''}${where} ${HANDOVER_ANNOTATION}=${to}`;
}

export function duplicateOwnerMessage(request: AdmissionRequest, current: string, incoming: string): string {
  return (
    `${objectName(request)} is owned by ${current}; ${incoming} may not take it over. ` +
    `Keep one owner: render it in a single shared app/release and disable it in the other, ` +
    `or have ${current} hand it over: ${handoverCommand(request, incoming)}`
  );
}

/** An update that rewrites or drops gitops-guard's owner record outside a handover. */
export function recordChangeMessage(request: AdmissionRequest, recorded: string, next: string | undefined): string {
  const change = next === undefined ? 'remove it' : `change it to ${next}`;
  return (
    `${objectName(request)} is owned by ${recorded} (${OWNER_ANNOTATION}); an update may not ${change}. ` +
    `Ownership moves only through a handover: ${recorded}'s team runs ${handoverCommand(request, next ?? '<new owner>')}, ` +
    `then the new owner applies it`
  );
}

/** A record that gitops-guard would not have written: no owner yet, and not the incoming owner either. */
function unfoundedRecordMessage(request: AdmissionRequest, value: string, incoming: string | undefined): string {
  return (
    `${objectName(request)}: ${OWNER_ANNOTATION}=${value} is not the owner its tracking fields name ` +
    `(${incoming ?? 'none'}); the owner record is written by gitops-guard only`
  );
}

function handoverSetterMessage(request: AdmissionRequest, why: string): string {
  return (
    `${objectName(request)}: ${HANDOVER_ANNOTATION} may not be set by this user (${why}). ` +
    `A handover is the current owner's decision: set it with kubectl as a person allowed to, not through a GitOps sync`
  );
}

/**
 * Stops a second GitOps owner from silently taking over an object (Argo CD's SharedResourceWarning,
 * made a hard stop), and keeps gitops-guard's owner record from being rewritten outside the
 * handover flow. Runs on the final object in the validating webhook, after every mutating webhook.
 */
export const denyDuplicateOwner: ActionDefinition<DenyDuplicateOwnerParams> = {
  name: 'denyDuplicateOwner',
  readsOnlyMetadata: true,
  phase: 'validate',
  paramsSchema: {
    type: 'object',
    additionalProperties: false,
    properties: { ...ownerResolutionParamsSchema, ...handoverPolicyParamsSchema },
  },
  run(params, { request, object, oldObject, logger, report }): ActionResult {
    if (request.operation !== 'CREATE' && request.operation !== 'UPDATE') return {};
    const user = request.userInfo.username ?? 'unknown';
    const target = targetOf(request, object);
    const auditAnnotations: Record<string, string> = {};

    // Offering the object to someone (setting or changing handover-to) is a decision of the current
    // owner's people, never of a GitOps controller applying some team's manifest.
    const offered = ownString(annotationsOf(object), HANDOVER_ANNOTATION);
    const previousOffer = ownString(annotationsOf(oldObject), HANDOVER_ANNOTATION);
    const recorded = recordedOwner(oldObject, target, params);
    const owner = resolveOwner(object, target, params);
    const record = ownString(annotationsOf(object), OWNER_ANNOTATION);
    report?.({ action: 'denyDuplicateOwner', owner, recorded, ...(record !== undefined ? { record } : {}) });
    if (offered !== undefined && offered !== previousOffer) {
      const refusal = handoverRefusal(request.userInfo, params);
      if (refusal) return { denial: handoverSetterMessage(request, refusal), auditAnnotations: { 'handover-refused': `${offered} by ${user}` } };
      auditAnnotations['handover-offered'] = `${recorded ?? 'none'} -> ${offered} by ${user}`;
      logger.info({ object: objectName(request), from: recorded, to: offered, by: user, dryRun: request.dryRun === true }, 'ownership handover offered');
    }
    if (request.operation !== 'UPDATE') return { auditAnnotations };

    const incoming = owner?.id;
    if (!recorded) {
      // Nobody owns it yet: the first owner may be recorded, nothing else.
      if (record !== undefined && record !== incoming) {
        return { denial: unfoundedRecordMessage(request, record, incoming), auditAnnotations: { ...auditAnnotations, 'owner-record': `${record} without owner` } };
      }
      return { auditAnnotations };
    }

    let expected = recorded;
    if (incoming && !sameOwner(recorded, incoming, params)) {
      if (previousOffer !== incoming) {
        return {
          denial: duplicateOwnerMessage(request, recorded, incoming),
          auditAnnotations: { ...auditAnnotations, 'duplicate-owner': `${recorded} vs ${incoming}` },
        };
      }
      expected = incoming;
      auditAnnotations['handover'] = `${recorded} -> ${incoming} by ${user}`;
      logger.info({ object: objectName(request), from: recorded, to: incoming, by: user, dryRun: request.dryRun === true }, 'ownership handed over');
    } else if (incoming && incoming !== recorded) {
      expected = incoming; // the installation-less record, named in full (argocdLegacyInstallation)
    }

    // The record is gitops-guard's: only a handover (or tagOwner naming the same owner in full)
    // changes it. An object that predates gitops-guard may still be without one.
    const hadRecord = ownString(annotationsOf(oldObject), OWNER_ANNOTATION) !== undefined;
    const acceptable = record === expected || (record !== undefined && expected !== recorded && record === recorded) || (record === undefined && !hadRecord);
    if (!acceptable) {
      return {
        denial: recordChangeMessage(request, recorded, record),
        auditAnnotations: { ...auditAnnotations, 'owner-record': `${recorded} -> ${record ?? 'removed'} by ${user}` },
      };
    }
    return { auditAnnotations };
  },
};
