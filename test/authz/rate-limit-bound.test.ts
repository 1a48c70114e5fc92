// The sign-in failure counter stays bounded (issue 6, load): it remembers at
// most `maxKeys` accounts or addresses, dropping quiet ones first and then the
// oldest, so a flood of distinct usernames cannot grow the AS's memory.
import { describe, expect, it } from 'vitest';
import { FailureCounter } from '../../src/authz/rate-limit.js';

describe('FailureCounter bound', () => {
  it('forgets the oldest keys beyond maxKeys and keeps blocking the recent ones', () => {
    const t = 1_000_000;
    const counter = new FailureCounter({ limit: 1, windowMs: 60_000 }, () => t, 3);
    counter.fail('first');
    expect(counter.retryAfterMs('first')).toBeGreaterThan(0);
    for (let i = 0; i < 10; i++) counter.fail(`flood-${i}`);
    // Every key is still inside its window, so only the bound can have dropped "first".
    expect(counter.retryAfterMs('first')).toBe(0);
    expect(counter.retryAfterMs('flood-9')).toBeGreaterThan(0);
    const remembered = ['first', ...Array.from({ length: 10 }, (_, i) => `flood-${i}`)].filter((k) => counter.retryAfterMs(k) > 0);
    expect(remembered.length).toBeLessThanOrEqual(3);
  });

  it('drops keys whose failures have left the window before dropping live ones', () => {
    let t = 1_000_000;
    const counter = new FailureCounter({ limit: 1, windowMs: 60_000 }, () => t, 2);
    counter.fail('live'); // the oldest key in the counter…
    t += 1_000;
    counter.fail('quiet');
    t += 49_000;
    counter.fail('live'); // …but with a recent failure
    t += 20_000; // "quiet" has left its window, "live" has not
    counter.fail('new');
    expect(counter.retryAfterMs('live')).toBeGreaterThan(0);
    expect(counter.retryAfterMs('new')).toBeGreaterThan(0);
  });

  it('when it must forget live keys, forgets the one whose last failure is oldest, not the first one it saw', () => {
    let t = 1_000_000;
    const counter = new FailureCounter({ limit: 1, windowMs: 60_000 }, () => t, 2);
    counter.fail('target'); // seen first…
    t += 1_000;
    counter.fail('other');
    t += 1_000;
    counter.fail('target'); // …but failed again since
    t += 1_000;
    counter.fail('flood');
    expect(counter.retryAfterMs('target')).toBeGreaterThan(0);
    expect(counter.retryAfterMs('other')).toBe(0);
  });
});
