import { join } from 'node:path';
import ts from 'typescript';
import { ROOT } from './manifests.js';

/**
 * Type-checks a value (e.g. a rendered manifest) against a TypeScript type from a package, with
 * the TypeScript compiler: `const value: Type = <the value as a literal>`. Object literals get
 * TypeScript's excess property check at every depth, so a field the type does not declare is an
 * error, as are wrong types and values outside a union of literals. This complements JSON-schema
 * validators generated from CRDs that accept unknown fields.
 *
 * `importLine` imports the type, e.g.
 * `import type { IServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor.js';`
 */
export function typeErrors(importLine: string, typeName: string, value: unknown): string[] {
  // A file that exists only in memory, inside the project so that node_modules resolve.
  const file = join(ROOT, 'test', `__type-check-${process.pid}.ts`);
  const source = `${importLine}\nexport const value: ${typeName} = ${JSON.stringify(value, null, 2)};\n`;
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, language, ...rest) => (name === file ? ts.createSourceFile(name, source, language) : getSourceFile(name, language, ...rest));
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === file || fileExists(name);
  const readFile = host.readFile.bind(host);
  host.readFile = (name) => (name === file ? source : readFile(name));
  const program = ts.createProgram([file], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const text = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    if (!d.file || d.start === undefined) return text;
    const { line } = d.file.getLineAndCharacterOfPosition(d.start);
    return `${d.file === program.getSourceFile(file) ? `line ${line + 1}: ${source.split('\n')[line]!.trim()}` : d.file.fileName}: ${text}`;
  });
}
