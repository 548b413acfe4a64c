import { HANDOVER_ANNOTATION, OWNER_ANNOTATION, type Owner } from '../actions/owner/identity.js';
import { CHECKS, type Finding, type ResourceRef } from '../report/index.js';
import { appName, type AppRef } from './claims.js';
import { describeObject } from './object-checks.js';

/**
 * Check 1: objects claimed by two or more Argo CD Applications (Argo CD's SharedResourceWarning,
 * cluster-wide): the claims come from the Applications' `status.resources` and from the live
 * object's own tracking metadata, resolved exactly as the webhook resolves its owner. Works in
 * audit mode, where no owner annotation was ever written. Pure.
 */

export interface Holder {
  /** The owner the live object's tracking metadata names (null: none); undefined when the object was not read. */
  owner?: Owner | null;
  /** The Application that owner is, when there is one. */
  app?: AppRef;
  /** The `gitops-guard.dev/owner` the object carries. */
  recorded?: string;
  /** Why the live object is unknown, when it is. */
  unread?: string;
}

/**
 * The owner id an Application's syncs write: `argocd:<name>` for an app in Argo CD's own
 * namespace, `argocd:<namespace>_<name>` outside it. Which namespace is Argo CD's is judged by the
 * holder: an app in the holder's namespace whose tracking id has the short form has it too.
 */
function ownerIdOf(app: AppRef, holder: Holder & { app: AppRef }): string {
  const plain = holder.app.namespace === app.namespace && !!holder.owner && !holder.owner.instance.includes('_');
  return `argocd:${plain ? app.name : `${app.namespace}_${app.name}`}`;
}

export function sharedObjectFinding(ref: ResourceRef, kubectlResource: string, claimants: readonly AppRef[], holder: Holder): Finding {
  const what = describeObject(ref.kind, ref.name, ref.namespace);
  const names = claimants.map(appName);
  let holds: string;
  if (holder.unread !== undefined) holds = `it was not read (${holder.unread})`;
  else if (holder.app) holds = `${appName(holder.app)} holds it now (${holder.owner!.id}, from its tracking metadata)`;
  else if (holder.owner) holds = `its tracking metadata names ${holder.owner.id}, which is none of them`;
  else holds = 'its tracking metadata names no owner';
  // A handover goes from the app holding it to another: named only when the holder is known.
  const other = holder.app && claimants.find((app) => appName(app) !== appName(holder.app!));
  const handover = other
    ? `, or hand it over: kubectl annotate ${kubectlResource} ${ref.name}${ref.namespace ? ` -n ${ref.namespace}` : ''} ${HANDOVER_ANNOTATION}=${ownerIdOf(other, holder as Holder & { app: AppRef })}`
    : `, or have the app holding it hand it over (${HANDOVER_ANNOTATION})`;
  return {
    check: CHECKS.sharedObject.check,
    rule: CHECKS.sharedObject.rule,
    result: 'fail',
    severity: CHECKS.sharedObject.severity,
    category: CHECKS.sharedObject.category,
    message:
      `${what} is claimed by ${claimants.length} Argo CD Applications (${names.join(', ')}); ${holds}. Each sync of one app overwrites what the other applied, ` +
      `and in enforce mode the second owner's syncs are denied. Keep one owner: render it in one app (or a shared app) and disable it in the others${handover}.`,
    resource: ref,
    properties: {
      apps: names.join(','),
      holder: holder.app ? appName(holder.app) : (holder.owner?.id ?? 'none'),
      ...(holder.recorded !== undefined ? { recorded: holder.recorded } : {}),
    },
  };
}

export function notSharedFinding(ref: ResourceRef, claimants: readonly AppRef[], holder: Holder): Finding {
  const what = describeObject(ref.kind, ref.name, ref.namespace);
  const claim = claimants.length === 1 ? `claimed by one Argo CD Application (${appName(claimants[0]!)})` : 'claimed by no Argo CD Application';
  return {
    check: CHECKS.sharedObject.check,
    rule: CHECKS.sharedObject.rule,
    result: 'pass',
    severity: CHECKS.sharedObject.severity,
    category: CHECKS.sharedObject.category,
    message: `${what} is ${claim}`,
    resource: ref,
    ...(claimants.length === 1 ? { properties: { apps: appName(claimants[0]!), ...(holder.recorded !== undefined ? { recorded: holder.recorded } : {}) } } : {}),
  };
}

/** The owner annotation an object carries, if any. */
export function recordOf(annotations: Record<string, string>): string | undefined {
  const value = annotations[OWNER_ANNOTATION];
  return typeof value === 'string' ? value : undefined;
}
