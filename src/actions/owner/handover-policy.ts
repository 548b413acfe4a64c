import type { UserInfo } from '../../api/types.js';

/**
 * Who may offer an object to a new owner by setting `gitops-guard.dev/handover-to`.
 *
 * Never the GitOps controllers themselves, by default: they apply whatever every team's
 * manifests say, so a team could otherwise ship the annotation in its own rendering of another
 * team's object (with that team's tracking fields, which passes as an update by the owner) and
 * approve its own takeover in the next sync. A handover is a person's decision, made with
 * `kubectl annotate` by someone allowed to update the object.
 */
export interface HandoverPolicy {
  /** Username patterns (`*` matches any run of characters) that may set the annotation. */
  handoverAllowedUsers: readonly string[];
  /** Members of these groups may set it too. */
  handoverAllowedGroups: readonly string[];
  /** Username patterns that may never set it, whatever the allow lists say. */
  handoverDeniedUsers: readonly string[];
}

/** The GitOps controllers' own service accounts (Argo CD, including operator-made instances; Flux). */
export const GITOPS_CONTROLLER_USERS: readonly string[] = [
  'system:serviceaccount:*:argocd-application-controller',
  'system:serviceaccount:*:*-argocd-application-controller',
  'system:serviceaccount:*:argocd-server',
  'system:serviceaccount:*:*-argocd-server',
  'system:serviceaccount:*:kustomize-controller',
  'system:serviceaccount:*:helm-controller',
];

const patternList = (description: string, fallback: readonly string[]) =>
  ({
    type: 'array',
    maxItems: 200,
    items: { type: 'string', minLength: 1, maxLength: 512 },
    default: [...fallback],
    description,
  }) as const;

export const handoverPolicyParamsSchema = {
  handoverAllowedUsers: patternList('Username patterns (* matches anything) that may set gitops-guard.dev/handover-to.', ['*']),
  handoverAllowedGroups: patternList('Groups whose members may set gitops-guard.dev/handover-to.', []),
  handoverDeniedUsers: patternList(
    'Username patterns that may never set gitops-guard.dev/handover-to (default: the GitOps controllers).',
    GITOPS_CONTROLLER_USERS,
  ),
} as const;

function globMatches(pattern: string, value: string): boolean {
  const parts = pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('.*')}$`, 's').test(value);
}

/** Null when `user` may set the handover annotation, else why not (for the denial message). */
export function handoverRefusal(user: UserInfo, policy: HandoverPolicy): string | null {
  const username = user.username ?? '';
  const denied = policy.handoverDeniedUsers.find((pattern) => globMatches(pattern, username));
  if (denied) return `${username || 'an anonymous user'} matches ${denied}, which may not set it`;
  const groups = user.groups ?? [];
  const allowed =
    policy.handoverAllowedUsers.some((pattern) => globMatches(pattern, username)) ||
    policy.handoverAllowedGroups.some((group) => groups.includes(group));
  return allowed ? null : `${username || 'an anonymous user'} is not among the users allowed to set it`;
}
