import type { ActionRegistry } from '../actions/registry.js';
import type { DiscoveredResource, ServedGroups } from '../kube/discovery.js';
import type { ListableResource } from '../kube/list.js';
import { resourceName } from '../kube/resources.js';
import type { RuleSet } from '../rules/types.js';

/**
 * What a cluster scan lists: the kinds the rules select, resolved through discovery to the
 * resources the cluster serves (the preferred version where a rule says any), plus Argo CD's
 * Applications. A kind named by no rule is never listed: the scan reads what the webhook would
 * be sent, nothing more (and RBAC needs no more).
 */

/** Argo CD Applications, in any namespace (apps-in-any-namespace): whose `status.resources` name what each app claims. */
export const APPLICATIONS: ListableResource = { group: 'argoproj.io', version: 'v1alpha1', kind: 'Application', plural: 'applications', namespaced: true };

export interface ScanResource extends ListableResource {
  /** Every rule that may select it reads metadata only: the list asks for metadata only. */
  metadataOnly: boolean;
}

/** The discovery a plan needs (ApiDiscovery in a cluster). */
export interface ScanDiscovery {
  groups(signal?: AbortSignal): Promise<ServedGroups>;
  resourceTypes(group: string, version: string, signal?: AbortSignal): Promise<DiscoveredResource[] | null>;
}

export interface ScanPlan {
  resources: ScanResource[];
  /** Argo CD's Applications, when the cluster serves them (null: no Argo CD, no shared-object check). */
  applications: ListableResource | null;
  /** Kind patterns the scan cannot list (`*`), by rule: a gap in its coverage, reported as such. */
  patterns: { rule: string; pattern: string }[];
  /** Kinds the rules name that the cluster does not serve (nothing of them exists to scan). */
  notServed: string[];
  /** Group-versions whose discovery failed: their kinds were not scanned (an access problem). */
  failed: { groupVersion: string; kinds: string[]; error: string }[];
}

interface Wanted {
  group: string;
  kind: string;
  /** `*` for the preferred version. */
  version: string;
  metadataOnly: boolean;
}

/** The rules' kinds, one entry per group/kind (a version named by any rule wins over `*`). */
function wantedKinds(ruleSet: RuleSet, registry: ActionRegistry): { wanted: Wanted[]; patterns: ScanPlan['patterns'] } {
  const wanted = new Map<string, Wanted>();
  const patterns: ScanPlan['patterns'] = [];
  for (const rule of ruleSet.rules) {
    const metadataOnly = registry.get(rule.action.type)?.readsOnlyMetadata === true;
    for (const matcher of rule.match.kinds) {
      if (matcher.group === '*' || matcher.kind === '*') {
        patterns.push({ rule: rule.name, pattern: `${matcher.group || 'core'}/${matcher.version}/${matcher.kind}` });
        continue;
      }
      const key = `${matcher.group}/${matcher.kind}`;
      const entry = wanted.get(key) ?? { group: matcher.group, kind: matcher.kind, version: '*', metadataOnly: true };
      if (matcher.version !== '*') entry.version = matcher.version;
      entry.metadataOnly &&= metadataOnly;
      wanted.set(key, entry);
    }
  }
  return { wanted: [...wanted.values()], patterns };
}

/** Resolves the rules' kinds against discovery. Throws a KubeApiError when the list of groups cannot be read. */
export async function planScan(ruleSet: RuleSet, registry: ActionRegistry, discovery: ScanDiscovery, signal?: AbortSignal): Promise<ScanPlan> {
  const { wanted, patterns } = wantedKinds(ruleSet, registry);
  const groups = await discovery.groups(signal);
  const plan: ScanPlan = { resources: [], applications: null, patterns, notServed: [], failed: [] };

  const byGroupVersion = new Map<string, Wanted[]>();
  for (const entry of wanted) {
    const versions = groups.get(entry.group);
    const version = entry.version === '*' ? versions?.[0] : versions?.includes(entry.version) ? entry.version : undefined;
    if (!version) {
      plan.notServed.push(`${entry.kind}${entry.group ? `.${entry.group}` : ''}`);
      continue;
    }
    const groupVersion = `${entry.group}/${version}`;
    byGroupVersion.set(groupVersion, [...(byGroupVersion.get(groupVersion) ?? []), entry]);
  }
  const argo = groups.get(APPLICATIONS.group)?.includes(APPLICATIONS.version) ? `${APPLICATIONS.group}/${APPLICATIONS.version}` : undefined;
  if (argo && !byGroupVersion.has(argo)) byGroupVersion.set(argo, []);

  await Promise.all(
    [...byGroupVersion].map(async ([groupVersion, entries]) => {
      const slash = groupVersion.indexOf('/');
      const [group, version] = [groupVersion.slice(0, slash), groupVersion.slice(slash + 1)];
      let served: DiscoveredResource[] | null;
      try {
        served = await discovery.resourceTypes(group, version, signal);
      } catch (error) {
        plan.failed.push({ groupVersion, kinds: entries.map((e) => e.kind), error: error instanceof Error ? error.message : String(error) });
        return;
      }
      for (const entry of entries) {
        const resource = served?.find((r) => r.kind === entry.kind && r.verbs.has('list'));
        if (!resource) plan.notServed.push(`${entry.kind}${entry.group ? `.${entry.group}` : ''}`);
        else plan.resources.push({ group, version, kind: resource.kind, plural: resource.plural, namespaced: resource.namespaced, metadataOnly: entry.metadataOnly });
      }
      if (groupVersion === argo && served?.some((r) => r.plural === APPLICATIONS.plural && r.verbs.has('list'))) plan.applications = APPLICATIONS;
    }),
  );
  // A stable order: cluster-scoped kinds first, then by resource name.
  plan.resources.sort((a, b) => Number(a.namespaced) - Number(b.namespaced) || (resourceName(a) < resourceName(b) ? -1 : resourceName(a) > resourceName(b) ? 1 : 0));
  plan.notServed.sort();
  return plan;
}
