import { spawn } from 'node:child_process';
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/cli/dispatch.js';
import type { CliIo } from '../../src/cli/flags.js';

/** The built CLI, exactly as users and the container run it (`npm test` builds first). */
export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI; `umask` runs it under that file-creation mask (through sh). */
export function runCli(args: string[], options: { env?: NodeJS.ProcessEnv; input?: string; cwd?: string; timeoutMs?: number; umask?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const [command, argv] =
      options.umask === undefined
        ? [process.execPath, [CLI, ...args]]
        : ['sh', ['-c', `umask ${options.umask.toString(8).padStart(3, '0')} && exec "$0" "$@"`, process.execPath, CLI, ...args]];
    const child = spawn(command, argv, {
      env: { ...process.env, ...options.env },
      cwd: options.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 15_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** Streams for running a command in this process: stdin empty, stdout and stderr collected. */
export function capturedIo(options: { stderrTty?: boolean } = {}): { io: CliIo; out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  if (options.stderrTty) (stderr as unknown as { isTTY: boolean }).isTTY = true;
  let out = '';
  let err = '';
  stdout.on('data', (c) => (out += c));
  stderr.on('data', (c) => (err += c));
  return { io: { stdin: Readable.from([]), stdout, stderr }, out: () => out, err: () => err };
}

/** The CLI's `main` in this process, with captured output. */
export async function runMain(args: string[], options: { stderrTty?: boolean } = {}): Promise<CliResult> {
  const { io, out, err } = capturedIo(options);
  const code = await main(args, io);
  return { code, stdout: out(), stderr: err() };
}
