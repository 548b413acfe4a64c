import type { ActionDefinition } from './types.js';
import { tagOwner } from './owner/tag-owner.js';
import { denyDuplicateOwner } from './owner/deny-duplicate-owner.js';
import { stampConfigChecksum } from './checksum/stamp-config-checksum.js';

/** Every action a rule can name. Adding an action means adding it here; the rule schema follows. */
export const builtinActions: readonly ActionDefinition<any>[] = [tagOwner, denyDuplicateOwner, stampConfigChecksum];

export type ActionRegistry = ReadonlyMap<string, ActionDefinition<any>>;

export function createRegistry(actions: readonly ActionDefinition<any>[] = builtinActions): ActionRegistry {
  return new Map(actions.map((action) => [action.name, action]));
}
