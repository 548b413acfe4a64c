import type { KubeObject } from '../api/types.js';
import { ARGOCD_TRACKING_ANNOTATION, resolveOwner, type OwnerResolution } from '../actions/owner/identity.js';
import type { SourceLocation } from './input.js';
import type { ObjectIdentityKey } from './request.js';
import { describeIdentity } from './request.js';

/**
 * Which owners render which objects. Owners come from the objects' tracking fields (Argo CD
 * tracking id or label, Helm release, Flux), read with the same `resolveOwner` the webhook uses;
 * `--app NAME=PATH` inputs carry the Argo CD tracking id Argo CD would stamp for app NAME.
 */

/**
 * The tracking id Argo CD (annotation tracking) writes: `app:group/Kind:namespace/name`. For
 * cluster-scoped objects Argo CD uses the Application's destination namespace.
 */
export function argocdTrackingId(app: string, identity: ObjectIdentityKey, destinationNamespace: string): string {
  return `${app}:${identity.group}/${identity.kind}:${identity.namespace ?? destinationNamespace}/${identity.name}`;
}

/** A copy of `object` as Argo CD app `app` would apply it (tracking annotation set). */
export function stampArgocdTracking(
  object: KubeObject,
  app: string,
  identity: ObjectIdentityKey,
  destinationNamespace: string,
): KubeObject {
  const metadata = object.metadata ?? {};
  return {
    ...object,
    metadata: {
      ...metadata,
      annotations: {
        ...(metadata.annotations ?? {}),
        [ARGOCD_TRACKING_ANNOTATION]: argocdTrackingId(app, identity, destinationNamespace),
      },
    },
  };
}

export function ownerOf(object: KubeObject, identity: ObjectIdentityKey, resolution: OwnerResolution): string | null {
  return resolveOwner(object, identity, resolution)?.id ?? null;
}

export interface Rendering {
  key: string;
  identity: ObjectIdentityKey;
  namespaced: boolean;
  source: SourceLocation;
  app?: string;
  owner: string | null;
}

export type DuplicateSeverity = 'error' | 'warning';

export interface DuplicateFinding {
  key: string;
  identity: ObjectIdentityKey;
  scope: 'Cluster' | 'Namespaced';
  /** `error`: two or more owners; `warning`: rendered more than once by one owner (or by none). */
  severity: DuplicateSeverity;
  /** Distinct owners in apply order. */
  owners: string[];
  renderings: { source: SourceLocation; app?: string; owner: string | null }[];
  message: string;
}

function describeOwners(owners: readonly string[]): string {
  return owners.join(', ');
}

/** Groups renderings by identity (in input order) and reports every identity rendered twice or more. */
export function findDuplicates(renderings: Iterable<Rendering>): DuplicateFinding[] {
  const groups = new Map<string, Rendering[]>();
  for (const rendering of renderings) {
    const list = groups.get(rendering.key);
    if (list) list.push(rendering);
    else groups.set(rendering.key, [rendering]);
  }
  const findings: DuplicateFinding[] = [];
  for (const [key, list] of groups) {
    if (list.length < 2) continue;
    const first = list[0]!;
    const owners = [...new Set(list.map((r) => r.owner).filter((o): o is string => o !== null))];
    const unowned = list.filter((r) => r.owner === null).length;
    const what = describeIdentity(first.identity);
    let severity: DuplicateSeverity;
    let message: string;
    if (owners.length >= 2) {
      severity = 'error';
      message =
        `${what} is rendered by ${owners.length} owners (${describeOwners(owners)}); ` +
        `only one may own it — render it in one app and disable it in the others`;
    } else if (owners.length === 1) {
      severity = 'warning';
      message =
        unowned > 0
          ? `${what} is rendered ${list.length} times, ${unowned} of them without an owner; the last apply wins`
          : `${what} is rendered ${list.length} times by ${owners[0]}; the last apply wins`;
    } else {
      severity = 'warning';
      message = `${what} is rendered ${list.length} times without an owner; the last apply wins`;
    }
    findings.push({
      key,
      identity: first.identity,
      scope: first.namespaced ? 'Namespaced' : 'Cluster',
      severity,
      owners,
      renderings: list.map((r) => ({ source: r.source, ...(r.app !== undefined ? { app: r.app } : {}), owner: r.owner })),
      message,
    });
  }
  return findings;
}
