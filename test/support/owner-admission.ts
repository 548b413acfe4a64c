import { evaluate as evaluateCel } from '@marcbachmann/cel-js';
import { applyPatch } from '../../src/actions/patch.js';
import { createRegistry } from '../../src/actions/registry.js';
import type { KubeObject } from '../../src/api/types.js';
import { UnavailableKubeReader } from '../../src/kube/reader.js';
import { evaluate, type EngineDeps } from '../../src/rules/engine.js';
import type { PhaseResult } from '../../src/rules/result.js';
import { parseRuleSet } from '../../src/rules/load.js';
import type { RuleSet } from '../../src/rules/types.js';
import { capturingLogger } from './app.js';
import { buildObjects } from './kustomize.js';
import { requestFor } from './review.js';

/**
 * Owner-tracked writes the way the API server runs them with the shipped manifests: the webhook
 * configurations' matchConditions decide (in CEL) whether gitops-guard is called at all, the
 * mutating webhook's patch is applied, then the validating webhook judges the final object, with
 * the rules of the shipped ConfigMap.
 */

const registry = createRegistry();
export const ARGOCD_CONTROLLER = 'system:serviceaccount:argocd:argocd-application-controller';

interface Webhook {
  name: string;
  matchConditions?: { name: string; expression: string }[];
}
const built = buildObjects('manifests/base') as (KubeObject & { webhooks?: Webhook[]; data?: Record<string, string> })[];
const webhook = (kind: string, name: string) => built.find((c) => c.kind === kind)!.webhooks!.find((w) => w.name === name)!;
export const OWNERS_MUTATE = webhook('MutatingWebhookConfiguration', 'owners.mutate.gitops-guard.dev');
export const OWNERS_VALIDATE = webhook('ValidatingWebhookConfiguration', 'owners.validate.gitops-guard.dev');

/** The rules file of the shipped ConfigMap. */
export function shippedRulesText(): string {
  return built.find((o) => o.kind === 'ConfigMap')!.data!['rules.yaml']!;
}

/** What the API server decides before calling: every matchCondition must be true. */
export function called(hook: Webhook, object: KubeObject, oldObject: KubeObject | null, operation: string, username: string): boolean {
  const variables = { object, oldObject, request: { operation, userInfo: { username, groups: ['system:authenticated'] } } };
  return (hook.matchConditions ?? []).every((condition) => evaluateCel(condition.expression, variables) === true);
}

export interface Outcome {
  allowed: boolean;
  final: KubeObject;
  mutate?: PhaseResult;
  validate?: PhaseResult;
  logs: string[];
}

/** One write through the admission chain: the mutating webhook, any later mutation, then validation. */
export async function write(
  object: KubeObject,
  oldObject: KubeObject | null,
  options: { username?: string; ruleSet?: RuleSet; laterMutation?: (o: KubeObject) => KubeObject; dryRun?: boolean } = {},
): Promise<Outcome> {
  const username = options.username ?? ARGOCD_CONTROLLER;
  const operation = oldObject ? 'UPDATE' : 'CREATE';
  const ruleSet = options.ruleSet ?? parseRuleSet(shippedRulesText(), 'shipped rules', registry);
  const { logger, lines } = capturingLogger('info');
  const deps: EngineDeps = { registry, kube: new UnavailableKubeReader('no reads for owners'), settings: {}, logger };
  const request = (o: KubeObject) => requestFor(o, { operation, oldObject, username, groups: ['system:authenticated'], dryRun: options.dryRun ?? false });
  let final = object;
  let mutate: PhaseResult | undefined;
  if (called(OWNERS_MUTATE, object, oldObject, operation, username)) {
    mutate = await evaluate(request(object), 'mutate', ruleSet, deps);
    final = applyPatch(object, mutate.patch);
  }
  // A mutating webhook ordered after gitops-guard's (another admission controller) may change the object again.
  if (options.laterMutation) final = options.laterMutation(final);
  let validate: PhaseResult | undefined;
  if (called(OWNERS_VALIDATE, final, oldObject, operation, username)) validate = await evaluate(request(final), 'validate', ruleSet, deps);
  return { allowed: validate?.allowed ?? true, final, mutate, validate, logs: lines };
}
