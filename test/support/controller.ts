import type { KubeConfig } from '@kubernetes/client-node';
import { applyPatch } from '../../src/actions/patch.js';
import { createRegistry } from '../../src/actions/registry.js';
import { locatePodTemplate } from '../../src/actions/checksum/pod-template.js';
import { DEFAULT_CHECKSUM_ANNOTATION } from '../../src/actions/checksum/stamp-config-checksum.js';
import type { KubeObject } from '../../src/api/types.js';
import { ClientNodeReader } from '../../src/kube/client-node-reader.js';
import { evaluate } from '../../src/rules/engine.js';
import { loadRuleSetFile } from '../../src/rules/load.js';
import { capturingLogger, DEFAULT_RULES } from './app.js';
import type { KubeApiServer } from './kube-api-server.js';
import { requestFor } from './review.js';

/** The controller tests' checksum key, shared with the webhook evaluations they compare against. */
export const CONTROLLER_TEST_KEY = Buffer.from('controller-test-key-0123456789abcdef', 'ascii');
const registry = createRegistry();
export const defaultRules = loadRuleSetFile(DEFAULT_RULES, registry);

/**
 * Controller timings for tests: leadership within a second, coalescing and retries in tenths of
 * a second, so a test sees a rollout or a takeover well inside its timeout.
 */
export const FAST_CONTROLLER_TIMINGS = {
  leaseNamespace: 'gitops-guard',
  leaseDurationMs: 1000,
  renewDeadlineMs: 700,
  retryPeriodMs: 100,
  coalesceMs: 100,
  maxDelayMs: 1000,
  watchRestartDelayMs: 100,
  retryBaseMs: 100,
} as const;

export async function waitFor(what: string, condition: () => boolean, timeoutMs = 8000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The stamped checksum of a workload's pod template. */
export function stampedValue(object: KubeObject | undefined): string | undefined {
  if (!object) return undefined;
  return (locatePodTemplate(object)?.template as { metadata?: { annotations?: Record<string, string> } } | undefined)?.metadata?.annotations?.[DEFAULT_CHECKSUM_ANNOTATION];
}

/** What the webhook stamps on `object` now, through the engine, the default rules and the real client. */
export async function webhookChecksum(kubeConfig: KubeConfig, object: KubeObject): Promise<string | undefined> {
  const { logger } = capturingLogger();
  const evaluation = await evaluate(requestFor(object), 'mutate', defaultRules, {
    registry,
    kube: new ClientNodeReader(kubeConfig),
    settings: { checksumKey: CONTROLLER_TEST_KEY },
    logger,
  });
  return stampedValue(applyPatch(object, evaluation.patch));
}

/** Stores a workload as the webhook would have admitted it (stamped), or with the `checksum` given. */
export async function admit(api: KubeApiServer, kubeConfig: KubeConfig, object: KubeObject, checksum?: string): Promise<KubeObject> {
  const value = checksum ?? (await webhookChecksum(kubeConfig, object));
  const stamped = structuredClone(object);
  const template = locatePodTemplate(stamped)!.template as { metadata?: { annotations?: Record<string, string> } };
  template.metadata = { ...template.metadata, annotations: { ...template.metadata?.annotations, [DEFAULT_CHECKSUM_ANNOTATION]: value! } };
  return api.put(stamped);
}
