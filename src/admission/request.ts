import type { AdmissionRequest, GroupVersionKind, GroupVersionResource, KubeObject, UserInfo } from '../api/types.js';

/**
 * The AdmissionRequests gitops-guard builds itself, for callers that ask the engine about an
 * object no API server sent: the offline audit (rendered manifests, as a dry run), the rollout
 * controller and the cluster scan (a live object re-applied unchanged). One builder, so every
 * caller's request has the shape the API server gives it and the rules match it the same way.
 */

/** Argo CD's application controller: who applies manifests, and re-applies live objects, in a GitOps cluster. */
export const GITOPS_SYNC_USER: UserInfo = {
  username: 'system:serviceaccount:argocd:argocd-application-controller',
  groups: ['system:serviceaccounts', 'system:serviceaccounts:argocd', 'system:authenticated'],
};

export interface RequestSpec {
  uid: string;
  kind: GroupVersionKind;
  resource: GroupVersionResource;
  /** Absent for an object without a name yet (generateName). */
  name?: string;
  /** Absent for cluster-scoped objects (a Namespace gets its own name, as the API server sends it). */
  namespace?: string;
  operation: 'CREATE' | 'UPDATE';
  object: KubeObject;
  /** The live object of an UPDATE (ignored for CREATE). */
  oldObject?: KubeObject | null;
  userInfo: UserInfo;
  /** A dry run (`dryRun: All`), as Argo CD's server-side dry run sends it. */
  dryRun?: boolean;
  /** The field manager named in the request's options. */
  fieldManager?: string;
}

/** The request as the API server sends it for `spec`. */
export function admissionRequest(spec: RequestSpec): AdmissionRequest & { object: KubeObject } {
  const { kind, resource, operation } = spec;
  // The API server fills in `namespace` for Namespace objects themselves (see rules/match.ts).
  const namespace = kind.group === '' && kind.kind === 'Namespace' && spec.name ? spec.name : spec.namespace;
  return {
    uid: spec.uid,
    kind: { ...kind },
    resource: { ...resource },
    requestKind: { ...kind },
    requestResource: { ...resource },
    ...(spec.name !== undefined ? { name: spec.name } : {}),
    ...(namespace !== undefined ? { namespace } : {}),
    operation,
    userInfo: spec.userInfo,
    object: spec.object,
    oldObject: operation === 'UPDATE' ? spec.oldObject ?? null : null,
    ...(spec.dryRun ? { dryRun: true } : {}),
    options: {
      apiVersion: 'meta.k8s.io/v1',
      kind: operation === 'CREATE' ? 'CreateOptions' : 'UpdateOptions',
      ...(spec.dryRun ? { dryRun: ['All'] } : {}),
      ...(spec.fieldManager ? { fieldManager: spec.fieldManager } : {}),
    },
  };
}

/** A resource type as the API serves it: enough to address an object and name it in a request. */
export interface ServedKind {
  group: string;
  version: string;
  kind: string;
  plural: string;
}

/**
 * The UPDATE the webhooks would see if the live `object` were re-applied unchanged: object and
 * oldObject both the live object. What the rollout controller matches its stamping rule against,
 * and what the cluster scan admits to learn what every rule would do to a live object.
 */
export function unchangedUpdate(resource: ServedKind, object: KubeObject, userInfo: UserInfo, uid: string): AdmissionRequest & { object: KubeObject } {
  const name = object.metadata?.name;
  const namespace = object.metadata?.namespace;
  return admissionRequest({
    uid,
    kind: { group: resource.group, version: resource.version, kind: resource.kind },
    resource: { group: resource.group, version: resource.version, resource: resource.plural },
    ...(name ? { name } : {}),
    ...(namespace ? { namespace } : {}),
    operation: 'UPDATE',
    object,
    oldObject: object,
    userInfo,
  });
}
