import { createHmac, hkdfSync } from 'node:crypto';
import type { ConfigContent } from '../../kube/reader.js';

/**
 * The canonical, versioned config-checksum encoding. Specified byte by byte in
 * docs/config-checksum.md ("The v2 encoding"); any change to the bytes produced here is a new
 * version with a new header and a new value prefix, never an edit of an existing one.
 *
 * v2 MACs each namespace under its own key, derived from the cluster key with HKDF: a checksum
 * from one namespace says nothing about content in another, so nobody can test guesses of a
 * Secret in namespace A by rendering look-alike Secrets in a namespace B they control. v1 (one
 * key for the whole cluster, no namespace binding) is still recognised as gitops-guard's own
 * value, so it is replaced by v2 at the next write and never left as "someone else's".
 */

/** The version gitops-guard writes. */
export const CHECKSUM_VERSION = 'v2';
/** 32 ASCII bytes that start every v2 message. */
export const ENCODING_HEADER_V2 = 'gitops-guard/config-checksum/v2\n';
/** HKDF salt of the per-namespace key (ASCII, no line break); the HKDF info is the namespace. */
export const NAMESPACE_KEY_SALT = 'gitops-guard/config-checksum/v2';
const NAMESPACE_KEY_BYTES = 32;

/** What an entry says; one byte after the key. */
export const EntryTag = {
  /** A consumed key the object does not have. */
  keyAbsent: 0x00,
  /** A consumed key that exists; its value follows. */
  keyPresent: 0x01,
  /** The object exists (entry key is empty). */
  objectPresent: 0x02,
  /** The object does not exist (entry key is empty). */
  objectAbsent: 0x03,
} as const;
export type EntryTag = (typeof EntryTag)[keyof typeof EntryTag];

/** A referenced object as read: which keys the pod consumes and what the object holds. */
export interface SourceSnapshot {
  kind: string;
  name: string;
  /** `all`: every key the object has; otherwise exactly these keys. */
  keys: 'all' | ReadonlySet<string>;
  /** null when the object does not exist. */
  content: ConfigContent | null;
}

export interface Entry {
  kind: string;
  name: string;
  /** Empty for the object's own presence entry. */
  key: string;
  tag: EntryTag;
  value?: Buffer;
}

/** The entries one object contributes (unsorted). */
export function entriesOf(source: SourceSnapshot): Entry[] {
  const { kind, name, keys, content } = source;
  if (!kind || !name) throw new Error('config source without kind or name');
  if (content === null) return [{ kind, name, key: '', tag: EntryTag.objectAbsent }];
  const entries: Entry[] = [{ kind, name, key: '', tag: EntryTag.objectPresent }];
  const consumed = keys === 'all' ? [...content.keys()] : [...keys];
  for (const key of consumed) {
    if (key === '') throw new Error(`${kind} ${name} has an empty key`);
    const value = content.get(key);
    entries.push(value === undefined ? { kind, name, key, tag: EntryTag.keyAbsent } : { kind, name, key, tag: EntryTag.keyPresent, value });
  }
  return entries;
}

function utf8(text: string): Buffer {
  return Buffer.from(text, 'utf8');
}

/** An entry with its fields as UTF-8 bytes, encoded once for sorting and writing. */
interface EncodedEntry {
  entry: Entry;
  kind: Buffer;
  name: Buffer;
  key: Buffer;
}

/** Byte-wise lexicographic order of (kind, name, key), each compared as UTF-8 bytes. */
function compareEntries(a: EncodedEntry, b: EncodedEntry): number {
  return Buffer.compare(a.kind, b.kind) || Buffer.compare(a.name, b.name) || Buffer.compare(a.key, b.key);
}

const LENGTH_BYTES = 4;
const MAX_FIELD_BYTES = 0xffffffff;

/** The v2 message: header, then every entry of every source in (kind, name, key) order. */
export function encodeV2(sources: readonly SourceSnapshot[]): Buffer {
  // The kind and name bytes are shared by an object's entries.
  const entries: EncodedEntry[] = [];
  for (const source of sources) {
    const kind = utf8(source.kind);
    const name = utf8(source.name);
    for (const entry of entriesOf(source)) entries.push({ entry, kind, name, key: entry.key === '' ? EMPTY : utf8(entry.key) });
  }
  entries.sort(compareEntries);
  let size = ENCODING_HEADER_V2.length;
  entries.forEach((encoded, index) => {
    const previous = entries[index - 1];
    if (previous && compareEntries(previous, encoded) === 0) {
      throw new Error(`${encoded.entry.kind} ${encoded.entry.name} is listed twice in one checksum`);
    }
    const value = encoded.entry.tag === EntryTag.keyPresent ? (encoded.entry.value ?? EMPTY) : undefined;
    for (const field of [encoded.kind, encoded.name, encoded.key, ...(value ? [value] : [])]) {
      if (field.length > MAX_FIELD_BYTES) throw new Error('config checksum field longer than 4 GiB');
      size += LENGTH_BYTES + field.length;
    }
    size += 1;
  });
  // One buffer, written in place: each field length-prefixed (uint32, big-endian), the tag after the key.
  const message = Buffer.allocUnsafe(size);
  let offset = message.write(ENCODING_HEADER_V2, 0, 'ascii');
  const field = (bytes: Buffer): void => {
    offset = message.writeUInt32BE(bytes.length, offset);
    offset += bytes.copy(message, offset);
  };
  for (const { entry, kind, name, key } of entries) {
    field(kind);
    field(name);
    field(key);
    offset = message.writeUInt8(entry.tag, offset);
    if (entry.tag === EntryTag.keyPresent) field(entry.value ?? EMPTY);
  }
  return message;
}

const EMPTY = Buffer.alloc(0);

/**
 * The key that MACs checksums of `namespace`: HKDF-SHA256 (RFC 5869) of the cluster key, salt
 * NAMESPACE_KEY_SALT, info the namespace's UTF-8 bytes, 32 bytes long.
 */
export function namespaceKey(clusterKey: Buffer, namespace: string): Buffer {
  if (clusterKey.length === 0) throw new Error('config checksum key is empty');
  if (!namespace) throw new Error('config checksum needs the namespace of the workload');
  return Buffer.from(hkdfSync('sha256', clusterKey, Buffer.from(NAMESPACE_KEY_SALT, 'ascii'), Buffer.from(namespace, 'utf8'), NAMESPACE_KEY_BYTES));
}

/** Namespace keys remembered per cluster key (a namespace is derived once, not per admission). */
const NAMESPACE_KEYS_KEPT = 4096;
const namespaceKeys = new WeakMap<Buffer, Map<string, Buffer>>();

/**
 * namespaceKey, derived once per namespace and then looked up: HKDF was a tenth of the CPU of a
 * checksum admission. The keys stay in this process's memory like the cluster key they come from;
 * the oldest is forgotten past NAMESPACE_KEYS_KEPT namespaces.
 */
function cachedNamespaceKey(clusterKey: Buffer, namespace: string): Buffer {
  let keys = namespaceKeys.get(clusterKey);
  if (!keys) namespaceKeys.set(clusterKey, (keys = new Map()));
  let key = keys.get(namespace);
  if (!key) {
    key = namespaceKey(clusterKey, namespace);
    if (keys.size >= NAMESPACE_KEYS_KEPT) keys.delete(keys.keys().next().value!);
    keys.set(namespace, key);
  }
  return key;
}

/** `v2:` + lowercase hex HMAC-SHA256 of `message` under the namespace's key. */
export function hmacV2(clusterKey: Buffer, namespace: string, message: Buffer): string {
  return `${CHECKSUM_VERSION}:${createHmac('sha256', cachedNamespaceKey(clusterKey, namespace)).update(message).digest('hex')}`;
}

/** The checksum of `sources` as consumed by a workload in `namespace`. */
export function checksumV2(clusterKey: Buffer, namespace: string, sources: readonly SourceSnapshot[]): string {
  return hmacV2(clusterKey, namespace, encodeV2(sources));
}

const CHECKSUM_VALUE = /^v[1-9][0-9]*:[0-9a-f]{64}$/;

/**
 * True for a value gitops-guard writes or wrote (any version, so v1 values are replaced rather
 * than left alone as someone else's); anything else was written by someone else.
 */
export function isChecksumValue(value: string): boolean {
  return CHECKSUM_VALUE.test(value);
}
