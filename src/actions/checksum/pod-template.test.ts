import { describe, expect, it } from 'vitest';
import { locatePodTemplate, PodTemplateError, WORKLOAD_KINDS } from './pod-template.js';

const podSpec = { containers: [{ name: 'app', image: 'app:1' }] };
const template = { metadata: { labels: { app: 'x' } }, spec: podSpec };

describe('locatePodTemplate', () => {
  it.each([
    ['apps/v1', 'Deployment', { spec: { template } }],
    ['apps/v1', 'StatefulSet', { spec: { template } }],
    ['apps/v1', 'DaemonSet', { spec: { template } }],
    ['batch/v1', 'CronJob', { spec: { jobTemplate: { spec: { template } } } }],
    ['argoproj.io/v1alpha1', 'Rollout', { spec: { template } }],
  ])('finds the template of %s %s', (apiVersion, kind, body) => {
    const object = { apiVersion, kind, metadata: { name: 'w' }, ...body } as unknown as { spec: { template?: unknown; jobTemplate?: { spec: { template: unknown } } } };
    const location = locatePodTemplate(object);
    expect(location?.template).toBe(kind === 'CronJob' ? object.spec.jobTemplate!.spec.template : object.spec.template);
    expect(location?.podSpec).toEqual(podSpec);
    expect(location?.workload.kind).toBe(kind);
  });

  it('keeps the kind table in one place, one entry per kind', () => {
    expect(WORKLOAD_KINDS.map((w) => `${w.group}/${w.kind}`)).toEqual([
      'apps/Deployment',
      'apps/StatefulSet',
      'apps/DaemonSet',
      'batch/CronJob',
      'argoproj.io/Rollout',
    ]);
  });

  it('returns null for a Rollout that references a Deployment instead of carrying a template', () => {
    const rollout = { apiVersion: 'argoproj.io/v1alpha1', kind: 'Rollout', spec: { workloadRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'd' } } };
    expect(locatePodTemplate(rollout)).toBeNull();
  });

  it.each([
    ['a string', 'not an object', /not a Kubernetes object/],
    ['null', null, /not a Kubernetes object/],
    ['an array', [], /not a Kubernetes object/],
    ['a Pod', { apiVersion: 'v1', kind: 'Pod', spec: podSpec }, /v1 Pod is not a workload with a pod template/],
    ['a Deployment of another group', { apiVersion: 'extensions.example/v1', kind: 'Deployment', spec: { template } }, /not a workload/],
    ['no kind', { apiVersion: 'apps/v1' }, /apps\/v1 \(no kind\) is not a workload/],
    ['no spec', { apiVersion: 'apps/v1', kind: 'Deployment' }, /Deployment has no pod template at \.spec$/],
    ['a string spec', { apiVersion: 'apps/v1', kind: 'Deployment', spec: 'x' }, /at \.spec$/],
    ['no template', { apiVersion: 'apps/v1', kind: 'Deployment', spec: {} }, /at \.spec\.template$/],
    ['an array template', { apiVersion: 'apps/v1', kind: 'StatefulSet', spec: { template: [] } }, /at \.spec\.template$/],
    ['no pod spec', { apiVersion: 'apps/v1', kind: 'DaemonSet', spec: { template: { metadata: {} } } }, /has no spec at \.spec\.template\.spec/],
    ['a CronJob without jobTemplate.spec', { apiVersion: 'batch/v1', kind: 'CronJob', spec: { jobTemplate: {} } }, /at \.spec\.jobTemplate\.spec$/],
    ['a Rollout without template or workloadRef', { apiVersion: 'argoproj.io/v1alpha1', kind: 'Rollout', spec: {} }, /Rollout has no pod template/],
  ])('throws a clear PodTemplateError for %s', (_name, object, message) => {
    expect(() => locatePodTemplate(object)).toThrow(PodTemplateError);
    expect(() => locatePodTemplate(object)).toThrow(message);
  });
});
