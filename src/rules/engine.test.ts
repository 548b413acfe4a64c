import { describe, expect, it } from 'vitest';
import type { ActionDefinition } from '../actions/types.js';
import { createRegistry } from '../actions/registry.js';
import { patchFrom } from '../actions/patch.js';
import { UnavailableKubeReader } from '../kube/reader.js';
import { createLogger } from '../server/logger.js';
import { admit, evaluate, type EngineDeps } from './engine.js';
import { auditFinding, ruleResults } from './result.js';
import { parseRuleSet } from './load.js';
import { requestFor } from '../../test/support/review.js';

/** Test actions: one that annotates with how many annotations it saw, one that denies, one that throws. */
const countAnnotations: ActionDefinition<{ key: string }> = {
  name: 'countAnnotations',
  phase: 'mutate',
  paramsSchema: { type: 'object', additionalProperties: false, required: ['key'], properties: { key: { type: 'string' } } },
  run: ({ key }, { object }) => ({
    patch: patchFrom(object, (draft) => {
      const annotations = (draft.metadata!.annotations ??= {});
      annotations[key] = String(Object.keys(object.metadata?.annotations ?? {}).length);
    }),
    warnings: [`counted for ${key}`],
  }),
};
const refuse: ActionDefinition = { name: 'refuse', phase: 'validate', paramsSchema: { type: 'object' }, run: () => ({ denial: 'no, thank you' }) };
const explode: ActionDefinition = {
  name: 'explode',
  phase: 'mutate',
  paramsSchema: { type: 'object' },
  run: ({}, { object }) => (object.spec as { template: { spec: { containers: unknown[] } } }).template.spec.containers.length as never,
};

const registry = createRegistry([countAnnotations, refuse, explode]);
const deps: EngineDeps = { registry, kube: new UnavailableKubeReader('none'), settings: {}, logger: createLogger('silent') };
const object = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm', namespace: 'ns' } };

function rules(body: string) {
  return parseRuleSet(`apiVersion: gitops-guard.dev/v1alpha1\nkind: RuleSet\nrules:\n${body}`, 'test', registry);
}
const rule = (name: string, type: string, extra = '') =>
  `  - name: ${name}\n    match: { kinds: [{ kind: ConfigMap }] }\n    action: { type: ${type}${type === 'countAnnotations' ? `, params: { key: ${name}.example/n }` : ''} }\n${extra}`;

describe('evaluate', () => {
  it('runs rules in file order; later rules see earlier mutations; one patch against the original', async () => {
    const result = await evaluate(requestFor(object), 'mutate', rules(rule('first', 'countAnnotations') + rule('second', 'countAnnotations')), deps);
    expect(result.patch).toEqual([{ op: 'add', path: '/metadata/annotations', value: { 'first.example/n': '0', 'second.example/n': '1' } }]);
    expect(result.results.map((r) => [r.rule, r.result])).toEqual([['first', 'mutated'], ['second', 'mutated']]);
    expect(result.warnings).toEqual(['counted for first.example/n', 'counted for second.example/n']);
  });

  it('only runs rules of the webhook asked for', async () => {
    const set = rules(rule('count', 'countAnnotations') + rule('no', 'refuse'));
    expect((await evaluate(requestFor(object), 'mutate', set, deps)).allowed).toBe(true);
    const validated = await evaluate(requestFor(object), 'validate', set, deps);
    expect(validated).toMatchObject({ allowed: false, denials: ['no, thank you'], patch: [] });
  });

  it('audit mode changes nothing and reports what would have happened', async () => {
    const set = rules(rule('count', 'countAnnotations', '    mode: audit\n') + rule('no', 'refuse', '    mode: audit\n'));
    const mutated = await evaluate(requestFor(object), 'mutate', set, deps);
    expect(mutated.patch).toEqual([]);
    expect(mutated.warnings).toEqual(['[audit] counted for count.example/n', '[audit] rule count would patch: add /metadata/annotations']);
    expect(mutated.auditAnnotations).toEqual({ 'count.would-patch': '[{"op":"add","path":"/metadata/annotations"}]' });
    const validated = await evaluate(requestFor(object), 'validate', set, deps);
    expect(validated.allowed).toBe(true);
    expect(validated.warnings).toEqual(['[audit] rule no would deny: no, thank you']);
    expect(validated.auditAnnotations).toEqual({ 'no.would-deny': 'no, thank you' });
  });

  it('--mode audit forces every rule into audit mode', async () => {
    const validated = await evaluate(requestFor(object), 'validate', rules(rule('no', 'refuse')), { ...deps, modeOverride: 'audit' });
    expect(validated.allowed).toBe(true);
    expect(validated.results[0]).toMatchObject({ mode: 'audit', result: 'denied' });
  });

  it('answers a failing rule per its onError, keeping earlier and later rules', async () => {
    const allow = await evaluate(requestFor(object), 'mutate', rules(rule('boom', 'explode') + rule('count', 'countAnnotations')), deps);
    expect(allow.allowed).toBe(true);
    expect(allow.patch).toHaveLength(1);
    expect(allow.results[0]).toMatchObject({ result: 'error', reason: expect.stringContaining("reading 'template'") });
    expect(allow.warnings[0]).toMatch(/^gitops-guard rule boom failed \(allowed without changes\): /);
    const deny = await evaluate(requestFor(object), 'mutate', rules(rule('boom', 'explode', '    onError: deny\n')), deps);
    expect(deny.allowed).toBe(false);
    expect(deny.denials[0]).toMatch(/^gitops-guard rule boom failed and is configured to deny on error: /);
    const audited = await evaluate(requestFor(object), 'mutate', rules(rule('boom', 'explode', '    onError: deny\n    mode: audit\n')), deps);
    expect(audited.allowed).toBe(true);
    expect(audited.warnings[0]).toMatch(/^\[audit\] gitops-guard rule boom failed \(would deny\)/);
  });

  it('never changes DELETE, subresource or object-less requests', async () => {
    const set = rules(rule('count', 'countAnnotations').replace('kinds:', 'operations: [CREATE, UPDATE, DELETE], kinds:'));
    for (const request of [requestFor(object, { operation: 'DELETE', oldObject: object }), requestFor(object, { subResource: 'status' })]) {
      const result = await evaluate(request, 'mutate', set, deps);
      expect(result.patch).toEqual([]);
      expect(result.results[0]!.result).toBe('skipped');
    }
  });
});

/** Test actions for both phases: one that reports what it saw, one that refuses what the first marked. */
const mark: ActionDefinition = {
  name: 'mark',
  phase: 'mutate',
  paramsSchema: { type: 'object' },
  run: (_params, { object, report }) => {
    report?.({ action: 'tagOwner', owner: null, recorded: null, record: String(Object.keys(object.metadata?.annotations ?? {}).length) });
    return { patch: patchFrom(object, (draft) => void ((draft.metadata!.annotations ??= {})['marked'] = 'yes')) };
  },
};
const refuseMarked: ActionDefinition = {
  name: 'refuseMarked',
  phase: 'validate',
  paramsSchema: { type: 'object' },
  run: (_params, { object }) => (object.metadata?.annotations?.['marked'] ? { denial: 'marked' } : {}),
};
const reportThenThrow: ActionDefinition = {
  name: 'reportThenThrow',
  phase: 'mutate',
  paramsSchema: { type: 'object' },
  run: (_params, { report }) => {
    report?.({ action: 'stampConfigChecksum', annotation: 'a/b', unreadable: { kind: 'Secret', name: 'db', reason: 'forbidden' } });
    throw new Error('cannot read Secret ns/db: forbidden');
  },
};
const phases = createRegistry([mark, refuseMarked, reportThenThrow, countAnnotations]);
const phaseDeps: EngineDeps = { ...deps, registry: phases };
const phaseRules = (body: string) => parseRuleSet(`apiVersion: gitops-guard.dev/v1alpha1\nkind: RuleSet\nrules:\n${body}`, 'test', phases);

describe('admit: both phases, as the API server runs them', () => {
  it('validates the mutated object and carries it, the mutating patch and both phases', async () => {
    const set = phaseRules(rule('mark', 'mark') + rule('refuse', 'refuseMarked'));
    const admission = await admit({ ...requestFor(object), object }, set, phaseDeps);
    expect(admission.phases.map((p) => [p.phase, p.allowed])).toEqual([['mutate', true], ['validate', false]]);
    expect(admission.allowed).toBe(false);
    expect(admission.patch).toEqual([{ op: 'add', path: '/metadata/annotations', value: { marked: 'yes' } }]);
    expect(admission.object.metadata?.annotations).toEqual({ marked: 'yes' });
    expect(object.metadata).toEqual({ name: 'cm', namespace: 'ns' });
    expect(ruleResults(admission).map((r) => [r.rule, r.result])).toEqual([['mark', 'mutated'], ['refuse', 'denied']]);
  });

  it('stops after a mutating phase that denies, keeping the object as sent', async () => {
    const set = phaseRules(rule('boom', 'reportThenThrow', '    onError: deny\n') + rule('refuse', 'refuseMarked'));
    const admission = await admit({ ...requestFor(object), object }, set, phaseDeps);
    expect(admission).toMatchObject({ allowed: false, patch: [], object });
    expect(admission.phases.map((p) => p.phase)).toEqual(['mutate']);
  });

  it('an object nothing changes is the object as sent (no copy)', async () => {
    const admission = await admit({ ...requestFor(object), object }, phaseRules(rule('refuse', 'refuseMarked')), phaseDeps);
    expect(admission.object).toBe(object);
    expect(admission.allowed).toBe(true);
  });
});

describe("rule details: what each action found out, on the rule's result", () => {
  it('are kept on the result of a rule that ran, also when it failed, and absent where nothing was reported', async () => {
    const set = phaseRules(rule('mark', 'mark') + rule('boom', 'reportThenThrow') + rule('count', 'countAnnotations'));
    const result = await evaluate(requestFor(object), 'mutate', set, phaseDeps);
    expect(result.results.map((r) => [r.rule, r.result, r.details])).toEqual([
      ['mark', 'mutated', { action: 'tagOwner', owner: null, recorded: null, record: '0' }],
      ['boom', 'error', { action: 'stampConfigChecksum', annotation: 'a/b', unreadable: { kind: 'Secret', name: 'db', reason: 'forbidden' } }],
      ['count', 'mutated', undefined],
    ]);
  });

  it.each([
    [{ mode: 'audit', result: 'mutated' }, 'patch'],
    [{ mode: 'audit', result: 'denied' }, 'deny'],
    [{ mode: 'audit', result: 'error' }, 'error'],
    [{ mode: 'audit', result: 'noop' }, null],
    [{ mode: 'audit', result: 'skipped' }, null],
    [{ mode: 'enforce', result: 'denied' }, null],
  ] as const)('audit mode reports %o as %s', (result, finding) => {
    expect(auditFinding(result)).toBe(finding);
  });
});
