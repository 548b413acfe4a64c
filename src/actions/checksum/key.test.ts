import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
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
  writeFileSync(path, content, { mode: 0o600 });
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

describe('loadChecksumKey: who else can read the key', () => {
  const hex = 'cd'.repeat(32);
  const load = (path: string) => {
    const warnings: string[] = [];
    const key = loadChecksumKey(path, (w) => warnings.push(w));
    return { key, warnings };
  };

  it('refuses a key file other users can read or write, or its group can write, naming the fix and never the key', () => {
    for (const mode of [0o644, 0o604, 0o606, 0o640 | 0o001, 0o660, 0o620]) {
      const path = keyFile(`${hex}\n`);
      chmodSync(path, mode);
      let thrown: unknown;
      try {
        loadChecksumKey(path);
      } catch (error) {
        thrown = error;
      }
      expect(thrown, mode.toString(8)).toBeInstanceOf(ChecksumKeyError);
      expect(String(thrown)).toContain(`chmod 600 ${path}`);
      expect(String(thrown)).toContain(`mode 0${mode.toString(8)}`);
      expect(String(thrown)).not.toContain(hex);
    }
  });

  it('accepts a private file silently and warns about a group-readable one', () => {
    const path = keyFile(`${hex}\n`);
    expect(load(path)).toEqual({ key: Buffer.from(hex), warnings: [] });
    chmodSync(path, 0o400);
    expect(load(path).warnings).toEqual([]);
    chmodSync(path, 0o640);
    const { key, warnings } = load(path);
    expect(key).toEqual(Buffer.from(hex));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(new RegExp(`^checksum key file ${path} is readable by group \\d+ \\(mode 0640\\)`));
    expect(warnings[0]).toContain(`chmod 600 ${path}`);
    expect(warnings[0]).not.toContain(hex);
  });

  it('does not warn about a Kubernetes Secret volume file (0440 for the pod\'s fsGroup, linked through ..data)', () => {
    // The kubelet's layout: the file in a timestamped directory, `..data` pointing there, and the mount's entry linking through it.
    const generation = join(dir, '..2026_01_01_00_00_00.1');
    mkdirSync(generation);
    writeFileSync(join(generation, 'checksum.key'), `${hex}\n`);
    chmodSync(join(generation, 'checksum.key'), 0o440);
    symlinkSync('..2026_01_01_00_00_00.1', join(dir, '..data'));
    symlinkSync('..data/checksum.key', join(dir, 'checksum.key'));
    expect(load(join(dir, 'checksum.key'))).toEqual({ key: Buffer.from(hex), warnings: [] });
    // The same mode anywhere else is worth a warning.
    expect(load(join(generation, 'checksum.key')).warnings).toHaveLength(1);
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
