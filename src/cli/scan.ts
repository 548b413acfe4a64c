import type { LevelWithSilent } from 'pino';
import { ChecksumKeyError, loadChecksumKey } from '../actions/checksum/key.js';
import { createRegistry } from '../actions/registry.js';
import { ClientNodeReader } from '../kube/client-node-reader.js';
import { ApiDiscovery } from '../kube/discovery.js';
import { KubeConfigError, loadKubeConfig } from '../kube/kubeconfig.js';
import { ClientNodeObjectLister, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from '../kube/list.js';
import { buildReports, findingsJson, isFailing, printable, renderFindingsTable, renderReports, type ReportFormat } from '../report/index.js';
import { DEFAULT_RULES_PATH } from '../rules/default-rules.js';
import { loadRuleSetFile, RuleSetError } from '../rules/load.js';
import { runScan, type ScanProgress, type ScanResult } from '../scan/scan.js';
import { createLogger, LOG_LEVELS } from '../server/logger.js';
import { helpText, integerFlag, parseFlags, UsageError, type CliIo, type FlagSpecs } from './flags.js';
import { useColor, writer } from './output.js';
import { parseCommandArgs, runSetup, SetupError, setupStep } from './setup.js';

const FORMATS = ['table', 'json', 'policyreport', 'openreports'] as const;
type ScanFormat = (typeof FORMATS)[number];

const flags: FlagSpecs = {
  kubeconfig: { type: 'string', description: 'kubeconfig file (default: in-cluster, then KUBECONFIG, then ~/.kube/config)' },
  namespaces: { type: 'string', description: 'Comma-separated namespaces: namespaced objects only there (cluster-scoped objects and Argo CD Applications are always read)' },
  rules: { type: 'string', description: 'Rules file (default: the shipped default rules)' },
  'checksum-key': { type: 'string', description: "The cluster's checksum key file (the webhook's): needed to compare stamped checksums (stale-checksum); without it that check is skipped" },
  format: { type: 'string', default: 'table', description: `Output: ${FORMATS.join(', ')} (policyreport and openreports: reports for kubectl apply -f -)` },
  'page-size': { type: 'string', default: String(DEFAULT_PAGE_SIZE), description: 'Objects per list request' },
  color: { type: 'string', default: 'auto', description: 'Colour in table output: auto (only on a terminal), always, never' },
  all: { type: 'boolean', description: 'Table output: also list passing and skipped findings' },
  'log-level': { type: 'string', default: 'silent', description: `Engine log level on stderr (${LOG_LEVELS.join(', ')})` },
  help: { type: 'boolean', short: 'h', description: 'Show this help' },
};

export const scanHelp = helpText(
  'gitops-guard scan [--kubeconfig FILE] [--namespaces NS,...] [--rules FILE] [--checksum-key FILE] [--format table|json|policyreport|openreports]',
  'Reads the live cluster and reports objects claimed by two or more Argo CD Applications, owner records\n' +
    'their tracking metadata contradicts, workloads whose pods run stale configuration (or lack a checksum or\n' +
    'a required ConfigMap/Secret), and what every rule would do to each object if it were applied again.\n' +
    'Exit codes: 0 nothing failing; 1 failing findings; 2 usage or access errors (a list that is refused is\n' +
    'reported by kind, and the rest is still scanned).',
  flags,
);

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export interface ScanCliConfig {
  kubeconfigPath?: string;
  namespaces?: string[];
  rulesPath: string;
  checksumKeyPath?: string;
  format: ScanFormat;
  pageSize: number;
  color: 'auto' | 'always' | 'never';
  all: boolean;
  logLevel: LevelWithSilent;
}

export function parseScanArgs(argv: string[]): ScanCliConfig | 'help' {
  const { values, positionals } = parseFlags(argv, flags, {});
  if (values.help) return 'help';
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const format = String(values.format) as ScanFormat;
  if (!FORMATS.includes(format)) throw new UsageError(`--format must be one of ${FORMATS.join(', ')}, got "${format}"`);
  const color = String(values.color);
  if (color !== 'auto' && color !== 'always' && color !== 'never') throw new UsageError(`--color must be auto, always or never, got "${color}"`);
  const logLevel = String(values['log-level']) as LevelWithSilent;
  if (!LOG_LEVELS.includes(logLevel)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  let namespaces: string[] | undefined;
  if (typeof values.namespaces === 'string') {
    namespaces = [...new Set(values.namespaces.split(',').map((n) => n.trim()).filter(Boolean))].sort();
    if (namespaces.length === 0) throw new UsageError('--namespaces needs at least one namespace');
    for (const namespace of namespaces) if (!DNS_LABEL.test(namespace)) throw new UsageError(`--namespaces: "${namespace}" is not a namespace name`);
  }
  return {
    ...(values.kubeconfig !== undefined ? { kubeconfigPath: String(values.kubeconfig) } : {}),
    ...(namespaces ? { namespaces } : {}),
    rulesPath: (values.rules as string | undefined) ?? DEFAULT_RULES_PATH,
    ...(values['checksum-key'] !== undefined ? { checksumKeyPath: String(values['checksum-key']) } : {}),
    format,
    pageSize: integerFlag(values['page-size'], 'page-size', 1, MAX_PAGE_SIZE),
    color,
    all: values.all === true,
    logLevel,
  };
}

/** 2 when a list or discovery call failed, else 1 for failing findings, else 0. */
export function scanExitCode(result: Pick<ScanResult, 'failures' | 'findings'>): 0 | 1 | 2 {
  if (result.failures.length > 0) return 2;
  return result.findings.some(isFailing) ? 1 : 0;
}

/**
 * One line on stderr, rewritten per page, only on a terminal (a log or a pipe gets none):
 * `scanning deployments.apps: 1500 of 4200`.
 */
function progressLine(stderr: NodeJS.WritableStream): { update: (progress: ScanProgress) => void; clear: () => void } {
  if ((stderr as NodeJS.WriteStream).isTTY !== true) return { update: () => {}, clear: () => {} };
  let shown = false;
  return {
    update(progress) {
      const where = progress.namespace ? ` in ${progress.namespace}` : '';
      const count = progress.total !== undefined ? `${progress.listed} of ${progress.total}` : `${progress.listed}`;
      stderr.write(`\r\u001b[Kscanning ${printable(progress.resource)}${printable(where)}: ${count}`);
      shown = true;
    },
    clear() {
      if (shown) stderr.write('\r\u001b[K');
    },
  };
}

export interface ScanJson {
  apiVersion: 'gitops-guard.dev/v1alpha1';
  kind: 'ScanReport';
  exitCode: number;
  summary: ReturnType<typeof findingsJson>['summary'];
  /** Lists and discovery calls that failed. */
  failures: string[];
  /** Argo CD Applications read; null without Argo CD. */
  applications: number | null;
  scanned: ScanResult['scanned'];
  notServed: string[];
  findings: ReturnType<typeof findingsJson>['findings'];
}

/** `gitops-guard scan`: returns the exit code. Usage and setup errors are one line on stderr; findings go to stdout. */
export async function runScanCommand(argv: string[], io: CliIo): Promise<number> {
  const config = parseCommandArgs('scan', argv, parseScanArgs, scanHelp, io);
  if (typeof config === 'number') return config;

  const registry = createRegistry();
  const setup = await runSetup('scan', io, () => {
    const ruleSet = setupStep(() => loadRuleSetFile(config.rulesPath, registry), RuleSetError);
    const checksumKey =
      config.checksumKeyPath === undefined
        ? undefined
        : setupStep(() => loadChecksumKey(config.checksumKeyPath!, (warning) => io.stderr.write(`gitops-guard scan: warning: ${warning}\n`)), ChecksumKeyError);
    const kubeConfig = setupStep(() => loadKubeConfig(config.kubeconfigPath), KubeConfigError);
    if (!kubeConfig) throw new SetupError('no cluster: not in a cluster, KUBECONFIG is empty and ~/.kube/config does not exist (give --kubeconfig FILE)');
    return { ruleSet, checksumKey, kubeConfig };
  });
  if (typeof setup === 'number') return setup;
  const { ruleSet, checksumKey, kubeConfig } = setup;

  const progress = progressLine(io.stderr);
  let result: ScanResult;
  try {
    result = await runScan(
      {
        lister: new ClientNodeObjectLister(kubeConfig),
        discovery: new ApiDiscovery(kubeConfig),
        kube: new ClientNodeReader(kubeConfig),
        registry,
        logger: createLogger(config.logLevel, io.stderr),
      },
      { ruleSet, ...(checksumKey ? { checksumKey } : {}), ...(config.namespaces ? { namespaces: config.namespaces } : {}), pageSize: config.pageSize, onProgress: progress.update },
    );
  } catch (error) {
    progress.clear();
    // Discovery itself failed: nothing could be scanned (the message has status codes and reasons only).
    io.stderr.write(`gitops-guard scan: cannot read the cluster at ${printable(kubeConfig.getCurrentCluster()?.server ?? 'the configured server')}: ${printable(error instanceof Error ? error.message : String(error))}\n`);
    return 2;
  }
  progress.clear();

  const exitCode = scanExitCode(result);
  const write = writer(io.stdout);
  if (config.format === 'table') {
    await write(renderFindingsTable(result.findings, { color: useColor(config.color, io.stdout), all: config.all }));
  } else if (config.format === 'json') {
    const { summary, findings } = findingsJson(result.findings);
    const report: ScanJson = {
      apiVersion: 'gitops-guard.dev/v1alpha1',
      kind: 'ScanReport',
      exitCode,
      summary,
      failures: result.failures,
      applications: result.applications,
      scanned: result.scanned,
      notServed: result.notServed,
      findings,
    };
    await write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    const reports = buildReports(result.findings, { format: config.format as ReportFormat, now: result.startedAt, ...(config.namespaces ? { namespaces: config.namespaces } : {}) });
    await write(renderReports(reports, 'yaml'));
  }
  for (const failure of result.failures) io.stderr.write(`gitops-guard scan: ${printable(failure)}\n`);
  return exitCode;
}
