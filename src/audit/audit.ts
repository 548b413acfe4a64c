import { ownerResolutionFor } from '../rules/configured.js';
import { findDuplicates } from './duplicates.js';
import { executePlan } from './execute.js';
import { collectInput, type InputProblem } from './input.js';
import { planAudit } from './plan.js';
import { summarise } from './summary.js';
import type { AuditOptions, AuditResult } from './types.js';

export type * from './types.js';

/**
 * The offline audit: every rendered object goes through the webhook's own rule engine and
 * actions, as the admission request the API server would send. Plan (where each object lands,
 * which renderings are one object, who owns them), execute (admit each rendering in order), then
 * sum up (duplicates, counts, exit code).
 */
export async function runAuditCore(options: AuditOptions): Promise<AuditResult> {
  const input = await collectInput(options.inputs, options.stdin ? { stdin: options.stdin } : {});
  const inputErrors: InputProblem[] = [...input.problems];
  if (input.problems.length === 0 && input.objects.length === 0) {
    inputErrors.push({ file: options.inputs.map((i) => (i.path === '-' ? '<stdin>' : i.path)).join(', '), message: 'no Kubernetes objects found in the input' });
  }

  const plan = planAudit(input.objects, options.namespace, ownerResolutionFor(options.ruleSet));
  await executePlan(plan, options);

  const objects = plan.objects.map((o) => o.result);
  const byKey = new Map(objects.map((o) => [o.key, o]));
  const duplicates = findDuplicates(plan.renderings);
  for (const duplicate of duplicates) {
    const object = byKey.get(duplicate.key);
    if (object) object.duplicate = duplicate;
  }
  return {
    namespace: options.namespace,
    ...(options.cluster ? { cluster: options.cluster.description } : {}),
    stats: input.stats,
    inputErrors,
    objects,
    duplicates,
    summary: summarise(input.stats, inputErrors.length, objects, duplicates),
  };
}
