import type { ActionRegistry } from '../actions/registry.js';

export const RULESET_API_VERSION = 'gitops-guard.dev/v1alpha1';

/**
 * Bounds that keep the cost of matching a request (every rule, on every admission) and of loading
 * a file small; real rule sets are far below them.
 */
export const MAX_RULES = 200;
const MAX_LIST_ITEMS = 200;

const stringList = { type: 'array', maxItems: MAX_LIST_ITEMS, items: { type: 'string', minLength: 1, maxLength: 1024 } } as const;

/** `*` or a literal; versions and groups may be `*`. */
const kindMatcher = {
  type: 'object',
  additionalProperties: false,
  required: ['kind'],
  properties: {
    group: { type: 'string', default: '', description: 'API group ("" for core, "*" for any).' },
    version: { type: 'string', default: '*', description: 'API version ("*" for any).' },
    kind: { type: 'string', minLength: 1, description: 'Kind ("*" for any).' },
  },
} as const;

const labelSelector = {
  type: 'object',
  additionalProperties: false,
  properties: {
    matchLabels: { type: 'object', additionalProperties: { type: 'string' } },
    matchExpressions: {
      type: 'array',
      maxItems: MAX_LIST_ITEMS,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['key', 'operator'],
        properties: {
          key: { type: 'string', minLength: 1 },
          operator: { enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'] },
          values: stringList,
        },
      },
    },
  },
} as const;

const match = {
  type: 'object',
  additionalProperties: false,
  required: ['kinds'],
  properties: {
    kinds: { type: 'array', minItems: 1, maxItems: MAX_LIST_ITEMS, items: kindMatcher },
    operations: {
      type: 'array',
      minItems: 1,
      uniqueItems: true,
      items: { enum: ['CREATE', 'UPDATE', 'DELETE', 'CONNECT'] },
      default: ['CREATE', 'UPDATE'],
    },
    scope: { enum: ['*', 'Cluster', 'Namespaced'], default: '*' },
    namespaces: {
      type: 'object',
      additionalProperties: false,
      properties: { include: stringList, exclude: stringList },
      description: 'Namespace names; a trailing "*" matches a prefix. Cluster-scoped objects have no namespace.',
    },
    labelSelector,
    userInfo: {
      type: 'object',
      additionalProperties: false,
      properties: { usernames: stringList, groups: stringList },
      description: 'The request must come from one of these users or from a member of one of these groups.',
    },
  },
} as const;

/** The RuleSet JSON Schema, with one `action` branch per registered action (discriminated by `type`). */
export function ruleSetSchema(registry: ActionRegistry): Record<string, unknown> {
  const actionBranches = [...registry.values()].map((action) => ({
    type: 'object',
    additionalProperties: false,
    required: ['type'],
    properties: {
      type: { const: action.name },
      params: { ...action.paramsSchema, default: {} },
    },
  }));
  return {
    $id: 'https://gitops-guard.dev/schemas/ruleset.json',
    type: 'object',
    additionalProperties: false,
    required: ['apiVersion', 'kind', 'rules'],
    properties: {
      apiVersion: { const: RULESET_API_VERSION },
      kind: { const: 'RuleSet' },
      rules: {
        type: 'array',
        maxItems: MAX_RULES,
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'match', 'action'],
          properties: {
            name: {
              type: 'string',
              pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$',
              maxLength: 40,
              description: 'Unique; also the prefix of the rule\'s audit annotations.',
            },
            match,
            action: {
              type: 'object',
              required: ['type'],
              properties: { type: { type: 'string' } },
              discriminator: { propertyName: 'type' },
              oneOf: actionBranches,
            },
            mode: { enum: ['enforce', 'audit'], default: 'enforce' },
            onError: { enum: ['allow', 'deny'], default: 'allow' },
          },
        },
      },
    },
  };
}
