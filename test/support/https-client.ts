import type { IncomingHttpHeaders } from 'node:http';
import { request, type RequestOptions } from 'node:https';
import type { PeerCertificate, TLSSocket } from 'node:tls';

export interface HttpsAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  peer: PeerCertificate;
}

/** A request as the API server makes it: verifying the server name against the webhook's caBundle. */
export function httpsRequest(
  options: { port: number; ca: string | Buffer; servername?: string; method?: string; path: string; body?: string } & Partial<RequestOptions>,
): Promise<HttpsAnswer> {
  const { port, ca, servername = 'gitops-guard.gitops-guard.svc', method = 'GET', path, body, ...rest } = options;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        ca,
        servername,
        method,
        path,
        agent: false,
        headers: body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {},
        ...rest,
      },
      (res) => {
        const peer = (res.socket as TLSSocket).getPeerCertificate();
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), peer }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
