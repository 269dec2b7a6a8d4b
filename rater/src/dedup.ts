// Exact dedup of (customer, idempotency_key), memory side. The recent part of the accept window
// is held as 64-bit fingerprints in typed arrays (bounded, oldest evicted first, ~24 bytes per
// event: see README "Dedup memory"). A fingerprint hit only says "maybe seen": the partition
// confirms hits against ClickHouse, so a hash collision can never drop a new event. A miss is
// exact for events newer than everything evicted; an older event (timestamp <= evictedUpToMs)
// may be a copy of something forgotten, so it is checked against ClickHouse too.

import type { CatalogSnapshot } from '@drawdown/catalog';
import { resolveCustomer } from './pricing/price';

/** Two independent 32-bit hashes of a string (FNV-1a and a multiplicative mix), as one 64-bit fingerprint: read hashHi, hashLo after the call. */
export let hashHi = 0;
export let hashLo = 0;
export function hash64(s: string): void {
  hashLo = 0x811c9dc5;
  hashHi = 0x9747b28c;
  mix(s);
  finish();
}

/** hash64(dedupKey(customerRef, idempotencyKey)) without building the key. */
export function hashKey(customerRef: string, idempotencyKey: string): void {
  hashLo = 0x811c9dc5;
  hashHi = 0x9747b28c;
  mix(customerRef);
  mix('\u0000');
  mix(idempotencyKey);
  finish();
}

function mix(s: string): void {
  let a = hashLo;
  let b = hashHi;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  hashLo = a;
  hashHi = b;
}

function finish(): void {
  const b = Math.imul(hashHi ^ (hashHi >>> 13), 0xc2b2ae35);
  hashHi = (b ^ (b >>> 16)) >>> 0;
  hashLo = hashLo >>> 0;
}

export class DedupMemory {
  private readonly hi: Uint32Array;
  private readonly lo: Uint32Array;
  private readonly ts: Float64Array;
  /** Open-addressing index (linear probing) into the ring: slot value = ring index + 1, 0 = empty. */
  private readonly table: Int32Array;
  private readonly shift: number;
  private readonly mask: number;
  private head = 0;
  private count = 0;
  /** Highest event timestamp among evicted keys: older events may be duplicates we forgot. */
  evictedUpToMs = -Infinity;

  constructor(readonly capacity: number) {
    if (!(capacity >= 1)) throw new RangeError('dedup capacity must be at least 1');
    this.hi = new Uint32Array(capacity);
    this.lo = new Uint32Array(capacity);
    this.ts = new Float64Array(capacity);
    let bits = 1;
    while (1 << bits < capacity * 2) bits++;
    this.table = new Int32Array(1 << bits);
    this.shift = 32 - bits;
    this.mask = (1 << bits) - 1;
  }

  get size(): number {
    return this.count;
  }

  /** Bytes held by the typed arrays (the whole cost: nothing else grows with the key count). */
  get bytes(): number {
    return this.hi.byteLength + this.lo.byteLength + this.ts.byteLength + this.table.byteLength;
  }

  private home(hi: number, lo: number): number {
    return Math.imul(lo ^ Math.imul(hi, 0x27d4eb2d), 0x9e3779b1) >>> this.shift;
  }

  private find(hi: number, lo: number): number {
    let i = this.home(hi, lo);
    for (;;) {
      const v = this.table[i]!;
      if (v === 0) return -1;
      if (this.hi[v - 1] === hi && this.lo[v - 1] === lo) return i;
      i = (i + 1) & this.mask;
    }
  }

  /** Whether the key's fingerprint is held: "maybe seen" (confirm exactly elsewhere). */
  has(key: string): boolean {
    hash64(key);
    return this.find(hashHi, hashLo) >= 0;
  }

  /** `has` for a fingerprint computed elsewhere (hash64, in a pricing worker). */
  hasPrint(hi: number, lo: number): boolean {
    return this.find(hi, lo) >= 0;
  }

  /** Whether a miss for an event at `ts` needs the store check. */
  needsStoreCheck(ts: number): boolean {
    return ts <= this.evictedUpToMs;
  }

  add(key: string, ts: number): void {
    hash64(key);
    this.addPrint(hashHi, hashLo, ts);
  }

  /** `add` for a fingerprint computed elsewhere (hash64). */
  addPrint(hi: number, lo: number, ts: number): void {
    if (this.find(hi, lo) >= 0) return;
    if (this.count === this.capacity) this.evict(this.head);
    else this.count++;
    const r = this.head;
    this.hi[r] = hi;
    this.lo[r] = lo;
    this.ts[r] = ts;
    let i = this.home(hi, lo);
    while (this.table[i] !== 0) i = (i + 1) & this.mask;
    this.table[i] = r + 1;
    this.head = (r + 1) % this.capacity;
  }

  /** Removes ring entry r from the index (backward-shift deletion keeps probe chains intact). */
  private evict(r: number): void {
    if (this.ts[r]! > this.evictedUpToMs) this.evictedUpToMs = this.ts[r]!;
    let i = this.find(this.hi[r]!, this.lo[r]!);
    if (i < 0) return;
    let j = i;
    for (;;) {
      j = (j + 1) & this.mask;
      const v = this.table[j]!;
      if (v === 0) break;
      const k = this.home(this.hi[v - 1]!, this.lo[v - 1]!);
      const stays = i <= j ? i < k && k <= j : i < k || k <= j;
      if (!stays) {
        this.table[i] = v;
        i = j;
      }
    }
    this.table[i] = 0;
  }
}

export const dedupKey = (customerRef: string, idempotencyKey: string) => `${customerRef}\u0000${idempotencyKey}`;

/** The customer id when the snapshot knows the customer, so an event sent by id and by external id dedups alike. */
export function canonicalRef(snapshot: CatalogSnapshot, ref: string): string {
  return resolveCustomer(snapshot, ref)?.id ?? ref;
}

/** Key fingerprints (hash64 of dedupKey) with the events' timestamps, index by index. */
export interface KeyPrints {
  hi: ArrayLike<number>;
  lo: ArrayLike<number>;
  t: ArrayLike<number>;
}
