// Measures the memory cost per dedup fingerprint held (DedupMemory), against the naive
// Map<string, number> of full keys it replaced. Run: node --expose-gc --import tsx rater/scripts/dedup-memory.ts [events]
import { DedupMemory, dedupKey } from '../src/dedup';

const N = Number(process.argv[2] ?? 1_000_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

function used(): number {
  gc!();
  gc!();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

// Realistic keys: a 26-char customer id and a 36-char UUID-like idempotency key.
const key = (i: number) => dedupKey(`cus_${String(i % 50_000).padStart(22, '0')}`, `${i.toString(16).padStart(8, '0')}-7f3a-4c2b-9d1e-${String(i).padStart(12, '0')}`);

const base = used();
const mem = new DedupMemory(N);
for (let i = 0; i < N; i++) mem.add(key(i), 1_764_000_000_000 + i);
const compact = used() - base;
let hits = 0;
for (let i = 0; i < N; i += 1000) if (mem.has(key(i))) hits++;
if (hits !== Math.ceil(N / 1000)) throw new Error('lookup failed');

const base2 = used();
const naive = new Map<string, number>();
for (let i = 0; i < N; i++) naive.set(key(i), 1_764_000_000_000 + i);
const full = used() - base2;

console.log(JSON.stringify({
  events: N,
  fingerprintBytesPerEvent: +(compact / N).toFixed(1),
  typedArrayBytesPerEvent: +(mem.bytes / N).toFixed(1),
  fullKeyMapBytesPerEvent: +(full / N).toFixed(1),
  node: process.version,
}));
void naive.size;
