import type { AdmissionRequest, KubeObject } from '../api/types.js';
import { DEFAULT_OWNER_RESOLUTION, type OwnerResolution } from '../actions/owner/identity.js';
import type { StampConfigChecksumParams } from '../actions/checksum/stamp-config-checksum.js';
import { matchRule } from './match.js';
import type { Rule, RuleSet } from './types.js';

/**
 * What the rules configure, for the callers that act outside an admission (the offline audit, the
 * rollout controller, the cluster scan). Parameters come from rule loading, which fills in every
 * default the action's schema declares: nothing here supplies a default of its own.
 */

/**
 * Owner resolution as the webhook's rules configure it: the params of the first
 * `denyDuplicateOwner` (else `tagOwner`) rule; the loaded defaults when there is neither.
 */
export function ownerResolutionFor(ruleSet: RuleSet): OwnerResolution {
  const rule = ruleSet.rules.find((r) => r.action.type === 'denyDuplicateOwner') ?? ruleSet.rules.find((r) => r.action.type === 'tagOwner');
  if (!rule) return DEFAULT_OWNER_RESOLUTION;
  const params = rule.action.params as unknown as OwnerResolution;
  return {
    sources: params.sources,
    argocdLabelKey: params.argocdLabelKey,
    ...(params.argocdLabelInstallation ? { argocdLabelInstallation: params.argocdLabelInstallation } : {}),
    ...(params.argocdLegacyInstallation ? { argocdLegacyInstallation: params.argocdLegacyInstallation } : {}),
  };
}

/**
 * The first enforce-mode stampConfigChecksum rule that selects `object` (as `request`), or why
 * none does. Audit-mode rules never write, so they select nothing here either.
 */
export function stampingRule(ruleSet: RuleSet, request: AdmissionRequest, object: KubeObject): (Rule & { action: { params: StampConfigChecksumParams } }) | string {
  let why = 'no stampConfigChecksum rule';
  for (const rule of ruleSet.rules) {
    if (rule.action.type !== 'stampConfigChecksum') continue;
    if (rule.mode !== 'enforce') {
      why = `rule ${rule.name} is in audit mode`;
      continue;
    }
    const skip = matchRule(rule.match, request, object);
    if (skip) {
      why = `rule ${rule.name}: ${skip}`;
      continue;
    }
    return rule as Rule & { action: { params: StampConfigChecksumParams } };
  }
  return why;
}
