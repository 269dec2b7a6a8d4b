import { defineConfig } from 'vitest/config';

// Two levels (see README "Tests"): unit tests sit beside the code and need no services;
// integration tests live in each package's test/ folder and talk to real Postgres,
// NATS JetStream and chDB. Integration files run one at a time: they share those servers.
export default defineConfig({
  test: {
    fileParallelism: false,
    projects: [
      {
        test: {
          name: 'unit',
          include: ['**/src/**/*.test.ts'],
          // Property tests run beside the integration files on a shared 2-core machine: 5 s was too tight.
          testTimeout: 30_000,
          exclude: ['**/node_modules/**'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['**/test/**/*.test.ts'],
          exclude: ['**/node_modules/**'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          globalSetup: ['packages/testkit/src/global-setup.ts'],
        },
      },
    ],
  },
});
