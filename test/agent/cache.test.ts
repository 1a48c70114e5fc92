// The bounded, expiring cache behind the agent's exchanged tokens.
import { describe, expect, it } from 'vitest';
import { ExpiringLruCache } from '../../src/agent/cache.js';

describe('ExpiringLruCache', () => {
  it('forgets entries when they expire', () => {
    const cache = new ExpiringLruCache<string>(10);
    cache.set('a', 'A', 1_000, 0);
    expect(cache.get('a', 999)).toBe('A');
    expect(cache.get('a', 1_000)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('never holds more than its capacity, evicting the least recently used', () => {
    const cache = new ExpiringLruCache<number>(3);
    for (const key of ['a', 'b', 'c']) cache.set(key, 1, 10_000, 0);
    cache.get('a', 1); // a is now the most recently used
    cache.set('d', 1, 10_000, 2);
    expect(cache.size).toBe(3);
    expect(cache.get('b', 3)).toBeUndefined();
    expect(cache.get('a', 3)).toBe(1);
  });

  it('sweeps expired entries before evicting live ones', () => {
    const cache = new ExpiringLruCache<number>(3);
    cache.set('live', 1, 10_000, 0);
    cache.set('stale1', 1, 100, 0);
    cache.set('stale2', 1, 100, 0);
    cache.set('new', 1, 10_000, 500);
    expect(cache.size).toBe(2);
    expect(cache.get('live', 600)).toBe(1);
  });

  it('does not store what is already expired', () => {
    const cache = new ExpiringLruCache<number>(3);
    cache.set('a', 1, 100, 100);
    expect(cache.size).toBe(0);
  });
});
