import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import forge from 'node-forge';

export interface CertificateRequest {
  service: string;
  namespace: string;
  days: number;
  /** Extra names for local development; the issue asks for localhost and 127.0.0.1. */
  extraDnsNames?: string[];
  extraIps?: string[];
}

export interface GeneratedCertificates {
  caCertPem: string;
  certPem: string;
  keyPem: string;
  /** base64 of the CA PEM, as `caBundle` in webhook configurations expects. */
  caBundle: string;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** Positive, unique 128-bit serial (RFC 5280: at most 20 octets, no leading sign bit). */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f;
  if (bytes[0] === 0) bytes[0] = 0x01;
  return bytes.toString('hex');
}

export function serviceDnsNames(service: string, namespace: string): string[] {
  return [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`];
}

function baseCertificate(publicKey: forge.pki.PublicKey, days: number): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = randomSerial();
  // Backdate a little: API server and webhook clocks are rarely in perfect step.
  cert.validity.notBefore = new Date(Date.now() - 5 * 60 * 1000);
  cert.validity.notAfter = new Date(Date.now() + days * DAY_MS);
  return cert;
}

/** A CA and a serving certificate signed by it, both RSA 2048 / SHA-256. */
export function generateCertificates(request: CertificateRequest): GeneratedCertificates {
  const caKeys = forge.pki.rsa.generateKeyPair({ bits: 2048, e: 0x10001 });
  const ca = baseCertificate(caKeys.publicKey, request.days);
  const caSubject = [{ name: 'commonName', value: `gitops-guard-ca.${request.namespace}` }];
  ca.setSubject(caSubject);
  ca.setIssuer(caSubject);
  ca.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  ca.sign(caKeys.privateKey, forge.md.sha256.create());

  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048, e: 0x10001 });
  const cert = baseCertificate(keys.publicKey, request.days);
  const dnsNames = [...serviceDnsNames(request.service, request.namespace), ...(request.extraDnsNames ?? [])];
  cert.setSubject([{ name: 'commonName', value: `${request.service}.${request.namespace}.svc` }]);
  cert.setIssuer(caSubject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    {
      name: 'subjectAltName',
      altNames: [
        ...dnsNames.map((value) => ({ type: 2, value })),
        ...(request.extraIps ?? []).map((ip) => ({ type: 7, ip })),
      ],
    },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: ca.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(caKeys.privateKey, forge.md.sha256.create());

  const caCertPem = forge.pki.certificateToPem(ca);
  return {
    caCertPem,
    certPem: forge.pki.certificateToPem(cert),
    keyPem: forge.pki.privateKeyToPem(keys.privateKey),
    caBundle: Buffer.from(caCertPem, 'utf8').toString('base64'),
  };
}

export interface WrittenCertificates {
  caPath: string;
  certPath: string;
  keyPath: string;
}

/** Writes `ca.crt`, `tls.crt` and `tls.key` (mode 0600) into `dir`. */
export function writeCertificates(dir: string, certs: GeneratedCertificates): WrittenCertificates {
  mkdirSync(dir, { recursive: true });
  const paths = { caPath: join(dir, 'ca.crt'), certPath: join(dir, 'tls.crt'), keyPath: join(dir, 'tls.key') };
  writeFileSync(paths.caPath, certs.caCertPem);
  writeFileSync(paths.certPath, certs.certPem);
  writeFileSync(paths.keyPath, certs.keyPem, { mode: 0o600 });
  chmodSync(paths.keyPath, 0o600);
  return paths;
}
