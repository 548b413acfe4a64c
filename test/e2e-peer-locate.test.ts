import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { locatePeer } from './e2e/peer/locate.js';

/** How `npm run test:e2e:peer` finds apiserver-peer: never a machine path, a clear message when absent. */
describe('locatePeer', () => {
  const scratch = () => mkdtempSync(join(tmpdir(), 'gg-peer-locate-'));

  it('takes APISERVER_PEER as the binary, and refuses one that does not exist', () => {
    const dir = scratch();
    const binary = join(dir, 'apiserver-peer');
    writeFileSync(binary, '');
    expect(locatePeer(dir, { APISERVER_PEER: binary })).toBe(binary);
    expect(() => locatePeer(dir, { APISERVER_PEER: join(dir, 'nope') })).toThrow(`APISERVER_PEER=${join(dir, 'nope')} does not exist`);
  });

  it('otherwise runs setup.sh from APISERVER_PEER_DIR, or ../shared/apiserver-peer next to the checkout, and uses the path it prints last', () => {
    const parent = scratch();
    const checkout = join(parent, 'checkout');
    const peerDir = join(parent, 'shared', 'apiserver-peer');
    mkdirSync(checkout);
    mkdirSync(peerDir, { recursive: true });
    const binary = join(parent, 'built-peer');
    writeFileSync(binary, '');
    writeFileSync(join(peerDir, 'setup.sh'), `#!/usr/bin/env bash\necho "setup: building" >&2\necho "${binary}"\n`);
    chmodSync(join(peerDir, 'setup.sh'), 0o755);
    expect(locatePeer(checkout, {})).toBe(binary);
    expect(locatePeer(scratch(), { APISERVER_PEER_DIR: peerDir })).toBe(binary);

    writeFileSync(join(peerDir, 'setup.sh'), '#!/usr/bin/env bash\necho "setup: refusing" >&2\nexit 1\n');
    expect(() => locatePeer(checkout, {})).toThrow(`${join(peerDir, 'setup.sh')} failed (exit 1)`);
  });

  it('says what to set when the peer is nowhere', () => {
    const checkout = join(scratch(), 'checkout');
    expect(() => locatePeer(checkout, {})).toThrow(/apiserver-peer not found: no .*shared\/apiserver-peer\/setup\.sh\. Set APISERVER_PEER to the peer's binary, or APISERVER_PEER_DIR/);
  });
});
