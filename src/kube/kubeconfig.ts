import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { ConfigurationError } from '../util/errors.js';

/** The loaded kubeconfig the adapter's clients are built from (client-node's own type). */
export type { KubeConfig };

export class KubeConfigError extends ConfigurationError {
  override readonly name: string = 'KubeConfigError';
}

function loadFile(kubeConfig: KubeConfig, path: string): void {
  if (!existsSync(path)) throw new KubeConfigError(`kubeconfig ${path} does not exist`);
  try {
    kubeConfig.loadFromFile(path);
  } catch (error) {
    // Parser messages may quote the file (tokens, keys): only the error code is kept.
    const code = (error as NodeJS.ErrnoException).code;
    throw new KubeConfigError(`cannot load kubeconfig ${path}${code ? `: ${code}` : ': not a valid kubeconfig'}`);
  }
}

function checked(kubeConfig: KubeConfig, source: string): KubeConfig {
  if (!kubeConfig.getCurrentCluster()) {
    throw new KubeConfigError(`kubeconfig ${source} has no current context with a cluster`);
  }
  return kubeConfig;
}

/** kubectl's KUBECONFIG merge: the first file to set a name (or the current context) wins. */
function mergeFirstWins(into: KubeConfig, more: KubeConfig): void {
  if (!into.currentContext && more.currentContext) into.currentContext = more.currentContext;
  for (const cluster of more.clusters) if (!into.getCluster(cluster.name)) into.addCluster(cluster);
  for (const user of more.users) if (!into.getUser(user.name)) into.addUser(user);
  for (const context of more.contexts) if (!into.getContextObject(context.name)) into.addContext(context);
}

/**
 * Where gitops-guard reads the cluster from, first match wins:
 * 1. `path`, when given;
 * 2. the pod's service account, when KUBERNETES_SERVICE_HOST is set (in-cluster);
 * 3. the files in KUBECONFIG (merged, like kubectl);
 * 4. ~/.kube/config, when it exists.
 * Returns null when none applies (the server then runs with an UnavailableKubeReader).
 * Throws a KubeConfigError naming the file, never its content, when a configured source is unusable.
 */
export function loadKubeConfig(path?: string): KubeConfig | null {
  const kubeConfig = new KubeConfig();
  if (path) {
    loadFile(kubeConfig, path);
    return checked(kubeConfig, path);
  }
  if (process.env['KUBERNETES_SERVICE_HOST']) {
    kubeConfig.loadFromCluster();
    return kubeConfig;
  }
  const files = (process.env['KUBECONFIG'] ?? '').split(delimiter).filter((file) => file.length > 0);
  if (files.length > 0) {
    loadFile(kubeConfig, files[0]!);
    for (const file of files.slice(1)) {
      const more = new KubeConfig();
      loadFile(more, file);
      mergeFirstWins(kubeConfig, more);
    }
    return checked(kubeConfig, files.join(delimiter));
  }
  const fallback = join(homedir(), '.kube', 'config');
  if (existsSync(fallback)) {
    loadFile(kubeConfig, fallback);
    return checked(kubeConfig, fallback);
  }
  return null;
}
