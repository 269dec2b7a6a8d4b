// The JetStream side of the edge: one open message per partition, shared by concurrent
// requests. A request's events of a partition join the partition's open message; the message
// is published when its linger expires or it is full, and every request with events in it
// learns the outcome of that one publish (ack, duplicate, or failure).
import { batchMessageId, encodeBatch, joinBatches, type AcceptedEvent } from '@drawdown/events';
import type { JetStreamClient } from '@drawdown/nats';

export interface PublisherOptions {
  js: JetStreamClient;
  /** `events` (namespaced): messages go to `<prefix>.<partition>`. */
  subjectPrefix: string;
  /** How long an open message waits for more requests; 0 publishes each request's part at once. */
  lingerMs: number;
  /** A message is published once it holds this many events (a request's part is never split). */
  maxEvents: number;
  /** ... or this many payload bytes. */
  maxBytes: number;
  /** Longest wait for the ack of one message. */
  timeoutMs: number;
  /** Called once per message, acked or not. */
  onSettled?: (m: { events: number; bytes: number; seconds: number; error?: Error }) => void;
}

/** What a request learns about the message that carried its events of one partition. */
export interface MessageOutcome {
  /** JetStream already held a message with this id: nothing was stored. */
  duplicate: boolean;
}

interface OpenMessage {
  partition: number;
  parts: Uint8Array[];
  events: AcceptedEvent[];
  bytes: number;
  outcome: Promise<MessageOutcome>;
  resolve: (o: MessageOutcome) => void;
  reject: (err: Error) => void;
}

export interface Publisher {
  /**
   * Adds one request's accepted events of one partition to the partition's open message.
   * Settles when JetStream acknowledged (or refused, or did not answer in time) the message
   * that carries them; a rejection means none of that message's events may be acknowledged.
   */
  add(partition: number, events: AcceptedEvent[]): Promise<MessageOutcome>;
  /** Messages published whose ack is awaited. */
  inflightMessages(): number;
}

export function createPublisher(opts: PublisherOptions): Publisher {
  const open = new Map<number, OpenMessage>();
  let inflight = 0;
  // One timer for every partition: the messages opened in one linger window are published
  // together (one socket write for all of them), so a message waits at most lingerMs.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const publishOpen = (): void => {
    timer = undefined;
    for (const m of open.values()) publish(m);
  };

  const publish = (m: OpenMessage): void => {
    if (open.get(m.partition) === m) open.delete(m.partition);
    const data = joinBatches(m.parts);
    const t0 = performance.now();
    inflight++;
    // Deterministic over the message's content: re-publishing the same events to the same
    // partition is answered as a duplicate by JetStream.
    opts.js
      .publish(`${opts.subjectPrefix}.${m.partition}`, data, { msgID: batchMessageId(m.partition, m.events), timeout: opts.timeoutMs })
      .then(
        (ack) => {
          inflight--;
          opts.onSettled?.({ events: m.events.length, bytes: data.length, seconds: (performance.now() - t0) / 1000 });
          m.resolve({ duplicate: ack.duplicate });
        },
        (err: Error) => {
          inflight--;
          opts.onSettled?.({ events: m.events.length, bytes: data.length, seconds: (performance.now() - t0) / 1000, error: err });
          m.reject(err);
        },
      );
  };

  const start = (partition: number): OpenMessage => {
    let resolve!: (o: MessageOutcome) => void;
    let reject!: (err: Error) => void;
    const outcome = new Promise<MessageOutcome>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const m: OpenMessage = { partition, parts: [], events: [], bytes: 0, outcome, resolve, reject };
    if (opts.lingerMs > 0) {
      open.set(partition, m);
      timer ??= setTimeout(publishOpen, opts.lingerMs);
    }
    return m;
  };

  return {
    add(partition, events) {
      const payload = encodeBatch(events);
      let m = open.get(partition);
      // Would not fit: publish what is open, start a new message with this part.
      if (m !== undefined && (m.events.length + events.length > opts.maxEvents || m.bytes + payload.length > opts.maxBytes)) {
        publish(m);
        m = undefined;
      }
      m ??= start(partition);
      m.parts.push(payload);
      if (m.events.length === 0) m.events = events;
      else {
        if (m.parts.length === 2) m.events = m.events.slice();
        for (const e of events) m.events.push(e);
      }
      m.bytes += payload.length;
      if (opts.lingerMs === 0 || m.events.length >= opts.maxEvents || m.bytes >= opts.maxBytes) publish(m);
      return m.outcome;
    },
    inflightMessages: () => inflight,
  };
}
