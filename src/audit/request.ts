import type {
  AdmissionRequest,
  GroupVersionKind,
  GroupVersionResource,
  KubeObject,
  Operation,
  UserInfo,
} from '../api/types.js';
import { admissionRequest, GITOPS_SYNC_USER } from '../admission/request.js';
import { isPlainObject, parseApiVersion } from '../util/objects.js';

/**
 * Builds the admission request the API server would send for an object in rendered manifests:
 * kind and resource from apiVersion/kind, scope and plural from a table of built-in kinds plus
 * the CustomResourceDefinitions found in the same input.
 */

/** Argo CD's application controller: who applies rendered manifests in a GitOps cluster. */
export const DEFAULT_USER: UserInfo = GITOPS_SYNC_USER;

export const DEFAULT_NAMESPACE = 'default';

export interface KindInfo {
  plural: string;
  namespaced: boolean;
}

/** `group/Kind` → resource info, for kinds whose plural or scope cannot be guessed. */
const BUILTIN: ReadonlyMap<string, KindInfo> = new Map(
  (
    [
      // Cluster-scoped built-in kinds.
      ['', 'Namespace', 'namespaces', false],
      ['', 'Node', 'nodes', false],
      ['', 'PersistentVolume', 'persistentvolumes', false],
      ['', 'ComponentStatus', 'componentstatuses', false],
      ['rbac.authorization.k8s.io', 'ClusterRole', 'clusterroles', false],
      ['rbac.authorization.k8s.io', 'ClusterRoleBinding', 'clusterrolebindings', false],
      ['apiextensions.k8s.io', 'CustomResourceDefinition', 'customresourcedefinitions', false],
      ['apiregistration.k8s.io', 'APIService', 'apiservices', false],
      ['admissionregistration.k8s.io', 'MutatingWebhookConfiguration', 'mutatingwebhookconfigurations', false],
      ['admissionregistration.k8s.io', 'ValidatingWebhookConfiguration', 'validatingwebhookconfigurations', false],
      ['admissionregistration.k8s.io', 'ValidatingAdmissionPolicy', 'validatingadmissionpolicies', false],
      ['admissionregistration.k8s.io', 'ValidatingAdmissionPolicyBinding', 'validatingadmissionpolicybindings', false],
      ['admissionregistration.k8s.io', 'MutatingAdmissionPolicy', 'mutatingadmissionpolicies', false],
      ['admissionregistration.k8s.io', 'MutatingAdmissionPolicyBinding', 'mutatingadmissionpolicybindings', false],
      ['scheduling.k8s.io', 'PriorityClass', 'priorityclasses', false],
      ['storage.k8s.io', 'StorageClass', 'storageclasses', false],
      ['storage.k8s.io', 'CSIDriver', 'csidrivers', false],
      ['storage.k8s.io', 'CSINode', 'csinodes', false],
      ['storage.k8s.io', 'VolumeAttachment', 'volumeattachments', false],
      ['storage.k8s.io', 'VolumeAttributesClass', 'volumeattributesclasses', false],
      ['networking.k8s.io', 'IngressClass', 'ingressclasses', false],
      ['networking.k8s.io', 'IPAddress', 'ipaddresses', false],
      ['networking.k8s.io', 'ServiceCIDR', 'servicecidrs', false],
      ['node.k8s.io', 'RuntimeClass', 'runtimeclasses', false],
      ['policy', 'PodSecurityPolicy', 'podsecuritypolicies', false],
      ['certificates.k8s.io', 'CertificateSigningRequest', 'certificatesigningrequests', false],
      ['certificates.k8s.io', 'ClusterTrustBundle', 'clustertrustbundles', false],
      ['flowcontrol.apiserver.k8s.io', 'FlowSchema', 'flowschemas', false],
      ['flowcontrol.apiserver.k8s.io', 'PriorityLevelConfiguration', 'prioritylevelconfigurations', false],
      ['resource.k8s.io', 'DeviceClass', 'deviceclasses', false],
      ['resource.k8s.io', 'ResourceSlice', 'resourceslices', false],
      // Well-known cluster-scoped custom resources (their CRDs are rarely in the same bundle).
      ['cert-manager.io', 'ClusterIssuer', 'clusterissuers', false],
      ['gateway.networking.k8s.io', 'GatewayClass', 'gatewayclasses', false],
      ['snapshot.storage.k8s.io', 'VolumeSnapshotClass', 'volumesnapshotclasses', false],
      ['snapshot.storage.k8s.io', 'VolumeSnapshotContent', 'volumesnapshotcontents', false],
      // Namespaced kinds whose plural the fallback gets wrong or that are too common to guess.
      ['', 'Endpoints', 'endpoints', true],
      ['', 'ConfigMap', 'configmaps', true],
      ['', 'Secret', 'secrets', true],
      ['', 'Service', 'services', true],
      ['', 'ServiceAccount', 'serviceaccounts', true],
      ['', 'Pod', 'pods', true],
      ['', 'PersistentVolumeClaim', 'persistentvolumeclaims', true],
      ['', 'LimitRange', 'limitranges', true],
      ['', 'ResourceQuota', 'resourcequotas', true],
      ['apps', 'Deployment', 'deployments', true],
      ['apps', 'StatefulSet', 'statefulsets', true],
      ['apps', 'DaemonSet', 'daemonsets', true],
      ['apps', 'ReplicaSet', 'replicasets', true],
      ['batch', 'Job', 'jobs', true],
      ['batch', 'CronJob', 'cronjobs', true],
      ['rbac.authorization.k8s.io', 'Role', 'roles', true],
      ['rbac.authorization.k8s.io', 'RoleBinding', 'rolebindings', true],
      ['networking.k8s.io', 'Ingress', 'ingresses', true],
      ['networking.k8s.io', 'NetworkPolicy', 'networkpolicies', true],
      ['policy', 'PodDisruptionBudget', 'poddisruptionbudgets', true],
      ['autoscaling', 'HorizontalPodAutoscaler', 'horizontalpodautoscalers', true],
      ['discovery.k8s.io', 'EndpointSlice', 'endpointslices', true],
      ['coordination.k8s.io', 'Lease', 'leases', true],
      ['gateway.networking.k8s.io', 'Gateway', 'gateways', true],
    ] as const
  ).map(([group, kind, plural, namespaced]) => [`${group}/${kind}`, { plural, namespaced }]),
);

/** Like kubectl's fallback guess, but `Gateway` → `gateways` (vowel + y). */
export function guessPlural(kind: string): string {
  const lower = kind.toLowerCase();
  if (lower.endsWith('s') || lower.endsWith('x') || lower.endsWith('ch') || lower.endsWith('sh')) return `${lower}es`;
  if (/[^aeiou]y$/.test(lower)) return `${lower.slice(0, -1)}ies`;
  return `${lower}s`;
}



/** What the audit knows about kinds: built-ins plus the CRDs found in the input. */
export class KindCatalog {
  private readonly custom = new Map<string, KindInfo>();

  /** Registers a CustomResourceDefinition's kind; ignores anything malformed. */
  addCrd(object: KubeObject): void {
    const spec = object.spec;
    if (!isPlainObject(spec) || !isPlainObject(spec.names)) return;
    const { group } = spec;
    const { kind, plural } = spec.names;
    if (typeof group !== 'string' || typeof kind !== 'string' || kind === '') return;
    this.custom.set(`${group}/${kind}`, {
      plural: typeof plural === 'string' && plural !== '' ? plural : guessPlural(kind),
      namespaced: spec.scope !== 'Cluster',
    });
  }

  /** `known: false` means the scope is a guess (namespaced, as most custom resources are). */
  lookup(group: string, kind: string): KindInfo & { known: boolean } {
    const key = `${group}/${kind}`;
    const info = this.custom.get(key) ?? BUILTIN.get(key);
    if (info) return { ...info, known: true };
    return { plural: guessPlural(kind), namespaced: true, known: false };
  }
}

export interface ObjectIdentityKey {
  group: string;
  kind: string;
  /** Absent for cluster-scoped objects. */
  namespace?: string;
  name: string;
}

/** One string per API object: same group/kind, same namespace (for namespaced kinds), same name. */
export function identityKey(identity: ObjectIdentityKey): string {
  return `${identity.group}/${identity.kind}/${identity.namespace ?? ''}/${identity.name}`;
}

export function describeIdentity(identity: ObjectIdentityKey): string {
  const kind = identity.group ? `${identity.kind}.${identity.group}` : identity.kind;
  return `${kind} ${identity.namespace ? `${identity.namespace}/` : ''}${identity.name}`;
}

export interface Placement {
  gvk: GroupVersionKind;
  gvr: GroupVersionResource;
  /** The namespace the object lands in; absent for cluster-scoped kinds. */
  namespace?: string;
  name?: string;
  /** False when the kind is unknown and assumed namespaced. */
  scopeKnown: boolean;
  /** The object as the API server hands it to admission: namespace filled in or cleared. */
  object: KubeObject;
}

/**
 * Where the API server puts an object: namespaced objects without `metadata.namespace` land
 * in the request namespace (`kubectl apply -n`), cluster-scoped objects lose any namespace.
 */
export function place(object: KubeObject, catalog: KindCatalog, defaultNamespace: string): Placement {
  const { group, version } = parseApiVersion(object.apiVersion ?? '');
  const kind = object.kind ?? '';
  const info = catalog.lookup(group, kind);
  const metadata = isPlainObject(object.metadata) ? object.metadata : {};
  const name = typeof metadata.name === 'string' && metadata.name !== '' ? metadata.name : undefined;
  let namespace: string | undefined;
  const placedMetadata = { ...metadata };
  if (info.namespaced) {
    namespace = typeof metadata.namespace === 'string' && metadata.namespace !== '' ? metadata.namespace : defaultNamespace;
    placedMetadata.namespace = namespace;
  } else {
    delete placedMetadata.namespace;
  }
  return {
    gvk: { group, version, kind },
    gvr: { group, version, resource: info.plural },
    ...(namespace !== undefined ? { namespace } : {}),
    ...(name !== undefined ? { name } : {}),
    scopeKnown: info.known,
    object: { ...object, metadata: placedMetadata },
  };
}

export interface RequestOptions {
  /** Position of the request in the audit; makes the uid deterministic. */
  index: number;
  operation: Extract<Operation, 'CREATE' | 'UPDATE'>;
  oldObject?: KubeObject | null;
  userInfo?: UserInfo;
}

/** A uid of the UUID shape the API server uses, derived from the index so output is stable. */
export function auditUid(index: number): string {
  return `00000000-0000-4000-8000-${index.toString(16).padStart(12, '0')}`;
}

/** The AdmissionRequest for `placement` (a dry run, as Argo CD's server-side dry run would send). */
export function buildRequest(placement: Placement, options: RequestOptions): AdmissionRequest & { object: KubeObject } {
  return admissionRequest({
    uid: auditUid(options.index),
    kind: placement.gvk,
    resource: placement.gvr,
    ...(placement.name !== undefined ? { name: placement.name } : {}),
    ...(placement.namespace !== undefined ? { namespace: placement.namespace } : {}),
    operation: options.operation,
    object: placement.object,
    oldObject: options.oldObject ?? null,
    userInfo: options.userInfo ?? DEFAULT_USER,
    dryRun: true,
    fieldManager: 'argocd-controller',
  });
}
