import type { Operation } from '../api/types.js';

export type RuleMode = 'enforce' | 'audit';
export type OnError = 'allow' | 'deny';
export type Scope = '*' | 'Cluster' | 'Namespaced';

export interface KindMatcher {
  group: string;
  version: string;
  kind: string;
}

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export interface RuleMatch {
  kinds: KindMatcher[];
  operations: Operation[];
  scope: Scope;
  namespaces?: { include?: string[]; exclude?: string[] };
  labelSelector?: LabelSelector;
  userInfo?: { usernames?: string[]; groups?: string[] };
}

export interface Rule {
  name: string;
  match: RuleMatch;
  action: { type: string; params: Record<string, unknown> };
  mode: RuleMode;
  onError: OnError;
}

export interface RuleSet {
  apiVersion: 'gitops-guard.dev/v1alpha1';
  kind: 'RuleSet';
  rules: Rule[];
}
