import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateCertificates, writeCertificates } from '../../src/certs/generate.js';
import { UnavailableKubeReader } from '../../src/kube/reader.js';
import { startServer, type RunningServer, type ServerOptions } from '../../src/server/server.js';
import { DEFAULT_RULES, capturingLogger } from './app.js';

/** A fresh directory with a CA and a serving certificate for gitops-guard.gitops-guard.svc and 127.0.0.1. */
export function certDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gg-certs-'));
  writeCertificates(dir, generateCertificates({ service: 'gitops-guard', namespace: 'gitops-guard', days: 30, development: true }));
  return dir;
}

export interface GuardServer {
  server: RunningServer;
  /** The CA that signed the serving certificate, as the webhook's caBundle would carry it. */
  ca: Buffer;
  certs: string;
}

/** The real HTTPS server on 127.0.0.1 with the default rules; `options` override any setting. */
export async function startGuardServer(options: Partial<ServerOptions> = {}, certs: string = certDir()): Promise<GuardServer> {
  const server = await startServer({
    port: 0,
    host: '127.0.0.1',
    tlsCertPath: join(certs, 'tls.crt'),
    tlsKeyPath: join(certs, 'tls.key'),
    rulesPath: DEFAULT_RULES,
    kube: new UnavailableKubeReader('no cluster in this test'),
    settings: { checksumKey: Buffer.alloc(32, 1) },
    logger: capturingLogger().logger,
    ...options,
  });
  return { server, ca: readFileSync(join(certs, 'ca.crt')), certs };
}
