import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContextOptions } from 'node:tls';

export interface ServingCredentials {
  cert: Buffer;
  key: Buffer;
  notAfter: Date;
}

export class CredentialsError extends Error {
  override readonly name = 'CredentialsError';
}

export const TLS_MIN_VERSION = 'TLSv1.2' as const;

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new CredentialsError(`cannot read TLS ${what} ${path}: ${code}`);
  }
}

/** Reads and checks a certificate/key pair; a pair that does not belong together is refused. */
export function loadServingCredentials(certPath: string, keyPath: string): ServingCredentials {
  const cert = readPem(certPath, 'certificate');
  const key = readPem(keyPath, 'key');
  let notAfter: Date;
  try {
    notAfter = new Date(new X509Certificate(cert).validTo);
  } catch {
    throw new CredentialsError(`TLS certificate ${certPath} is not a PEM certificate`);
  }
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    throw new CredentialsError(
      `TLS key ${keyPath} does not match certificate ${certPath} or is invalid: ${(error as Error).message.split('\n')[0]}`,
    );
  }
  return { cert, key, notAfter };
}

export function secureContextOptions(credentials: ServingCredentials): SecureContextOptions {
  return { cert: credentials.cert, key: credentials.key, minVersion: TLS_MIN_VERSION };
}
