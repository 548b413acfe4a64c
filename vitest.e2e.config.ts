import { defineConfig } from 'vitest/config';

/**
 * The opt-in tier against a real cluster (KUBECONFIG) where gitops-guard is installed; see
 * test/e2e/. With the controller overlay installed, GITOPS_GUARD_E2E_CONTROLLER=1 adds its tests;
 * where Argo CD's Application CRD and the wgpolicyk8s.io report CRDs are installed too,
 * GITOPS_GUARD_E2E_SCAN=1 adds the cluster scan's.
 * `npm run test:e2e:peer` (vitest.e2e.peer.config.ts) runs the same tier against apiserver-peer.
 */
export default defineConfig({
  test: {
    include: [
      'test/e2e/cluster.e2e.ts',
      ...(process.env['GITOPS_GUARD_E2E_CONTROLLER'] === '1' ? ['test/e2e/controller.e2e.ts'] : []),
      ...(process.env['GITOPS_GUARD_E2E_SCAN'] === '1' ? ['test/e2e/scan.e2e.ts'] : []),
    ],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});
