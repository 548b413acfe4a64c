import type { AdmissionRequest, KubeObject } from '../api/types.js';
import { labelsOf } from '../util/objects.js';
import type { KindMatcher, LabelSelector, RuleMatch, Scope } from './types.js';

/** Each predicate answers null when it matches, or why the rule was skipped. */
export type SkipReason = string | null;

const wild = (pattern: string, value: string): boolean => pattern === '*' || pattern === value;

export function matchKind(kinds: readonly KindMatcher[], request: AdmissionRequest): SkipReason {
  const { group, version, kind } = request.kind;
  const hit = kinds.some((k) => wild(k.group, group) && wild(k.version, version) && wild(k.kind, kind));
  return hit ? null : `kind ${group || 'core'}/${version}/${kind} not selected`;
}

export function matchOperation(operations: readonly string[], request: AdmissionRequest): SkipReason {
  return operations.includes(request.operation) ? null : `operation ${request.operation} not selected`;
}

/** Namespaces themselves are cluster-scoped, although the API server fills in `namespace` for them. */
export function scopeOf(request: AdmissionRequest): Exclude<Scope, '*'> {
  if (request.kind.group === '' && request.kind.kind === 'Namespace') return 'Cluster';
  return request.namespace ? 'Namespaced' : 'Cluster';
}

export function matchScope(scope: Scope, request: AdmissionRequest): SkipReason {
  const actual = scopeOf(request);
  return scope === '*' || scope === actual ? null : `scope ${actual} not selected`;
}

function namespaceMatches(pattern: string, namespace: string): boolean {
  return pattern.endsWith('*') ? namespace.startsWith(pattern.slice(0, -1)) : pattern === namespace;
}

export function matchNamespace(namespaces: RuleMatch['namespaces'], request: AdmissionRequest): SkipReason {
  if (!namespaces) return null;
  const namespace = scopeOf(request) === 'Namespaced' ? request.namespace ?? '' : '';
  if (namespaces.exclude?.some((p) => namespaceMatches(p, namespace))) return `namespace ${namespace} excluded`;
  if (namespaces.include && !namespaces.include.some((p) => namespaceMatches(p, namespace))) {
    return `namespace ${namespace || '(cluster-scoped)'} not included`;
  }
  return null;
}

export function selectorMatches(selector: LabelSelector, labels: Record<string, string>): boolean {
  const has = (key: string) => Object.prototype.hasOwnProperty.call(labels, key);
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (!has(key) || labels[key] !== value) return false;
  }
  for (const { key, operator, values = [] } of selector.matchExpressions ?? []) {
    const present = has(key);
    const ok =
      operator === 'Exists'
        ? present
        : operator === 'DoesNotExist'
          ? !present
          : operator === 'In'
            ? present && values.includes(labels[key]!)
            : !present || !values.includes(labels[key]!);
    if (!ok) return false;
  }
  return true;
}

export function matchLabels(selector: LabelSelector | undefined, object: KubeObject | null): SkipReason {
  if (!selector) return null;
  return selectorMatches(selector, labelsOf(object)) ? null : 'labels do not match the selector';
}

export function matchUser(userInfo: RuleMatch['userInfo'], request: AdmissionRequest): SkipReason {
  if (!userInfo) return null;
  const username = request.userInfo.username ?? '';
  const groups = request.userInfo.groups ?? [];
  if (userInfo.usernames?.includes(username)) return null;
  if (userInfo.groups?.some((g) => groups.includes(g))) return null;
  return `user ${username || '(unknown)'} not selected`;
}

/** Runs the predicates cheapest first and stops at the first reason to skip. */
export function matchRule(match: RuleMatch, request: AdmissionRequest, object: KubeObject | null): SkipReason {
  return (
    matchOperation(match.operations, request) ??
    matchKind(match.kinds, request) ??
    matchScope(match.scope, request) ??
    matchNamespace(match.namespaces, request) ??
    matchUser(match.userInfo, request) ??
    matchLabels(match.labelSelector, object)
  );
}
