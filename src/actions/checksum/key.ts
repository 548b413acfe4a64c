import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** HMAC-SHA256 wants at least its output size in key material. */
export const MIN_CHECKSUM_KEY_BYTES = 32;

export class ChecksumKeyError extends Error {
  override readonly name = 'ChecksumKeyError';
}

/**
 * Reads the cluster-local checksum key. The key is the file's bytes as they are, without
 * trailing line breaks (so `openssl rand -hex 32 > checksum.key` gives a 64-byte key). Errors
 * name the file, never its content.
 */
export function loadChecksumKey(path: string): Buffer {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'read error';
    throw new ChecksumKeyError(`cannot read checksum key file ${path}: ${code}`);
  }
  let end = raw.length;
  while (end > 0 && (raw[end - 1] === 0x0a || raw[end - 1] === 0x0d)) end--;
  const key = raw.subarray(0, end);
  if (key.length < MIN_CHECKSUM_KEY_BYTES) {
    throw new ChecksumKeyError(
      `checksum key file ${path} holds ${key.length} bytes; at least ${MIN_CHECKSUM_KEY_BYTES} are needed (create one with: openssl rand -hex 32)`,
    );
  }
  return Buffer.from(key);
}

/** A new key in the same form `openssl rand -hex 32` writes: 64 lowercase hex characters. */
export function generateChecksumKey(): string {
  return randomBytes(32).toString('hex');
}
