import { describe, expect, it } from 'vitest';
import { matchRule, scopeOf, selectorMatches } from './match.js';
import type { RuleMatch } from './types.js';
import { requestFor } from '../../test/support/review.js';

const deployment = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'shop', labels: { tier: 'frontend' } } };
const base: RuleMatch = { kinds: [{ group: 'apps', version: '*', kind: 'Deployment' }], operations: ['CREATE', 'UPDATE'], scope: '*' };

describe('matchRule', () => {
  it('matches kinds with wildcards and says why it skipped', () => {
    const request = requestFor(deployment);
    expect(matchRule(base, request, deployment)).toBeNull();
    expect(matchRule({ ...base, kinds: [{ group: '*', version: '*', kind: '*' }] }, request, deployment)).toBeNull();
    expect(matchRule({ ...base, kinds: [{ group: 'apps', version: 'v2', kind: 'Deployment' }] }, request, deployment)).toBe('kind apps/v1/Deployment not selected');
    expect(matchRule(base, requestFor(deployment, { operation: 'DELETE' }), deployment)).toBe('operation DELETE not selected');
  });

  it('selects by scope, namespace include/exclude (with prefixes), user and group', () => {
    const request = requestFor(deployment);
    expect(matchRule({ ...base, scope: 'Cluster' }, request, deployment)).toBe('scope Namespaced not selected');
    expect(matchRule({ ...base, namespaces: { exclude: ['sh*'] } }, request, deployment)).toBe('namespace shop excluded');
    expect(matchRule({ ...base, namespaces: { include: ['shop'] } }, request, deployment)).toBeNull();
    expect(matchRule({ ...base, namespaces: { include: ['other'] } }, request, deployment)).toBe('namespace shop not included');
    expect(matchRule({ ...base, userInfo: { groups: ['system:serviceaccounts'] } }, request, deployment)).toBeNull();
    expect(matchRule({ ...base, userInfo: { usernames: ['jane'] } }, request, deployment)).toMatch(/^user system:serviceaccount:argocd/);
  });

  it('treats Namespace objects as cluster-scoped', () => {
    const ns = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } };
    expect(scopeOf(requestFor(ns, { namespace: 'shop' }))).toBe('Cluster');
  });
});

describe('selectorMatches', () => {
  const labels = { tier: 'frontend', team: 'a' };
  it('implements matchLabels and every matchExpressions operator', () => {
    expect(selectorMatches({ matchLabels: { tier: 'frontend' } }, labels)).toBe(true);
    expect(selectorMatches({ matchLabels: { tier: 'backend' } }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'team', operator: 'In', values: ['a', 'b'] }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'team', operator: 'NotIn', values: ['a'] }] }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'missing', operator: 'NotIn', values: ['a'] }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, labels)).toBe(false);
    expect(selectorMatches({ matchLabels: { constructor: 'x' } }, {})).toBe(false);
  });
});
