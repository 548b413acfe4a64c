import { defineConfig } from 'vitest/config';

/**
 * The e2e tier (test/e2e/) against a local apiserver-peer with `gitops-guard serve` and
 * `gitops-guard controller` started for it: `npm run test:e2e:peer` (see the README).
 */
export default defineConfig({
  test: {
    include: ['test/e2e/**/*.e2e.ts'],
    globalSetup: ['test/e2e/peer/global-setup.ts'],
    testTimeout: 90_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});
