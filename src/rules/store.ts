import type { Logger } from 'pino';
import type { ActionRegistry } from '../actions/registry.js';
import { loadRuleSetFile, RuleSetError, type RuleProblem } from './load.js';
import type { RuleSet } from './types.js';

/**
 * Holds the rules in use; a bad reload keeps the last good rules. `check` refuses rule sets that
 * are valid on their own but cannot run in this process (e.g. a stamping rule without a checksum
 * key), at start-up (RuleSetError) and at every reload.
 */
export class RuleStore {
  private ruleSet: RuleSet;

  constructor(
    readonly path: string,
    private readonly registry: ActionRegistry,
    private readonly logger: Logger,
    private readonly onReload: (ok: boolean, ruleSet: RuleSet) => void = () => {},
    private readonly check: (ruleSet: RuleSet) => RuleProblem[] = () => [],
  ) {
    this.ruleSet = this.load();
    this.onReload(true, this.ruleSet);
  }

  private load(): RuleSet {
    const ruleSet = loadRuleSetFile(this.path, this.registry);
    const problems = this.check(ruleSet);
    if (problems.length > 0) throw new RuleSetError(this.path, problems);
    return ruleSet;
  }

  get current(): RuleSet {
    return this.ruleSet;
  }

  reload(): boolean {
    try {
      this.ruleSet = this.load();
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
