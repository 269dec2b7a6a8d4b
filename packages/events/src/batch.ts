// The JetStream side: batches on the wire, partitioning, and message ids for whole-request retries.

import { createHash } from 'node:crypto';
import { Packr } from 'msgpackr';
import { isPlainObject } from './describe';
import { BatchDecodeError } from './errors';
import type { AcceptedEvent } from './types';

// Plain, portable msgpack: records would need structure state shared by every publisher and consumer.
// Packr never overwrites a buffer it returned, so payloads stay valid while a publish is in flight.
const packr = new Packr({ useRecords: false });

/** One JetStream message payload: msgpack of an array of AcceptedEvent. */
export function encodeBatch(events: AcceptedEvent[]): Uint8Array {
  return packr.pack(events);
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

/**
 * JetStream message id of one partition batch of one request: sha256 (hex, first 32 characters) over the
 * partition and the sorted (customer ref, idempotency_key) pairs, so a whole-request retry gets the same ids
 * whatever the event order. Lengths are hashed before each string: refs and keys may contain any character.
 */
export function batchMessageId(partition: number, events: readonly EventKey[]): string {
  const sorted = events.slice().sort(byRefThenKey);
  // One string, one update: a third faster than an update per event.
  let text = `drawdown.events.v1\n${partition}\n`;
  for (const e of sorted) text += `${e.c.length}:${e.c}${e.k.length}:${e.k}`;
  return createHash('sha256').update(text).digest('hex').slice(0, 32);
}
