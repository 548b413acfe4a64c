import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/**
 * Process plumbing for the bench: CPU pinning, waiting for a child to announce itself, and
 * reading a process's memory from /proc.
 */

let tasksetAvailable: boolean | undefined;

/** `taskset` (util-linux) is there and the machine has at least two cores to split. */
export function canPin(): boolean {
  if (tasksetAvailable === undefined) {
    tasksetAvailable = availableParallelism() >= 2 && spawnSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' }).status === 0;
  }
  return tasksetAvailable;
}

/** Command and arguments to run `node args...` pinned to `core` (taskset execs, so the pid is node's). */
export function nodeCommand(args: string[], core: number | undefined): { command: string; args: string[] } {
  if (core === undefined) return { command: process.execPath, args };
  return { command: 'taskset', args: ['-c', String(core), process.execPath, ...args] };
}

export interface Child {
  process: ChildProcess;
  pid: number;
  /** Resolves once the process has exited and its stdio is drained. */
  exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after `graceMs` (the server drains for up to 10 s); resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
}

export function startNode(args: string[], core: number | undefined, options: SpawnOptions): Child {
  const { command, args: argv } = nodeCommand(args, core);
  const child = spawn(command, argv, options);
  if (child.pid === undefined) throw new Error(`bench: could not start ${command}`);
  const exited = new Promise<number | null>((resolve) => child.once('close', (code, signal) => resolve(code ?? (signal ? 128 : null))));
  let stopping: Promise<number | null> | undefined;
  return {
    process: child,
    pid: child.pid,
    exited,
    stop(graceMs = 15_000) {
      stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        const code = await exited;
        clearTimeout(timer);
        return code;
      })();
      return stopping;
    },
  };
}

/** Resolves with the first stdout line `accept` returns a value for; rejects if the child exits first. */
export function waitForLine<T>(child: Child, accept: (line: string) => T | undefined, timeoutMs = 30_000): Promise<T> {
  const stdout = child.process.stdout;
  if (!stdout) throw new Error('bench: child has no stdout pipe');
  return new Promise<T>((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => reject(new Error(`bench: child ${child.pid} did not get ready within ${timeoutMs} ms`)), timeoutMs);
    const onData = (chunk: Buffer): void => {
      buffer += chunk.toString('utf8');
      let newline;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        const value = accept(line);
        if (value !== undefined) {
          clearTimeout(timer);
          stdout.off('data', onData);
          resolve(value);
          return;
        }
      }
    };
    stdout.on('data', onData);
    void child.exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`bench: child ${child.pid} exited with ${code} before it was ready`));
    });
  });
}

/** Polls a file (a child's log) until a line `accept` returns a value for appears. */
export async function waitForFileLine<T>(path: string, child: Child, accept: (line: string) => T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void child.exited.then(() => (exited = true));
  for (;;) {
    let text = '';
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      // not created yet
    }
    for (const line of text.split('\n')) {
      const value = line ? accept(line) : undefined;
      if (value !== undefined) return value;
    }
    if (exited) throw new Error(`bench: process ${child.pid} exited before it was ready; see ${path}`);
    if (Date.now() > deadline) throw new Error(`bench: process ${child.pid} not ready within ${timeoutMs} ms; see ${path}`);
    await sleep(25);
  }
}

/** A file descriptor for a child's output; closed by the caller after spawn. */
export function openLog(path: string): number {
  return openSync(path, 'w');
}

export function closeLog(fd: number): void {
  closeSync(fd);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

let clockTicks: number | undefined;

/** CPU time (user + system) a live process has used, in ms, from /proc (Linux); null elsewhere. */
export function readCpuMs(pid: number): number | null {
  return cpuMsOfStat(`/proc/${pid}/stat`);
}

/**
 * CPU time of a process split by thread: its main thread (JavaScript, TLS, parsing: the thread
 * the event loop runs on) and all others together (V8's garbage-collection and compiler helper
 * threads, libuv's thread pool). Null when /proc is not there.
 */
export function readThreadCpuMs(pid: number): { main: number; helpers: number } | null {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return null;
  }
  let main = 0;
  let helpers = 0;
  for (const tid of tids) {
    // A helper thread may end between listing and reading: it then counts nothing more.
    const ms = cpuMsOfStat(`/proc/${pid}/task/${tid}/stat`) ?? 0;
    if (tid === String(pid)) main = ms;
    else helpers += ms;
  }
  return { main, helpers };
}

function cpuMsOfStat(file: string): number | null {
  let stat: string;
  try {
    stat = readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  // Fields after the command name (which may hold spaces) start at field 3; utime and stime are 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
  clockTicks ??= Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;
  return ((utime + stime) * 1000) / clockTicks;
}

export interface Memory {
  /** Resident set size now, bytes. */
  rss: number;
  /** Peak resident set size over the process's life (VmHWM), bytes. */
  peak: number;
}

/** RSS and peak RSS of a live process from /proc (Linux); null elsewhere or when it is gone. */
export function readMemory(pid: number): Memory | null {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const kib = (field: string): number | undefined => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return match ? Number(match[1]) * 1024 : undefined;
  };
  const rss = kib('VmRSS');
  const peak = kib('VmHWM');
  return rss === undefined || peak === undefined ? null : { rss, peak };
}

/** Samples a process's RSS every `intervalMs`; `stop()` returns the largest value seen. */
export function sampleRss(pid: number, intervalMs = 100): { stop(): number; current(): number } {
  let max = readMemory(pid)?.rss ?? 0;
  let last = max;
  const timer = setInterval(() => {
    const memory = readMemory(pid);
    if (memory) {
      last = memory.rss;
      if (memory.rss > max) max = memory.rss;
    }
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      const memory = readMemory(pid);
      if (memory && memory.rss > max) max = memory.rss;
      return max;
    },
    current: () => last,
  };
}
