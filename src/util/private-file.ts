import { randomBytes } from 'node:crypto';
import { closeSync, constants, fchmodSync, fsyncSync, lstatSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ConfigurationError } from './errors.js';

/** A target gitops-guard will not write through (a symbolic link, a directory, a device). */
export class UnsafeFileError extends ConfigurationError {
  override readonly name: string = 'UnsafeFileError';
}

/**
 * Refuses targets that are symbolic links (dangling or not) or not regular files, before anything
 * is written: a set of files (a key and its certificate) is written completely or not at all.
 */
export function assertWritableTargets(paths: readonly string[]): void {
  for (const path of paths) {
    let existing;
    try {
      existing = lstatSync(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw error;
    }
    if (existing.isSymbolicLink()) throw new UnsafeFileError(`refusing to write ${path}: it is a symbolic link`);
    if (!existing.isFile()) throw new UnsafeFileError(`refusing to write ${path}: it is not a regular file`);
  }
}

/**
 * Writes `content` to `path` with exactly `mode`, never following a link: a symbolic link (or any
 * non-regular file) at `path` is refused, and the content goes to a new file created with
 * O_EXCL|O_NOFOLLOW and the final mode from the first byte, then renamed over `path`. So a private
 * key is never readable by others, not even for a moment, and a link planted at the target cannot
 * redirect it anywhere.
 */
export function writeFileNoFollow(path: string, content: string | Buffer, mode: number): void {
  assertWritableTargets([path]);

  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  try {
    try {
      fchmodSync(fd, mode); // the umask may have taken bits away; public certificates keep 0644
      const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
      for (let offset = 0; offset < bytes.length; ) offset += writeSync(fd, bytes, offset);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}
