import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createRegistry } from '../src/actions/registry.js';
import { parseDocuments } from '../src/audit/input.js';
import { parseRuleSet, RuleSetError } from '../src/rules/load.js';
import { runCli } from './support/cli.js';

/**
 * Broken YAML never echoes its input: a Secret value written unquoted after `*` (an alias to
 * nothing), a tag, a directive or an escape must not come back in an error, a warning or a log.
 */

const SECRET = 'S3cr3tV4lue';

/** Documents whose YAML error the parser library would describe by quoting `SECRET`. */
const LEAKY: Record<string, string> = {
  'an unquoted value starting with *': `apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: *${SECRET}\n`,
  'an unknown tag': `apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: !${SECRET} x\n`,
  'a bad directive': `%YAML ${SECRET}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n`,
  'a bad escape': `apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: "\\q${SECRET}"\n`,
  'a collection as a key': `apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  ? [${SECRET}]\n  : x\n`,
  'an unclosed quote': `apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: '${SECRET}\n`,
};

/** Process warnings emitted while `run` runs (the YAML library reports some problems that way). */
function warningsDuring(run: () => void): string[] {
  const seen: string[] = [];
  const listener = (warning: Error) => seen.push(warning.message);
  process.on('warning', listener);
  try {
    run();
  } finally {
    process.off('warning', listener);
  }
  return seen;
}

describe('YAML errors in manifests (audit input)', () => {
  for (const [what, text] of Object.entries(LEAKY)) {
    it(`${what}: reported by position, without the value`, async () => {
      let events: ReturnType<typeof parseDocuments> extends Generator<infer E> ? E[] : never = [];
      const warnings = warningsDuring(() => {
        events = [...parseDocuments(text)];
      });
      await new Promise((resolve) => setImmediate(resolve)); // process warnings are emitted on the next tick
      const errors = events.filter((e) => e.type === 'error');
      expect(JSON.stringify(errors), what).not.toContain(SECRET);
      expect(warnings.join('\n'), what).not.toContain(SECRET);
      // Unknown tags and collection keys are valid YAML; the others are errors, by position.
      if (what !== 'an unknown tag' && what !== 'a collection as a key') expect(errors.length, what).toBeGreaterThan(0);
      for (const error of errors) expect(error.message).toMatch(/^YAML (syntax )?error: /);
    });
  }

  it('gitops-guard audit prints nothing of the value, in the table, the JSON report or on stderr', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gg-yaml-'));
    for (const [index, text] of Object.values(LEAKY).entries()) writeFileSync(join(dir, `${index}.yaml`), text);
    for (const format of ['table', 'json']) {
      const { code, stdout, stderr } = await runCli(['audit', '-f', dir, '--format', format]);
      expect(code).toBe(2);
      expect(stdout + stderr, format).not.toContain(SECRET);
    }
    const alias = await runCli(['audit', '-f', join(dir, '0.yaml'), '--format', 'json']);
    const report = JSON.parse(alias.stdout) as { inputErrors: { line?: number; message: string }[] };
    expect(report.inputErrors).toEqual([
      { file: join(dir, '0.yaml'), line: 1, message: 'YAML error: an alias (*name) refers to no anchor defined before it; a value that starts with * must be quoted' },
    ]);
  });
});

describe('YAML errors in the rules file', () => {
  const registry = createRegistry();
  const rules = (password: string) => `apiVersion: gitops-guard.dev/v1alpha1\nkind: RuleSet\nrules:\n  - name: x\n    match: { kinds: [{ kind: ${password} }] }\n    action: { type: tagOwner }\n`;

  it('never quote the file', () => {
    for (const value of [`*${SECRET}`, `"\\q${SECRET}"`, `'${SECRET}`, `[${SECRET}, `]) {
      let thrown: unknown;
      try {
        parseRuleSet(rules(value), 'rules.yaml', registry);
      } catch (error) {
        thrown = error;
      }
      expect(thrown, value).toBeInstanceOf(RuleSetError);
      expect(String(thrown)).not.toContain(SECRET);
    }
  });

  const bomb = [
    'apiVersion: gitops-guard.dev/v1alpha1',
    'kind: RuleSet',
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
    'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
    'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
    'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
    'f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]',
    'rules: []',
    '',
  ].join('\n');

  it('an alias bomb is a usage error of `audit --rules` (exit 2, one line), not findings', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gg-bomb-'));
    writeFileSync(join(dir, 'bomb.yaml'), bomb);
    writeFileSync(join(dir, 'cm.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n');
    const { code, stdout, stderr } = await runCli(['audit', '-f', join(dir, 'cm.yaml'), '--rules', join(dir, 'bomb.yaml')]);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toBe(`gitops-guard audit: ${join(dir, 'bomb.yaml')}: invalid rules: /: YAML: too many alias expansions (refused as a resource exhaustion attack)\n`);
  });

  it('an alias bomb stops `serve` with one clear line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gg-bomb-'));
    writeFileSync(join(dir, 'bomb.yaml'), bomb);
    const { code, stderr } = await runCli(['serve', '--port', '0', '--dev-certs', '--rules', 'bomb.yaml'], { cwd: dir, env: { KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '' } });
    expect(code).toBe(1);
    expect(stderr).toMatch(/gitops-guard: bomb\.yaml: invalid rules: \/: YAML: too many alias expansions \(refused as a resource exhaustion attack\)\n$/);
  });
});
