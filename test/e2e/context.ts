import { KubeConfig } from '@kubernetes/client-node';
import { inject } from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** kubeconfig of the API the tier runs against (unset: the default kubeconfig, a real cluster). */
    kubeconfig: string;
    /** The rollout controller runs against that API (test/e2e/peer starts one). */
    controller: boolean;
  }
}

/** The API the tier runs against: the peer's (`npm run test:e2e:peer`), else KUBECONFIG's. */
export function e2eKubeConfig(): KubeConfig {
  const kubeConfig = new KubeConfig();
  const path = inject('kubeconfig');
  if (path) kubeConfig.loadFromFile(path);
  else kubeConfig.loadFromDefault();
  return kubeConfig;
}
