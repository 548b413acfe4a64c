import { describe, expect, it } from 'vitest';
import { readinessReport, servedBy, type DiscoveryAnswer, type Served } from './kinds.js';
import { WORKLOAD_KINDS } from '../actions/checksum/pod-template.js';

const rollouts = WORKLOAD_KINDS.find((r) => r.kind === 'Rollout')!;
const all = new Set(['create', 'delete', 'get', 'list', 'patch', 'update', 'watch']);

describe('servedBy: per resource, never per group-version', () => {
  it('a served group-version without the resource (Argo CD without Argo Rollouts) does not serve it', () => {
    const argoCd = new Map([
      ['applications', all],
      ['appprojects', all],
    ]);
    expect(servedBy(rollouts, { resources: argoCd })).toEqual({ served: false, reason: 'not served: argoproj.io/v1alpha1 lists no rollouts (the Rollout CRD is not installed)' });
    expect(servedBy(rollouts, { resources: new Map([...argoCd, ['rollouts', all]]) })).toEqual({ served: true });
  });

  it.each<[string, DiscoveryAnswer, Served]>([
    ['a group-version not served at all', { resources: null }, { served: false, reason: 'not served: the API does not serve argoproj.io/v1alpha1' }],
    ['a resource without list/watch', { resources: new Map([['rollouts', new Set(['get', 'list'])]]) }, { served: false, reason: 'not served for watch in argoproj.io/v1alpha1' }],
    ['a failed discovery', { error: 'HTTP 503' }, { served: 'unknown', reason: 'discovery of argoproj.io/v1alpha1 failed (HTTP 503)' }],
  ])('%s', (_, answer, served) => {
    expect(servedBy(rollouts, answer)).toEqual(served);
  });
});

describe('readinessReport', () => {
  it('names what holds readiness back, and every kind with its state', () => {
    const kinds = [
      { resource: 'configmaps', watched: true, listed: true, required: true },
      { resource: 'deployments.apps', watched: true, listed: false, required: true },
      { resource: 'rollouts.argoproj.io', watched: false, listed: false, required: false, reason: 'not served: x' },
    ];
    expect(readinessReport(false, kinds)).toBe(
      'not ready: waiting for the first list of deployments.apps\n[+] configmaps: watched\n[ ] deployments.apps: watched, first list pending\n[-] rollouts.argoproj.io: not watched: not served: x\n',
    );
    expect(readinessReport(true, [kinds[0]!]).split('\n')[0]).toBe('ok');
  });
});
