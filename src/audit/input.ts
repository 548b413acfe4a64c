import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Composer, isMap, isSeq, LineCounter, Parser, type Document } from 'yaml';
import type { KubeObject } from '../api/types.js';
import { isPlainObject } from '../util/objects.js';
import { describeYamlConversionError, describeYamlError } from '../util/yaml-errors.js';

/**
 * Reads rendered manifests the way `kubectl apply -f` does: files, directories (recursive,
 * `.yaml`/`.yml`/`.json`), `-` for stdin; multi-document YAML and JSON; `List` objects flattened.
 * Inputs are read one file at a time and each file's documents are composed one at a time, so
 * memory holds the current file's text plus the plain objects, never a whole stream of YAML ASTs.
 */

export interface InputSpec {
  /** A path as the user typed it, or `-` for stdin. */
  path: string;
  /** The `--app` this input belongs to, if any. */
  app?: string;
}

export interface SourceLocation {
  /** Display name: the user's path (joined with the relative path below a directory), or `<stdin>`. */
  file: string;
  /** 1-based line where the object starts. */
  line: number;
}

export interface InputObject {
  object: KubeObject;
  source: SourceLocation;
  app?: string;
  /** Position in the whole input (0-based); fixes the order in which objects are "applied". */
  index: number;
}

export interface InputProblem {
  file: string;
  line?: number;
  column?: number;
  message: string;
}

export interface InputStats {
  /** Files (and stdin) read successfully. */
  files: number;
  /** YAML/JSON documents seen, including empty and skipped ones (a List is one document). */
  documents: number;
  /** Kubernetes objects found (after flattening lists). */
  objects: number;
  skipped: { empty: number; notKubernetes: number };
}

export interface CollectedInput {
  objects: InputObject[];
  problems: InputProblem[];
  stats: InputStats;
}

export interface CollectOptions {
  stdin?: NodeJS.ReadableStream;
}

export const STDIN_NAME = '<stdin>';
const MANIFEST_EXTENSIONS = ['.yaml', '.yml', '.json'];
const MAX_ALIAS_COUNT = 100;


function errnoText(error: unknown): string {
  const code = (error as NodeJS.ErrnoException)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file or directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory';
    case 'ENOTDIR':
      return 'not a directory';
    default:
      return code ?? (error instanceof Error ? error.message : String(error));
  }
}

/** A `kind: List` (or any `*List` with `items`) as `kubectl get -o yaml` prints it. */
function isList(value: Record<string, unknown>): boolean {
  const kind = value.kind;
  return typeof kind === 'string' && (kind === 'List' || kind.endsWith('List')) && Array.isArray(value.items);
}

/** Has what the API server needs to route it: apiVersion and kind strings. */
function looksLikeObject(value: unknown): value is KubeObject {
  return (
    isPlainObject(value) &&
    typeof value.apiVersion === 'string' &&
    value.apiVersion.length > 0 &&
    typeof value.kind === 'string' &&
    value.kind.length > 0
  );
}

function hasName(object: KubeObject): boolean {
  const metadata = object.metadata;
  if (!isPlainObject(metadata)) return false;
  return (
    (typeof metadata.name === 'string' && metadata.name.length > 0) ||
    (typeof metadata.generateName === 'string' && metadata.generateName.length > 0)
  );
}

/** Collects files below a directory (sorted, recursive); symlinked directories are not followed. */
async function walk(directory: string, display: string, out: { path: string; display: string }[]): Promise<void> {
  const entries = await readdir(directory, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const path = join(directory, entry.name);
    const shown = `${display.replace(/\/+$/, '')}/${entry.name}`;
    let isDirectory = entry.isDirectory();
    let isFile = entry.isFile();
    if (entry.isSymbolicLink()) {
      try {
        const target = await stat(path);
        isFile = target.isFile();
        isDirectory = false;
      } catch {
        continue;
      }
    }
    if (isDirectory) await walk(path, shown, out);
    else if (isFile && MANIFEST_EXTENSIONS.some((ext) => entry.name.toLowerCase().endsWith(ext))) {
      out.push({ path, display: shown });
    }
  }
}

async function readStream(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer | string>) {
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * One parsed document's outcome. Items of a `List` come as their own events after a `list` event
 * and carry `inList`, so documents and objects can be counted apart.
 */
export type DocumentEvent =
  | { type: 'object'; object: KubeObject; line: number; inList?: true }
  | { type: 'list'; line: number; items: number }
  | { type: 'empty' }
  | { type: 'notKubernetes'; line: number; inList?: true }
  | { type: 'error'; line?: number; column?: number; message: string; inList?: true };

function lineOf(lineCounter: LineCounter, offset: number | undefined): number {
  return offset === undefined ? 1 : lineCounter.linePos(offset).line;
}

/** The start line of each `items` entry of a List document, when the AST has them. */
function listItemLines(document: Document, lineCounter: LineCounter): number[] {
  const contents = document.contents;
  if (!isMap(contents)) return [];
  const items = contents.get('items', true);
  if (!isSeq(items)) return [];
  return items.items.map((node) => lineOf(lineCounter, (node as { range?: [number, number, number] }).range?.[0]));
}

/**
 * Parses a YAML (or JSON, which YAML contains) stream document by document. Scalars follow
 * YAML 1.1 like kubectl's decoder (`yes`/`on` are booleans), without timestamp conversion, so
 * strings reach the rules exactly as the API server would receive them.
 */
export function* parseDocuments(text: string): Generator<DocumentEvent> {
  const lineCounter = new LineCounter();
  const parser = new Parser(lineCounter.addNewLine);
  // logLevel 'error': the library's warnings go to process.emitWarning and may quote the input.
  const composer = new Composer({
    version: '1.1',
    uniqueKeys: true,
    logLevel: 'error',
    customTags: (tags) => tags.filter((tag) => typeof tag === 'string' || tag.tag !== 'tag:yaml.org,2002:timestamp'),
  });
  for (const document of composer.compose(parser.parse(text))) {
    const start = (document.contents?.range?.[0] ?? document.range[0]) as number;
    if (document.errors.length > 0) {
      const error = document.errors[0]!;
      const position = lineCounter.linePos(error.pos[0]);
      // Our own words only: the library's messages quote the input (a Secret value, say).
      yield { type: 'error', line: position.line, column: position.col, message: `YAML syntax error: ${describeYamlError(error)}` };
      continue;
    }
    let value: unknown;
    try {
      value = document.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (error) {
      yield { type: 'error', line: lineOf(lineCounter, start), message: `YAML error: ${describeYamlConversionError(error)}` };
      continue;
    }
    if (value === null || value === undefined) {
      yield { type: 'empty' };
      continue;
    }
    const line = lineOf(lineCounter, start);
    if (isPlainObject(value) && isList(value)) {
      const lines = listItemLines(document, lineCounter);
      const items = value.items as unknown[];
      yield { type: 'list', line, items: items.length };
      for (let i = 0; i < items.length; i++) {
        yield* classify(items[i], lines[i] ?? line, true);
      }
      continue;
    }
    yield* classify(value, line, false);
  }
}

function* classify(value: unknown, line: number, inList: boolean): Generator<DocumentEvent> {
  const flag = inList ? { inList: true as const } : {};
  if (isPlainObject(value) && isList(value)) {
    for (const item of value.items as unknown[]) yield* classify(item, line, true);
    return;
  }
  if (!looksLikeObject(value)) {
    yield { type: 'notKubernetes', line, ...flag };
    return;
  }
  if (!hasName(value)) {
    yield { type: 'error', line, message: `${value.kind} has no metadata.name (the API server would reject it)`, ...flag };
    return;
  }
  yield { type: 'object', object: value, line, ...flag };
}

/**
 * Reads every input in order. Problems with one input (unreadable path, YAML syntax error,
 * directory without manifests) are recorded and the other inputs are still read.
 */
export async function collectInput(inputs: readonly InputSpec[], options: CollectOptions = {}): Promise<CollectedInput> {
  const result: CollectedInput = {
    objects: [],
    problems: [],
    stats: { files: 0, documents: 0, objects: 0, skipped: { empty: 0, notKubernetes: 0 } },
  };
  let stdinUsed = false;

  const consume = (text: string, file: string, app: string | undefined): void => {
    result.stats.files++;
    for (const event of parseDocuments(text)) {
      if (!('inList' in event)) result.stats.documents++;
      switch (event.type) {
        case 'list':
          break;
        case 'object':
          result.stats.objects++;
          result.objects.push({
            object: event.object,
            source: { file, line: event.line },
            ...(app !== undefined ? { app } : {}),
            index: result.objects.length,
          });
          break;
        case 'empty':
          result.stats.skipped.empty++;
          break;
        case 'notKubernetes':
          result.stats.skipped.notKubernetes++;
          break;
        case 'error':
          result.problems.push({
            file,
            ...(event.line !== undefined ? { line: event.line } : {}),
            ...(event.column !== undefined ? { column: event.column } : {}),
            message: event.message,
          });
          break;
      }
    }
  };

  for (const input of inputs) {
    if (input.path === '-') {
      if (stdinUsed) {
        result.problems.push({ file: STDIN_NAME, message: 'stdin (-) can be read only once' });
        continue;
      }
      stdinUsed = true;
      if (!options.stdin) {
        result.problems.push({ file: STDIN_NAME, message: 'no stdin available' });
        continue;
      }
      let text: string;
      try {
        text = await readStream(options.stdin);
      } catch (error) {
        result.problems.push({ file: STDIN_NAME, message: `cannot read: ${errnoText(error)}` });
        continue;
      }
      consume(text, STDIN_NAME, input.app);
      continue;
    }

    let files: { path: string; display: string }[];
    try {
      const info = await stat(input.path);
      if (info.isDirectory()) {
        files = [];
        await walk(input.path, input.path, files);
        if (files.length === 0) {
          result.problems.push({ file: input.path, message: 'directory contains no .yaml, .yml or .json files' });
          continue;
        }
      } else {
        files = [{ path: input.path, display: input.path }];
      }
    } catch (error) {
      result.problems.push({ file: input.path, message: `cannot read: ${errnoText(error)}` });
      continue;
    }

    for (const file of files) {
      let text: string;
      try {
        text = await readFile(file.path, 'utf8');
      } catch (error) {
        result.problems.push({ file: file.display, message: `cannot read: ${errnoText(error)}` });
        continue;
      }
      consume(text, file.display, input.app);
    }
  }
  return result;
}
