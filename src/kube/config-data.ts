import type { ConfigContent, ConfigSourceKind, ObjectRef } from './reader.js';
import { KubeReadError } from './errors.js';

/**
 * The bytes a pod sees of a ConfigMap or Secret, decoded the way the API server stores them:
 * ConfigMap `data` as UTF-8 and `binaryData` from base64; Secret `data` from base64, overlaid by
 * `stringData` (plain text, which wins: the API server merges it into `data` on write, so only
 * manifests carry it). One decoder for objects read from the API and objects rendered in
 * manifests; what differs is only what a problem means (see `configContent`).
 */

export interface DecodedConfig {
  content: Map<string, Buffer>;
  /**
   * Values the API server would refuse, left out of `content`: `data is not a map`,
   * `data.key is not valid base64`, ... Names fields and keys, never values.
   */
  problems: string[];
}

/**
 * Padded base64: whole groups of four from the alphabet, at most two `=` at the end. With the
 * length a multiple of four this is `(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?`,
 * as one character class the regular expression engine scans much faster (every Secret value
 * read at admission goes through it).
 */
const BASE64_CHARACTERS = /^[A-Za-z0-9+/]*={0,2}$/;
const isBase64 = (value: string): boolean => value.length % 4 === 0 && BASE64_CHARACTERS.test(value);

/** Strict base64 (as the API server validates it); line breaks, as YAML block scalars leave them, are ignored. */
function decodeBase64(value: string): Buffer | null {
  if (isBase64(value)) return Buffer.from(value, 'base64');
  const compact = value.replace(/[\r\n]/g, '');
  return compact !== value && isBase64(compact) ? Buffer.from(compact, 'base64') : null;
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function decodeConfigData(kind: ConfigSourceKind, object: Readonly<Record<string, unknown>>): DecodedConfig {
  const content = new Map<string, Buffer>();
  const problems: string[] = [];
  const add = (field: 'data' | 'binaryData' | 'stringData', base64: boolean, overlay: boolean): void => {
    const map = object[field];
    if (map === undefined || map === null) return;
    if (!isMap(map)) {
      problems.push(`${field} is not a map`);
      return;
    }
    for (const [key, value] of Object.entries(map)) {
      if (typeof value !== 'string') {
        problems.push(`${field}.${key} is not a string`);
        continue;
      }
      if (!overlay && content.has(key)) {
        // The API server refuses a ConfigMap with a key in both maps; neither value is taken.
        problems.push(`${field}.${key}: key in both data and binaryData`);
        content.delete(key);
        continue;
      }
      const bytes = base64 ? decodeBase64(value) : Buffer.from(value, 'utf8');
      if (!bytes) {
        problems.push(`${field}.${key} is not valid base64`);
        continue;
      }
      content.set(key, bytes);
    }
  };
  if (kind === 'ConfigMap') {
    add('data', false, false);
    add('binaryData', true, false);
  } else {
    add('data', true, false);
    add('stringData', false, true);
  }
  return { content, problems };
}

/**
 * The content of a ConfigMap or Secret as the API server answered it. The API server validates
 * what it stores, so any problem means the answer is not what it claims to be: a KubeReadError
 * (`server`), never a partial content.
 */
export function configContent(ref: ObjectRef, object: Readonly<Record<string, unknown>>): ConfigContent {
  const { content, problems } = decodeConfigData(ref.kind, { data: object.data, binaryData: object.binaryData });
  if (problems.length > 0) throw new KubeReadError(ref, 'server', `malformed data: ${problems[0]}`);
  return content;
}
