import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createRegistry } from '../actions/registry.js';
import { loadRuleSetFile, parseRuleSet, RuleSetError } from './load.js';

const registry = createRegistry();
const header = 'apiVersion: gitops-guard.dev/v1alpha1\nkind: RuleSet\n';

function problems(text: string) {
  try {
    parseRuleSet(text, 'rules.yaml', registry);
  } catch (error) {
    expect(error).toBeInstanceOf(RuleSetError);
    return (error as RuleSetError).problems;
  }
  throw new Error('expected the rules to be rejected');
}

describe('parseRuleSet', () => {
  it('fills in defaults for mode, onError, operations, scope and action params', () => {
    const ruleSet = parseRuleSet(`${header}rules:\n  - name: tag\n    match: { kinds: [{ kind: ClusterRole, group: rbac.authorization.k8s.io }] }\n    action: { type: tagOwner }\n`, 'x', registry);
    const [rule] = ruleSet.rules;
    expect(rule).toMatchObject({ mode: 'enforce', onError: 'allow', match: { operations: ['CREATE', 'UPDATE'], scope: '*' } });
    expect(rule!.match.kinds[0]).toEqual({ group: 'rbac.authorization.k8s.io', version: '*', kind: 'ClusterRole' });
    expect(rule!.action.params).toEqual({
      sources: ['argocdAnnotation', 'helm', 'flux', 'argocdLabel'],
      argocdLabelKey: 'app.kubernetes.io/instance',
      argocdLabelInstallation: '',
      argocdLegacyInstallation: '',
      instanceLabel: 'app.kubernetes.io/instance',
    });
  });

  it('names the path of every unknown field', () => {
    const found = problems(`${header}rules:\n  - name: tag\n    mathc: {}\n    match: { kinds: [{ kind: X, colour: red }] }\n    action: { type: tagOwner, params: { sauces: [] } }\n`);
    expect(found).toEqual(
      expect.arrayContaining([
        { path: '/rules/0', message: 'unknown field "mathc"' },
        { path: '/rules/0/match/kinds/0', message: 'unknown field "colour"' },
        { path: '/rules/0/action/params', message: 'unknown field "sauces"' },
      ]),
    );
  });

  it('rejects unknown actions, bad enums, bad names and duplicates', () => {
    expect(problems(`${header}rules:\n  - name: a\n    match: { kinds: [{ kind: X }] }\n    action: { type: launchRockets }\n`)[0]!.path).toBe('/rules/0/action');
    expect(problems(`${header}rules:\n  - name: a\n    match: { kinds: [{ kind: X }] }\n    action: { type: tagOwner }\n    mode: loud\n`)).toContainEqual({ path: '/rules/0/mode', message: 'must be one of enforce, audit' });
    expect(problems(`${header}rules:\n  - name: Not_Valid\n    match: { kinds: [{ kind: X }] }\n    action: { type: tagOwner }\n`)[0]!.path).toBe('/rules/0/name');
    expect(problems(`${header}rules:\n  - name: a\n    match: { kinds: [{ kind: X }] }\n    action: { type: tagOwner }\n  - name: a\n    match: { kinds: [{ kind: Y }] }\n    action: { type: tagOwner }\n`)).toEqual([
      { path: '/rules/1/name', message: 'duplicate rule name "a"' },
    ]);
    expect(problems(`apiVersion: v1\nkind: RuleSet\nrules: []\n`)).toContainEqual({ path: '/apiVersion', message: 'must be "gitops-guard.dev/v1alpha1"' });
  });

  it('reports YAML syntax errors with their line', () => {
    const [problem] = problems(`${header}rules:\n  - name: a\n    match: { kinds: [\n`);
    expect(problem!.message).toMatch(/^YAML line \d+: /);
  });

  it('reports a missing file by path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rules-'));
    expect(() => loadRuleSetFile(join(dir, 'nope.yaml'), registry)).toThrow(/nope\.yaml: invalid rules: \/: cannot read file: ENOENT/);
    writeFileSync(join(dir, 'ok.yaml'), `${header}rules: []\n`);
    expect(loadRuleSetFile(join(dir, 'ok.yaml'), registry).rules).toEqual([]);
  });
});
