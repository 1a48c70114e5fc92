import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

// Unit tests beside pure modules' names, end-to-end tests on real servers on
// ephemeral loopback ports. End-to-end tests spawn the built CLI (dist/), so
// `npm test` builds first.
// Two test files at a time at least: vitest's default (one fewer than the
// cores) runs them one by one on a two-core machine, where most end-to-end
// files spend their time waiting on servers they spawned and on Chromium
// (the whole suite: 767 s one at a time, 449 s two at a time, 466 s three at
// a time, measured on a quiet two-core machine at c0a8cba). Since then the
// suite has grown into more files that wait (signals, grace windows, request
// timeouts, servers stopped on purpose: refresh-interrupted.test.ts alone
// waits 170 s on 24 s of CPU), so three at a time: a file that waits no
// longer holds one of only two places.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/delegate-on-path.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    maxWorkers: Math.max(3, availableParallelism() - 1),
  },
});
