// A small bounded cache whose entries expire: least recently used entries go
// first when it is full, and expired ones are swept before anything live is
// evicted. It keeps the agent's memory flat however many callers it serves.

interface Entry<V> {
  value: V;
  /** Milliseconds since the epoch after which the entry is gone. */
  expiresAt: number;
}

export class ExpiringLruCache<V> {
  readonly #entries = new Map<string, Entry<V>>();
  readonly #capacity: number;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('cache capacity must be a positive integer');
    this.#capacity = capacity;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: string, now: number): V | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    this.#entries.delete(key);
    if (entry.expiresAt <= now) return undefined;
    // Re-inserting moves the entry to the young end of the Map's insertion order.
    this.#entries.set(key, entry);
    return entry.value;
  }

  set(key: string, value: V, expiresAt: number, now: number): void {
    this.#entries.delete(key);
    if (expiresAt <= now) return;
    if (this.#entries.size >= this.#capacity) this.#sweep(now);
    while (this.#entries.size >= this.#capacity) {
      const oldest = this.#entries.keys().next();
      if (oldest.done) break;
      this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, { value, expiresAt });
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
  }

  #sweep(now: number): void {
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt <= now) this.#entries.delete(key);
    }
  }
}
