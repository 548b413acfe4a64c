import { KubeConfig } from '@kubernetes/client-node';
import { inject } from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** kubeconfig of the API the tier runs against (unset: the default kubeconfig, a real cluster). */
    kubeconfig: string;
    /** The rollout controller runs against that API (test/e2e/peer starts one). */
    controller: boolean;
    /** Its /readyz URL, when the tier started it (empty otherwise). */
    controllerReadyz: string;
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

/** The controller's /readyz body, when the tier started the controller (undefined otherwise). */
export async function controllerReadyz(): Promise<string | undefined> {
  const url = inject('controllerReadyz');
  if (!url) return undefined;
  return (await fetch(url)).text();
}
