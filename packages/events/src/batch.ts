// The JetStream side: batches on the wire, partitioning, and message ids for whole-request retries.

import { createHash } from 'node:crypto';
import { Packr } from 'msgpackr';
import { isPlainObject } from './describe';
import { BatchDecodeError } from './errors';
import type { AcceptedEvent } from './types';

// Plain, portable msgpack: records would need structure state shared by every publisher and consumer.
const packr = new Packr({ useRecords: false });

// encodeBatch writes the bytes msgpackr's pack (useRecords: false) writes for an array of
// AcceptedEvent, without its generic walk of every value: the ingest edge encodes every event
// it accepts (batch.test.ts compares the two on generated events).

/**
 * Payloads are written one after another into a shared buffer and returned as views of it; a
 * payload that does not fit moves to a new buffer. No part of a buffer is written twice, so a
 * payload stays valid while its publish is in flight (msgpackr's Packr works the same way).
 */
const POOL_BYTES = 256 * 1024;
let pool: Buffer = Buffer.allocUnsafe(POOL_BYTES);
let poolAt = 0;

interface Writer {
  b: Buffer;
  /** Where this payload starts in b. */
  start: number;
  at: number;
}

function room(w: Writer, more: number): void {
  if (w.at + more <= w.b.length) return;
  const used = w.at - w.start;
  const next = Buffer.allocUnsafe(Math.max(POOL_BYTES, 2 * (used + more)));
  w.b.copy(next, 0, w.start, w.at);
  w.b = next;
  w.start = 0;
  w.at = used;
}

const f64 = new Float64Array(1);
const f64Bytes = new Uint8Array(f64.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function writeNumber(w: Writer, v: number): void {
  room(w, 9);
  const b = w.b;
  const at = w.at;
  if (v >>> 0 === v) {
    if (v < 0x80) {
      b[at] = v;
      w.at = at + 1;
    } else if (v < 0x100) {
      b[at] = 0xcc;
      b[at + 1] = v;
      w.at = at + 2;
    } else if (v < 0x10000) {
      b[at] = 0xcd;
      b[at + 1] = v >>> 8;
      b[at + 2] = v & 0xff;
      w.at = at + 3;
    } else {
      b[at] = 0xce;
      b[at + 1] = v >>> 24;
      b[at + 2] = (v >>> 16) & 0xff;
      b[at + 3] = (v >>> 8) & 0xff;
      b[at + 4] = v & 0xff;
      w.at = at + 5;
    }
  } else if (v >> 0 === v) {
    if (v >= -0x20) {
      b[at] = 0x100 + v;
      w.at = at + 1;
    } else if (v >= -0x80) {
      b[at] = 0xd0;
      b[at + 1] = v + 0x100;
      w.at = at + 2;
    } else if (v >= -0x8000) {
      b[at] = 0xd1;
      b[at + 1] = (v >> 8) & 0xff;
      b[at + 2] = v & 0xff;
      w.at = at + 3;
    } else {
      b[at] = 0xd2;
      b[at + 1] = (v >>> 24) & 0xff;
      b[at + 2] = (v >>> 16) & 0xff;
      b[at + 3] = (v >>> 8) & 0xff;
      b[at + 4] = v & 0xff;
      w.at = at + 5;
    }
  } else {
    // Big-endian float64 (timestamps in ms are past 32 bits): the bytes of a little- or big-endian view.
    f64[0] = v;
    b[at] = 0xcb;
    if (LITTLE_ENDIAN) for (let i = 0; i < 8; i++) b[at + 1 + i] = f64Bytes[7 - i]!;
    else for (let i = 0; i < 8; i++) b[at + 1 + i] = f64Bytes[i]!;
    w.at = at + 9;
  }
}

function writeString(w: Writer, s: string): void {
  const n = s.length;
  room(w, 5 + n * 3);
  const b = w.b;
  const at = w.at;
  // Short strings as msgpackr writes them (by hand: a lone surrogate as its own 3 bytes), the
  // header sized by the byte length; longer ones through Buffer's UTF-8 encoder, as msgpackr.
  if (n < 0x40) {
    const head = n < 0x20 ? 1 : 2;
    let p = at + head;
    for (let i = 0; i < n; i++) {
      let c = s.charCodeAt(i);
      if (c < 0x80) b[p++] = c;
      else if (c < 0x800) {
        b[p++] = (c >> 6) | 0xc0;
        b[p++] = (c & 0x3f) | 0x80;
      } else {
        const d = s.charCodeAt(i + 1);
        if ((c & 0xfc00) === 0xd800 && (d & 0xfc00) === 0xdc00) {
          c = 0x10000 + ((c & 0x03ff) << 10) + (d & 0x03ff);
          i++;
          b[p++] = (c >> 18) | 0xf0;
          b[p++] = ((c >> 12) & 0x3f) | 0x80;
          b[p++] = ((c >> 6) & 0x3f) | 0x80;
          b[p++] = (c & 0x3f) | 0x80;
        } else {
          b[p++] = (c >> 12) | 0xe0;
          b[p++] = ((c >> 6) & 0x3f) | 0x80;
          b[p++] = (c & 0x3f) | 0x80;
        }
      }
    }
    // UTF-8 never has fewer bytes than UTF-16 units: only a fixstr can need the larger header.
    const len = p - at - head;
    if (len < 0x20) {
      b[at] = 0xa0 | len;
      w.at = at + 1 + len;
      return;
    }
    if (head === 1) b.copyWithin(at + 2, at + 1, p);
    b[at] = 0xd9;
    b[at + 1] = len;
    w.at = at + 2 + len;
    return;
  }
  // Written after a header sized by the UTF-16 length, moved if the byte length needs another.
  const head = n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
  const len = b.write(s, at + head, 'utf8');
  const size = len < 0x100 ? 2 : len < 0x10000 ? 3 : 5;
  if (size !== head) b.copyWithin(at + size, at + head, at + head + len);
  if (size === 2) {
    b[at] = 0xd9;
    b[at + 1] = len;
  } else if (size === 3) {
    b[at] = 0xda;
    b.writeUInt16BE(len, at + 1);
  } else {
    b[at] = 0xdb;
    b.writeUInt32BE(len, at + 1);
  }
  w.at = at + size + len;
}

/** A one-letter key of an accepted event (fixstr of 1). */
function writeKey(w: Writer, c: number): void {
  room(w, 2);
  w.b[w.at++] = 0xa1;
  w.b[w.at++] = c;
}

/** One JetStream message payload: msgpack of an array of AcceptedEvent. */
export function encodeBatch(events: AcceptedEvent[]): Uint8Array {
  const n = events.length;
  const w: Writer = { b: pool, start: poolAt, at: poolAt };
  room(w, 5);
  if (n < 0x10) w.b[w.at++] = 0x90 | n;
  else if (n < 0x10000) {
    w.b[w.at] = 0xdc;
    w.b.writeUInt16BE(n, w.at + 1);
    w.at += 3;
  } else {
    w.b[w.at] = 0xdd;
    w.b.writeUInt32BE(n, w.at + 1);
    w.at += 5;
  }
  for (let i = 0; i < n; i++) {
    const e = events[i]!;
    // An object is a map16 in msgpackr, keys in the object's order: k, c, n, t, p, r.
    room(w, 3);
    w.b[w.at++] = 0xde;
    w.b[w.at++] = 0;
    w.b[w.at++] = 6;
    writeKey(w, 0x6b);
    writeString(w, e.k);
    writeKey(w, 0x63);
    writeString(w, e.c);
    writeKey(w, 0x6e);
    writeString(w, e.n);
    writeKey(w, 0x74);
    writeNumber(w, e.t);
    writeKey(w, 0x70);
    room(w, 3);
    const head = w.at - w.start; // relative: the payload may move to a larger buffer
    w.at += 3;
    let count = 0;
    const p = e.p;
    for (const key in p) {
      count++;
      writeString(w, key);
      const v = p[key];
      if (typeof v === 'string') writeString(w, v);
      else if (typeof v === 'number') writeNumber(w, v);
      else {
        room(w, 1);
        w.b[w.at++] = v === null ? 0xc0 : v ? 0xc3 : 0xc2;
      }
    }
    w.b[w.start + head] = 0xde;
    w.b[w.start + head + 1] = count >> 8;
    w.b[w.start + head + 2] = count & 0xff;
    writeKey(w, 0x72);
    writeNumber(w, e.r);
  }
  pool = w.b;
  poolAt = w.at;
  return w.b.subarray(w.start, w.at);
}

/** Elements in, and header length of, a msgpack array at the start of `b`; undefined if `b` does not start with one. */
function arrayHeader(b: Uint8Array): { count: number; head: number } | undefined {
  const c = b[0];
  if (c === undefined) return undefined;
  if (c >= 0x90 && c <= 0x9f) return { count: c & 0x0f, head: 1 };
  if (c === 0xdc && b.length >= 3) return { count: (b[1]! << 8) | b[2]!, head: 3 };
  if (c === 0xdd && b.length >= 5) return { count: ((b[1]! << 24) | (b[2]! << 16) | (b[3]! << 8) | b[4]!) >>> 0, head: 5 };
  return undefined;
}

/** Events in a payload written by encodeBatch, from its header alone (0 when it is not a msgpack array). */
export function batchLength(payload: Uint8Array): number {
  return arrayHeader(payload)?.count ?? 0;
}

/**
 * One payload holding the events of several payloads written by encodeBatch, in order: the same
 * bytes as encodeBatch of the concatenated lists, without encoding the events again.
 */
export function joinBatches(batches: readonly Uint8Array[]): Uint8Array {
  if (batches.length === 1) return batches[0]!;
  let count = 0;
  let bytes = 0;
  const heads: number[] = [];
  for (const b of batches) {
    const h = arrayHeader(b);
    if (h === undefined) throw new TypeError('joinBatches: a payload is not a msgpack array (not written by encodeBatch)');
    count += h.count;
    bytes += b.length - h.head;
    heads.push(h.head);
  }
  const head = count < 16 ? 1 : count < 0x10000 ? 3 : 5;
  const out = Buffer.allocUnsafe(head + bytes);
  if (head === 1) out[0] = 0x90 | count;
  else if (head === 3) {
    out[0] = 0xdc;
    out.writeUInt16BE(count, 1);
  } else {
    out[0] = 0xdd;
    out.writeUInt32BE(count, 1);
  }
  let at = head;
  for (let i = 0; i < batches.length; i++) {
    const b = batches[i]!;
    out.set(b.subarray(heads[i]!), at);
    at += b.length - heads[i]!;
  }
  return out;
}

function fail(message: string, cause?: unknown): never {
  throw new BatchDecodeError(message, cause === undefined ? undefined : { cause });
}

/** Decodes a payload written by encodeBatch, checking the shape of every event (not property values). */
export function decodeBatch(payload: Uint8Array): AcceptedEvent[] {
  let value: unknown;
  try {
    value = packr.unpack(payload);
  } catch (cause) {
    fail(`event batch: not msgpack (${(cause as Error).message.slice(0, 100)})`, cause);
  }
  if (!Array.isArray(value)) fail('event batch: expected an array of events');
  for (let i = 0; i < value.length; i++) {
    const e: unknown = value[i];
    if (
      !isPlainObject(e) ||
      typeof e.k !== 'string' ||
      typeof e.c !== 'string' ||
      typeof e.n !== 'string' ||
      typeof e.t !== 'number' ||
      typeof e.r !== 'number' ||
      !isPlainObject(e.p)
    ) {
      fail(`event batch: element ${i} is not an accepted event`);
    }
  }
  return value as AcceptedEvent[];
}

/** FNV-1a, 32 bits, over the UTF-8 encoding of `s` (lone surrogates as U+FFFD, like TextEncoder). */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      h = Math.imul(h ^ c, 0x01000193);
      continue;
    }
    if (c < 0x800) {
      h = Math.imul(h ^ (0xc0 | (c >> 6)), 0x01000193);
      h = Math.imul(h ^ (0x80 | (c & 0x3f)), 0x01000193);
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = s.charCodeAt(i + 1);
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
        i++;
        h = Math.imul(h ^ (0xf0 | (cp >> 18)), 0x01000193);
        h = Math.imul(h ^ (0x80 | ((cp >> 12) & 0x3f)), 0x01000193);
        h = Math.imul(h ^ (0x80 | ((cp >> 6) & 0x3f)), 0x01000193);
        h = Math.imul(h ^ (0x80 | (cp & 0x3f)), 0x01000193);
        continue;
      }
      c = 0xfffd;
    }
    h = Math.imul(h ^ (0xe0 | (c >> 12)), 0x01000193);
    h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), 0x01000193);
    h = Math.imul(h ^ (0x80 | (c & 0x3f)), 0x01000193);
  }
  return h >>> 0;
}

/** The partition of a customer: FNV-1a 32 of its ref, mod `partitions`. Fixed for the life of a deployment. */
export function partitionOf(customerRef: string, partitions: number): number {
  if (!Number.isInteger(partitions) || partitions < 1) {
    throw new RangeError(`partitions must be a positive integer, got ${partitions}`);
  }
  return fnv1a32(customerRef) % partitions;
}

/** Accepted events by partition, each list in request order. */
export function groupByPartition(events: AcceptedEvent[], partitions: number): Map<number, AcceptedEvent[]> {
  const out = new Map<number, AcceptedEvent[]>();
  for (const e of events) {
    const p = partitionOf(e.c, partitions);
    const list = out.get(p);
    if (list === undefined) out.set(p, [e]);
    else list.push(e);
  }
  return out;
}

/** What a message id is computed over: an event's customer ref and idempotency_key. */
export type EventKey = Pick<AcceptedEvent, 'c' | 'k'>;

function byRefThenKey(a: EventKey, b: EventKey): number {
  if (a.c !== b.c) return a.c < b.c ? -1 : 1;
  return a.k < b.k ? -1 : a.k > b.k ? 1 : 0;
}

/** A sort key holds an event's index in its low bits: messages up to this many events take the fast path. */
const INDEX_SPAN = 2 ** 21;
/** Code units of the ref, after the prefix every ref of the message shares, in a sort key: 8 bits each. */
const KEY_UNITS = 4;
let sortKeys = new Float64Array(1024);

/** Insertion sort of a[from, to) by byRefThenKey (runs of equal sort keys, mostly a few events). */
function sortRun(a: EventKey[], from: number, to: number): void {
  if (to - from > 16) {
    const s = a.slice(from, to).sort(byRefThenKey);
    for (let i = 0; i < s.length; i++) a[from + i] = s[i]!;
    return;
  }
  for (let i = from + 1; i < to; i++) {
    const x = a[i]!;
    let j = i - 1;
    while (j >= from && byRefThenKey(a[j]!, x) > 0) {
      a[j + 1] = a[j]!;
      j--;
    }
    a[j + 1] = x;
  }
}

/**
 * `events` sorted by byRefThenKey (a new array), the same order as `events.slice().sort(byRefThenKey)`
 * at about 40 % of its cost on a message of 450 events: a comparator call per comparison is most of
 * a JavaScript sort's cost. Each event gets a number, the 4 code units of its ref that follow the
 * prefix all refs share (each as unit + 1, 0 past the end; a unit above 253 counts as 255 and
 * the units after it as 0), times 2^21, plus its index; a typed array sorts those numbers
 * natively. A ref that sorts before another never gets a larger number (a shorter ref, a smaller
 * unit, or units that share 255), so only events with equal numbers can be out of order: those
 * runs are sorted by the comparator.
 */
export function sortByRefThenKey(events: readonly EventKey[]): EventKey[] {
  const n = events.length;
  if (n < 8 || n >= INDEX_SPAN) return events.slice().sort(byRefThenKey);
  const c0 = events[0]!.c;
  let shared = c0.length;
  let prefix = c0;
  for (let i = 1; i < n; i++) {
    const c = events[i]!.c;
    if (c.startsWith(prefix)) continue;
    const m = Math.min(shared, c.length);
    let j = 0;
    while (j < m && c.charCodeAt(j) === c0.charCodeAt(j)) j++;
    shared = j;
    prefix = c0.slice(0, shared);
  }
  if (sortKeys.length < n) sortKeys = new Float64Array(Math.max(n, 2 * sortKeys.length));
  for (let i = 0; i < n; i++) {
    const c = events[i]!.c;
    const len = c.length;
    let key = 0;
    let j = shared;
    for (; j < shared + KEY_UNITS; j++) {
      if (j >= len) {
        key *= 256;
        continue;
      }
      const u = c.charCodeAt(j) + 1;
      if (u < 255) key = key * 256 + u;
      else {
        // Units above 253 share 255: what follows one says nothing about the order.
        key = key * 256 + 255;
        j++;
        break;
      }
    }
    for (; j < shared + KEY_UNITS; j++) key *= 256;
    sortKeys[i] = key * INDEX_SPAN + i;
  }
  const sorted = sortKeys.subarray(0, n).sort();
  const out: EventKey[] = new Array<EventKey>(n);
  let runStart = 0;
  let runKey = -1;
  for (let j = 0; j < n; j++) {
    const f = sorted[j]!;
    const key = Math.floor(f / INDEX_SPAN);
    out[j] = events[f - key * INDEX_SPAN]!;
    if (key !== runKey) {
      if (j - runStart > 1) sortRun(out, runStart, j);
      runStart = j;
      runKey = key;
    }
  }
  if (n - runStart > 1) sortRun(out, runStart, n);
  return out;
}

/**
 * JetStream message id of one partition batch of one request: sha256 (hex, first 32 characters) over the
 * partition and the sorted (customer ref, idempotency_key) pairs, so a whole-request retry gets the same ids
 * whatever the event order. Lengths are hashed before each string: refs and keys may contain any character.
 */
export function batchMessageId(partition: number, events: readonly EventKey[]): string {
  const sorted = sortByRefThenKey(events);
  // One string, one update: a third faster than an update per event.
  let text = `drawdown.events.v1\n${partition}\n`;
  for (const e of sorted) text += `${e.c.length}:${e.c}${e.k.length}:${e.k}`;
  return createHash('sha256').update(text).digest('hex').slice(0, 32);
}
