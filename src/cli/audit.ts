import type { LevelWithSilent } from 'pino';
import type { UserInfo } from '../api/types.js';
import { ChecksumKeyError, loadChecksumKey, MIN_CHECKSUM_KEY_BYTES } from '../actions/checksum/key.js';
import { createRegistry } from '../actions/registry.js';
import { runAuditCore, type ClusterAccess } from '../audit/audit.js';
import type { InputSpec } from '../audit/input.js';
import { toJsonReport, writeJsonReport, type ChecksumKeySource } from '../audit/report-json.js';
import { renderTable } from '../audit/report-table.js';
import { DEFAULT_NAMESPACE, DEFAULT_USER } from '../audit/request.js';
import { DEFAULT_RULES_PATH } from '../rules/default-rules.js';
import { loadRuleSetFile, RuleSetError } from '../rules/load.js';
import { createLogger, LOG_LEVELS } from '../server/logger.js';
import { helpText, parseFlags, UsageError, type CliIo, type FlagSpecs } from './flags.js';
import { useColor, writer } from './output.js';
import { parseCommandArgs, runSetup, SetupError, setupStep } from './setup.js';


/** The fixed key audits use without --checksum-key: deterministic output, never the cluster's key. */
export const AUDIT_CHECKSUM_KEY: Buffer = Buffer.alloc(MIN_CHECKSUM_KEY_BYTES, 0);

const flags: FlagSpecs = {
  filename: { type: 'string', short: 'f', multiple: true, description: 'Manifest file, directory (recursive) or - for stdin; repeatable' },
  app: { type: 'string', multiple: true, description: 'NAME=PATH: everything under PATH is applied by Argo CD app NAME; repeatable' },
  rules: { type: 'string', description: 'Rules file (default: the shipped default rules)' },
  format: { type: 'string', default: 'table', description: 'Output format: table or json' },
  namespace: { type: 'string', short: 'n', default: DEFAULT_NAMESPACE, description: 'Namespace for namespaced objects without one (like kubectl apply -n)' },
  kubeconfig: { type: 'string', description: 'Read the live cluster: existing objects are audited as UPDATEs, missing ConfigMaps/Secrets read from it' },
  'checksum-key': { type: 'string', description: "The cluster's checksum key file (default: the built-in all-zero audit key)" },
  mode: { type: 'string', default: 'enforce', description: "enforce: each rule's own mode; audit: every rule in audit mode" },
  as: { type: 'string', description: `User the requests come from (default ${DEFAULT_USER.username})` },
  'as-group': { type: 'string', multiple: true, description: 'Group of that user; repeatable' },
  color: { type: 'string', default: 'auto', description: 'Colour in table output: auto (only on a terminal), always, never' },
  all: { type: 'boolean', description: 'Table output: also list objects with nothing to report' },
  'log-level': { type: 'string', default: 'silent', description: `Engine log level on stderr (${LOG_LEVELS.join(', ')})` },
  help: { type: 'boolean', short: 'h', description: 'Show this help' },
};

export const auditHelp = helpText(
  'gitops-guard audit -f PATH... [--app NAME=PATH]... [options]',
  'Dry-runs the admission rules over rendered manifests, as the API server would send them.\n' +
    'Exit codes: 0 nothing denied; 1 an enforce-mode rule would deny, or two owners render one object;\n' +
    '2 usage or input errors (bad flags, unreadable paths, YAML syntax errors, no objects).',
  flags,
);

const APP_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

export interface AuditCliConfig {
  inputs: InputSpec[];
  rulesPath: string;
  format: 'table' | 'json';
  namespace: string;
  kubeconfigPath?: string;
  checksumKeyPath?: string;
  mode: 'enforce' | 'audit';
  userInfo: UserInfo;
  color: 'auto' | 'always' | 'never';
  all: boolean;
  logLevel: LevelWithSilent;
}

export function parseAuditArgs(argv: string[]): AuditCliConfig | 'help' {
  const { values, positionals } = parseFlags(argv, flags, {});
  if (values.help) return 'help';
  if (positionals.length > 0) {
    throw new UsageError(`unexpected argument "${positionals[0]}" (inputs are given with -f PATH)`);
  }
  const inputs: InputSpec[] = ((values.filename as string[] | undefined) ?? []).map((path) => {
    if (path === '') throw new UsageError('-f needs a path');
    return { path };
  });
  const apps = new Set<string>();
  for (const spec of (values.app as string[] | undefined) ?? []) {
    const eq = spec.indexOf('=');
    const name = eq === -1 ? '' : spec.slice(0, eq);
    const path = eq === -1 ? '' : spec.slice(eq + 1);
    if (eq === -1 || !name || !path) throw new UsageError(`--app must be NAME=PATH, got "${spec}"`);
    if (!APP_NAME.test(name) || name.length > 253) {
      throw new UsageError(`--app name "${name}" is not a valid application name (letters, digits, '-', '_', '.')`);
    }
    apps.add(name);
    inputs.push({ path, app: name });
  }
  if (inputs.length === 0) throw new UsageError('no input: give manifests with -f PATH (or - for stdin) or --app NAME=PATH');
  if (inputs.filter((i) => i.path === '-').length > 1) throw new UsageError('stdin (-) can be given only once');

  const format = String(values.format);
  if (format !== 'table' && format !== 'json') throw new UsageError(`--format must be table or json, got "${format}"`);
  const mode = String(values.mode);
  if (mode !== 'enforce' && mode !== 'audit') throw new UsageError(`--mode must be enforce or audit, got "${mode}"`);
  const color = String(values.color);
  if (color !== 'auto' && color !== 'always' && color !== 'never') {
    throw new UsageError(`--color must be auto, always or never, got "${color}"`);
  }
  const logLevel = String(values['log-level']) as LevelWithSilent;
  if (!LOG_LEVELS.includes(logLevel)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  const namespace = String(values.namespace);
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(namespace) || namespace.length > 63) {
    throw new UsageError(`--namespace "${namespace}" is not a valid namespace name`);
  }
  const as = values.as as string | undefined;
  const groups = values['as-group'] as string[] | undefined;
  const userInfo: UserInfo =
    as === undefined && groups === undefined
      ? DEFAULT_USER
      : { username: as ?? DEFAULT_USER.username!, groups: groups ?? ['system:authenticated'] };
  return {
    inputs,
    rulesPath: (values.rules as string | undefined) ?? DEFAULT_RULES_PATH,
    format,
    namespace,
    ...(values.kubeconfig !== undefined ? { kubeconfigPath: String(values.kubeconfig) } : {}),
    ...(values['checksum-key'] !== undefined ? { checksumKeyPath: String(values['checksum-key']) } : {}),
    mode,
    userInfo,
    color,
    all: values.all === true,
    logLevel,
  };
}

async function clusterAccess(path: string): Promise<ClusterAccess> {
  // Loaded only when asked for: the client library is the slowest import by far.
  const [{ loadKubeConfig }, { ClientNodeReader }, { ClientNodeObjectReader }] = await Promise.all([
    import('../kube/kubeconfig.js'),
    import('../kube/client-node-reader.js'),
    import('../kube/objects.js'),
  ]);
  let kubeConfig;
  try {
    kubeConfig = loadKubeConfig(path);
  } catch (error) {
    throw new SetupError(error instanceof Error ? error.message : String(error));
  }
  if (!kubeConfig) throw new SetupError(`kubeconfig ${path} has no cluster`);
  return {
    configs: new ClientNodeReader(kubeConfig),
    objects: new ClientNodeObjectReader(kubeConfig),
    description: kubeConfig.getCurrentCluster()?.server ?? 'configured',
  };
}

/**
 * `gitops-guard audit`: returns the exit code (0 clean, 1 denied or duplicate owners, 2 usage or
 * input errors). Usage and setup errors are one line on stderr; findings go to stdout.
 */
export async function runAudit(argv: string[], io: CliIo): Promise<number> {
  const config = parseCommandArgs('audit', argv, parseAuditArgs, auditHelp, io);
  if (typeof config === 'number') return config;

  const registry = createRegistry();
  const setup = await runSetup('audit', io, async () => {
    const ruleSet = setupStep(() => loadRuleSetFile(config.rulesPath, registry), RuleSetError);
    const fromFile =
      config.checksumKeyPath === undefined
        ? undefined
        : setupStep(() => loadChecksumKey(config.checksumKeyPath!, (warning) => io.stderr.write(`gitops-guard audit: warning: ${warning}\n`)), ChecksumKeyError);
    const checksumKey = fromFile ?? AUDIT_CHECKSUM_KEY;
    const keySource: ChecksumKeySource = fromFile ? 'file' : 'audit';
    const cluster = config.kubeconfigPath !== undefined ? await clusterAccess(config.kubeconfigPath) : undefined;
    return { ruleSet, checksumKey, keySource, cluster };
  });
  if (typeof setup === 'number') return setup;
  const { ruleSet, checksumKey, keySource, cluster } = setup;

  const result = await runAuditCore({
    inputs: config.inputs,
    ruleSet,
    registry,
    settings: { checksumKey },
    logger: createLogger(config.logLevel, io.stderr),
    namespace: config.namespace,
    userInfo: config.userInfo,
    stdin: io.stdin,
    ...(cluster ? { cluster } : {}),
    ...(config.mode === 'audit' ? { modeOverride: 'audit' as const } : {}),
  });
  const report = toJsonReport(result, { ruleSet, checksumKey: keySource });
  const write = writer(io.stdout);
  if (config.format === 'json') {
    await writeJsonReport(report, write);
  } else {
    await write(renderTable(report, { color: useColor(config.color, io.stdout), all: config.all }));
  }
  return report.exitCode;
}
