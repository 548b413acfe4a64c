import { evaluate, parse } from '@marcbachmann/cel-js';
import { describe, expect, it } from 'vitest';
import { buildObjects } from './support/kustomize.js';

/**
 * The webhooks' CEL matchConditions, evaluated with a CEL implementation against the variables the
 * API server binds (`object`, `oldObject`, `request`): a condition that is false means the API
 * server never calls gitops-guard for that request.
 */

interface MatchCondition {
  name: string;
  expression: string;
}

const configurations = buildObjects('manifests/base').filter((o) => o.kind === 'MutatingWebhookConfiguration' || o.kind === 'ValidatingWebhookConfiguration');
const conditions = configurations.flatMap((configuration) =>
  (configuration['webhooks'] as { name: string; matchConditions?: MatchCondition[] }[]).flatMap((webhook) =>
    (webhook.matchConditions ?? []).map((condition) => ({ webhook: webhook.name, ...condition })),
  ),
);

const argocd = 'system:serviceaccount:argocd:argocd-application-controller';
const tracked = { metadata: { name: 'x', labels: { 'app.kubernetes.io/instance': 'shop' } } };
const request = (username: string) => ({ userInfo: { username, groups: ['system:authenticated'] }, operation: 'UPDATE' });

/** Per condition: requests it must let through (true) and skip (false). */
const expectations: Record<string, { pass: Record<string, unknown>[]; skip: Record<string, unknown>[] }> = {
  'not-kube-controller': {
    pass: [{ request: request(argocd), object: tracked }, { request: request('jane@example.com'), object: tracked }],
    skip: [
      { request: request('system:serviceaccount:kube-system:clusterrole-aggregation-controller'), object: tracked },
      { request: request('system:kube-controller-manager'), object: tracked },
    ],
  },
  'not-being-deleted': {
    pass: [{ request: request(argocd), object: tracked }],
    skip: [{ request: request(argocd), object: { metadata: { ...tracked.metadata, deletionTimestamp: '2026-11-30T00:00:00Z' } } }],
  },
  'has-tracking-metadata': {
    pass: [
      { request: request(argocd), object: tracked, oldObject: null },
      { request: request(argocd), object: { metadata: { name: 'x', annotations: { 'meta.helm.sh/release-name': 'r' } } }, oldObject: null },
      // An update that strips every label and annotation of an owned object must not slip past
      // gitops-guard: the owner record on the live object would be erased unseen.
      { request: request(argocd), object: { metadata: { name: 'x' } }, oldObject: { metadata: { name: 'x', annotations: { 'gitops-guard.dev/owner': 'argocd:shop' } } } },
      { request: request(argocd), object: { metadata: { name: 'x' } }, oldObject: tracked },
    ],
    skip: [
      { request: { ...request(argocd), operation: 'CREATE' }, object: { metadata: { name: 'x' } }, oldObject: null },
      { request: request(argocd), object: { metadata: { name: 'x' } }, oldObject: { metadata: { name: 'x' } } },
    ],
  },
};

describe('webhook matchConditions', () => {
  it('exist, and each one has expectations here', () => {
    expect(conditions.length).toBeGreaterThan(0);
    for (const { webhook, name } of conditions) expect(Object.keys(expectations), `${webhook}/${name}`).toContain(name);
  });

  for (const { webhook, name, expression } of conditions) {
    it(`${webhook}: ${name} parses and selects exactly the intended requests`, () => {
      expect(() => parse(expression)).not.toThrow();
      const { pass, skip } = expectations[name]!;
      for (const variables of pass) expect(evaluate(expression, variables), JSON.stringify(variables)).toBe(true);
      for (const variables of skip) expect(evaluate(expression, variables), JSON.stringify(variables)).toBe(false);
    });
  }
});
