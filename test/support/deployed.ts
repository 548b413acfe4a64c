import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KubeObject } from '../../src/api/types.js';
import { buildObjects } from './kustomize.js';

/**
 * How the manifests run gitops-guard, read from the rendered overlays (`kubectl kustomize`):
 * tests and the bench start the server and the controller with the same flags and NODE_OPTIONS
 * and hold them to the same memory limits.
 */

/** The checkout: the directory of the gitops-guard package.json above this file (also when compiled elsewhere for the bench). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'gitops-guard') return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the gitops-guard package.json');
    dir = parent;
  }
}

const REPO_ROOT = repoRoot();

/** The shipped webhooks, by the first label of their names. */
export type WebhookName = 'owners' | 'workloads';

export const WEBHOOK_OVERLAY = 'manifests/overlays/enforce';
export const CONTROLLER_OVERLAY = 'manifests/overlays/controller';

export interface ContainerProfile {
  /** The overlay it was rendered from (repository-relative). */
  overlay: string;
  deployment: string;
  args: string[];
  /** The container's NODE_OPTIONS ('' when unset). */
  nodeOptions: string;
  memoryRequestBytes: number;
  memoryLimitBytes: number;
  terminationGracePeriodSeconds: number;
}

export interface WebhookProfile extends ContainerProfile {
  /** timeoutSeconds of each shipped webhook, by the first label of its name (`owners`, `workloads`). */
  timeoutSeconds: Record<WebhookName, number>;
}

interface Container {
  args?: string[];
  env?: { name: string; value?: string }[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}

const SUFFIXES: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12, '': 1 };

/** A Kubernetes memory quantity (`256Mi`, `1G`, `300000000`) in bytes. */
export function quantityBytes(quantity: string): number {
  const match = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T|)$/.exec(quantity.trim());
  if (!match) throw new Error(`bench: cannot read the memory quantity "${quantity}"`);
  return Math.round(Number(match[1]) * SUFFIXES[match[2]!]!);
}

function containerProfile(objects: KubeObject[], overlay: string, deploymentName: string): ContainerProfile {
  const deployment = objects.find((o) => o.kind === 'Deployment' && o.metadata?.name === deploymentName) as
    | (KubeObject & { spec: { template: { spec: { containers: Container[]; terminationGracePeriodSeconds?: number } } } })
    | undefined;
  if (!deployment) throw new Error(`bench: ${overlay} renders no Deployment ${deploymentName}`);
  const [container] = deployment.spec.template.spec.containers;
  const limit = container?.resources?.limits?.['memory'];
  const request = container?.resources?.requests?.['memory'];
  if (!container || !limit || !request) throw new Error(`bench: Deployment ${deploymentName} in ${overlay} has no memory request and limit`);
  return {
    overlay,
    deployment: deploymentName,
    args: container.args ?? [],
    nodeOptions: container.env?.find((e) => e.name === 'NODE_OPTIONS')?.value ?? '',
    memoryRequestBytes: quantityBytes(request),
    memoryLimitBytes: quantityBytes(limit),
    // Kubernetes' default when the Deployment leaves it out.
    terminationGracePeriodSeconds: deployment.spec.template.spec.terminationGracePeriodSeconds ?? 30,
  };
}

export function webhookProfile(): WebhookProfile {
  const objects = buildObjects(join(REPO_ROOT, WEBHOOK_OVERLAY));
  const timeoutSeconds = {} as Record<WebhookName, number>;
  for (const config of objects.filter((o) => o.kind === 'MutatingWebhookConfiguration' || o.kind === 'ValidatingWebhookConfiguration')) {
    for (const webhook of (config as { webhooks?: { name: string; timeoutSeconds?: number }[] }).webhooks ?? []) {
      const name = webhook.name.split('.')[0] as WebhookName;
      // Both owners webhooks (mutate and validate) must agree; the bench uses the shorter.
      timeoutSeconds[name] = Math.min(timeoutSeconds[name] ?? Infinity, webhook.timeoutSeconds ?? 10);
    }
  }
  for (const name of ['owners', 'workloads'] as const) {
    if (!timeoutSeconds[name]) throw new Error(`bench: ${WEBHOOK_OVERLAY} renders no ${name}.* webhook`);
  }
  return { ...containerProfile(objects, WEBHOOK_OVERLAY, 'gitops-guard'), timeoutSeconds };
}

export function controllerProfile(): ContainerProfile {
  return containerProfile(buildObjects(join(REPO_ROOT, CONTROLLER_OVERLAY)), CONTROLLER_OVERLAY, 'gitops-guard-controller');
}

/** The value of `--name=value` / `--name value` in a container's args. */
export function flagValue(args: readonly string[], name: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === `--${name}`) return args[i + 1];
    if (args[i]!.startsWith(`--${name}=`)) return args[i]!.slice(name.length + 3);
  }
  return undefined;
}

/** Flags of the Deployment a local run sets itself (ports, files, log level, API access); every other flag runs as deployed. */
export const LOCAL_FLAGS = ['port', 'host', 'tls-cert', 'tls-key', 'rules', 'checksum-key', 'log-level', 'kubeconfig', 'metrics-port', 'metrics-host'];

/**
 * The Deployment's args with the flags a local run must set itself (port, files) taken out:
 * the rest (timeouts, budgets, shutdown) run as deployed.
 */
export function deployedArgs(args: readonly string[], replaced: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const name = /^--([^=]+)/.exec(arg)?.[1];
    if (name && replaced.includes(name)) {
      if (!arg.includes('=')) i++;
      continue;
    }
    out.push(arg);
  }
  return out;
}
