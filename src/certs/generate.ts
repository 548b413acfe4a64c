import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import forge from 'node-forge';
import { assertWritableTargets, writeFileNoFollow } from '../util/private-file.js';

export interface CertificateRequest {
  service: string;
  namespace: string;
  days: number;
  /**
   * Development certificates (`serve --dev-certs`) also name localhost and 127.0.0.1. Production
   * certificates name the Service only: a serving key that is also valid for localhost would let
   * anything that obtains it impersonate any local endpoint that trusts the same CA.
   */
  development?: boolean;
}

export interface GeneratedCertificates {
  caCertPem: string;
  certPem: string;
  keyPem: string;
  /** base64 of the CA PEM, as `caBundle` in webhook configurations expects. */
  caBundle: string;
}

export const DEVELOPMENT_DNS_NAMES = ['localhost'] as const;
export const DEVELOPMENT_IPS = ['127.0.0.1'] as const;

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

interface Authority {
  cert: forge.pki.Certificate;
  privateKey: forge.pki.rsa.PrivateKey;
  subject: forge.pki.CertificateField[];
}

/**
 * A self-signed CA that can sign end-entity certificates only (path length 0): even with its key,
 * nobody can mint an intermediate CA under it. Its private key is never written anywhere.
 */
function certificateAuthority(commonName: string, days: number): Authority {
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048, e: 0x10001 });
  const cert = baseCertificate(keys.publicKey, days);
  const subject = [{ name: 'commonName', value: commonName }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { cert, privateKey: keys.privateKey, subject };
}

function issue(
  authority: Authority,
  commonName: string,
  days: number,
  usage: { serverAuth?: true; clientAuth?: true },
  altNames: { type: number; value?: string; ip?: string }[],
): { certPem: string; keyPem: string } {
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048, e: 0x10001 });
  const cert = baseCertificate(keys.publicKey, days);
  cert.setSubject([{ name: 'commonName', value: commonName }]);
  cert.setIssuer(authority.subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', ...usage },
    ...(altNames.length > 0 ? [{ name: 'subjectAltName', altNames }] : []),
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: authority.cert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(authority.privateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: forge.pki.privateKeyToPem(keys.privateKey) };
}

/** A CA and a serving certificate signed by it, both RSA 2048 / SHA-256. */
export function generateCertificates(request: CertificateRequest): GeneratedCertificates {
  const authority = certificateAuthority(`gitops-guard-ca.${request.namespace}`, request.days);
  const dnsNames = [...serviceDnsNames(request.service, request.namespace), ...(request.development ? DEVELOPMENT_DNS_NAMES : [])];
  const ips = request.development ? DEVELOPMENT_IPS : [];
  const serving = issue(authority, `${request.service}.${request.namespace}.svc`, request.days, { serverAuth: true }, [
    ...dnsNames.map((value) => ({ type: 2, value })),
    ...ips.map((ip) => ({ type: 7, ip })),
  ]);
  const caCertPem = forge.pki.certificateToPem(authority.cert);
  return { caCertPem, ...serving, caBundle: Buffer.from(caCertPem, 'utf8').toString('base64') };
}

export interface GeneratedClientCertificates {
  /** For `serve --client-ca`: the only CA whose certificates may call the admission endpoints. */
  clientCaPem: string;
  /** The API server's client certificate and key (clientAuth only). */
  certPem: string;
  keyPem: string;
}

/** The name kube-apiserver looks up in its webhook kubeconfig for a Service on port 443. */
export function webhookKubeconfigUser(service: string, namespace: string): string {
  return `${service}.${namespace}.svc`;
}

/**
 * A dedicated client CA and one client certificate for kube-apiserver to present when it calls
 * the webhook. Dedicated on purpose: gitops-guard trusts every certificate this CA signs, so it
 * must not be the cluster CA that also signs kubelets' and users' certificates.
 */
export function generateClientCertificates(request: { service: string; namespace: string; days: number }): GeneratedClientCertificates {
  const authority = certificateAuthority(`gitops-guard-client-ca.${request.namespace}`, request.days);
  const client = issue(authority, `kube-apiserver:${webhookKubeconfigUser(request.service, request.namespace)}`, request.days, { clientAuth: true }, []);
  return { clientCaPem: forge.pki.certificateToPem(authority.cert), ...client };
}

/**
 * The kubeconfig the API server's AdmissionConfiguration points to (`kubeConfigFile`): for the
 * webhook Service on port 443, present this client certificate. It holds the private key.
 */
export function webhookKubeconfig(service: string, namespace: string, client: GeneratedClientCertificates): string {
  const b64 = (pem: string) => Buffer.from(pem, 'utf8').toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'users:',
    `  - name: ${webhookKubeconfigUser(service, namespace)}`,
    '    user:',
    `      client-certificate-data: ${b64(client.certPem)}`,
    `      client-key-data: ${b64(client.keyPem)}`,
    '',
  ].join('\n');
}

export interface WrittenCertificates {
  caPath: string;
  certPath: string;
  keyPath: string;
}

/** Writes `ca.crt`, `tls.crt` (0644) and `tls.key` (0600 from creation) into `dir`, never through a symlink. */
export function writeCertificates(dir: string, certs: GeneratedCertificates): WrittenCertificates {
  mkdirSync(dir, { recursive: true });
  const paths = { caPath: join(dir, 'ca.crt'), certPath: join(dir, 'tls.crt'), keyPath: join(dir, 'tls.key') };
  assertWritableTargets(Object.values(paths));
  writeFileNoFollow(paths.keyPath, certs.keyPem, 0o600);
  writeFileNoFollow(paths.certPath, certs.certPem, 0o644);
  writeFileNoFollow(paths.caPath, certs.caCertPem, 0o644);
  return paths;
}

export interface WrittenClientCertificates {
  clientCaPath: string;
  certPath: string;
  keyPath: string;
  kubeconfigPath: string;
}

/** `client-ca.crt` (0644); `apiserver-client.crt` (0644), `.key` and `apiserver-webhook-kubeconfig.yaml` (0600). */
export function writeClientCertificates(dir: string, service: string, namespace: string, client: GeneratedClientCertificates): WrittenClientCertificates {
  mkdirSync(dir, { recursive: true });
  const paths = {
    clientCaPath: join(dir, 'client-ca.crt'),
    certPath: join(dir, 'apiserver-client.crt'),
    keyPath: join(dir, 'apiserver-client.key'),
    kubeconfigPath: join(dir, 'apiserver-webhook-kubeconfig.yaml'),
  };
  assertWritableTargets(Object.values(paths));
  writeFileNoFollow(paths.keyPath, client.keyPem, 0o600);
  writeFileNoFollow(paths.kubeconfigPath, webhookKubeconfig(service, namespace, client), 0o600);
  writeFileNoFollow(paths.certPath, client.certPem, 0o644);
  writeFileNoFollow(paths.clientCaPath, client.clientCaPem, 0o644);
  return paths;
}
