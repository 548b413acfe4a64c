import type { ErrorCode, YAMLError } from 'yaml';

/**
 * YAML problems described in gitops-guard's own words. The `yaml` library's messages quote the
 * input (an unresolved alias repeats the value after `*`, an unknown tag or a bad escape repeats
 * what follows it): for an unquoted Secret value such as `*S3cr3t` that would put the Secret in an
 * error message, a log line or a CI report. Only the error code and the position are ever used.
 */
const DESCRIPTIONS: Record<ErrorCode, string> = {
  ALIAS_PROPS: 'an alias cannot carry an anchor or a tag',
  BAD_ALIAS: 'invalid alias',
  BAD_COLLECTION_TYPE: 'a collection does not match its tag',
  BAD_DIRECTIVE: 'invalid or unsupported directive',
  BAD_DQ_ESCAPE: 'invalid escape sequence in a double-quoted string',
  BAD_INDENT: 'bad indentation',
  BAD_PROP_ORDER: 'anchor and tag in the wrong order',
  BAD_SCALAR_START: 'a plain value starts with a reserved character (quote the value)',
  BLOCK_AS_IMPLICIT_KEY: 'a block collection used as an implicit key',
  BLOCK_IN_FLOW: 'a block collection inside a flow collection',
  DUPLICATE_KEY: 'duplicate map key',
  IMPOSSIBLE: 'the parser could not continue',
  KEY_OVER_1024_CHARS: 'an implicit key longer than 1024 characters',
  MISSING_CHAR: 'a character is missing (an unclosed quote or bracket, or a key without a value)',
  MULTILINE_IMPLICIT_KEY: 'an implicit key spans several lines',
  MULTIPLE_ANCHORS: 'more than one anchor on a node',
  MULTIPLE_DOCS: 'more than one document where one is expected',
  MULTIPLE_TAGS: 'more than one tag on a node',
  NON_STRING_KEY: 'a map key that is not a string',
  RESOURCE_EXHAUSTION: 'nested too deeply',
  TAB_AS_INDENT: 'a tab used for indentation',
  TAG_RESOLVE_FAILED: 'unknown tag',
  UNEXPECTED_TOKEN: 'unexpected content',
};

/** e.g. `missing character (...)`, never any of the input's text. */
export function describeYamlError(error: Pick<YAMLError, 'code'>): string {
  return DESCRIPTIONS[error.code] ?? 'invalid YAML';
}

/** Too many alias expansions: a "billion laughs" document, refused instead of expanded. */
export function isAliasBomb(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('Excessive alias count');
}

/**
 * An error thrown while turning a parsed document into plain values (`toJS`), described without
 * the library's message: an unresolved alias names the value that followed `*`.
 */
export function describeYamlConversionError(error: unknown): string {
  if (isAliasBomb(error)) return 'too many alias expansions (refused as a resource exhaustion attack)';
  if (error instanceof Error && error.message.startsWith('Unresolved alias')) {
    return 'an alias (*name) refers to no anchor defined before it; a value that starts with * must be quoted';
  }
  if (error instanceof RangeError) return 'nested too deeply';
  return 'the document cannot be converted to plain values';
}
