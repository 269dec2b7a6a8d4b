// A request body to what the publisher needs: per partition, the msgpack payload of the
// request's accepted events and their (customer, key) pairs; plus the rejected events and the
// in-request duplicates for the answer.
import {
  decodeBody, encodeBatch, partitionOf, validateEvents,
  type AcceptedEvent, type EventKey, type IngestLimits, type TimeWindow, type ValidationFailure,
} from '@drawdown/events';

/** One request's accepted events of one partition, encoded once as one msgpack array (encodeBatch). */
export interface Part {
  partition: number;
  payload: Uint8Array;
  events: EventKey[];
}

export interface PreparedRequest {
  parts: Part[];
  failed: ValidationFailure[];
  duplicates: string[];
}

/** decodeBody + validateEvents, grouped by partition, each group encoded once. Throws RequestError (400/415). */
export function prepareRequest(contentType: string | undefined, body: Buffer, window: TimeWindow, limits: IngestLimits, partitions: number): PreparedRequest {
  const result = validateEvents(decodeBody(contentType, body), window, limits);
  const groups = new Map<number, AcceptedEvent[]>();
  for (const e of result.accepted) {
    const p = partitionOf(e.c, partitions);
    const g = groups.get(p);
    if (g) g.push(e);
    else groups.set(p, [e]);
  }
  const parts: Part[] = [];
  for (const [partition, events] of groups) parts.push({ partition, payload: encodeBatch(events), events });
  return { parts, failed: result.failed, duplicates: result.duplicates };
}
