// Counting failed sign-in attempts per account and per address, in memory:
// a sliding window that blocks further attempts once the limit is reached.
// Bounded: keys with no recent failures are dropped.

export interface RateLimitRule {
  limit: number;
  windowMs: number;
}

export class FailureCounter {
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly rule: RateLimitRule,
    private readonly now: () => number,
    private readonly maxKeys = 10_000,
  ) {}

  /** Milliseconds until `key` may try again, or 0 when it may now. */
  retryAfterMs(key: string): number {
    const recent = this.recent(key);
    if (recent.length < this.rule.limit) return 0;
    return recent[recent.length - this.rule.limit]! + this.rule.windowMs - this.now();
  }

  fail(key: string): void {
    const recent = this.recent(key);
    recent.push(this.now());
    this.failures.set(key, recent);
    if (this.failures.size > this.maxKeys) this.sweep();
  }

  succeed(key: string): void {
    this.failures.delete(key);
  }

  /** Takes back the latest failure of `key`: an attempt counted before its outcome was known, that succeeded. */
  forgiveLatest(key: string): void {
    const recent = this.failures.get(key);
    if (!recent || recent.length === 0) return;
    recent.pop();
    if (recent.length === 0) this.failures.delete(key);
  }

  private recent(key: string): number[] {
    const cutoff = this.now() - this.rule.windowMs;
    return (this.failures.get(key) ?? []).filter((t) => t > cutoff);
  }

  private sweep(): void {
    for (const key of [...this.failures.keys()]) {
      if (this.recent(key).length === 0) this.failures.delete(key);
    }
    // Still too many: forget the oldest keys rather than grow without bound.
    const excess = this.failures.size - this.maxKeys;
    if (excess > 0) [...this.failures.keys()].slice(0, excess).forEach((k) => this.failures.delete(k));
  }
}
