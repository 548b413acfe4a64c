import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import type {} from '../context.js';
import { startPeerEnvironment } from './environment.js';

/**
 * `npm run test:e2e:peer`: starts apiserver-peer, `gitops-guard serve` behind the webhooks the
 * manifests configure, and `gitops-guard controller`, runs the e2e tier against that API, then
 * stops them and fails the run if one did not stop cleanly or the peer saw a protocol violation.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const root = fileURLToPath(new URL('../../..', import.meta.url));
  const environment = await startPeerEnvironment({ root, controller: true, log: (line) => console.log(line) });
  project.provide('kubeconfig', environment.kubeconfig);
  project.provide('controller', true);
  project.provide('controllerReadyz', environment.controllerReadyz);
  return async () => {
    try {
      // Failed tests keep the logs for a look (vitest's state API is experimental: keep them if it moved).
      let failed = true;
      try {
        failed = project.vitest.state.getCountOfFailedTests() > 0;
      } catch {
        // keep
      }
      await environment.stop({ keep: failed });
    } catch (error) {
      // vitest reports an error thrown by a global teardown but still exits 0: fail the run here.
      console.error(`\n${(error as Error).message}\n`);
      process.exitCode = 1;
    }
  };
}
