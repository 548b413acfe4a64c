import { connect, getCiphers } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../src/server/server.js';
import { TLS12_CIPHERS } from '../src/server/tls.js';
import { startGuardServer } from './support/guard-server.js';

/**
 * Every TLS 1.2 cipher suite this Node.js/OpenSSL can offer is tried on its own against the real
 * server: only ECDHE key exchange with AEAD ciphers may complete a handshake (no static RSA key
 * exchange, no CBC, no SHA-1 MACs, no finite-field DHE). TLS 1.3 keeps its standard suites.
 */

let server: RunningServer;
let ca: Buffer;
beforeAll(async () => {
  ({ server, ca } = await startGuardServer());
});
afterAll(() => server?.shutdown());

function handshake(options: { ciphers?: string; maxVersion: 'TLSv1.2' | 'TLSv1.3'; minVersion: 'TLSv1.2' | 'TLSv1.3' }): Promise<{ cipher: string; version: string } | null> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port: server.port, servername: 'gitops-guard.gitops-guard.svc', ca, ...options });
    socket.once('secureConnect', () => {
      const { standardName, version } = { ...socket.getCipher(), version: socket.getProtocol() ?? '' };
      socket.destroy();
      resolve({ cipher: standardName, version });
    });
    socket.once('error', () => resolve(null));
  });
}

describe('TLS', () => {
  it('TLS 1.2: accepts only ECDHE with AEAD ciphers', async () => {
    const tls12 = getCiphers()
      .filter((name) => !name.startsWith('tls_'))
      .map((name) => name.toUpperCase());
    expect(tls12.length).toBeGreaterThan(20);
    const accepted: string[] = [];
    for (const cipher of tls12) {
      const result = await handshake({ ciphers: cipher, maxVersion: 'TLSv1.2', minVersion: 'TLSv1.2' });
      if (result) {
        expect(result.version).toBe('TLSv1.2');
        accepted.push(cipher);
      }
    }
    // The serving key is RSA, so the ECDSA suites of the list cannot be negotiated here.
    expect(accepted.sort()).toEqual(['ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-RSA-CHACHA20-POLY1305']);
    for (const cipher of accepted) expect(TLS12_CIPHERS).toContain(cipher);
    for (const cipher of TLS12_CIPHERS) expect(cipher).toMatch(/^ECDHE-(RSA|ECDSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/);
  });

  it('TLS 1.3 works as before, with its standard suites', async () => {
    const result = await handshake({ maxVersion: 'TLSv1.3', minVersion: 'TLSv1.3' });
    expect(result?.version).toBe('TLSv1.3');
    expect(['TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256']).toContain(result?.cipher);
  });
});
