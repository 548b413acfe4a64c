import { Agent } from 'node:https';
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

function sameValue(a: unknown, b: unknown): boolean {
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((item, i) => sameValue(item, b[i]));
  return a === b;
}

/**
 * client-node 1.x builds a new https.Agent for every request, so every read pays a full TCP and
 * TLS handshake. In the admission hot path that is most of the latency; this authentication wraps
 * the kubeconfig's own (tokens, exec plugins and client certificates are applied exactly as
 * before) and swaps the fresh agent for a shared keep-alive agent with the same TLS options.
 * A rotated client certificate or CA yields different options, hence a new agent.
 */
export class KeepAliveAuthentication implements SecurityAuthentication {
  private agent: Agent | undefined;
  private identity: unknown[] | undefined;

  constructor(
    private readonly kubeConfig: KubeConfig,
    private readonly maxSockets = 64,
  ) {}

  getName(): string {
    return 'kubeconfig authentication with keep-alive';
  }

  async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await this.kubeConfig.applySecurityAuthentication(context);
    const fresh = context.getAgent();
    // Proxy agents (cluster.proxy-url) are left alone: they carry their own connection logic.
    if (!(fresh instanceof Agent) || fresh.constructor !== Agent) return;
    context.setAgent(this.agentFor(fresh.options));
  }

  private agentFor(options: Agent['options']): Agent {
    // kubeconfig options are rebuilt (files re-read) on every call, so compare by content.
    const identity = TLS_IDENTITY_FIELDS.map((field) => options[field]);
    if (this.agent && this.identity && identity.every((value, i) => sameValue(value, this.identity![i]))) return this.agent;
    // Only one set of credentials is current. The old agent is dropped, not destroyed: requests in
    // flight on it finish, and its idle sockets close on their own timeout.
    this.identity = identity;
    this.agent = new Agent({ ...options, keepAlive: true, maxSockets: this.maxSockets, scheduling: 'lifo', timeout: 30_000 });
    return this.agent;
  }

  destroy(): void {
    this.agent?.destroy();
    this.agent = undefined;
    this.identity = undefined;
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
