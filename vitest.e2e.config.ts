import { defineConfig } from 'vitest/config';

/** The opt-in tier against a real cluster (KUBECONFIG); see test/e2e/. */
export default defineConfig({
  test: {
    include: ['test/e2e/**/*.e2e.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});
