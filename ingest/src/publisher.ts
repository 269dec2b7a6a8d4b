// The JetStream side of the edge: one open message per partition, shared by concurrent
// requests. A request's events of a partition join the partition's open message; the message
// is published when its linger expires or it is full, and every request with events in it
// learns the outcome of that one publish (ack, duplicate, or failure).
//
// A JetStream publish is a NATS request: the message goes out with a reply subject and the
// stream answers with a PubAck. The client library's request path builds several Error objects
// (stack traces) and a mux entry per request; here one inbox subscription receives every ack,
// and a message costs one publish, one timer and one small JSON parse.
import { randomBytes } from 'node:crypto';
import { batchMessageId, joinBatches, type EventKey } from '@drawdown/events';
import { headers, type NatsConnection } from '@drawdown/nats';

export interface PublisherOptions {
  nc: NatsConnection;
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
  events: EventKey[];
  bytes: number;
  outcome: Promise<MessageOutcome>;
  resolve: (o: MessageOutcome) => void;
  reject: (err: Error) => void;
}

/** A message JetStream did not store: no ack in time, no stream for the subject, or an error ack. */
export class PublishError extends Error {
  override readonly name = 'PublishError';
}

interface AwaitingAck {
  timer: ReturnType<typeof setTimeout>;
  resolve: (o: MessageOutcome) => void;
  reject: (err: Error) => void;
}

interface PubAck {
  stream?: string;
  seq?: number;
  duplicate?: boolean;
  error?: { code?: number; err_code?: number; description?: string };
}

export interface Publisher {
  /**
   * Adds one request's accepted events of one partition (`payload`: their msgpack array, as
   * encodeBatch writes it) to the partition's open message.
   * Settles when JetStream acknowledged (or refused, or did not answer in time) the message
   * that carries them; a rejection means none of that message's events may be acknowledged.
   */
  add(partition: number, payload: Uint8Array, events: EventKey[]): Promise<MessageOutcome>;
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

  const inbox = `_INBOX.${randomBytes(12).toString('hex')}`;
  const awaiting = new Map<string, AwaitingAck>();
  let nextId = 0;
  const settle = (token: string, err: Error | undefined, outcome?: MessageOutcome): void => {
    const a = awaiting.get(token);
    if (a === undefined) return; // late ack of a message that already timed out
    awaiting.delete(token);
    clearTimeout(a.timer);
    if (err) a.reject(err);
    else a.resolve(outcome!);
  };
  // Lives as long as the connection (a stop drains it after the HTTP server drained).
  opts.nc.subscribe(`${inbox}.*`, {
    callback: (err, msg) => {
      if (err) return; // the subscription itself failed: the awaited acks time out
      const token = msg.subject.slice(inbox.length + 1);
      // No stream listens on the subject: the server answers "no responders" (status 503).
      if (msg.data.length === 0 && msg.headers?.code === 503) {
        settle(token, new PublishError('no JetStream stream stores this subject (no responders)'));
        return;
      }
      let ack: PubAck;
      try {
        ack = msg.json<PubAck>();
      } catch {
        settle(token, new PublishError('JetStream answered with something that is not a publish ack'));
        return;
      }
      if (ack.error) settle(token, new PublishError(`JetStream refused the message: ${ack.error.description ?? 'error'} (${ack.error.code ?? '?'}/${ack.error.err_code ?? '?'})`));
      else if (typeof ack.stream !== 'string' || ack.stream === '') settle(token, new PublishError('JetStream answered with an invalid publish ack'));
      else settle(token, undefined, { duplicate: ack.duplicate === true });
    },
  });

  const send = (subject: string, data: Uint8Array, msgId: string): Promise<MessageOutcome> =>
    new Promise<MessageOutcome>((resolve, reject) => {
      const token = (nextId++).toString(36);
      const timer = setTimeout(
        () => settle(token, new PublishError(`no JetStream ack within ${opts.timeoutMs} ms`)),
        opts.timeoutMs,
      );
      awaiting.set(token, { timer, resolve, reject });
      const h = headers();
      h.set('Nats-Msg-Id', msgId);
      try {
        opts.nc.publish(subject, data, { reply: `${inbox}.${token}`, headers: h });
      } catch (err) {
        settle(token, new PublishError(`publish failed: ${(err as Error).message}`, { cause: err }));
      }
    });

  const publish = (m: OpenMessage): void => {
    if (open.get(m.partition) === m) open.delete(m.partition);
    const data = joinBatches(m.parts);
    const t0 = performance.now();
    inflight++;
    // Deterministic over the message's content: re-publishing the same events to the same
    // partition is answered as a duplicate by JetStream.
    send(`${opts.subjectPrefix}.${m.partition}`, data, batchMessageId(m.partition, m.events)).then(
      (outcome) => {
        inflight--;
        opts.onSettled?.({ events: m.events.length, bytes: data.length, seconds: (performance.now() - t0) / 1000 });
        m.resolve(outcome);
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
    add(partition, payload, events) {
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
