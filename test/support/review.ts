import { randomUUID } from 'node:crypto';
import fastJsonPatch, { type Operation as PatchOperation } from 'fast-json-patch';
import type { AdmissionRequest, AdmissionReview, KubeObject, Operation } from '../../src/api/types.js';

const PLURALS: Record<string, string> = {
  ClusterRoleBinding: 'clusterrolebindings',
  ClusterRole: 'clusterroles',
  CustomResourceDefinition: 'customresourcedefinitions',
  Deployment: 'deployments',
  StatefulSet: 'statefulsets',
  DaemonSet: 'daemonsets',
  CronJob: 'cronjobs',
  ConfigMap: 'configmaps',
  Secret: 'secrets',
  Service: 'services',
  Namespace: 'namespaces',
};

export interface ReviewOptions {
  operation?: Operation;
  oldObject?: KubeObject | null;
  namespace?: string;
  subResource?: string;
  dryRun?: boolean;
  username?: string;
  groups?: string[];
  uid?: string;
}

/** The AdmissionRequest the API server would send for `object`. */
export function requestFor(object: KubeObject, options: ReviewOptions = {}): AdmissionRequest {
  const apiVersion = object.apiVersion ?? 'v1';
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const kind = object.kind ?? 'Unknown';
  const namespace = options.namespace ?? object.metadata?.namespace;
  const operation = options.operation ?? 'CREATE';
  return {
    uid: options.uid ?? randomUUID(),
    kind: { group: group!, version: version!, kind },
    resource: { group: group!, version: version!, resource: PLURALS[kind] ?? `${kind.toLowerCase()}s` },
    requestKind: { group: group!, version: version!, kind },
    name: object.metadata?.name,
    ...(namespace ? { namespace } : {}),
    ...(options.subResource ? { subResource: options.subResource } : {}),
    operation,
    userInfo: {
      username: options.username ?? 'system:serviceaccount:argocd:argocd-application-controller',
      groups: options.groups ?? ['system:serviceaccounts', 'system:authenticated'],
    },
    object: operation === 'DELETE' ? null : object,
    oldObject: options.oldObject ?? null,
    dryRun: options.dryRun ?? false,
  };
}

export function reviewFor(object: KubeObject, options: ReviewOptions = {}): AdmissionReview {
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: requestFor(object, options) };
}

export function decodePatch(patch: string | undefined): PatchOperation[] {
  return patch ? (JSON.parse(Buffer.from(patch, 'base64').toString('utf8')) as PatchOperation[]) : [];
}

/** Applies a response patch exactly as the API server does (RFC 6902, validated). */
export function applyResponsePatch(object: KubeObject, patch: string | undefined): KubeObject {
  const ops = decodePatch(patch);
  const clone = structuredClone(object);
  return fastJsonPatch.applyPatch(clone, ops, true, false).newDocument;
}

export function withMeta(object: KubeObject, meta: { labels?: Record<string, string>; annotations?: Record<string, string> }): KubeObject {
  const copy = structuredClone(object);
  copy.metadata = {
    ...copy.metadata,
    ...(meta.labels ? { labels: { ...(copy.metadata?.labels ?? {}), ...meta.labels } } : {}),
    ...(meta.annotations ? { annotations: { ...(copy.metadata?.annotations ?? {}), ...meta.annotations } } : {}),
  };
  return copy;
}
