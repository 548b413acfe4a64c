import { createHash } from 'node:crypto';
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

/**
 * client-node 1.x builds a new https.Agent for every request, so every read pays a full TCP and
 * TLS handshake. In the admission hot path that is most of the latency; this authentication wraps
 * the kubeconfig's own (tokens, exec plugins and client certificates are applied exactly as
 * before) and swaps the fresh agent for a shared keep-alive agent with the same TLS options.
 * A rotated client certificate or CA yields different options, hence a new agent.
 */
export class KeepAliveAuthentication implements SecurityAuthentication {
  private agents = new Map<string, Agent>();

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
    const identity = createHash('sha256')
      .update(JSON.stringify([options.ca, options.cert, options.key, options.pfx, options.passphrase, options.servername, options.rejectUnauthorized].map((v) => (Buffer.isBuffer(v) ? v.toString('base64') : v ?? null))))
      .digest('hex');
    let agent = this.agents.get(identity);
    if (!agent) {
      // Old agents are dropped (their idle sockets close on their own timeout); only one set of credentials is current.
      for (const old of this.agents.values()) old.destroy();
      this.agents.clear();
      agent = new Agent({ ...options, keepAlive: true, maxSockets: this.maxSockets, scheduling: 'lifo', timeout: 30_000 });
      this.agents.set(identity, agent);
    }
    return agent;
  }

  destroy(): void {
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
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
