import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_RULES } from './app.js';
import { CLI } from './cli.js';
import { deployedArgs, LOCAL_FLAGS, webhookProfile, type WebhookProfile } from './deployed.js';
import { certDir } from './guard-server.js';

/** A running `gitops-guard serve` child process. */
export interface ServeProcess {
  child: ChildProcess;
  port: number;
  /** Every JSON log line so far. */
  logs: string[];
  exited: Promise<number | null>;
}

const children = new Set<ChildProcess>();

/** Kills every server started by startServe that is still running (call from afterEach/afterAll). */
export function killServers(): void {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
}

/**
 * Starts `node CLI serve ...args` and resolves with its port once it logs that it is serving;
 * rejects with its stderr if it exits first. Kubernetes discovery is disabled unless `env`
 * configures it (no KUBECONFIG, no in-cluster variables).
 */
export function startServe(
  args: readonly string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; cli?: string; timeoutMs?: number },
): Promise<ServeProcess> {
  const child = spawn(process.execPath, [options.cli ?? CLI, 'serve', ...args], {
    cwd: options.cwd,
    env: { ...process.env, KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '', HOME: options.cwd, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const logs: string[] = [];
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      children.delete(child);
      resolve(code);
    }),
  );
  return new Promise((resolve, reject) => {
    let buffer = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`serve did not start within ${options.timeoutMs ?? 15_000} ms: ${stderr}${logs.join('\n')}`));
    }, options.timeoutMs ?? 15_000);
    child.stderr!.on('data', (c) => (stderr += c));
    child.stdout!.on('data', (chunk) => {
      buffer += chunk;
      let newline;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        logs.push(line);
        const entry = JSON.parse(line) as { msg: string; port?: number };
        if (entry.msg === 'gitops-guard serving') {
          clearTimeout(timer);
          resolve({ child, port: entry.port!, logs, exited });
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code}: ${stderr}`));
    });
  });
}

/** A `gitops-guard serve` started with the flags and NODE_OPTIONS of the enforce overlay's Deployment. */
export interface DeployedServe extends ServeProcess {
  profile: WebhookProfile;
  /** The CA of its serving certificate (the webhooks' caBundle). */
  ca: Buffer;
  dir: string;
}

/**
 * Starts the built CLI as the enforce overlay deploys it: the Deployment's own args (timeouts,
 * budgets, shutdown) and NODE_OPTIONS, with only port, files and API access set locally.
 */
export async function startServeAsDeployed(options: { kubeconfig?: string; args?: readonly string[]; env?: NodeJS.ProcessEnv } = {}): Promise<DeployedServe> {
  const profile = webhookProfile();
  const dir = certDir();
  writeFileSync(join(dir, 'checksum.key'), `${'ab'.repeat(32)}\n`, { mode: 0o600 });
  const args = [
    '--port', '0',
    '--host', '127.0.0.1',
    '--tls-cert', join(dir, 'tls.crt'),
    '--tls-key', join(dir, 'tls.key'),
    '--rules', DEFAULT_RULES,
    '--checksum-key', join(dir, 'checksum.key'),
    ...(options.kubeconfig ? ['--kubeconfig', options.kubeconfig] : []),
    ...deployedArgs(profile.args, LOCAL_FLAGS),
    ...(options.args ?? []),
  ];
  const serve = await startServe(args, { cwd: dir, env: { NODE_OPTIONS: profile.nodeOptions, ...options.env } });
  return { ...serve, profile, ca: readFileSync(join(dir, 'ca.crt')), dir };
}
