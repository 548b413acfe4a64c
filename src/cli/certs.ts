import { generateCertificates, generateClientCertificates, writeCertificates, writeClientCertificates } from '../certs/generate.js';
import { helpText, integerFlag, parseFlags, UsageError, type CliIo, type FlagSpecs } from './flags.js';

const flags: FlagSpecs = {
  service: { type: 'string', description: 'Service name the API server calls', default: 'gitops-guard' },
  namespace: { type: 'string', description: 'Namespace of the Service', default: 'gitops-guard' },
  out: { type: 'string', description: 'Directory for ca.crt, tls.crt and tls.key', default: 'certs' },
  days: { type: 'string', description: 'Validity in days', default: '365' },
  client: {
    type: 'boolean',
    description:
      'Instead: a dedicated client CA (client-ca.crt, for serve --client-ca) and the API server\'s client certificate, key and webhook kubeconfig (apiserver-*)',
  },
  help: { type: 'boolean', short: 'h', description: 'Show this help' },
};

export const certsHelp = helpText(
  'gitops-guard certs --service NAME --namespace NS --out DIR [--days N] [--client]',
  'Generates a CA and a serving certificate for the webhook Service (SANs NAME, NAME.NS, NAME.NS.svc,\n' +
    'NAME.NS.svc.cluster.local only) and prints the base64 caBundle. Private keys are written with mode\n' +
    '0600; a symbolic link at any target file is refused. With --client: the client CA and certificate\n' +
    'for API server authentication instead (docs/install.md, "Only the API server may call").',
  flags,
);

export function runCerts(argv: string[], io: CliIo): number {
  const { values, positionals } = parseFlags(argv, flags, {});
  if (values.help) {
    io.stdout.write(certsHelp);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const service = String(values.service);
  const namespace = String(values.namespace);
  const dns = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
  if (!dns.test(service)) throw new UsageError(`--service must be a DNS-1123 label, got "${service}"`);
  if (!dns.test(namespace)) throw new UsageError(`--namespace must be a DNS-1123 label, got "${namespace}"`);
  const days = integerFlag(values.days, 'days', 1, 3650);
  const out = String(values.out);
  if (values.client === true) {
    const paths = writeClientCertificates(out, service, namespace, generateClientCertificates({ service, namespace, days }));
    io.stderr.write(`wrote ${paths.clientCaPath}, ${paths.certPath}, ${paths.keyPath}, ${paths.kubeconfigPath}\n`);
    io.stdout.write(`${paths.kubeconfigPath}\n`);
    return 0;
  }
  const certs = generateCertificates({ service, namespace, days });
  const paths = writeCertificates(out, certs);
  io.stderr.write(`wrote ${paths.caPath}, ${paths.certPath}, ${paths.keyPath}\n`);
  io.stdout.write(`${certs.caBundle}\n`);
  return 0;
}
