import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * The shape of the code, checked: data flows one way, from the HTTP server through admission,
 * the rule engine and the actions to the Kubernetes adapter; the audit, the rollout controller
 * and the cluster scan sit on top and only call down (the controller's leader runs the scan, so
 * the scan sits just below it). A folder of src/ may import its
 * own modules and those of folders in lower layers, never a folder above it or beside it. Test
 * files (`*.test.ts`) are exempt: they exercise a layer with whatever they need.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = join(ROOT, 'src');

/** Top to bottom. Folders in one layer do not import each other. */
const LAYERS: readonly (readonly string[])[] = [
  ['cli'],
  // What runs: the webhook's HTTP server, the offline audit, the rollout controller.
  ['server', 'audit', 'controller'],
  // The cluster scan: `gitops-guard scan`, and the controller's leader.
  ['scan'],
  // AdmissionReview decoding and the handler: request in, response out.
  ['admission'],
  // Rule loading, matching and the engine.
  ['rules'],
  // The actions (checksums, owners): small and pure, reading the cluster only through kube.
  ['actions'],
  // The Kubernetes adapter: every API call, one error type.
  ['kube'],
  // Pure building blocks with no knowledge of the above: reports of findings, certificates.
  ['report', 'certs'],
  ['util'],
  // Kubernetes wire types (declarations only).
  ['api'],
];

const layerOf = new Map(LAYERS.flatMap((folders, depth) => folders.map((folder) => [folder, depth] as const)));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') && !path.endsWith('.test.ts') ? [path] : [];
  });
}

interface Import {
  specifier: string;
  /** Named bindings (`import { a, b }`), for imports whose names matter. */
  names: string[];
  line: number;
}

/** Static imports, re-exports and dynamic `import()`s, type-only ones included (a type import couples too). */
function importsOf(file: string): Import[] {
  const text = readFileSync(file, 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: Import[] = [];
  const line = (node: ts.Node) => source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      const names: string[] = [];
      if (ts.isImportDeclaration(node)) {
        const bindings = node.importClause?.namedBindings;
        if (bindings && ts.isNamedImports(bindings)) for (const element of bindings.elements) names.push((element.propertyName ?? element.name).text);
      }
      found.push({ specifier: node.moduleSpecifier.text, names, line: line(node) });
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0] && ts.isStringLiteral(node.arguments[0])) {
      found.push({ specifier: node.arguments[0].text, names: [], line: line(node) });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** The src/ folder a module lives in (`kube` for src/kube/errors.ts). */
function folderOf(path: string): string {
  return relative(SRC, path).split(sep)[0]!;
}

const files = sourceFiles(SRC);

describe('architecture: layers of src/', () => {
  it('finds the code and its imports (the check is not vacuous)', () => {
    expect(files.length).toBeGreaterThan(80);
    const edges = files.flatMap((file) => importsOf(file).filter((i) => i.specifier.startsWith('.')).map((i) => `${folderOf(file)}->${folderOf(resolve(dirname(file), i.specifier))}`));
    for (const edge of ['server->admission', 'admission->rules', 'rules->actions', 'actions->kube', 'controller->kube', 'audit->rules', 'cli->audit', 'controller->scan', 'scan->rules', 'scan->kube', 'scan->report', 'cli->scan']) {
      expect(edges, edge).toContain(edge);
    }
  });

  it('puts every folder of src/ in a layer', () => {
    const folders = readdirSync(SRC).filter((entry) => statSync(join(SRC, entry)).isDirectory());
    expect(folders.filter((folder) => !layerOf.has(folder)), 'folders without a layer: add them to LAYERS').toEqual([]);
  });

  it('no module imports a folder above it or beside it', () => {
    const violations: string[] = [];
    for (const file of files) {
      const from = folderOf(file);
      for (const { specifier, line } of importsOf(file)) {
        if (!specifier.startsWith('.')) continue;
        const target = resolve(dirname(file), specifier);
        expect(target.startsWith(SRC + sep), `${relative(ROOT, file)}:${line} imports ${specifier}, outside src/`).toBe(true);
        const to = folderOf(target);
        if (to === from) continue;
        if (!(layerOf.get(to)! > layerOf.get(from)!)) violations.push(`${relative(ROOT, file)}:${line}: ${from} imports ${to} (${specifier})`);
      }
    }
    expect(violations).toEqual([]);
  });

  it('calls the Kubernetes API only from src/kube', () => {
    const outside: string[] = [];
    for (const file of files) {
      if (folderOf(file) === 'kube') continue;
      for (const { specifier, names, line } of importsOf(file)) {
        // The client library, or an HTTP(S) client of our own (serving with createServer is the server's job).
        const client = specifier === '@kubernetes/client-node' || ((specifier === 'node:https' || specifier === 'node:http') && names.some((n) => n !== 'createServer' && /^[a-z]/.test(n)));
        if (client) outside.push(`${relative(ROOT, file)}:${line}: ${specifier} { ${names.join(', ')} }`);
      }
    }
    expect(outside).toEqual([]);
  });

  it('classifies errors by their class or fields, never by comparing their names', () => {
    const byName = /\.name\s*[!=]==?\s*['"][A-Za-z]*Error['"]|\[[^\]]*['"][A-Za-z]+Error['"][^\]]*\]\.includes\(/;
    const offenders = files.flatMap((file) =>
      readFileSync(file, 'utf8')
        .split('\n')
        .map((text, index) => ({ text, line: index + 1 }))
        .filter(({ text }) => byName.test(text))
        .map(({ line }) => `${relative(ROOT, file)}:${line}`),
    );
    expect(offenders).toEqual([]);
  });
});
