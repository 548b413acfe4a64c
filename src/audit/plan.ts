import { ConfigBundle, type BundleProblem } from './bundle-reader.js';
import { ownerOf, stampArgocdTracking, type Rendering } from './duplicates.js';
import type { InputObject, SourceLocation } from './input.js';
import { identityKey, KindCatalog, place, type ObjectIdentityKey, type Placement } from './request.js';
import type { ObjectResult } from './types.js';
import type { OwnerResolution } from '../actions/owner/identity.js';

/**
 * Planning an audit: where every rendered object lands (kind catalog, namespace), which object
 * it is (renderings of the same object are applied one after the other), who owns it, and which
 * ConfigMaps and Secrets the input carries. No rule runs here.
 */

export interface PlannedRendering {
  index: number;
  source: SourceLocation;
  app?: string;
  owner: string | null;
  placement: Placement;
  notes: string[];
}

export interface PlannedObject {
  /** Filled in by the execution: one rendering result per planned rendering. */
  result: ObjectResult;
  identity: ObjectIdentityKey | null;
  renderings: PlannedRendering[];
}

export interface AuditPlan {
  /** Distinct objects, in input order of their first rendering. */
  objects: PlannedObject[];
  /** Every named rendering, for the duplicate check. */
  renderings: Rendering[];
  /** ConfigMaps and Secrets of the input, read before the cluster. */
  bundle: ConfigBundle;
  /** What the API server would refuse in an input ConfigMap or Secret, by object key. */
  bundleNotes: ReadonlyMap<string, BundleProblem[]>;
}

export function planAudit(inputObjects: readonly InputObject[], namespace: string, owners: OwnerResolution): AuditPlan {
  // Kinds defined by CRDs in the same input get their real scope and plural.
  const catalog = new KindCatalog();
  for (const { object } of inputObjects) {
    if (object.kind === 'CustomResourceDefinition' && String(object.apiVersion).startsWith('apiextensions.k8s.io/')) {
      catalog.addCrd(object);
    }
  }

  const bundle = new ConfigBundle();
  const planned = new Map<string, PlannedObject>();
  const renderings: Rendering[] = [];

  for (const item of inputObjects) {
    let placement = place(item.object, catalog, namespace);
    const { gvk } = placement;
    const notes: string[] = [];
    if (!placement.scopeKnown) {
      notes.push(`${gvk.kind} (${gvk.group || 'core'}) is not a known kind and no CRD for it is in the input; assumed namespaced`);
    }
    const identity: ObjectIdentityKey | null = placement.name
      ? { group: gvk.group, kind: gvk.kind, name: placement.name, ...(placement.namespace ? { namespace: placement.namespace } : {}) }
      : null;
    if (item.app !== undefined && identity) {
      placement = { ...placement, object: stampArgocdTracking(placement.object, item.app, identity, namespace) };
    }
    if (!identity) notes.push('metadata.generateName only: every apply creates a new object');
    // An --app owns what is under its path whatever the rules' owner sources say; other objects
    // are owned by whatever their tracking fields name, read the way the webhook reads them.
    const owner = !identity ? null : item.app !== undefined ? `argocd:${item.app}` : ownerOf(placement.object, identity, owners);
    bundle.add(placement.object, item.app);

    const key = identity ? identityKey(identity) : `#${item.index}`;
    let entry = planned.get(key);
    if (!entry) {
      entry = {
        identity,
        renderings: [],
        result: {
          key,
          apiVersion: item.object.apiVersion ?? '',
          group: gvk.group,
          version: gvk.version,
          kind: gvk.kind,
          ...(placement.name !== undefined ? { name: placement.name } : {}),
          ...(placement.namespace !== undefined ? { namespace: placement.namespace } : {}),
          scope: placement.namespace !== undefined ? 'Namespaced' : 'Cluster',
          scopeKnown: placement.scopeKnown,
          renderings: [],
        },
      };
      planned.set(key, entry);
    }
    entry.renderings.push({ index: item.index, source: item.source, ...(item.app !== undefined ? { app: item.app } : {}), owner, placement, notes });
    if (identity) {
      renderings.push({ key, identity, namespaced: placement.namespace !== undefined, source: item.source, ...(item.app !== undefined ? { app: item.app } : {}), owner });
    }
  }

  const bundleNotes = new Map<string, BundleProblem[]>();
  for (const problem of bundle.problems) {
    const key = identityKey({ group: '', kind: problem.kind, namespace: problem.namespace, name: problem.name });
    bundleNotes.set(key, [...(bundleNotes.get(key) ?? []), problem]);
  }
  return { objects: [...planned.values()], renderings, bundle, bundleNotes };
}
