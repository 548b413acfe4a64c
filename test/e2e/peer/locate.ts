import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * Finds the apiserver-peer binary (an API server that calls webhooks like kube-apiserver; see its
 * README): `APISERVER_PEER` names the binary; otherwise the peer's own `setup.sh` (idempotent: it
 * installs the toolchain once and rebuilds in seconds; its last output line is the binary's path)
 * is run from `APISERVER_PEER_DIR`, or from `../shared/apiserver-peer` next to the checkout.
 */
export function locatePeer(root: string, env: NodeJS.ProcessEnv = process.env): string {
  const binary = env['APISERVER_PEER'];
  if (binary) {
    if (!existsSync(binary)) throw new Error(`APISERVER_PEER=${binary} does not exist`);
    return resolve(binary);
  }
  const dir = env['APISERVER_PEER_DIR'] ? resolve(env['APISERVER_PEER_DIR']) : join(root, '..', 'shared', 'apiserver-peer');
  const setup = join(dir, 'setup.sh');
  if (!existsSync(setup)) {
    throw new Error(
      `apiserver-peer not found: no ${setup}. Set APISERVER_PEER to the peer's binary, or APISERVER_PEER_DIR to its folder (the one with setup.sh), or place it at ../shared/apiserver-peer next to this checkout.`,
    );
  }
  const built = spawnSync('bash', [setup], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 15 * 60_000 });
  if (built.status !== 0) throw new Error(`${setup} failed (exit ${built.status ?? built.signal}); see its output above`);
  const path = built.stdout.trim().split('\n').at(-1) ?? '';
  if (!path || !existsSync(path)) throw new Error(`${setup} did not print the binary's path (got "${path}")`);
  return path;
}
