import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import type { KubeObject } from '../../src/api/types.js';

export const CORPUS_DIR = fileURLToPath(new URL('../fixtures/corpus/', import.meta.url));

/** All objects of one corpus manifest, in file order. */
export function corpusObjects(file: string): KubeObject[] {
  const text = readFileSync(`${CORPUS_DIR}${file}`, 'utf8');
  return parseAllDocuments(text)
    .map((doc) => doc.toJS() as KubeObject | null)
    .filter((o): o is KubeObject => !!o && typeof o === 'object' && typeof o.kind === 'string');
}

export function corpusObject(file: string, kind: string, name: string): KubeObject {
  const found = corpusObjects(file).find((o) => o.kind === kind && o.metadata?.name === name);
  if (!found) throw new Error(`${kind}/${name} not in ${file}`);
  return found;
}
