import { describe, expect, it } from 'vitest';
import { ADMISSION_API_VERSION, ADMISSION_KIND } from '../api/types.js';
import { decodeAdmissionReview } from './decode.js';
import { admissionRequest, GITOPS_SYNC_USER, unchangedUpdate } from './request.js';

const crb = { group: 'rbac.authorization.k8s.io', version: 'v1', kind: 'ClusterRoleBinding', plural: 'clusterrolebindings' };
const live = { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'airflow-pre-checker-binding', uid: 'u-1' } };

describe('the one request builder', () => {
  it('an unchanged re-apply of a live object: an UPDATE whose object and oldObject are the live object, which the webhook decoder accepts as it is', () => {
    const request = unchangedUpdate(crb, live, GITOPS_SYNC_USER, 'scan-1');
    expect(request).toEqual({
      uid: 'scan-1',
      kind: { group: 'rbac.authorization.k8s.io', version: 'v1', kind: 'ClusterRoleBinding' },
      resource: { group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'clusterrolebindings' },
      requestKind: { group: 'rbac.authorization.k8s.io', version: 'v1', kind: 'ClusterRoleBinding' },
      requestResource: { group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'clusterrolebindings' },
      name: 'airflow-pre-checker-binding',
      operation: 'UPDATE',
      userInfo: GITOPS_SYNC_USER,
      object: live,
      oldObject: live,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'UpdateOptions' },
    });
    const review = { apiVersion: ADMISSION_API_VERSION, kind: ADMISSION_KIND, request: JSON.parse(JSON.stringify(request)) };
    expect(decodeAdmissionReview(review)).toEqual(request);
  });

  it('namespaced objects carry their namespace; a Namespace carries its own name, as the API server sends it', () => {
    const deploy = { group: 'apps', version: 'v1', kind: 'Deployment', plural: 'deployments' };
    expect(unchangedUpdate(deploy, { metadata: { name: 'web', namespace: 'shop' } }, {}, 'x')).toMatchObject({ name: 'web', namespace: 'shop' });
    const ns = { group: '', version: 'v1', kind: 'Namespace', plural: 'namespaces' };
    expect(unchangedUpdate(ns, { metadata: { name: 'team-a' } }, {}, 'x')).toMatchObject({ name: 'team-a', namespace: 'team-a' });
  });

  it('a dry-run CREATE names its field manager and never carries an oldObject', () => {
    const request = admissionRequest({
      uid: 'a',
      kind: { group: '', version: 'v1', kind: 'ConfigMap' },
      resource: { group: '', version: 'v1', resource: 'configmaps' },
      name: 'c',
      namespace: 'n',
      operation: 'CREATE',
      object: { metadata: { name: 'c' } },
      oldObject: { metadata: { name: 'c' } },
      userInfo: {},
      dryRun: true,
      fieldManager: 'argocd-controller',
    });
    expect(request).toMatchObject({ dryRun: true, oldObject: null, options: { kind: 'CreateOptions', dryRun: ['All'], fieldManager: 'argocd-controller' } });
  });
});
