import { describe, expect, it } from 'vitest';
import { ADMISSION_API_VERSION, ADMISSION_KIND } from '../api/types.js';
import { BadReviewError, decodeAdmissionReview } from './decode.js';

/** The smallest request the API server sends: a DELETE has no object, an anonymous call no userInfo fields. */
const request = {
  uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
  kind: { group: 'rbac.authorization.k8s.io', version: 'v1', kind: 'ClusterRoleBinding' },
  resource: { group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'clusterrolebindings' },
  name: 'airflow-pre-checker-binding',
  operation: 'CREATE',
  userInfo: { username: 'system:serviceaccount:argocd:argocd-application-controller', groups: ['system:authenticated'] },
  object: { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'airflow-pre-checker-binding' } },
  oldObject: null,
  dryRun: false,
};
const review = (changes: Record<string, unknown> = {}, requestChanges: Record<string, unknown> = {}) => ({
  apiVersion: ADMISSION_API_VERSION,
  kind: ADMISSION_KIND,
  request: { ...request, ...requestChanges },
  ...changes,
});

describe('decodeAdmissionReview', () => {
  it('returns the request, fields as sent', () => {
    expect(decodeAdmissionReview(review())).toEqual(request);
  });

  it('fills in what the API server may leave out: object and oldObject (null), userInfo ({})', () => {
    const { object: _o, oldObject: _old, userInfo: _u, ...bare } = request;
    expect(decodeAdmissionReview(review({ request: { ...bare, operation: 'DELETE' } }))).toEqual({ ...bare, operation: 'DELETE', object: null, oldObject: null, userInfo: {} });
  });

  it('keeps an object that does not look like its kind: rules decide about content, decoding only checks the envelope', () => {
    const decoded = decodeAdmissionReview(review({}, { object: { spec: 'not what a ClusterRoleBinding has' } }));
    expect(decoded.object).toEqual({ spec: 'not what a ClusterRoleBinding has' });
  });

  it.each<[string, unknown, string | RegExp]>([
    ['an array body', [review()], 'body must be a JSON object (an AdmissionReview)'],
    ['a string body', 'AdmissionReview', 'body must be a JSON object (an AdmissionReview)'],
    ['null', null, 'body must be a JSON object (an AdmissionReview)'],
    ['v1beta1', review({ apiVersion: 'admission.k8s.io/v1beta1' }), 'apiVersion must be admission.k8s.io/v1, got "admission.k8s.io/v1beta1"'],
    ['no apiVersion', { kind: ADMISSION_KIND, request }, 'apiVersion must be admission.k8s.io/v1, got null'],
    ['another kind', review({ kind: 'TokenReview' }), 'kind must be AdmissionReview, got "TokenReview"'],
    ['no request', review({ request: undefined }), 'AdmissionReview has no request'],
    ['a request that is an array', review({ request: [request] }), 'AdmissionReview has no request'],
    ['no uid', review({}, { uid: undefined }), 'request.uid is missing'],
    ['an empty uid', review({}, { uid: '' }), 'request.uid is missing'],
    ['an unknown operation', review({}, { operation: 'PATCH' }), 'request.operation must be one of CREATE, UPDATE, DELETE, CONNECT'],
    ['a kind that is not an object', review({}, { kind: 'ClusterRoleBinding' }), 'request.kind must be an object'],
    ['a kind without a version', review({}, { kind: { group: '', kind: 'ConfigMap' } }), 'request.kind.version must be a string'],
    ['no resource', review({}, { resource: undefined }), 'request.resource must be an object'],
    ['a resource without its plural', review({}, { resource: { group: '', version: 'v1' } }), 'request.resource.resource must be a string'],
    ['an object that is a string', review({}, { object: 'x' }), 'request.object must be an object or null'],
    ['an oldObject that is an array', review({}, { oldObject: [] }), 'request.oldObject must be an object or null'],
    ['userInfo that is a string', review({}, { userInfo: 'admin' }), 'request.userInfo must be an object'],
  ])('refuses %s with a BadReviewError saying what is wrong', (_, body, message) => {
    let error: unknown;
    try {
      decodeAdmissionReview(body);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(BadReviewError);
    expect((error as Error).message).toBe(message);
  });

  it('quotes at most 60 characters of a hostile apiVersion or kind', () => {
    const long = 'x'.repeat(10_000);
    for (const body of [review({ apiVersion: long }), review({ kind: long })]) {
      const message = (() => {
        try {
          decodeAdmissionReview(body);
          return '';
        } catch (e) {
          return (e as Error).message;
        }
      })();
      expect(message.length).toBeLessThan(120);
      expect(message).toContain('x'.repeat(59));
      expect(message).not.toContain('x'.repeat(61));
    }
  });
});
