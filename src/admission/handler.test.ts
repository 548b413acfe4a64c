import { describe, expect, it } from 'vitest';
import type { ActionDefinition } from '../actions/types.js';
import { createRegistry } from '../actions/registry.js';
import { patchFrom } from '../actions/patch.js';
import { UnavailableKubeReader } from '../kube/reader.js';
import { parseRuleSet } from '../rules/load.js';
import type { RuleSet } from '../rules/types.js';
import { createLogger } from '../server/logger.js';
import { decodePatch, requestFor } from '../../test/support/review.js';
import { handleAdmission, type HandlerDeps } from './handler.js';
import { verdictOf } from './response.js';

/** Test actions: one that labels, one that denies, one that warns at length. */
const label: ActionDefinition = {
  name: 'label',
  phase: 'mutate',
  paramsSchema: { type: 'object' },
  run: (_params, { object }) => ({ patch: patchFrom(object, (draft) => void ((draft.metadata!.labels ??= {})['seen'] = 'yes')), auditAnnotations: { labelled: 'seen=yes' } }),
};
const refuse: ActionDefinition = { name: 'refuse', phase: 'validate', paramsSchema: { type: 'object' }, run: () => ({ denial: 'not this one' }) };
const chatty: ActionDefinition = { name: 'chatty', phase: 'validate', paramsSchema: { type: 'object' }, run: () => ({ warnings: [`line one\nline two ${'x'.repeat(300)}`] }) };
const registry = createRegistry([label, refuse, chatty]);

function rules(...types: string[]): RuleSet {
  const body = types.map((type) => `  - { name: ${type}-rule, match: { kinds: [{ kind: ConfigMap }] }, action: { type: ${type} } }`).join('\n');
  return parseRuleSet(`apiVersion: gitops-guard.dev/v1alpha1\nkind: RuleSet\nrules:${body ? `\n${body}` : ' []'}\n`, 'test', registry);
}

function deps(ruleSet: () => RuleSet): HandlerDeps {
  return { registry, kube: new UnavailableKubeReader('none'), settings: {}, logger: createLogger('silent'), rules: ruleSet };
}

const configMap = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace: 'shop' } };

describe('handleAdmission: request in, response out', () => {
  it('mutate: allowed with the JSON patch (base64) against the request object, the phase result alongside', async () => {
    const request = requestFor(configMap, { uid: 'uid-1' });
    const { response, result } = await handleAdmission(request, 'mutate', deps(() => rules('label')));
    expect(response).toMatchObject({ uid: 'uid-1', allowed: true, patchType: 'JSONPatch', auditAnnotations: { 'label-rule.labelled': 'seen=yes' } });
    expect(decodePatch(response.patch)).toEqual([{ op: 'add', path: '/metadata/labels', value: { seen: 'yes' } }]);
    expect(verdictOf(response)).toBe('patched');
    expect(result).toMatchObject({ phase: 'mutate', allowed: true, results: [{ rule: 'label-rule', result: 'mutated' }] });
  });

  it('validate: a denial is 403 Forbidden with every denial, and never a patch', async () => {
    const { response } = await handleAdmission(requestFor(configMap, { uid: 'uid-2' }), 'validate', deps(() => rules('label', 'refuse')));
    expect(response).toEqual({ uid: 'uid-2', allowed: false, status: { code: 403, message: 'not this one', reason: 'Forbidden' } });
    expect(verdictOf(response)).toBe('denied');
  });

  it('answers with no patch fields at all when nothing changes, and one-line, clamped warnings', async () => {
    const { response } = await handleAdmission(requestFor(configMap, { uid: 'uid-3' }), 'validate', deps(() => rules('chatty')));
    expect(Object.keys(response).sort()).toEqual(['allowed', 'uid', 'warnings']);
    expect(response.warnings).toHaveLength(1);
    expect(response.warnings![0]).not.toContain('\n');
    expect(response.warnings![0]!.length).toBeLessThanOrEqual(256);
    expect(verdictOf(response)).toBe('allowed');
  });

  it('reads the rules for every request, so a reload applies to the next one', async () => {
    let current = rules('label');
    const handlerDeps = deps(() => current);
    expect((await handleAdmission(requestFor(configMap), 'mutate', handlerDeps)).response.patch).toBeDefined();
    current = rules();
    expect((await handleAdmission(requestFor(configMap), 'mutate', handlerDeps)).response).not.toHaveProperty('patch');
  });
});
