import type { AdmissionRequest, KubeObject } from '../api/types.js';
import type { ChecksumDetails } from '../actions/checksum/stamp-config-checksum.js';
import { HANDOVER_ANNOTATION, OWNER_ANNOTATION, type OwnerDetails } from '../actions/owner/identity.js';
import type { ActionRegistry } from '../actions/registry.js';
import { CHECKS, RULES_CATEGORY, type CheckDefinition, type Finding, type FindingResult, type ResourceRef, type Severity } from '../report/index.js';
import { auditFinding, ruleResults, type AdmissionResult, type RuleResult } from '../rules/result.js';
import type { RuleSet } from '../rules/types.js';
import { annotationsOf } from '../util/objects.js';
import type { ScanResource } from './plan.js';

/**
 * What the engine's result says about one live object, as findings: what every rule would do to
 * it if it were applied again unchanged (check 4), whether its owner record and its tracking
 * metadata disagree (check 2), and whether its pods run the configuration the cluster holds
 * (check 3). Nothing here works anything out a second time: verdicts and details come from the
 * AdmissionResult of the unchanged UPDATE (ADR 0001). Pure.
 *
 * Secret data never reaches a finding: messages name objects, never values; a checksum is shown
 * only for a workload that consumes no Secret, and only when it was computed with the cluster's
 * own key; for a Secret that is missing or lacks a key, which of the two is not said (that would
 * be an existence hint about a Secret's keys).
 */

export interface ObjectCheckContext {
  resource: ScanResource;
  object: KubeObject;
  request: AdmissionRequest;
  admission: AdmissionResult;
  ruleSet: RuleSet;
  registry: ActionRegistry;
  /** The checksums were computed with the cluster's key (`--checksum-key`); otherwise none is compared or shown. */
  keyKnown: boolean;
}

/** `ClusterRoleBinding/airflow-pre-checker-binding`, `Deployment airflow/webserver`. */
export function describeObject(kind: string, name: string, namespace?: string): string {
  return namespace ? `${kind} ${namespace}/${name}` : `${kind}/${name}`;
}

/** `deployments.apps`: how kubectl names a resource. */
export function kubectlResource(resource: { group: string; plural: string }): string {
  return resource.group ? `${resource.plural}.${resource.group}` : resource.plural;
}

export function resourceRef(resource: ScanResource, object: KubeObject): ResourceRef {
  const namespace = resource.namespaced ? object.metadata?.namespace : undefined;
  const uid = object.metadata?.uid;
  return {
    apiVersion: resource.group ? `${resource.group}/${resource.version}` : resource.version,
    kind: resource.kind,
    ...(namespace ? { namespace } : {}),
    name: object.metadata?.name ?? '',
    ...(typeof uid === 'string' && uid !== '' ? { uid } : {}),
  };
}

function builtIn(check: CheckDefinition, result: FindingResult, resource: ResourceRef, message: string, properties?: Record<string, string>): Finding {
  return {
    check: check.check,
    rule: check.rule,
    result,
    severity: check.severity,
    category: check.category,
    message,
    resource,
    ...(properties && Object.keys(properties).length > 0 ? { properties } : {}),
  };
}

/** The rules' findings use the rule's name as check and its action as rule: a validating rule can deny (high), a mutating one only patches (low). */
function ruleSeverity(ruleResult: RuleResult, registry: ActionRegistry): Severity {
  return registry.get(ruleResult.action)?.phase === 'validate' ? 'high' : 'low';
}

export function objectFindings(context: ObjectCheckContext): Finding[] {
  const results = ruleResults(context.admission).filter((r) => r.result !== 'skipped');
  return [...ruleFindings(context, results), ...ownerConflictFindings(context, results), ...checksumFindings(context, results)];
}

// ---------------------------------------------------------------------------------------------
// Check 4: what every rule would do, as audit mode reports it

function ruleFindings(context: ObjectCheckContext, results: RuleResult[]): Finding[] {
  const ref = resourceRef(context.resource, context.object);
  const what = describeObject(ref.kind, ref.name, ref.namespace);
  return results.map((ruleResult) => {
    const base = { check: ruleResult.rule, rule: ruleResult.action, severity: ruleSeverity(ruleResult, context.registry), category: RULES_CATEGORY, resource: ref };
    if (ruleResult.action === 'stampConfigChecksum' && !context.keyKnown) {
      return { ...base, result: 'skip', message: `rule ${ruleResult.rule} was not evaluated on ${what}: it needs the cluster's checksum key (--checksum-key)` };
    }
    switch (auditFinding({ mode: 'audit', result: ruleResult.result })) {
      case 'patch': {
        const paths = (ruleResult.patch ?? []).map((op) => `${op.op} ${op.path}`).join(', ');
        return { ...base, result: 'warn', message: `rule ${ruleResult.rule} would patch ${what} if it were applied again unchanged: ${paths} (in enforce mode the webhook makes this change at its next create or update)` };
      }
      case 'deny':
        return { ...base, result: 'fail', message: `rule ${ruleResult.rule} would deny applying ${what} again unchanged: ${ruleResult.denial ?? ''}` };
      case 'error':
        return { ...base, result: 'error', message: `rule ${ruleResult.rule} failed on ${what}: ${ruleResult.reason ?? 'unknown error'}` };
      default:
        return {
          ...base,
          result: 'pass',
          message: context.registry.get(ruleResult.action)?.phase === 'validate' ? `rule ${ruleResult.rule} would allow applying ${what} again unchanged` : `rule ${ruleResult.rule} would change nothing on ${what}`,
        };
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Check 2: the recorded owner against the owner its tracking metadata names now

function ownerConflictFindings(context: ObjectCheckContext, results: RuleResult[]): Finding[] {
  const deny = results.find((r) => r.action === 'denyDuplicateOwner' && r.details?.action === 'denyDuplicateOwner');
  if (!deny) return [];
  const details = deny.details as OwnerDetails;
  const ref = resourceRef(context.resource, context.object);
  const what = describeObject(ref.kind, ref.name, ref.namespace);
  const { owner, recorded } = details;
  if (deny.result === 'denied' && owner && recorded && details.record !== undefined) {
    const command = `kubectl annotate ${kubectlResource(context.resource)} ${ref.name}${ref.namespace ? ` -n ${ref.namespace}` : ''} ${HANDOVER_ANNOTATION}=${owner.id}`;
    return [
      builtIn(
        CHECKS.ownerConflict,
        'fail',
        ref,
        `${what} is owned by ${recorded} (${OWNER_ANNOTATION}), but its tracking metadata now names ${owner.id}: the next sync by ${owner.id} would be denied in enforce mode. ` +
          `If ${owner.id} should own it, ${recorded}'s team hands it over: ${command}; otherwise stop ${owner.instance} from rendering it.`,
        { recorded, owner: owner.id, source: owner.source },
      ),
    ];
  }
  const offered = annotationsOf(context.object)[HANDOVER_ANNOTATION];
  const message =
    recorded === null
      ? `${what} has no owner yet`
      : owner && owner.id !== recorded && offered === owner.id
        ? `${what} is being handed over from ${recorded} to ${owner.id}: the next sync by ${owner.id} completes it`
        : `${what}: the owner record and the tracking metadata agree (${recorded})`;
  return [builtIn(CHECKS.ownerConflict, 'pass', ref, message, recorded ? { recorded } : undefined)];
}

// ---------------------------------------------------------------------------------------------
// Check 3: stale, missing checksums and missing references, from the stamping rule's details

/** The stamping rule the webhook would write with: the first rule whose file mode is enforce (audit-mode rules never write). */
function stampingResult(context: ObjectCheckContext, results: RuleResult[]): (RuleResult & { details: ChecksumDetails }) | undefined {
  const enforced = new Set(context.ruleSet.rules.filter((r) => r.mode === 'enforce').map((r) => r.name));
  return results.find((r): r is RuleResult & { details: ChecksumDetails } => r.action === 'stampConfigChecksum' && enforced.has(r.rule) && r.details?.action === 'stampConfigChecksum');
}

function restartHint(context: ObjectCheckContext, ref: ResourceRef): string {
  const rollable = ['Deployment', 'StatefulSet', 'DaemonSet'].includes(ref.kind) && context.resource.group === 'apps';
  return rollable
    ? `kubectl rollout restart ${ref.kind.toLowerCase()}/${ref.name} -n ${ref.namespace} (the webhook stamps the current checksum on that update)`
    : 'apply it again (the webhook stamps the current checksum on that update)';
}

function checksumFindings(context: ObjectCheckContext, results: RuleResult[]): Finding[] {
  const stamping = stampingResult(context, results);
  if (!stamping) return [];
  const details = stamping.details;
  const ref = resourceRef(context.resource, context.object);
  const what = describeObject(ref.kind, ref.name, ref.namespace);
  if (stamping.result === 'error') {
    if (!context.keyKnown) return [];
    const why = details.unreadable
      ? `${details.unreadable.kind} ${ref.namespace}/${details.unreadable.name} could not be read (${details.unreadable.reason})`
      : (stamping.reason ?? 'the stamping rule failed');
    return [builtIn(CHECKS.staleChecksum, 'error', ref, `${what}: its config checksum could not be computed: ${why}`)];
  }
  if (details.decision === 'foreign') {
    return [builtIn(CHECKS.staleChecksum, 'skip', ref, `${what}: pod template annotation ${details.annotation} holds a value gitops-guard did not write; it is left alone`)];
  }
  if (details.decision === undefined || details.checksum === undefined) return []; // no pod template of its own (an Argo Rollout with workloadRef)

  const findings: Finding[] = [];
  const missing = details.missing ?? [];
  if (missing.length > 0) {
    const configMaps = missing.filter((m) => m.kind === 'ConfigMap').map((m) => (m.key === undefined ? `ConfigMap ${m.name}` : `key ${m.key} of ConfigMap ${m.name}`));
    // A Secret that is missing and a key missing from an existing Secret are not told apart.
    const secrets = [...new Set(missing.filter((m) => m.kind === 'Secret').map((m) => m.name))].map((name) => `Secret ${name} (or a key of it)`);
    const named = [...configMaps, ...secrets];
    findings.push(
      builtIn(
        CHECKS.missingReference,
        'fail',
        ref,
        `${what} requires ${named.join(', ')}, which ${named.length === 1 ? 'does' : 'do'} not exist in namespace ${ref.namespace}: its pods do not start until ${named.length === 1 ? 'it does' : 'they do'}. Create ${named.length === 1 ? 'it' : 'them'}, or mark the reference optional.`,
      ),
    );
  } else {
    findings.push(builtIn(CHECKS.missingReference, 'pass', ref, `${what}: every ConfigMap and Secret it requires exists`));
  }

  // Checksums are shown only where nothing of them comes from a Secret, and only under the cluster's key.
  const showChecksums = context.keyKnown && !(details.references ?? []).some((r) => r.kind === 'Secret');
  const checksums = (stamped: string | undefined, current: string | null | undefined) =>
    showChecksums ? { ...(stamped !== undefined ? { stamped } : {}), ...(current ? { current } : {}) } : undefined;

  if (details.stamped === undefined) {
    findings.push(
      details.checksum === null
        ? builtIn(CHECKS.missingChecksum, 'pass', ref, `${what} consumes no ConfigMap or Secret: nothing to stamp`)
        : builtIn(
            CHECKS.missingChecksum,
            'warn',
            ref,
            `${what} carries no config checksum: the webhook stamps it at its next create or update in enforce mode (its pods roll once then), or the rollout controller does with --stamp-unstamped`,
          ),
    );
    return findings;
  }
  findings.push(builtIn(CHECKS.missingChecksum, 'pass', ref, `${what} carries a config checksum`));
  if (!context.keyKnown) return findings;
  if (details.decision === 'in-sync') {
    findings.push(builtIn(CHECKS.staleChecksum, 'pass', ref, `${what}: its pods run the ConfigMap/Secret content the cluster holds`, checksums(details.stamped, details.checksum)));
  } else if (details.decision === 'remove') {
    findings.push(builtIn(CHECKS.staleChecksum, 'warn', ref, `${what} consumes no ConfigMap or Secret any more: its stale checksum is removed at its next update`, checksums(details.stamped, null)));
  } else if (details.checksum && details.stamped.slice(0, details.stamped.indexOf(':')) !== details.checksum.slice(0, details.checksum.indexOf(':'))) {
    findings.push(
      builtIn(
        CHECKS.staleChecksum,
        'warn',
        ref,
        `${what} carries a checksum of an older encoding (${details.stamped.slice(0, details.stamped.indexOf(':'))}): it is stamped again once (its pods roll once) at its next update, or by the rollout controller`,
        checksums(details.stamped, details.checksum),
      ),
    );
  } else {
    findings.push(
      builtIn(
        CHECKS.staleChecksum,
        'fail',
        ref,
        `${what}: its pods run older ConfigMap/Secret content than the cluster holds (the stamped checksum is not the checksum of what it consumes now). ` +
          `The rollout controller rolls it unless it is not installed, runs in audit mode or the workload opted out; otherwise ${restartHint(context, ref)}.`,
        checksums(details.stamped, details.checksum),
      ),
    );
  }
  return findings;
}
