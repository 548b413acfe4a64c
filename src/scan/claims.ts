import { createHash } from 'node:crypto';
import type { KubeObject } from '../api/types.js';
import { isPlainObject } from '../util/objects.js';

/**
 * What Argo CD Applications claim: every object an Application's `status.resources` lists (what
 * Argo CD manages for it), indexed by object, so the scan can ask "which apps claim this?".
 * Applications may live in any namespace (apps-in-any-namespace); an app is named `ns/name`.
 */

export interface AppRef {
  namespace: string;
  name: string;
}

/** `argocd/pdp-dev-airflow`. */
export function appName(app: AppRef): string {
  return `${app.namespace}/${app.name}`;
}

/** An object an app claims. `namespace` is empty for cluster-scoped objects. */
export interface ClaimedObject {
  group: string;
  version: string;
  kind: string;
  namespace: string;
  name: string;
}

/** One string per object: group, kind, namespace (empty when cluster-scoped), name. */
export function objectKey(object: { group: string; kind: string; namespace?: string; name: string }): string {
  return `${object.group}/${object.kind}/${object.namespace ?? ''}/${object.name}`;
}

const text = (value: unknown): string => (typeof value === 'string' ? value : '');

/** The objects an Application's `status.resources` lists (entries without kind or name are ignored). */
export function claimsOf(application: KubeObject): ClaimedObject[] {
  const status = application['status'];
  const resources = isPlainObject(status) && Array.isArray(status['resources']) ? (status['resources'] as unknown[]) : [];
  const claims: ClaimedObject[] = [];
  for (const entry of resources) {
    if (!isPlainObject(entry)) continue;
    const claim = { group: text(entry['group']), version: text(entry['version']), kind: text(entry['kind']), namespace: text(entry['namespace']), name: text(entry['name']) };
    if (claim.kind && claim.name) claims.push(claim);
  }
  return claims;
}

/**
 * A digest of what an Application claims: changes exactly when its set of claimed objects does
 * (not with its sync status or health), which is what a new scan needs to see.
 */
export function claimsDigest(application: KubeObject): string {
  const keys = [...new Set(claimsOf(application).map(objectKey))].sort();
  return createHash('sha256').update(keys.join('\n')).digest('base64url').slice(0, 22);
}

export class ClaimIndex {
  private readonly apps: AppRef[] = [];
  private readonly byObject = new Map<string, { claim: ClaimedObject; apps: number[] }>();
  /** By app name, the apps of that name (in any namespace). */
  private readonly byName = new Map<string, number[]>();

  get applicationCount(): number {
    return this.apps.length;
  }

  add(application: KubeObject): void {
    const namespace = text(application.metadata?.namespace);
    const name = text(application.metadata?.name);
    if (!name) return;
    const index = this.apps.push({ namespace, name }) - 1;
    this.byName.set(name, [...(this.byName.get(name) ?? []), index]);
    for (const claim of claimsOf(application)) {
      const key = objectKey(claim);
      const entry = this.byObject.get(key);
      if (!entry) this.byObject.set(key, { claim, apps: [index] });
      else if (!entry.apps.includes(index)) entry.apps.push(index);
    }
  }

  /** The apps whose status claims the object, sorted by namespace and name. */
  claimants(key: string): AppRef[] {
    return (this.byObject.get(key)?.apps ?? []).map((i) => this.apps[i]!).sort(compareApps);
  }

  /** Every object claimed by two or more apps. */
  *shared(): Iterable<{ key: string; claim: ClaimedObject; apps: AppRef[] }> {
    for (const [key, { claim, apps }] of this.byObject) if (apps.length > 1) yield { key, claim, apps: apps.map((i) => this.apps[i]!).sort(compareApps) };
  }

  /**
   * The Application a tracking id's app part names: `<namespace>_<name>` for an app outside
   * Argo CD's own namespace, the bare name for one inside it. A bare name that several
   * namespaces use is ambiguous (which namespace is Argo CD's is not known here): undefined.
   */
  appForTracking(instance: string): AppRef | undefined {
    const underscore = instance.indexOf('_');
    if (underscore > 0) {
      const [namespace, name] = [instance.slice(0, underscore), instance.slice(underscore + 1)];
      const match = (this.byName.get(name) ?? []).map((i) => this.apps[i]!).find((a) => a.namespace === namespace);
      if (match) return match;
    }
    const named = this.byName.get(instance) ?? [];
    return named.length === 1 ? this.apps[named[0]!] : undefined;
  }
}

export function compareApps(a: AppRef, b: AppRef): number {
  const x = appName(a);
  const y = appName(b);
  return x < y ? -1 : x > y ? 1 : 0;
}
