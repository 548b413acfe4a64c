import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { parseDocument } from 'yaml';
import type { ActionRegistry } from '../actions/registry.js';
import { describeYamlConversionError, describeYamlError } from '../util/yaml-errors.js';
import { MAX_RULES, ruleSetSchema } from './schema.js';
import type { RuleSet } from './types.js';
import { ConfigurationError } from '../util/errors.js';

/**
 * A rules file is a few KiB (the shipped one is 3 KiB). The bound is far above any real rule set
 * and far below what parsing could cost at the server's heap size (a ConfigMap holds up to 1 MiB):
 * a larger file is refused before it is parsed.
 */
export const MAX_RULES_FILE_BYTES = 64 * 1024;
const TOO_LARGE = `larger than ${MAX_RULES_FILE_BYTES / 1024} KiB (${MAX_RULES_FILE_BYTES} bytes), the limit for a rules file`;
/** Alias expansions per document; a rule set needs a handful, a "billion laughs" needs millions. */
const MAX_ALIAS_COUNT = 50;
/** Listing every schema violation of a huge invalid file helps nobody: the first ones are reported. */
const MAX_PROBLEMS = 20;
/**
 * Flow collections (`[`, `{`) nested deeper than this are refused before parsing: the parser
 * spends about 1 KiB of heap per level, so a file of nothing but `[` would exhaust the heap. Real
 * rules nest a handful of levels. Brackets inside quoted strings count too (rules need none).
 */
const MAX_FLOW_DEPTH = 64;

function flowNestingExceeds(text: string, max: number): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if ((c === 0x5d || c === 0x7d) && depth > 0) depth--;
  }
  return false;
}

export interface RuleProblem {
  /** JSON Pointer into the document, e.g. `/rules/0/action/params/sources/1`. */
  path: string;
  message: string;
}

export class RuleSetError extends ConfigurationError {
  override readonly name: string = 'RuleSetError';
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

/** Parses and fully validates a RuleSet document, filling in defaults. Problems never quote the file. */
export function parseRuleSet(text: string, source: string, registry: ActionRegistry): RuleSet {
  if (Buffer.byteLength(text, 'utf8') > MAX_RULES_FILE_BYTES) {
    throw new RuleSetError(source, [{ path: '', message: TOO_LARGE }]);
  }
  if (flowNestingExceeds(text, MAX_FLOW_DEPTH)) {
    throw new RuleSetError(source, [{ path: '', message: `YAML: [ and { nested more than ${MAX_FLOW_DEPTH} levels deep` }]);
  }
  // logLevel 'error': the library's warnings go to process.emitWarning and may quote the input.
  const document = parseDocument(text, { prettyErrors: true, uniqueKeys: true, logLevel: 'error' });
  if (document.errors.length > 0) {
    throw new RuleSetError(
      source,
      document.errors.slice(0, MAX_PROBLEMS).map((e) => ({
        path: '',
        message: `YAML ${e.linePos?.[0] ? `line ${e.linePos[0].line}: ` : ''}${describeYamlError(e)}`,
      })),
    );
  }
  let value: unknown;
  try {
    value = document.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    throw new RuleSetError(source, [{ path: '', message: `YAML: ${describeYamlConversionError(error)}` }]);
  }
  const rules = (value as { rules?: unknown } | null)?.rules;
  if (Array.isArray(rules) && rules.length > MAX_RULES) {
    throw new RuleSetError(source, [{ path: '/rules', message: `${rules.length} rules, more than the ${MAX_RULES} a rules file may hold` }]);
  }
  const validate = validatorFor(registry);
  if (!validate(value)) {
    throw new RuleSetError(source, (validate.errors ?? []).slice(0, MAX_PROBLEMS).map(describe));
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

/** Reads at most MAX_RULES_FILE_BYTES + 1 bytes: a larger file is refused without reading it whole. */
function readBounded(path: string): string {
  const fd = openSync(path, 'r');
  try {
    if (fstatSync(fd).size > MAX_RULES_FILE_BYTES) {
      throw new RuleSetError(path, [{ path: '', message: TOO_LARGE }]);
    }
    const buffer = Buffer.alloc(MAX_RULES_FILE_BYTES + 1);
    let length = 0;
    while (length < buffer.length) {
      const read = readSync(fd, buffer, length, buffer.length - length, null);
      if (read === 0) break;
      length += read;
    }
    // parseRuleSet refuses it if the file grew past the limit after fstat.
    return buffer.toString('utf8', 0, length);
  } finally {
    closeSync(fd);
  }
}

export function loadRuleSetFile(path: string, registry: ActionRegistry): RuleSet {
  let text: string;
  try {
    text = readBounded(path);
  } catch (error) {
    if (error instanceof RuleSetError) throw error;
    throw new RuleSetError(path, [{ path: '', message: `cannot read file: ${(error as NodeJS.ErrnoException).code ?? String(error)}` }]);
  }
  return parseRuleSet(text, path, registry);
}
