import { describe, expect, it } from 'vitest';
import { matchRule, scopeOf, selectorMatches } from './match.js';
import type { LabelSelector, RuleMatch } from './types.js';
import { requestFor } from '../../test/support/review.js';

const deployment = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'shop', labels: { tier: 'frontend' } } };
const base: RuleMatch = { kinds: [{ group: 'apps', version: '*', kind: 'Deployment' }], operations: ['CREATE', 'UPDATE'], scope: '*' };

describe('matchRule', () => {
  const request = requestFor(deployment);

  it.each<[string, Partial<RuleMatch>, string | null]>([
    ['its kind', {}, null],
    ['every kind (wildcards)', { kinds: [{ group: '*', version: '*', kind: '*' }] }, null],
    ['another version', { kinds: [{ group: 'apps', version: 'v2', kind: 'Deployment' }] }, 'kind apps/v1/Deployment not selected'],
    ['cluster scope only', { scope: 'Cluster' }, 'scope Namespaced not selected'],
    ['a namespace excluded by prefix', { namespaces: { exclude: ['sh*'] } }, 'namespace shop excluded'],
    ['its namespace included', { namespaces: { include: ['shop'] } }, null],
    ['another namespace included', { namespaces: { include: ['other'] } }, 'namespace shop not included'],
    ["the user's group", { userInfo: { groups: ['system:serviceaccounts'] } }, null],
  ])('a rule selecting %s: %s', (_, match, skip) => {
    expect(matchRule({ ...base, ...match }, request, deployment)).toBe(skip);
  });

  it('says why it skipped an operation or a user it does not select', () => {
    expect(matchRule(base, requestFor(deployment, { operation: 'DELETE' }), deployment)).toBe('operation DELETE not selected');
    expect(matchRule({ ...base, userInfo: { usernames: ['jane'] } }, request, deployment)).toMatch(/^user system:serviceaccount:argocd/);
  });

  it('treats Namespace objects as cluster-scoped', () => {
    const ns = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } };
    expect(scopeOf(requestFor(ns, { namespace: 'shop' }))).toBe('Cluster');
  });
});

describe('selectorMatches: matchLabels and every matchExpressions operator', () => {
  const labels = { tier: 'frontend', team: 'a' };
  it.each<[LabelSelector, Record<string, string>, boolean]>([
    [{ matchLabels: { tier: 'frontend' } }, labels, true],
    [{ matchLabels: { tier: 'backend' } }, labels, false],
    [{ matchExpressions: [{ key: 'team', operator: 'In', values: ['a', 'b'] }] }, labels, true],
    [{ matchExpressions: [{ key: 'team', operator: 'NotIn', values: ['a'] }] }, labels, false],
    [{ matchExpressions: [{ key: 'missing', operator: 'NotIn', values: ['a'] }] }, labels, true],
    [{ matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, labels, true],
    [{ matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, labels, false],
    [{ matchLabels: { constructor: 'x' } }, {}, false],
  ])('%o on %o: %s', (selector, on, matches) => {
    expect(selectorMatches(selector, on)).toBe(matches);
  });
});
