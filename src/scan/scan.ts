import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { GITOPS_SYNC_USER, unchangedUpdate } from '../admission/request.js';
import type { KubeObject, UserInfo } from '../api/types.js';
import { resolveOwner, targetOf, type OwnerResolution } from '../actions/owner/identity.js';
import type { ActionRegistry } from '../actions/registry.js';
import type { ListableResource, ObjectLister } from '../kube/list.js';
import type { KubeReader } from '../kube/reader.js';
import { resourceName } from '../kube/resources.js';
import { CHECKS, type Finding } from '../report/index.js';
import { ownerResolutionFor } from '../rules/configured.js';
import { admit } from '../rules/engine.js';
import { ruleResults } from '../rules/result.js';
import type { RuleSet } from '../rules/types.js';
import { annotationsOf } from '../util/objects.js';
import { appName, ClaimIndex, compareApps, objectKey, type AppRef } from './claims.js';
import { kubectlResource, objectFindings, resourceRef } from './object-checks.js';
import { planScan, type ScanDiscovery, type ScanPlan, type ScanResource } from './plan.js';
import { notSharedFinding, recordOf, sharedObjectFinding, type Holder } from './shared-objects.js';

/**
 * The cluster scan: reads the live cluster with paged lists and asks the engine what it makes of
 * every object the rules select, as if it were applied again unchanged (ADR 0001: the unchanged
 * UPDATE, every rule in audit mode, verdicts and details read from the AdmissionResult). Besides
 * the rules' own verdicts it reports objects two Argo CD Applications claim, owner records the
 * tracking metadata contradicts, and workloads whose pods run stale configuration
 * (docs/reports.md#checks). Shared by `gitops-guard scan` and the rollout controller's leader.
 *
 * A list that fails (forbidden, say) is reported by kind and the scan carries on with the rest.
 * Memory is bounded by a page of objects and the findings: objects are dropped once examined.
 */

export interface ScanDeps {
  lister: ObjectLister;
  discovery: ScanDiscovery;
  /** ConfigMap and Secret reads for checksums: the webhook's own reads. */
  kube: KubeReader;
  registry: ActionRegistry;
  /** The engine's log (the scan itself logs nothing per object). */
  logger: Logger;
}

export interface ScanOptions {
  ruleSet: RuleSet;
  /**
   * The cluster's checksum key (the webhook's). Without it no checksum is compared or shown:
   * the stale-checksum check is skipped, and what needs a checksum only to find missing
   * references uses a throw-away key that never leaves the process.
   */
  checksumKey?: Buffer;
  /** Namespaced objects only in these namespaces (cluster-scoped objects are always scanned). */
  namespaces?: readonly string[];
  /** Objects per list page. */
  pageSize?: number;
  /** Objects examined at the same time (each may read ConfigMaps and Secrets). */
  concurrency?: number;
  /** Who the unchanged re-apply is made by (rules with userInfo): by default Argo CD's application controller. */
  userInfo?: UserInfo;
  signal?: AbortSignal;
  /** Told after every page. */
  onProgress?: (progress: ScanProgress) => void;
}

export interface ScanProgress {
  /** `deployments.apps`. */
  resource: string;
  namespace?: string;
  /** Objects of this list so far. */
  listed: number;
  /** What the server expects the list to hold, when it says. */
  total?: number;
}

export interface ScanResult {
  findings: Finding[];
  /** Every check/rule pair that ran (for metrics that show 0 rather than nothing). */
  checks: { check: string; rule: string }[];
  /** Lists and discovery calls that failed (also error findings): an access problem. */
  failures: string[];
  /** Kinds the rules name that the cluster does not serve. */
  notServed: string[];
  /** Argo CD Applications read; null when the cluster has no Argo CD (or they could not be listed). */
  applications: number | null;
  /** Objects examined, per resource. */
  scanned: { resource: string; objects: number }[];
  startedAt: Date;
  finishedAt: Date;
}

export const DEFAULT_SCAN_CONCURRENCY = 8;

function scanError(message: string): Finding {
  const { check, rule, severity, category } = CHECKS.scanError;
  return { check, rule, result: 'error', severity, category, message };
}

function note(definition: (typeof CHECKS)[keyof typeof CHECKS], message: string): Finding {
  const { check, rule, severity, category } = definition;
  return { check, rule, result: 'skip', severity, category, message };
}

function why(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Runs `work` over `items`, at most `concurrency` at a time. */
async function pool<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

export async function runScan(deps: ScanDeps, options: ScanOptions): Promise<ScanResult> {
  const startedAt = new Date();
  const { ruleSet, signal } = options;
  const plan = await planScan(ruleSet, deps.registry, deps.discovery, signal);
  const findings: Finding[] = [];
  const failures: string[] = [];
  const fail = (message: string) => {
    failures.push(message);
    findings.push(scanError(message));
  };

  for (const { rule, pattern } of plan.patterns) {
    findings.push(note(CHECKS.notScanned, `rule ${rule} selects kinds by the pattern ${pattern}, which the scan does not list: objects it selects are not scanned`));
  }
  for (const failed of plan.failed) fail(`discovery of ${failed.groupVersion} failed (${failed.error}): ${failed.kinds.join(', ')} not scanned`);

  const claims = await readClaims(deps, plan, options, fail, findings);
  const stamping = ruleSet.rules.some((r) => r.action.type === 'stampConfigChecksum' && r.mode === 'enforce');
  if (stamping && !options.checksumKey) {
    findings.push(
      note(
        CHECKS.staleChecksum,
        "stale-checksum skipped: no checksum key given (--checksum-key, the webhook's key). Without it no checksum is compared or shown; missing checksums and missing ConfigMaps/Secrets are still reported.",
      ),
    );
  }

  const examiner = new Examiner(deps, options, claims);
  const scanned: ScanResult['scanned'] = [];
  const unlisted = new Set<string>();
  for (const resource of plan.resources) {
    const scopes: (string | undefined)[] = resource.namespaced && options.namespaces ? [...options.namespaces] : [undefined];
    let objects = 0;
    for (const namespace of scopes) {
      try {
        let listed = 0;
        for await (const page of deps.lister.pages(resource, { ...(namespace ? { namespace } : {}), ...(options.pageSize ? { limit: options.pageSize } : {}), metadataOnly: resource.metadataOnly, ...(signal ? { signal } : {}) })) {
          await pool(page.items, options.concurrency ?? DEFAULT_SCAN_CONCURRENCY, async (object) => {
            findings.push(...(await examiner.examine(resource, object)));
          });
          listed += page.items.length;
          options.onProgress?.({ resource: resourceName(resource), ...(namespace ? { namespace } : {}), listed, ...(page.remaining !== undefined ? { total: listed + page.remaining } : {}) });
        }
        objects += listed;
      } catch (error) {
        if (signal?.aborted) throw error;
        unlisted.add(`${resource.group}/${resource.kind}`);
        fail(`listing ${resourceName(resource)}${namespace ? ` in namespace ${namespace}` : ''} failed (${why(error)}): those objects were not scanned`);
      }
    }
    scanned.push({ resource: resourceName(resource), objects });
  }
  if (claims) findings.push(...examiner.unseenSharedObjects(plan.resources, unlisted));

  return {
    findings,
    checks: checksThatRan(ruleSet, claims !== null, plan.patterns.length > 0),
    failures,
    notServed: plan.notServed,
    applications: claims ? claims.applicationCount : null,
    scanned,
    startedAt,
    finishedAt: new Date(),
  };
}

/** Every Application's claims, or null when the cluster has no Argo CD or they could not be listed. */
async function readClaims(deps: ScanDeps, plan: ScanPlan, options: ScanOptions, fail: (message: string) => void, findings: Finding[]): Promise<ClaimIndex | null> {
  if (!plan.applications) {
    findings.push(note(CHECKS.sharedObject, 'shared-object check skipped: this cluster has no Argo CD (discovery lists no applications.argoproj.io)'));
    return null;
  }
  const index = new ClaimIndex();
  try {
    // Every namespace, also with --namespaces: an app anywhere may claim objects in them.
    for await (const page of deps.lister.pages(plan.applications, { ...(options.pageSize ? { limit: options.pageSize } : {}), ...(options.signal ? { signal: options.signal } : {}) })) {
      for (const application of page.items) index.add(application);
      options.onProgress?.({ resource: resourceName(plan.applications), listed: index.applicationCount });
    }
  } catch (error) {
    if (options.signal?.aborted) throw error;
    fail(`listing applications.argoproj.io failed (${why(error)}): no shared-object check`);
    return null;
  }
  return index;
}

function checksThatRan(ruleSet: RuleSet, sharedChecked: boolean, patterns: boolean): { check: string; rule: string }[] {
  const checks: { check: string; rule: string }[] = [CHECKS.scanError, ...(patterns ? [CHECKS.notScanned] : [])].map(({ check, rule }) => ({ check, rule }));
  if (sharedChecked) checks.push({ check: CHECKS.sharedObject.check, rule: CHECKS.sharedObject.rule });
  if (ruleSet.rules.some((r) => r.action.type === 'denyDuplicateOwner')) checks.push({ check: CHECKS.ownerConflict.check, rule: CHECKS.ownerConflict.rule });
  if (ruleSet.rules.some((r) => r.action.type === 'stampConfigChecksum' && r.mode === 'enforce')) {
    for (const c of [CHECKS.staleChecksum, CHECKS.missingChecksum, CHECKS.missingReference]) checks.push({ check: c.check, rule: c.rule });
  }
  for (const rule of ruleSet.rules) checks.push({ check: rule.name, rule: rule.action.type });
  return checks;
}

/** Examines one object at a time; remembers which shared objects it has reported. */
class Examiner {
  private readonly resolution: OwnerResolution;
  private readonly key: Buffer;
  private readonly userInfo: UserInfo;
  private readonly reported = new Set<string>();

  constructor(
    private readonly deps: ScanDeps,
    private readonly options: ScanOptions,
    private readonly claims: ClaimIndex | null,
  ) {
    this.resolution = ownerResolutionFor(options.ruleSet);
    // A throw-away key when the cluster's is not given: checksums made with it are never compared or shown.
    this.key = options.checksumKey ?? randomBytes(32);
    this.userInfo = options.userInfo ?? GITOPS_SYNC_USER;
  }

  async examine(resource: ScanResource, object: KubeObject): Promise<Finding[]> {
    const request = unchangedUpdate(resource, object, this.userInfo, 'gitops-guard-scan');
    let admission;
    try {
      admission = await admit(request, this.options.ruleSet, {
        registry: this.deps.registry,
        kube: this.deps.kube,
        settings: { checksumKey: this.key },
        logger: this.deps.logger,
        modeOverride: 'audit',
      }, this.options.signal);
    } catch (error) {
      if (this.options.signal?.aborted) throw error;
      const ref = resourceRef(resource, object);
      return [{ ...scanError(`${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ''}${ref.name} could not be examined (${why(error)})`), resource: ref }];
    }
    const findings = objectFindings({ resource, object, request, admission, ruleSet: this.options.ruleSet, registry: this.deps.registry, keyKnown: this.options.checksumKey !== undefined });
    if (this.claims) {
      const ownerRuleSelects = ruleResults(admission).some((r) => (r.action === 'tagOwner' || r.action === 'denyDuplicateOwner') && r.result !== 'skipped');
      const shared = this.sharedObject(resource, object, ownerRuleSelects);
      if (shared) findings.push(shared);
    }
    return findings;
  }

  /** Check 1 for a live object: a failure when two or more apps claim it, a pass for objects the owner rules select. */
  private sharedObject(resource: ScanResource, object: KubeObject, ownerRuleSelects: boolean): Finding | undefined {
    const ref = resourceRef(resource, object);
    const key = objectKey({ group: resource.group, kind: resource.kind, namespace: ref.namespace, name: ref.name });
    const request = unchangedUpdate(resource, object, this.userInfo, 'gitops-guard-scan');
    const owner = resolveOwner(object, targetOf(request, object), this.resolution);
    const app = owner && (owner.source === 'argocdAnnotation' || owner.source === 'argocdLabel') ? this.claims!.appForTracking(owner.instance) : undefined;
    const record = recordOf(annotationsOf(object));
    const holder: Holder = { owner, ...(app ? { app } : {}), ...(record !== undefined ? { recorded: record } : {}) };
    const claimants = union(this.claims!.claimants(key), app);
    if (claimants.length > 1) {
      this.reported.add(key);
      return sharedObjectFinding(ref, kubectlResource(resource), claimants, holder);
    }
    return ownerRuleSelects ? notSharedFinding(ref, claimants, holder) : undefined;
  }

  /** Objects the apps' status claims twice that were not examined: of a kind the rules do not select, outside the namespaces scanned, or missing. */
  unseenSharedObjects(resources: readonly ListableResource[], unlisted: ReadonlySet<string>): Finding[] {
    const findings: Finding[] = [];
    for (const { key, claim, apps } of this.claims!.shared()) {
      if (this.reported.has(key)) continue;
      if (claim.namespace && this.options.namespaces && !this.options.namespaces.includes(claim.namespace)) continue;
      const listed = resources.some((r) => r.group === claim.group && r.kind === claim.kind);
      const ref = { apiVersion: claim.group ? `${claim.group}/${claim.version || 'v1'}` : claim.version || 'v1', kind: claim.kind, ...(claim.namespace ? { namespace: claim.namespace } : {}), name: claim.name };
      const plural = resources.find((r) => r.group === claim.group && r.kind === claim.kind)?.plural ?? claim.kind.toLowerCase();
      const unread = unlisted.has(`${claim.group}/${claim.kind}`)
        ? 'its kind could not be listed'
        : listed
          ? 'it does not exist now'
          : 'the rules select no objects of its kind, so the scan does not list them';
      findings.push(sharedObjectFinding(ref, kubectlResource({ group: claim.group, plural }), apps, { unread }));
    }
    return findings;
  }
}

function union(apps: readonly AppRef[], extra: AppRef | undefined): AppRef[] {
  if (!extra || apps.some((a) => appName(a) === appName(extra))) return [...apps];
  return [...apps, extra].sort(compareApps);
}
