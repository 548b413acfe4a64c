import type { Logger } from 'pino';
import type { ActionRegistry } from '../actions/registry.js';
import { loadRuleSetFile, RuleSetError } from './load.js';
import type { RuleSet } from './types.js';

/** Holds the rules in use; a bad reload keeps the last good rules. */
export class RuleStore {
  private ruleSet: RuleSet;

  constructor(
    readonly path: string,
    private readonly registry: ActionRegistry,
    private readonly logger: Logger,
    private readonly onReload: (ok: boolean, ruleSet: RuleSet) => void = () => {},
  ) {
    this.ruleSet = loadRuleSetFile(path, registry);
    this.onReload(true, this.ruleSet);
  }

  get current(): RuleSet {
    return this.ruleSet;
  }

  reload(): boolean {
    try {
      this.ruleSet = loadRuleSetFile(this.path, this.registry);
      this.logger.info({ rules: this.ruleSet.rules.map((r) => r.name), path: this.path }, 'rules reloaded');
      this.onReload(true, this.ruleSet);
      return true;
    } catch (error) {
      const problems = error instanceof RuleSetError ? error.problems : [{ path: '', message: String(error) }];
      this.logger.error({ path: this.path, problems }, 'rules reload failed; keeping the last good rules');
      this.onReload(false, this.ruleSet);
      return false;
    }
  }
}
