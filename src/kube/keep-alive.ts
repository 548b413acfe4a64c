import { Agent } from 'node:https';
import { createSecureContext, type SecureContext } from 'node:tls';
import {
  createConfiguration,
  ServerConfiguration,
  type ApiType,
  type Configuration,
  type KubeConfig,
  type RequestContext,
  type SecurityAuthentication,
} from '@kubernetes/client-node';

const TLS_IDENTITY_FIELDS = ['ca', 'cert', 'key', 'pfx', 'passphrase', 'servername', 'rejectUnauthorized'] as const;

type TlsIdentityOptions = Partial<Pick<Agent['options'], (typeof TLS_IDENTITY_FIELDS)[number]>>;

function sameValue(a: unknown, b: unknown): boolean {
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((item, i) => sameValue(item, b[i]));
  return a === b;
}

/** True for the plain https.Agent client-node builds per call; proxy agents carry their own connection logic and are left alone. */
export function isPlainHttpsAgent(agent: unknown): agent is Agent {
  return agent instanceof Agent && agent.constructor === Agent;
}

/** One TLS identity: the context built from its CA, certificate and key, and how the server is verified. */
interface TlsIdentity {
  secureContext: SecureContext;
  servername?: string;
  rejectUnauthorized?: boolean;
}

/**
 * The TLS identity of request options, the same object for as long as the options carry the same
 * CA, client certificate and key, SNI name and verification. client-node rebuilds its options
 * (files re-read) on every call, so they are compared by content; one secure context is built per
 * identity, since otherwise each new connection parses the CA bundle and the client key again.
 */
class TlsIdentities {
  private values: unknown[] | undefined;
  private identity: TlsIdentity | undefined;
  private lastOptions: TlsIdentityOptions | undefined;

  of(options: TlsIdentityOptions): TlsIdentity {
    // Reused options (RequestCredentials hands out the same object for a second) need no comparison.
    if (options === this.lastOptions && this.identity) return this.identity;
    this.lastOptions = options;
    const values = TLS_IDENTITY_FIELDS.map((field) => options[field]);
    if (this.identity && this.values && values.every((value, i) => sameValue(value, this.values![i]))) return this.identity;
    const { ca, cert, key, pfx, passphrase, servername, rejectUnauthorized } = options;
    this.values = values;
    this.identity = {
      secureContext: createSecureContext({ ca, cert, key, pfx, passphrase }),
      ...(servername !== undefined ? { servername } : {}),
      ...(rejectUnauthorized !== undefined ? { rejectUnauthorized } : {}),
    };
    return this.identity;
  }
}

/**
 * One keep-alive https.Agent for the current TLS identity. client-node 1.x builds a new agent for
 * every request, so every call would pay a full TCP and TLS handshake. A rotated client
 * certificate or CA gives a new agent. The old one is dropped, not destroyed: requests in flight
 * on it finish, and its idle sockets close on their own timeout.
 */
export class KeepAliveAgents {
  private agent: Agent | undefined;
  private identity: TlsIdentity | undefined;
  private readonly identities = new TlsIdentities();

  constructor(private readonly maxSockets = 64) {}

  agentFor(options: TlsIdentityOptions): Agent {
    const identity = this.identities.of(options);
    if (this.agent && this.identity === identity) return this.agent;
    this.identity = identity;
    this.agent = new Agent({
      ...identity,
      keepAlive: true,
      maxSockets: this.maxSockets,
      scheduling: 'lifo',
      timeout: 30_000,
    });
    return this.agent;
  }

  destroy(): void {
    this.agent?.destroy();
    this.agent = undefined;
    this.identity = undefined;
  }
}

/**
 * The kubeconfig's own authentication for client-node's generated API clients (tokens, exec
 * plugins and client certificates are applied exactly as before), with the fresh agent it builds
 * for every call swapped for the shared keep-alive agent of the same TLS identity.
 */
export class KeepAliveAuthentication implements SecurityAuthentication {
  private readonly agents: KeepAliveAgents;

  constructor(
    private readonly kubeConfig: KubeConfig,
    maxSockets = 64,
  ) {
    this.agents = new KeepAliveAgents(maxSockets);
  }

  getName(): string {
    return 'kubeconfig authentication with keep-alive';
  }

  async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await this.kubeConfig.applySecurityAuthentication(context);
    const fresh = context.getAgent();
    if (!isPlainHttpsAgent(fresh)) return;
    context.setAgent(this.agents.agentFor(fresh.options));
  }

  destroy(): void {
    this.agents.destroy();
  }
}

/** Like `kubeConfig.makeApiClient(Api)`, with connections kept alive between requests. */
export function makeKeepAliveApiClient<T extends ApiType>(
  kubeConfig: KubeConfig,
  apiClientType: new (config: Configuration) => T,
  auth: KeepAliveAuthentication = new KeepAliveAuthentication(kubeConfig),
): T {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const configuration = createConfiguration({ baseServer: new ServerConfiguration(cluster.server, {}), authMethods: { default: auth } });
  return new apiClientType(configuration);
}
