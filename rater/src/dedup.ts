// Exact dedup of (customer, idempotency_key). The recent part of the accept window is held
// in memory (bounded, oldest evicted first); a key that misses memory but whose timestamp is
// not newer than the newest evicted one may have been seen earlier, so it is checked against
// ClickHouse, which holds every event the rater ever committed.

export class DedupMemory {
  private readonly seen = new Map<string, number>();
  /** Highest event timestamp among evicted keys: older events may be duplicates we forgot. */
  evictedUpToMs = -Infinity;
  constructor(readonly capacity: number) {}

  get size(): number {
    return this.seen.size;
  }

  has(key: string): boolean {
    return this.seen.has(key);
  }

  /** Whether a miss for an event at `ts` needs the ClickHouse check. */
  needsStoreCheck(ts: number): boolean {
    return ts <= this.evictedUpToMs;
  }

  add(key: string, ts: number): void {
    this.seen.set(key, ts);
    while (this.seen.size > this.capacity) {
      const first = this.seen.entries().next().value as [string, number];
      this.seen.delete(first[0]);
      if (first[1] > this.evictedUpToMs) this.evictedUpToMs = first[1];
    }
  }
}

export const dedupKey = (customerRef: string, idempotencyKey: string) => `${customerRef}\u0000${idempotencyKey}`;
