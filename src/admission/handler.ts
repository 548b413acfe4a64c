import { responseFor } from './response.js';
import type { AdmissionRequest, AdmissionResponse, WebhookPhase } from '../api/types.js';
import { evaluate, type EngineDeps, type SignalSource } from '../rules/engine.js';
import type { PhaseResult } from '../rules/result.js';
import type { RuleSet } from '../rules/types.js';

export interface HandlerDeps extends EngineDeps {
  /** The rules in use (re-read per request, so a reload applies at once). */
  rules: () => RuleSet;
}

/**
 * Request in, response out: the rules of one webhook phase evaluated for one decoded request,
 * turned into the AdmissionResponse. The phase's result comes along for whoever observes the call
 * (metrics and logs at the endpoint); nothing here knows about HTTP, metrics or logs.
 */
export async function handleAdmission(
  request: AdmissionRequest,
  phase: WebhookPhase,
  deps: HandlerDeps,
  signal?: SignalSource,
  deadline?: number,
): Promise<{ response: AdmissionResponse; result: PhaseResult }> {
  const result = await evaluate(request, phase, deps.rules(), deps, signal, deadline);
  return { response: responseFor(request.uid, result), result };
}
