import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContextOptions, type TlsOptions } from 'node:tls';
import { ConfigurationError } from '../util/errors.js';

export interface ServingCredentials {
  cert: Buffer;
  key: Buffer;
  notAfter: Date;
  /** CAs whose client certificates may call the admission endpoints (`--client-ca`). */
  clientCa?: Buffer;
}

export class CredentialsError extends ConfigurationError {
  override readonly name: string = 'CredentialsError';
}

export const TLS_MIN_VERSION = 'TLSv1.2' as const;

/**
 * TLS 1.3 keeps Node's defaults (all AEAD, all forward secret). TLS 1.2 is limited to ECDHE key
 * exchange with AEAD ciphers: no static-RSA key exchange (no forward secrecy), no CBC/SHA-1
 * suites, no finite-field DHE. kube-apiserver (Go) offers all of these.
 */
export const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
] as const;
export const TLS13_CIPHERS = ['TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256'] as const;
const CIPHERS = [...TLS13_CIPHERS, ...TLS12_CIPHERS].join(':');

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new CredentialsError(`cannot read TLS ${what} ${path}: ${code}`);
  }
}

/** Every certificate of a PEM bundle must parse and be a CA; a bundle without one is refused. */
function checkClientCa(bundle: Buffer, path: string): void {
  const blocks = bundle.toString('utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new CredentialsError(`client CA ${path} holds no PEM certificate`);
  for (const block of blocks) {
    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(block);
    } catch {
      throw new CredentialsError(`client CA ${path} holds a certificate that does not parse`);
    }
    if (!certificate.ca) throw new CredentialsError(`client CA ${path} holds a certificate that is not a CA (${certificate.subject.replace(/\n/g, ', ')})`);
  }
}

/**
 * Reads and checks a certificate/key pair (a pair that does not belong together is refused) and,
 * when given, the CA bundle that client certificates must chain to.
 */
export function loadServingCredentials(certPath: string, keyPath: string, clientCaPath?: string): ServingCredentials {
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
  if (clientCaPath === undefined) return { cert, key, notAfter };
  const clientCa = readPem(clientCaPath, 'client CA');
  checkClientCa(clientCa, clientCaPath);
  return { cert, key, notAfter, clientCa };
}

/** What changes when certificates rotate (`server.setSecureContext`). */
export function secureContextOptions(credentials: ServingCredentials): SecureContextOptions {
  return {
    cert: credentials.cert,
    key: credentials.key,
    minVersion: TLS_MIN_VERSION,
    ciphers: CIPHERS,
    ...(credentials.clientCa ? { ca: credentials.clientCa } : {}),
  };
}

/**
 * The server's TLS options. With a client CA the server asks every client for a certificate but
 * lets the handshake complete without one: kubelet probes (/healthz, /readyz) and Prometheus
 * (/metrics) have none. The admission endpoints then refuse any connection whose certificate did
 * not verify (`socket.authorized`).
 */
export function serverTlsOptions(credentials: ServingCredentials): TlsOptions {
  return {
    ...secureContextOptions(credentials),
    ...(credentials.clientCa ? { requestCert: true, rejectUnauthorized: false } : {}),
  };
}
