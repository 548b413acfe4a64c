import type { Operation as PatchOperation } from 'fast-json-patch';
import type { Logger } from 'pino';
import type { AdmissionRequest, KubeObject, WebhookPhase } from '../api/types.js';
import type { ActionDetails, ActionResult, ActionSettings } from '../actions/types.js';
import type { ActionRegistry } from '../actions/registry.js';
import { applyPatch, diff } from '../actions/patch.js';
import type { KubeReader } from '../kube/reader.js';
import { isValidAnnotationNamePart } from '../util/text.js';
import { matchRule } from './match.js';
import type { AdmissionResult, PhaseResult, RuleResult } from './result.js';
import type { Rule, RuleMode, RuleSet } from './types.js';

export interface EngineDeps {
  registry: ActionRegistry;
  kube: KubeReader;
  settings: ActionSettings;
  logger: Logger;
  /** `audit` forces every rule into audit mode (the `--mode audit` switch). */
  modeOverride?: RuleMode;
}

const AUDIT = '[audit]';

/**
 * The signal actions get: an AbortSignal, or a function that makes it when an action first needs
 * it (the webhook's calls mostly run no action, and an AbortSignal costs several microseconds).
 */
export type SignalSource = AbortSignal | (() => AbortSignal);

/** A phase's rules in file order, worked out once per rule set (not per request). */
const phaseRules = new WeakMap<RuleSet, { registry: ActionRegistry; mutate: Rule[]; validate: Rule[] }>();

function rulesOf(ruleSet: RuleSet, phase: WebhookPhase, registry: ActionRegistry): Rule[] {
  let cached = phaseRules.get(ruleSet);
  if (!cached || cached.registry !== registry) {
    const of = (p: WebhookPhase) => ruleSet.rules.filter((rule) => registry.get(rule.action.type)?.phase === p);
    cached = { registry, mutate: of('mutate'), validate: of('validate') };
    phaseRules.set(ruleSet, cached);
  }
  return cached[phase];
}

/** One child logger per rule name and parent logger, made once (a pino child serializes its bindings). */
const ruleLoggers = new WeakMap<Logger, Map<string, Logger>>();

function ruleLogger(logger: Logger, rule: string): Logger {
  let children = ruleLoggers.get(logger);
  if (!children) ruleLoggers.set(logger, (children = new Map()));
  let child = children.get(rule);
  if (!child) {
    // Rule names come from the rules file; a reload with new names adds entries, so keep it bounded.
    if (children.size >= 1024) children.clear();
    children.set(rule, (child = logger.child({ rule })));
  }
  return child;
}

function auditKey(rule: string, suffix: string): string {
  const key = `${rule}.${suffix}`.slice(0, 63).replace(/[^A-Za-z0-9]+$/, '');
  return isValidAnnotationNamePart(key) ? key : rule;
}

/** Why the whole request is out of scope, before any rule is looked at. */
function outOfScope(request: AdmissionRequest): string | null {
  if (request.subResource) return `subresource ${request.subResource} ignored`;
  if (request.operation === 'DELETE' || request.operation === 'CONNECT') return `${request.operation} is never changed`;
  if (!request.object) return 'request has no object';
  return null;
}

/**
 * Admits an object the way the API server runs gitops-guard's two webhooks: the mutating phase,
 * its patch applied, then the validating phase on the mutated object. What the audit and the
 * cluster scan ask of the engine; the webhook itself answers one phase per call (`evaluate`).
 */
export async function admit(
  request: AdmissionRequest & { object: KubeObject },
  ruleSet: RuleSet,
  deps: EngineDeps,
  signal?: SignalSource,
  deadline?: number,
): Promise<AdmissionResult> {
  const mutate = await evaluate(request, 'mutate', ruleSet, deps, signal, deadline);
  if (!mutate.allowed) return { allowed: false, patch: mutate.patch, object: request.object, phases: [mutate] };
  const object = applyPatch(request.object, mutate.patch);
  const validate = await evaluate({ ...request, object }, 'validate', ruleSet, deps, signal, deadline);
  return { allowed: validate.allowed, patch: mutate.patch, object, phases: [mutate, validate] };
}

/**
 * Runs every rule of `phase` in file order. Each rule sees the object as earlier enforce-mode
 * rules left it; the answer carries one patch computed against the original object.
 */
export async function evaluate(
  request: AdmissionRequest,
  phase: WebhookPhase,
  ruleSet: RuleSet,
  deps: EngineDeps,
  signal?: SignalSource,
  deadline?: number,
): Promise<PhaseResult> {
  const phaseResult: PhaseResult = { phase, allowed: true, patch: [], denials: [], warnings: [], auditAnnotations: {}, results: [] };
  const rules = rulesOf(ruleSet, phase, deps.registry);
  const skipAll = outOfScope(request);
  const original = request.object as KubeObject;
  // The object as enforce-mode rules left it. Patches are applied lazily, only when another rule
  // needs the object: a 1 MB object is cloned once per applied patch, so the common single-patch
  // case clones nothing and reuses that patch as the answer.
  let working = original;
  let pending: PatchOperation[] | null = null;
  let patches = 0;
  const current = () => {
    if (pending) {
      working = applyPatch(working, pending);
      pending = null;
    }
    return working;
  };

  for (const rule of rules) {
    const mode: RuleMode = deps.modeOverride === 'audit' ? 'audit' : rule.mode;
    // Only a label selector looks at the object; other rules need not wait for pending patches.
    const skip = skipAll ?? matchRule(rule.match, request, rule.match.labelSelector ? current() : working);
    if (skip) {
      phaseResult.results.push({ rule: rule.name, action: rule.action.type, mode, result: 'skipped', reason: skip });
      continue;
    }
    const base = { rule: rule.name, action: rule.action.type, mode };
    let answer: ActionResult;
    let details: ActionDetails | undefined;
    const report = (reported: ActionDetails) => {
      details = reported;
    };
    try {
      answer = await runAction(rule, request, current(), deps, signal, deadline, report);
    } catch (error) {
      phaseResult.results.push({ ...base, result: 'error', reason: errorText(error), ...(details ? { details } : {}) });
      recordError(phaseResult, rule, mode, error);
      continue;
    }
    const patch = answer.patch ?? [];
    const warnings = answer.warnings ?? [];
    const result: RuleResult = {
      ...base,
      result: answer.denial ? 'denied' : patch.length > 0 ? 'mutated' : 'noop',
      ...(patch.length > 0 ? { patch } : {}),
      ...(answer.denial ? { denial: answer.denial } : {}),
      ...(warnings.length > 0 ? { warnings } : {}),
      ...(details ? { details } : {}),
    };
    phaseResult.results.push(result);
    for (const [suffix, value] of Object.entries(answer.auditAnnotations ?? {})) {
      phaseResult.auditAnnotations[auditKey(rule.name, suffix)] = value;
    }
    if (mode === 'enforce') {
      phaseResult.warnings.push(...warnings);
      if (answer.denial) phaseResult.denials.push(answer.denial);
      if (patch.length > 0) {
        current();
        pending = patch;
        patches += 1;
      }
    } else {
      phaseResult.warnings.push(...warnings.map((w) => `${AUDIT} ${w}`));
      if (patch.length > 0) {
        const paths = patch.map((op) => `${op.op} ${op.path}`).join(', ');
        phaseResult.warnings.push(`${AUDIT} rule ${rule.name} would patch: ${paths}`);
        phaseResult.auditAnnotations[auditKey(rule.name, 'would-patch')] = JSON.stringify(patch.map((op) => ({ op: op.op, path: op.path })));
      }
      if (answer.denial) {
        phaseResult.warnings.push(`${AUDIT} rule ${rule.name} would deny: ${answer.denial}`);
        phaseResult.auditAnnotations[auditKey(rule.name, 'would-deny')] = answer.denial;
      }
    }
  }

  phaseResult.allowed = phaseResult.denials.length === 0;
  if (!phaseResult.allowed || patches === 0) phaseResult.patch = [];
  else if (patches === 1) phaseResult.patch = pending ?? diff(original, working);
  else phaseResult.patch = diff(original, current());
  return phaseResult;
}

async function runAction(
  rule: Rule,
  request: AdmissionRequest,
  object: KubeObject,
  deps: EngineDeps,
  signal: SignalSource | undefined,
  deadline: number | undefined,
  report: (details: ActionDetails) => void,
): Promise<ActionResult> {
  const action = deps.registry.get(rule.action.type);
  if (!action) throw new Error(`unknown action ${rule.action.type}`);
  let made: AbortSignal | undefined;
  return action.run(rule.action.params, {
    request,
    object,
    oldObject: request.oldObject,
    kube: deps.kube,
    settings: deps.settings,
    logger: ruleLogger(deps.logger, rule.name),
    // Made when the action first looks at it: most actions never wait on anything.
    get signal(): AbortSignal {
      return (made ??= typeof signal === 'function' ? signal() : (signal ?? new AbortController().signal));
    },
    ...(deadline !== undefined ? { deadline } : {}),
    report,
  });
}

/** Error text is built from our own messages; object content never flows into it. */
function errorText(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.length > 160 ? `${text.slice(0, 159)}…` : text;
}

function recordError(phaseResult: PhaseResult, rule: Rule, mode: RuleMode, error: unknown): void {
  const text = errorText(error);
  phaseResult.auditAnnotations[auditKey(rule.name, 'error')] = text;
  if (rule.onError === 'deny' && mode === 'enforce') {
    phaseResult.denials.push(`gitops-guard rule ${rule.name} failed and is configured to deny on error: ${text}`);
  } else {
    const prefix = mode === 'audit' ? `${AUDIT} ` : '';
    const consequence = rule.onError === 'deny' ? 'would deny' : 'allowed without changes';
    phaseResult.warnings.push(`${prefix}gitops-guard rule ${rule.name} failed (${consequence}): ${text}`);
  }
}
