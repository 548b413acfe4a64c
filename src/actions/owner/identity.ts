import type { AdmissionRequest, KubeObject } from '../../api/types.js';
import { annotationsOf, labelsOf, ownString } from '../../util/objects.js';

/** Annotation where gitops-guard records the owner it first saw. */
export const OWNER_ANNOTATION = 'gitops-guard.dev/owner';
/** Annotation the current owner sets to hand an object over to another owner identity. */
export const HANDOVER_ANNOTATION = 'gitops-guard.dev/handover-to';

export const ARGOCD_TRACKING_ANNOTATION = 'argocd.argoproj.io/tracking-id';
/** Argo CD writes its `installationID` (argocd-cm) here, next to the tracking id (annotation tracking only). */
export const ARGOCD_INSTALLATION_ANNOTATION = 'argocd.argoproj.io/installation-id';
export const HELM_RELEASE_NAME = 'meta.helm.sh/release-name';
export const HELM_RELEASE_NAMESPACE = 'meta.helm.sh/release-namespace';
export const FLUX_KUSTOMIZATION_NAME = 'kustomize.toolkit.fluxcd.io/name';
export const FLUX_KUSTOMIZATION_NAMESPACE = 'kustomize.toolkit.fluxcd.io/namespace';
export const FLUX_HELMRELEASE_NAME = 'helm.toolkit.fluxcd.io/name';
export const FLUX_HELMRELEASE_NAMESPACE = 'helm.toolkit.fluxcd.io/namespace';

export type OwnerSource = 'argocdAnnotation' | 'argocdLabel' | 'helm' | 'flux';

export const OWNER_SOURCES: readonly OwnerSource[] = ['argocdAnnotation', 'argocdLabel', 'helm', 'flux'];

/**
 * Label tracking is the weakest signal: `app.kubernetes.io/instance` is also the generic
 * "recommended label" every Helm chart renders, so it comes after Helm's and Flux's own markers.
 */
export const DEFAULT_OWNER_SOURCES: readonly OwnerSource[] = ['argocdAnnotation', 'helm', 'flux', 'argocdLabel'];

export interface Owner {
  /**
   * e.g. `argocd:pdp-dev-airflow`, `argocd:hub/pdp-dev-airflow` (an Argo CD installation with an
   * installation id), `helm:airflow/airflow`, `flux:kustomization:flux-system/apps`.
   */
  id: string;
  /** The instance name, for the `app.kubernetes.io/instance` label. */
  instance: string;
  source: OwnerSource;
}

/**
 * What tagOwner and denyDuplicateOwner found out (the rule's `details` in the engine's result):
 * the owner resolved from the object's tracking fields exactly as the webhook resolves it, and
 * the owner on record. A cluster scan compares the two without deciding anything itself.
 */
export interface OwnerDetails {
  action: 'tagOwner' | 'denyDuplicateOwner';
  /** The owner the object's tracking fields name (null: none). */
  owner: Owner | null;
  /**
   * The owner on record for the live object: its `gitops-guard.dev/owner`, or for an object that
   * predates gitops-guard its tracking owner. Null on CREATE and for objects nobody owns yet.
   */
  recorded: string | null;
  /** The `gitops-guard.dev/owner` the object carries: after the rule's patch (tagOwner), as sent (denyDuplicateOwner). */
  record?: string;
}

export interface OwnerResolution {
  sources: readonly OwnerSource[];
  /** Label Argo CD's label tracking writes (Argo CD's `application.instanceLabelKey`). */
  argocdLabelKey: string;
  /**
   * The Argo CD installation that writes `argocdLabelKey` (label tracking records no installation
   * id on the object): owners found through the label become `argocd:<installation>/<app>`.
   * Empty (the default): `argocd:<app>`.
   */
  argocdLabelInstallation?: string;
  /**
   * The installation that owners recorded without one (`argocd:<app>`) belong to: set it after
   * giving an existing Argo CD an installation id, so its own objects are not taken for another
   * instance's. Empty (the default): `argocd:<app>` and `argocd:<installation>/<app>` differ.
   */
  argocdLegacyInstallation?: string;
}

export interface TrackingId {
  app: string;
  group: string;
  kind: string;
  namespace: string;
  name: string;
}

/** `<app>:<group>/<kind>:<namespace>/<name>`; the group is empty for the core API group. */
export function parseTrackingId(value: string): TrackingId | null {
  const match = /^([^:/]+):([^/:]*)\/([^:/]+):([^/]*)\/(.+)$/.exec(value);
  if (!match) return null;
  const [, app, group, kind, namespace, name] = match as unknown as [string, string, string, string, string, string];
  return { app, group, kind, namespace, name };
}

export interface ObjectIdentity {
  group: string;
  kind: string;
  name: string;
  /** Absent for cluster-scoped objects. */
  namespace?: string;
}

/** What the request is about, as the API server states it (not as the object claims). */
export function targetOf(request: AdmissionRequest, object: KubeObject | null): ObjectIdentity {
  const name = request.name || (typeof object?.metadata?.name === 'string' ? object.metadata.name : '');
  return { group: request.kind.group, kind: request.kind.kind, name, namespace: request.namespace || undefined };
}

/**
 * A tracking id copied from another object (e.g. by a careless `kubectl get -o yaml`) does not
 * make an owner: it must name this very object. For cluster-scoped objects Argo CD puts the
 * Application's destination namespace in the id, so the namespace is not compared there.
 */
function trackingIdMatches(id: TrackingId, target: ObjectIdentity): boolean {
  if (id.group !== target.group || id.kind !== target.kind || id.name !== target.name) return false;
  return !target.namespace || id.namespace === target.namespace;
}

/** `argocd:<app>`, or `argocd:<installation>/<app>` for an Argo CD with an installation id (an app name never has a slash). */
export function argocdOwnerId(app: string, installation: string | undefined): string {
  return installation ? `argocd:${installation}/${app}` : `argocd:${app}`;
}

function fromSource(
  source: OwnerSource,
  object: KubeObject,
  target: ObjectIdentity,
  options: OwnerResolution,
): Owner | null {
  const annotations = annotationsOf(object);
  const labels = labelsOf(object);
  switch (source) {
    case 'argocdAnnotation': {
      const raw = ownString(annotations, ARGOCD_TRACKING_ANNOTATION);
      const id = raw ? parseTrackingId(raw) : null;
      if (!id || !trackingIdMatches(id, target)) return null;
      return { id: argocdOwnerId(id.app, ownString(annotations, ARGOCD_INSTALLATION_ANNOTATION)), instance: id.app, source };
    }
    case 'argocdLabel': {
      const app = ownString(labels, options.argocdLabelKey);
      return app ? { id: argocdOwnerId(app, options.argocdLabelInstallation), instance: app, source } : null;
    }
    case 'helm': {
      const release = ownString(annotations, HELM_RELEASE_NAME);
      const namespace = ownString(annotations, HELM_RELEASE_NAMESPACE);
      return release && namespace ? { id: `helm:${namespace}/${release}`, instance: release, source } : null;
    }
    case 'flux': {
      const ksName = ownString(labels, FLUX_KUSTOMIZATION_NAME);
      const ksNamespace = ownString(labels, FLUX_KUSTOMIZATION_NAMESPACE);
      if (ksName && ksNamespace) {
        return { id: `flux:kustomization:${ksNamespace}/${ksName}`, instance: ksName, source };
      }
      const hrName = ownString(labels, FLUX_HELMRELEASE_NAME);
      const hrNamespace = ownString(labels, FLUX_HELMRELEASE_NAMESPACE);
      if (hrName && hrNamespace) {
        return { id: `flux:helmrelease:${hrNamespace}/${hrName}`, instance: hrName, source };
      }
      return null;
    }
  }
}

/** The owning instance according to the object's own tracking fields (never gitops-guard's record). */
export function resolveOwner(object: KubeObject | null, target: ObjectIdentity, options: OwnerResolution): Owner | null {
  if (!object) return null;
  for (const source of options.sources) {
    const owner = fromSource(source, object, target, options);
    if (owner) return owner;
  }
  return null;
}

/**
 * Whether a recorded owner and an incoming one are the same owner: equal, or the recorded one is
 * the installation-less form of the incoming one and `argocdLegacyInstallation` says whose it is.
 */
export function sameOwner(recorded: string, incoming: string, options: OwnerResolution): boolean {
  if (recorded === incoming) return true;
  const legacy = options.argocdLegacyInstallation;
  if (!legacy || !recorded.startsWith('argocd:') || recorded.includes('/')) return false;
  return incoming === argocdOwnerId(recorded.slice('argocd:'.length), legacy);
}

/** The owner gitops-guard recorded on the live object, or for objects that predate it, their tracking owner. */
export function recordedOwner(oldObject: KubeObject | null, target: ObjectIdentity, options: OwnerResolution): string | null {
  if (!oldObject) return null;
  return ownString(annotationsOf(oldObject), OWNER_ANNOTATION) ?? resolveOwner(oldObject, target, options)?.id ?? null;
}

export const ownerResolutionParamsSchema = {
  sources: {
    type: 'array',
    items: { enum: [...OWNER_SOURCES] },
    minItems: 1,
    uniqueItems: true,
    default: [...DEFAULT_OWNER_SOURCES],
    description: 'Where to look for the owning instance, first match wins.',
  },
  argocdLabelKey: {
    type: 'string',
    minLength: 1,
    default: 'app.kubernetes.io/instance',
    description: "Argo CD's label-tracking key (application.instanceLabelKey).",
  },
  argocdLabelInstallation: {
    type: 'string',
    pattern: '^[^/:\\s]*$',
    maxLength: 128,
    default: '',
    description: 'Installation name for owners found through argocdLabelKey (argocd:<installation>/<app>); empty: argocd:<app>.',
  },
  argocdLegacyInstallation: {
    type: 'string',
    pattern: '^[^/:\\s]*$',
    maxLength: 128,
    default: '',
    description: 'The installation owners recorded as argocd:<app> belong to (after an installation id was introduced).',
  },
} as const;

/** How owners are resolved when no rule configures it: the defaults rule loading fills in. */
export const DEFAULT_OWNER_RESOLUTION: OwnerResolution = {
  sources: ownerResolutionParamsSchema.sources.default,
  argocdLabelKey: ownerResolutionParamsSchema.argocdLabelKey.default,
};
