// Counting failed sign-in attempts per account and per address, in memory:
// a sliding window that blocks further attempts once the limit is reached.
// Bounded: keys with no recent failures are dropped. New clients per source
// are counted the same way, each one a "failure", in several windows at once
// (RateLimits: register.ts, client-documents.ts). Repeated refusals are
// recorded once per key and window (OncePerWindow).

export interface RateLimitRule {
  limit: number;
  windowMs: number;
}

/** One failure, or an attempt counted as one while it is being checked. */
interface Failure {
  at: number;
  /** Which attempt it is, in the order attempts were counted. */
  id: number;
}

export class FailureCounter {
  private readonly failures = new Map<string, Failure[]>();
  private lastId = 0;

  constructor(
    private readonly rule: RateLimitRule,
    private readonly now: () => number,
    private readonly maxKeys = 10_000,
  ) {}

  /** Milliseconds until `key` may try again, or 0 when it may now. */
  retryAfterMs(key: string): number {
    const recent = this.recent(key);
    if (recent.length < this.rule.limit) return 0;
    return recent[recent.length - this.rule.limit]!.at + this.rule.windowMs - this.now();
  }

  /** Counts a failure of `key`; returns the attempt's id, for succeed and forgive. */
  fail(key: string): number {
    const recent = this.recent(key);
    const id = ++this.lastId;
    recent.push({ at: this.now(), id });
    // Moved to the end: when the bound forces keys out, the ones that failed longest ago go first.
    this.failures.delete(key);
    this.failures.set(key, recent);
    if (this.failures.size > this.maxKeys) this.sweep();
    return id;
  }

  /**
   * Attempt `id` of `key` succeeded: its failures up to it are forgotten.
   * Attempts counted after it are still being checked, and stay counted.
   */
  succeed(key: string, id: number): void {
    this.keepOnly(key, (f) => f.id > id);
  }

  /** Attempt `id`, counted before its outcome was known, was no failure after all. */
  forgive(key: string, id: number): void {
    this.keepOnly(key, (f) => f.id !== id);
  }

  private keepOnly(key: string, keep: (f: Failure) => boolean): void {
    const kept = (this.failures.get(key) ?? []).filter(keep);
    if (kept.length > 0) this.failures.set(key, kept);
    else this.failures.delete(key);
  }

  private recent(key: string): Failure[] {
    const cutoff = this.now() - this.rule.windowMs;
    return (this.failures.get(key) ?? []).filter((f) => f.at > cutoff);
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

/**
 * One budget per key kept in several windows at once (300 a minute and 3,000 a day): what is spent counts in every
 * window, and a key waits while any of them is full. No rules: no limit.
 */
export class RateLimits {
  readonly #counters: FailureCounter[];

  constructor(rules: readonly RateLimitRule[], now: () => number, maxKeys?: number) {
    this.#counters = rules.map((rule) => new FailureCounter(rule, now, maxKeys));
  }

  /** Milliseconds until `key` may spend again, or 0 when it may now. */
  retryAfterMs(key: string): number {
    return Math.max(0, ...this.#counters.map((c) => c.retryAfterMs(key)));
  }

  /**
   * Runs `work` counted against `key`: counted before it starts (so that none started in the same turn as a
   * retryAfterMs that let them in gets past the limit), taken back if it fails, so that only what was made counts.
   */
  async spend<T>(key: string, work: () => Promise<T>): Promise<T> {
    const counted = this.#counters.map((c) => c.fail(key));
    try {
      return await work();
    } catch (error) {
      this.#counters.forEach((c, i) => c.forgive(key, counted[i]!));
      throw error;
    }
  }
}

/**
 * At most one of each key in each window: what bounds the audit records of a refusal that its sender can repeat at
 * will (a token exchange refused again, exchange-refusals.ts; an owner sign-in link replayed, owner-login.ts), so
 * that the sender cannot grow the log faster than one record per key per window.
 */
export class OncePerWindow {
  private readonly seen: FailureCounter;

  constructor(windowMs: number, now: () => number) {
    this.seen = new FailureCounter({ limit: 1, windowMs }, now);
  }

  /** Whether `key` is the first of its window; it is counted when it is. */
  first(key: string): boolean {
    if (this.seen.retryAfterMs(key) > 0) return false;
    this.seen.fail(key);
    return true;
  }
}
