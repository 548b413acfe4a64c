import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import type { AdmissionReview, KubeObject } from '../src/api/types.js';
import { isValidAnnotationNamePart } from '../src/util/text.js';
import { MAX_BODY_BYTES } from '../src/server/app.js';
import { corpusObject } from './support/corpus.js';
import { applyResponsePatch, decodePatch, reviewFor, withMeta } from './support/review.js';
import { testApp } from './support/app.js';

const argocdServerBinding = corpusObject('argocd-install.yaml', 'ClusterRoleBinding', 'argocd-server');
const ingressBinding = corpusObject('ingress-nginx-cloud-deploy.yaml', 'ClusterRoleBinding', 'ingress-nginx');
const tracked = withMeta(argocdServerBinding, {
  annotations: { 'argocd.argoproj.io/tracking-id': 'argocd:rbac.authorization.k8s.io/ClusterRoleBinding:argocd/argocd-server' },
});

async function post(app: ReturnType<typeof testApp>['app'], path: string, review: unknown) {
  const res = await request(app).post(path).set('content-type', 'application/json').send(JSON.stringify(review));
  return res;
}

/** Mutate, apply the patch as the API server would, mutate again: the second answer must carry no patch. */
async function expectIdempotent(app: ReturnType<typeof testApp>['app'], object: KubeObject) {
  const first = await post(app, '/mutate', reviewFor(object));
  const patched = applyResponsePatch(object, first.body.response.patch);
  const second = await post(app, '/mutate', reviewFor(patched));
  expect(second.body.response.patch).toBeUndefined();
  expect(second.body.response.patchType).toBeUndefined();
  return { first, patched };
}

describe('AdmissionReview protocol', () => {
  it('answers a CREATE of a real Argo CD ClusterRoleBinding with a base64 JSONPatch, echoing the uid', async () => {
    const { app } = testApp();
    const review = reviewFor(tracked);
    const res = await post(app, '/mutate', review);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body).toMatchObject({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' });
    expect(res.body.response).toMatchObject({ uid: review.request!.uid, allowed: true, patchType: 'JSONPatch' });
    expect(decodePatch(res.body.response.patch)).toEqual([
      { op: 'add', path: '/metadata/annotations/gitops-guard.dev~1owner', value: 'argocd:argocd' },
      { op: 'add', path: '/metadata/labels/app.kubernetes.io~1instance', value: 'argocd' },
    ]);
    const { patched } = await expectIdempotent(app, tracked);
    expect(patched.metadata?.annotations?.['gitops-guard.dev/owner']).toBe('argocd:argocd');
    expect(patched.metadata?.labels?.['app.kubernetes.io/instance']).toBe('argocd');
  });

  it('escapes "/" in keys and creates missing parent maps', async () => {
    const { app } = testApp();
    const bare = structuredClone(ingressBinding);
    delete bare.metadata!.labels;
    const object = withMeta(bare, { annotations: { 'meta.helm.sh/release-name': 'ingress-nginx', 'meta.helm.sh/release-namespace': 'ingress-nginx' } });
    const res = await post(app, '/mutate', reviewFor(object));
    const ops = decodePatch(res.body.response.patch);
    expect(ops).toEqual([
      { op: 'add', path: '/metadata/annotations/gitops-guard.dev~1owner', value: 'helm:ingress-nginx/ingress-nginx' },
      { op: 'add', path: '/metadata/labels', value: { 'app.kubernetes.io/instance': 'ingress-nginx' } },
    ]);
    await expectIdempotent(app, object);
  });

  it('returns no patch at all when nothing changes, and for unknown kinds', async () => {
    const { app } = testApp();
    const untracked = structuredClone(ingressBinding);
    delete untracked.metadata!.labels;
    for (const object of [untracked, { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w', namespace: 'x' } }]) {
      const res = await post(app, '/mutate', reviewFor(object));
      expect(res.body.response).toEqual({ uid: expect.any(String), allowed: true });
    }
  });

  it('never mutates DELETE (object null) nor subresources', async () => {
    const { app } = testApp();
    const del = await post(app, '/mutate', reviewFor(tracked, { operation: 'DELETE', oldObject: tracked }));
    expect(del.body.response).toEqual({ uid: expect.any(String), allowed: true });
    const status = await post(app, '/mutate', reviewFor(tracked, { operation: 'UPDATE', oldObject: tracked, subResource: 'status' }));
    expect(status.body.response).toEqual({ uid: expect.any(String), allowed: true });
  });

  it('evaluates dryRun requests exactly like real ones', async () => {
    const { app } = testApp();
    const live = applyResponsePatch(tracked, (await post(app, '/mutate', reviewFor(tracked))).body.response.patch);
    const intruder = withMeta(live, { annotations: { 'argocd.argoproj.io/tracking-id': 'other:rbac.authorization.k8s.io/ClusterRoleBinding:argocd/argocd-server' } });
    for (const path of ['/mutate', '/validate']) {
      const real = await post(app, path, reviewFor(intruder, { operation: 'UPDATE', oldObject: live, uid: 'u' }));
      const dry = await post(app, path, reviewFor(intruder, { operation: 'UPDATE', oldObject: live, uid: 'u', dryRun: true }));
      expect(dry.body).toEqual(real.body);
    }
  });

  it('denies a duplicate owner with status 403 and a human message', async () => {
    const { app } = testApp();
    const live = applyResponsePatch(tracked, (await post(app, '/mutate', reviewFor(tracked))).body.response.patch);
    const intruder = withMeta(live, { annotations: { 'argocd.argoproj.io/tracking-id': 'argocd-copy:rbac.authorization.k8s.io/ClusterRoleBinding:argocd/argocd-server' } });
    const res = await post(app, '/validate', reviewFor(intruder, { operation: 'UPDATE', oldObject: live }));
    expect(res.body.response.allowed).toBe(false);
    expect(res.body.response.status.code).toBe(403);
    expect(res.body.response.status.message).toMatch(/^ClusterRoleBinding\/argocd-server is owned by argocd:argocd; argocd:argocd-copy may not take it over\./);
    for (const key of Object.keys(res.body.response.auditAnnotations)) expect(isValidAnnotationNamePart(key), key).toBe(true);
  });

  it('keeps warnings within 256 characters', async () => {
    const { app } = testApp({ modeOverride: 'audit' });
    const live = withMeta(tracked, { annotations: { 'gitops-guard.dev/owner': `argocd:${'x'.repeat(200)}` } });
    const res = await post(app, '/validate', reviewFor(tracked, { operation: 'UPDATE', oldObject: live }));
    expect(res.body.response.allowed).toBe(true);
    expect(res.body.response.warnings.length).toBeGreaterThan(0);
    for (const w of res.body.response.warnings) expect(w.length).toBeLessThanOrEqual(256);
  });
});

describe('bad input', () => {
  const valid = reviewFor(tracked);
  const cases: [string, string | Buffer, string, number, RegExp][] = [
    ['non-JSON', 'hello', 'application/json', 400, /not valid JSON/],
    ['truncated JSON', JSON.stringify(valid).slice(0, 80), 'application/json', 400, /not valid JSON/],
    ['wrong content type', JSON.stringify(valid), 'text/plain', 415, /content type must be application\/json/],
    ['wrong apiVersion', JSON.stringify({ ...valid, apiVersion: 'admission.k8s.io/v1beta1' }), 'application/json', 400, /apiVersion must be admission\.k8s\.io\/v1, got "admission\.k8s\.io\/v1beta1"/],
    ['wrong kind', JSON.stringify({ ...valid, kind: 'Pod' }), 'application/json', 400, /kind must be AdmissionReview/],
    ['no request', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }), 'application/json', 400, /has no request/],
    ['no uid', JSON.stringify({ ...valid, request: { ...valid.request, uid: undefined } }), 'application/json', 400, /request\.uid is missing/],
    ['a JSON array', '[]', 'application/json', 400, /must be a JSON object/],
    ['no kind in request', JSON.stringify({ ...valid, request: { ...valid.request, kind: 'x' } }), 'application/json', 400, /request\.kind must be an object/],
  ];
  for (const [name, body, type, status, message] of cases) {
    it(`answers ${name} with ${status}`, async () => {
      const { app, metrics } = testApp();
      const res = await request(app).post('/mutate').set('content-type', type).send(body);
      expect(res.status).toBe(status);
      expect(res.body.error).toMatch(message);
      expect(await metrics.registry.getSingleMetricAsString('gitops_guard_errors_total')).toContain('type="bad_request"} 1');
    });
  }

  it('answers an oversized body with 413', async () => {
    const { app } = testApp();
    const res = await request(app).post('/validate').set('content-type', 'application/json').send(Buffer.alloc(MAX_BODY_BYTES + 10, 0x20));
    expect(res.status).toBe(413);
    expect(res.body.error).toBe(`request body exceeds ${MAX_BODY_BYTES} bytes`);
  });

  it('answers an oversized body sent without Content-Length (chunked) with 413', async () => {
    const { app } = testApp();
    const server = createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = httpRequest({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', method: 'POST', path: '/mutate', headers: { 'content-type': 'application/json' } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        const chunk = Buffer.alloc(1024 * 1024, 0x20);
        for (let i = 0; i < 9; i++) req.write(chunk);
        req.end();
      });
      expect(status).toBe(413);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('refuses compressed bodies and non-UTF-8 charsets with 415', async () => {
    const { app } = testApp();
    const body = JSON.stringify(valid);
    const gzip = await request(app).post('/mutate').set('content-type', 'application/json').set('content-encoding', 'gzip').send(body);
    expect(gzip.status).toBe(415);
    const latin = await request(app).post('/mutate').set('content-type', 'application/json; charset=latin1').send(body);
    expect(latin.status).toBe(415);
    const utf8 = await request(app).post('/mutate').set('content-type', 'application/json; charset=UTF-8').send(body);
    expect(utf8.status).toBe(200);
  });

  it('answers the URL the API server calls, with its ?timeout= query', async () => {
    const { app } = testApp();
    const res = await request(app).post('/mutate?timeout=5s').set('content-type', 'application/json').send(JSON.stringify(valid));
    expect(res.status).toBe(200);
    expect(res.body.response.uid).toBe(valid.request!.uid);
  });

  it('answers an object that is not what its kind says per the rule onError, with a well-formed review', async () => {
    const { app, metrics } = testApp();
    const broken = {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'x', labels: 'not-a-map', annotations: { 'meta.helm.sh/release-name': 'r', 'meta.helm.sh/release-namespace': 'n' } },
    } as unknown as KubeObject;
    const review = reviewFor(broken);
    const res = await post(app, '/mutate', review);
    expect(res.status).toBe(200);
    expect(res.body.response).toEqual({
      uid: review.request!.uid,
      allowed: true,
      warnings: ['gitops-guard rule tag-owner failed (allowed without changes): metadata.labels is not a map'],
      auditAnnotations: { 'tag-owner.error': 'metadata.labels is not a map' },
    });
    expect(await metrics.registry.getSingleMetricAsString('gitops_guard_errors_total')).toContain('type="rule_error"} 1');
  });

  it('ignores prototype-pollution attempts', async () => {
    const { app } = testApp();
    const body = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","__proto__":{"polluted":1},"request":{"uid":"p","operation":"CREATE",
      "kind":{"group":"rbac.authorization.k8s.io","version":"v1","kind":"ClusterRoleBinding"},
      "resource":{"group":"rbac.authorization.k8s.io","version":"v1","resource":"clusterrolebindings"},"name":"x",
      "userInfo":{"username":"u","__proto__":{"groups":["system:masters"]}},
      "object":{"metadata":{"name":"x","__proto__":{"polluted":2},"constructor":{"prototype":{"polluted":3}},
        "annotations":{"__proto__":{"polluted":4},"meta.helm.sh/release-name":"r","meta.helm.sh/release-namespace":"n"},
        "labels":{"constructor":"c","__proto__":"x"}}}}}`;
    const res = await request(app).post('/mutate').set('content-type', 'application/json').send(body);
    expect(res.status).toBe(200);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect((Object.prototype as Record<string, unknown>).groups).toBeUndefined();
    const ops = decodePatch(res.body.response.patch);
    expect(ops).toHaveLength(2);
    expect(ops).toEqual(
      expect.arrayContaining([
        { op: 'add', path: '/metadata/annotations/gitops-guard.dev~1owner', value: 'helm:n/r' },
        { op: 'add', path: '/metadata/labels/app.kubernetes.io~1instance', value: 'r' },
      ]),
    );
  });

  it('survives a barrage of garbage without crashing', async () => {
    const { app } = testApp();
    const garbage: unknown[] = [null, 1, 'x', [], {}, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'g', operation: 'CREATE', kind: {}, resource: {} } },
      { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'g', operation: 'PATCH' } },
      { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { ...valid.request, object: [] } },
      { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { ...valid.request, userInfo: 'root' } }];
    for (const body of garbage) {
      const res = await request(app).post('/mutate').set('content-type', 'application/json').send(JSON.stringify(body));
      expect(res.status).toBe(400);
    }
    expect((await request(app).get('/healthz')).status).toBe(200);
  });

  it('answers unknown paths with 404', async () => {
    const { app } = testApp();
    expect((await request(app).post('/nope').send('{}')).status).toBe(404);
    expect((await request(app).get('/mutate')).status).toBe(404);
  });
});

describe('health, readiness and metrics', () => {
  it('reports liveness, readiness and Prometheus metrics', async () => {
    let ready = true;
    const { app } = testApp({ ready: () => ready });
    expect((await request(app).get('/healthz')).text).toBe('ok');
    expect((await request(app).get('/readyz')).status).toBe(200);
    ready = false;
    expect((await request(app).get('/readyz')).status).toBe(503);
    await post(app, '/mutate', reviewFor(tracked));
    const metrics = await request(app).get('/metrics');
    expect(metrics.headers['content-type']).toMatch(/^text\/plain/);
    expect(metrics.text).toMatch(/gitops_guard_admission_duration_seconds_count\{webhook="mutate",operation="CREATE",kind="ClusterRoleBinding",verdict="patched"\} 1/);
    expect(metrics.text).toMatch(/gitops_guard_rule_results_total\{rule="tag-owner",action="tagOwner",mode="enforce",result="mutated"\} 1/);
  });

  it('logs one structured line per admission', async () => {
    const { app, lines } = testApp();
    const review: AdmissionReview = reviewFor(tracked);
    await post(app, '/mutate', review);
    const entry = lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'admission');
    expect(entry).toMatchObject({
      uid: review.request!.uid, webhook: 'mutate', kind: 'rbac.authorization.k8s.io/ClusterRoleBinding', name: 'argocd-server',
      operation: 'CREATE', rules: ['tag-owner:enforce:mutated'], verdict: 'patched', level: 'info',
    });
    expect(typeof entry.durationMs).toBe('number');
    expect(entry.object).toBeUndefined();
  });
});
