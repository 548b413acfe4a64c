import type { RequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

/** What client-node's `applyToHTTPSOptions` puts on a request: headers, TLS identity, agent, basic auth. */
export type AppliedOptions = RequestOptions & { headers: Record<string, string> };

/**
 * How long applied credentials are reused. client-node re-reads the CA and token files and
 * rebuilds everything on every call (a file read per GET in a pod); client-go reads the CA once
 * and the token file at most once a minute. A second keeps rotations effective at once for all
 * practical purposes while three reads per admission share one resolution.
 */
export const CREDENTIALS_TTL_MS = 1000;

/**
 * The kubeconfig's authentication for direct requests, resolved by client-node
 * (`applyToHTTPSOptions`: in-cluster token file, exec plugins, client certificates, basic auth,
 * CA, SNI name, proxy agent) and reused for CREDENTIALS_TTL_MS. Concurrent callers share one
 * resolution; a failed one is not kept. `invalidate()` (after a 401) makes the next call resolve
 * afresh, so a rotated token is picked up at once.
 */
export class RequestCredentials {
  private cached: { options: Promise<AppliedOptions>; resolved?: AppliedOptions; expires: number } | undefined;

  constructor(
    private readonly kubeConfig: KubeConfig,
    private readonly ttlMs = CREDENTIALS_TTL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  current(): Promise<AppliedOptions> {
    const now = this.now();
    if (this.cached && now < this.cached.expires) return this.cached.options;
    const options = this.resolve();
    const entry: { options: Promise<AppliedOptions>; resolved?: AppliedOptions; expires: number } = { options, expires: now + this.ttlMs };
    this.cached = entry;
    options.then(
      (resolved) => {
        entry.resolved = resolved;
      },
      () => {
        if (this.cached === entry) this.cached = undefined;
      },
    );
    return options;
  }

  /** The resolved options while they are fresh, without waiting: what almost every request finds. */
  fresh(): AppliedOptions | undefined {
    const cached = this.cached;
    return cached?.resolved && this.now() < cached.expires ? cached.resolved : undefined;
  }

  invalidate(): void {
    this.cached = undefined;
  }

  private async resolve(): Promise<AppliedOptions> {
    const options: AppliedOptions = { headers: {} };
    await this.kubeConfig.applyToHTTPSOptions(options);
    return options;
  }
}
