import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ChecksumKeyError, generateChecksumKey, loadChecksumKey } from './key.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'checksum-key-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function keyFile(content: string | Buffer): string {
  const path = join(dir, 'checksum.key');
  writeFileSync(path, content);
  return path;
}

describe('loadChecksumKey', () => {
  it('uses the file bytes as they are, without trailing line breaks', () => {
    const hex = 'ab'.repeat(32);
    expect(loadChecksumKey(keyFile(`${hex}\n`))).toEqual(Buffer.from(hex, 'ascii'));
    expect(loadChecksumKey(keyFile(`${hex}\r\n\n`))).toEqual(Buffer.from(hex, 'ascii'));
    expect(loadChecksumKey(keyFile(` ${hex} `))).toEqual(Buffer.from(` ${hex} `, 'ascii'));
    const binary = Buffer.from(Array.from({ length: 40 }, (_, i) => i));
    expect(loadChecksumKey(keyFile(binary))).toEqual(binary);
  });

  it('requires at least 32 bytes and never prints the key', () => {
    const path = keyFile('short-key-material\n');
    expect(() => loadChecksumKey(path)).toThrow(ChecksumKeyError);
    expect(() => loadChecksumKey(path)).toThrow(`checksum key file ${path} holds 18 bytes; at least 32 are needed`);
    try {
      loadChecksumKey(path);
    } catch (error) {
      expect(String(error)).not.toContain('short-key-material');
    }
    expect(() => loadChecksumKey(keyFile('\n\n'))).toThrow(/holds 0 bytes/);
  });

  it('names a file it cannot read', () => {
    const path = join(dir, 'missing.key');
    expect(() => loadChecksumKey(path)).toThrow(`cannot read checksum key file ${path}: ENOENT`);
    expect(() => loadChecksumKey(dir)).toThrow(/EISDIR/);
  });
});

describe('generateChecksumKey', () => {
  it('makes 64 random hex characters that load as a valid key', () => {
    const one = generateChecksumKey();
    expect(one).toMatch(/^[0-9a-f]{64}$/);
    expect(generateChecksumKey()).not.toBe(one);
    expect(loadChecksumKey(keyFile(`${one}\n`)).toString('ascii')).toBe(one);
  });
});
