import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, lstatSync, openSync, readFileSync, readlinkSync } from 'node:fs';
import { ConfigurationError } from '../../util/errors.js';

/** HMAC-SHA256 wants at least its output size in key material. */
export const MIN_CHECKSUM_KEY_BYTES = 32;
/** A key file is a few dozen bytes; anything much larger is not one (and is not read whole). */
const MAX_CHECKSUM_KEY_FILE_BYTES = 64 * 1024;

export class ChecksumKeyError extends ConfigurationError {
  override readonly name: string = 'ChecksumKeyError';
}

const octal = (mode: number) => `0${(mode & 0o777).toString(8).padStart(3, '0')}`;

/**
 * A file of a Kubernetes Secret (or ConfigMap) volume: the kubelet writes it atomically under
 * `..data/` and links it from the mount point. Its mode and group come from the pod spec
 * (`defaultMode`, `fsGroup`), and that group belongs to the pod alone.
 */
function isKubeletVolumeFile(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink() && readlinkSync(path).startsWith('..data/');
  } catch {
    return false;
  }
}

/**
 * Whoever can read the key can compute every namespace's checksum key and brute-force Secrets
 * from checksums: a key file other users can read (or anyone but its owner can write) is refused.
 * A group-readable one is accepted with a warning, except in a Kubernetes Secret volume.
 */
function checkPermissions(path: string, mode: number, gid: number, warn: (message: string) => void): void {
  if (mode & 0o007) {
    throw new ChecksumKeyError(`checksum key file ${path} is accessible to other users (mode ${octal(mode)}), make it private: chmod 600 ${path}`);
  }
  if (mode & 0o020) {
    throw new ChecksumKeyError(`checksum key file ${path} is writable by its group (mode ${octal(mode)}), make it private: chmod 600 ${path}`);
  }
  if (mode & 0o040 && !isKubeletVolumeFile(path)) {
    warn(
      `checksum key file ${path} is readable by group ${gid} (mode ${octal(mode)}): every member can compute config checksums ` +
        `and test guesses of Secret values against them, so unless that group is this process alone, run chmod 600 ${path}`,
    );
  }
}

/**
 * Reads the cluster-local checksum key. The key is the file's bytes as they are, without
 * trailing line breaks (so `openssl rand -hex 32 > checksum.key` gives a 64-byte key). Errors and
 * warnings name the file, never its content; `warn` receives what is wrong but not fatal.
 */
export function loadChecksumKey(path: string, warn: (message: string) => void = () => {}): Buffer {
  let raw: Buffer;
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    // The checks look at the very file that is read (fstat), not at whatever the path names later.
    const stat = fstatSync(fd);
    if (stat.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    checkPermissions(path, stat.mode, stat.gid, warn);
    if (stat.size > MAX_CHECKSUM_KEY_FILE_BYTES) {
      throw new ChecksumKeyError(`checksum key file ${path} holds ${stat.size} bytes, more than a key (create one with: openssl rand -hex 32)`);
    }
    raw = readFileSync(fd);
  } catch (error) {
    if (error instanceof ChecksumKeyError) throw error;
    const code = (error as NodeJS.ErrnoException).code ?? 'read error';
    throw new ChecksumKeyError(`cannot read checksum key file ${path}: ${code}`);
  } finally {
    if (fd !== undefined) closeSync(fd);
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
