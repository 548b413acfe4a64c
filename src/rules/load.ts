import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { parseDocument } from 'yaml';
import type { ActionRegistry } from '../actions/registry.js';
import { ruleSetSchema } from './schema.js';
import type { RuleSet } from './types.js';

export interface RuleProblem {
  /** JSON Pointer into the document, e.g. `/rules/0/action/params/sources/1`. */
  path: string;
  message: string;
}

export class RuleSetError extends Error {
  override readonly name = 'RuleSetError';
  constructor(
    readonly source: string,
    readonly problems: readonly RuleProblem[],
  ) {
    super(`${source}: invalid rules: ${problems.map((p) => `${p.path || '/'}: ${p.message}`).join('; ')}`);
  }
}

const validators = new WeakMap<ActionRegistry, ValidateFunction>();

function validatorFor(registry: ActionRegistry): ValidateFunction {
  let validate = validators.get(registry);
  if (!validate) {
    const ajv = new Ajv({ allErrors: true, useDefaults: true, discriminator: true, strict: true, strictTuples: false });
    validate = ajv.compile(ruleSetSchema(registry));
    validators.set(registry, validate);
  }
  return validate;
}

function describe(error: ErrorObject): RuleProblem {
  const path = error.instancePath;
  switch (error.keyword) {
    case 'additionalProperties':
      return { path, message: `unknown field "${String(error.params.additionalProperty)}"` };
    case 'enum':
      return { path, message: `must be one of ${(error.params.allowedValues as unknown[]).map(String).join(', ')}` };
    case 'const':
      return { path, message: `must be ${JSON.stringify(error.params.allowedValue)}` };
    case 'discriminator':
      return { path, message: `unknown action type (${error.message ?? 'no such action'})` };
    default:
      return { path, message: error.message ?? error.keyword };
  }
}

/** Parses and fully validates a RuleSet document, filling in defaults. */
export function parseRuleSet(text: string, source: string, registry: ActionRegistry): RuleSet {
  const document = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (document.errors.length > 0) {
    throw new RuleSetError(
      source,
      document.errors.map((e) => ({
        path: '',
        message: `YAML ${e.linePos?.[0] ? `line ${e.linePos[0].line}: ` : ''}${e.message.split('\n')[0]}`,
      })),
    );
  }
  const value: unknown = document.toJS({ maxAliasCount: 50 });
  const validate = validatorFor(registry);
  if (!validate(value)) {
    throw new RuleSetError(source, (validate.errors ?? []).map(describe));
  }
  const ruleSet = value as RuleSet;
  const seen = new Set<string>();
  const duplicates: RuleProblem[] = [];
  ruleSet.rules.forEach((rule, index) => {
    if (seen.has(rule.name)) duplicates.push({ path: `/rules/${index}/name`, message: `duplicate rule name "${rule.name}"` });
    seen.add(rule.name);
  });
  if (duplicates.length > 0) throw new RuleSetError(source, duplicates);
  return ruleSet;
}

export function loadRuleSetFile(path: string, registry: ActionRegistry): RuleSet {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new RuleSetError(path, [{ path: '', message: `cannot read file: ${(error as NodeJS.ErrnoException).code ?? String(error)}` }]);
  }
  return parseRuleSet(text, path, registry);
}
