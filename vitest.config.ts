import { defineConfig } from 'vitest/config';

// Unit tests beside pure modules' names, end-to-end tests on real servers on
// ephemeral loopback ports. End-to-end tests spawn the built CLI (dist/), so
// `npm test` builds first.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
  },
});
