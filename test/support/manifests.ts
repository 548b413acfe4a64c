import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import type { KubeObject, WebhookPhase } from '../../src/api/types.js';
import { buildObjects } from './kustomize.js';

/** Shared by the manifest tests: the built overlays and what to look up in them. */

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const MANIFESTS = join(ROOT, 'manifests');
export const OVERLAYS = ['audit', 'audit-cert-manager', 'controller', 'enforce', 'enforce-cert-manager', 'enforce-client-auth'] as const;
export type Overlay = (typeof OVERLAYS)[number];
export const MODE: Record<Overlay, 'audit' | 'enforce'> = {
  audit: 'audit',
  'audit-cert-manager': 'audit',
  controller: 'enforce',
  enforce: 'enforce',
  'enforce-cert-manager': 'enforce',
  'enforce-client-auth': 'enforce',
};
export const usesCertManager = (overlay: Overlay) => overlay.endsWith('-cert-manager');
/** Overlays whose admission endpoints require the API server's client certificate (components/client-auth). */
export const usesClientAuth = (overlay: Overlay) => overlay.endsWith('-client-auth');
/** Overlays that add the rollout controller (manifests/components/controller, docs/controller.md). */
export const CONTROLLER_OVERLAYS: readonly Overlay[] = ['controller'];
export const hasController = (overlay: Overlay) => CONTROLLER_OVERLAYS.includes(overlay);
export const CONTROLLER = 'gitops-guard-controller';
export const LEADER_ELECTION = 'gitops-guard-controller-leader-election';

// ---------------------------------------------------------------------------------------------
// Small typed views of the objects the tests look at.

export interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports?: { name?: string; containerPort: number; protocol?: string }[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: Record<string, any>;
  volumeMounts?: { name: string; mountPath: string; subPath?: string; readOnly?: boolean }[];
}
export interface Probe {
  httpGet?: { path: string; port: string | number; scheme?: string };
}
export interface Volume {
  name: string;
  secret?: { secretName: string; items?: { key: string; path: string }[]; defaultMode?: number };
  configMap?: { name: string; items?: { key: string; path: string }[]; defaultMode?: number };
}
export interface PodSpec {
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  terminationGracePeriodSeconds?: number;
  securityContext?: Record<string, any>;
  affinity?: { podAntiAffinity?: unknown };
  topologySpreadConstraints?: unknown[];
  containers: Container[];
  volumes?: Volume[];
}
export interface WebhookRule {
  apiGroups: string[];
  apiVersions: string[];
  resources: string[];
  operations: string[];
  scope?: string;
}
export interface Webhook {
  name: string;
  clientConfig: { service?: { name: string; namespace: string; path?: string; port?: number }; url?: string; caBundle?: string };
  rules: WebhookRule[];
  failurePolicy?: string;
  matchPolicy?: string;
  sideEffects?: string;
  admissionReviewVersions?: string[];
  timeoutSeconds?: number;
  reinvocationPolicy?: string;
  namespaceSelector?: { matchExpressions?: { key: string; operator: string; values?: string[] }[] };
  matchConditions?: { name: string; expression: string }[];
}

export const builds = new Map<Overlay | 'top', KubeObject[]>();

export function objects(overlay: Overlay | 'top'): KubeObject[] {
  const built = builds.get(overlay);
  if (!built) throw new Error(`overlay ${overlay} was not built`);
  return built;
}
export function only(overlay: Overlay, kind: string, name?: string): any {
  const found = objects(overlay).filter((o) => o.kind === kind && (name === undefined || o.metadata?.name === name));
  expect(found.map((o) => `${o.kind}/${o.metadata?.name}`), `exactly one ${kind}${name ? `/${name}` : ''} in ${overlay}`).toHaveLength(1);
  return found[0];
}
export const deploymentOf = (overlay: Overlay) => only(overlay, 'Deployment', 'gitops-guard');
export const podSpecOf = (overlay: Overlay): PodSpec => deploymentOf(overlay).spec.template.spec;
export const containerOf = (overlay: Overlay): Container => {
  const { containers } = podSpecOf(overlay);
  expect(containers).toHaveLength(1);
  return containers[0]!;
};
export function flag(container: Container, name: string): string | undefined {
  const prefix = `--${name}=`;
  const found = (container.args ?? []).filter((a) => a.startsWith(prefix) || a === `--${name}`);
  expect(found.length, `--${name} given at most once`).toBeLessThanOrEqual(1);
  expect(found.every((a) => a.startsWith(prefix)), `--${name} in --flag=value form`).toBe(true);
  return found[0]?.slice(prefix.length);
}
export function env(container: Container, name: string): string | undefined {
  return container.env?.find((e) => e.name === name)?.value;
}
export const controllerDeploymentOf = (overlay: Overlay) => only(overlay, 'Deployment', CONTROLLER);
export const controllerPodSpecOf = (overlay: Overlay): PodSpec => controllerDeploymentOf(overlay).spec.template.spec;
export const controllerContainerOf = (overlay: Overlay): Container & { command?: string[] } => {
  const { containers } = controllerPodSpecOf(overlay);
  expect(containers).toHaveLength(1);
  return containers[0]!;
};
/** Whether a label selector's matchLabels select a pod with these labels. */
export const selects = (matchLabels: Record<string, string>, podLabels: Record<string, string>) =>
  Object.entries(matchLabels).every(([key, value]) => podLabels[key] === value);
export const webhookConfig = (overlay: Overlay, phase: WebhookPhase) =>
  only(overlay, phase === 'mutate' ? 'MutatingWebhookConfiguration' : 'ValidatingWebhookConfiguration', 'gitops-guard') as KubeObject & { webhooks: Webhook[] };


/**
 * Non-root as the image's numeric user, read-only root, no capabilities, RuntimeDefault seccomp,
 * and whole-directory read-only mounts (subPath mounts never see Secret/ConfigMap updates).
 */
export function expectLockedDown(spec: PodSpec, container: Container, imageUser: string): void {
  expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
  expect(String(spec.securityContext!['runAsUser'])).toBe(imageUser);
  expect(container.securityContext).toMatchObject({
    runAsNonRoot: true,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
  });
  expect(container.securityContext!['capabilities'].add).toBeUndefined();
  expect(container.securityContext!['privileged'] ?? false).toBe(false);
  for (const mount of container.volumeMounts ?? []) {
    expect(mount.subPath, mount.name).toBeUndefined();
    expect(mount.readOnly, mount.name).toBe(true);
  }
}


/** Builds every overlay and the top-level kustomization once per test file. */
export function buildOverlays(): void {
  for (const overlay of OVERLAYS) builds.set(overlay, buildObjects(join(MANIFESTS, 'overlays', overlay)));
  builds.set('top', buildObjects(MANIFESTS));
}
