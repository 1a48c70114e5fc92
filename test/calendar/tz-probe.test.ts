// Prints the probe results (support/tz-probe.ts) on one line starting with
// TZPROBE:, so that tz-independence.test.ts can run this file under several
// process time zones and compare what each prints.
import { expect, it } from 'vitest';
import { probe } from './support/tz-probe.js';

it('computes the probe', () => {
  const result = JSON.stringify(probe());
  expect(result.length).toBeGreaterThan(100);
  console.log(`TZPROBE:${result}`);
});
