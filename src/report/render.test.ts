import { describe, expect, it } from 'vitest';
import type { Finding } from './finding.js';
import { findingsJson, printable, renderFindingsTable, sortFindings } from './render.js';

const shared: Finding = {
  check: 'single-owner',
  rule: 'shared-object',
  result: 'fail',
  severity: 'high',
  category: 'Ownership',
  message: 'claimed by pdp-dev-airflow and smartdq-dev-airflow: keep it in one app',
  resource: { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', name: 'airflow-pre-checker-binding' },
  properties: { holder: 'argocd/pdp-dev-airflow', apps: 'argocd/pdp-dev-airflow,argocd/smartdq-dev-airflow' },
};
const stale: Finding = {
  check: 'config-checksum',
  rule: 'stale-checksum',
  result: 'fail',
  severity: 'medium',
  message: 'pods run older config than the cluster holds: roll them',
  resource: { apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'airflow', name: 'webserver' },
};
const fine: Finding = { ...stale, result: 'pass', message: 'up to date', resource: { ...stale.resource!, name: 'scheduler' } };
const broken: Finding = { check: 'scan', rule: 'list', result: 'error', message: 'listing secrets is forbidden' };

describe('findings for the command line', () => {
  it('sorts by urgency (errors, failures by severity, warnings, skips, passes), then by check and object', () => {
    expect(sortFindings([fine, stale, broken, shared]).map((f) => f.message)).toEqual([broken.message, shared.message, stale.message, fine.message]);
  });

  it('renders a table with the failing findings and counts the rest', () => {
    expect(renderFindingsTable([fine, stale, broken, shared], { color: false })).toBe(
      [
        'RESULT  SEVERITY  CHECK/RULE                      RESOURCE',
        'ERROR   -         scan/list                       -',
        '    listing secrets is forbidden',
        'FAIL    high      single-owner/shared-object      ClusterRoleBinding.rbac.authorization.k8s.io airflow-pre-checker-binding',
        '    claimed by pdp-dev-airflow and smartdq-dev-airflow: keep it in one app',
        '    apps=argocd/pdp-dev-airflow,argocd/smartdq-dev-airflow holder=argocd/pdp-dev-airflow',
        'FAIL    medium    config-checksum/stale-checksum  Deployment.apps airflow/webserver',
        '    pods run older config than the cluster holds: roll them',
        '',
        '4 findings: 1 error, 2 fail, 0 warn, 0 skip, 1 pass (1 passing or skipped not listed)',
        '',
      ].join('\n'),
    );
    const all = renderFindingsTable([fine, stale], { color: false, all: true });
    expect(all).toContain('PASS    medium    config-checksum/stale-checksum  Deployment.apps airflow/scheduler');
    expect(all).toContain('2 findings: 0 error, 1 fail, 0 warn, 0 skip, 1 pass\n');
    expect(renderFindingsTable([], { color: false })).toBe('0 findings: 0 error, 0 fail, 0 warn, 0 skip, 0 pass\n');
  });

  it('always lists findings about the scan itself, such as a check that was skipped', () => {
    const skipped: Finding = { check: 'single-owner', rule: 'shared-object', result: 'skip', message: 'shared-object check skipped: this cluster has no Argo CD' };
    const table = renderFindingsTable([fine, skipped], { color: false });
    expect(table).toContain('SKIP    -         single-owner/shared-object  -\n    shared-object check skipped: this cluster has no Argo CD');
    expect(table).toContain('(1 passing or skipped not listed)');
  });

  it('colours only the result word, keeping the columns aligned', () => {
    const coloured = renderFindingsTable([broken, stale], { color: true }).split('\n');
    const plain = renderFindingsTable([broken, stale], { color: false }).split('\n');
    expect(coloured[1]).toBe(`\u001b[31mERROR\u001b[0m${plain[1]!.slice(5)}`);
    expect(coloured.map((l) => l.replace(/\u001b\[\d+m/g, ''))).toEqual(plain);
  });

  it('never lets text from the cluster drive the terminal: control characters are shown, not sent', () => {
    const hostile: Finding = {
      ...stale,
      message: 'owner \u001b]0;pwned\u0007 \u001b[2J\r\nspoofed line \u202eevil',
      resource: { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'x', name: 'a\u001b[31mred' },
      properties: { owner: 'argocd:\u009b31m' },
    };
    const table = renderFindingsTable([hostile], { color: false });
    expect(table).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
    expect(table).toContain('owner \\u001b]0;pwned\\u0007 \\u001b[2J\\u000d\\u000aspoofed line \\u202eevil');
    expect(table).toContain('ConfigMap x/a\\u001b[31mred');
    expect(printable('plain text stays: ünïcode ✓')).toBe('plain text stays: ünïcode ✓');
  });

  it('JSON lists every finding with counts, keys in a fixed order, nothing dropped', () => {
    const json = findingsJson([fine, shared, broken]);
    expect(json.summary).toEqual({ pass: 1, fail: 1, warn: 0, error: 1, skip: 0 });
    expect(json.findings.map((f) => f.check)).toEqual(['scan', 'single-owner', 'config-checksum']);
    expect(Object.keys(json.findings[1]!)).toEqual(['check', 'rule', 'result', 'severity', 'category', 'message', 'resource', 'properties']);
    expect(Object.keys(json.findings[1]!.properties!)).toEqual(['apps', 'holder']);
    expect(JSON.parse(JSON.stringify(json))).toEqual(json);
  });
});
