// NATS and JetStream for the services: connection, the streams and KV buckets Drawdown
// uses (created idempotently at start), and their names within a namespace.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, RetentionPolicy, StorageType, DiscardPolicy, type JetStreamClient, type JetStreamManager, type StreamConfig } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { Logger } from '@drawdown/log';

export type { NatsConnection, JetStreamClient, JetStreamManager, KV };
export { headers } from '@nats-io/transport-node';
export { jetstream, jetstreamManager, Kvm };
export { AckPolicy, DeliverPolicy } from '@nats-io/jetstream';

export class NatsUnavailableError extends Error {
  override readonly name = 'NatsUnavailableError';
  readonly code = 'nats_unavailable';
  readonly isRetryable = true;
}

const NANOS_PER_MS = 1_000_000;

export interface Names {
  eventsStream: string;
  /** Subject of partition p is `${eventsSubjectPrefix}.${p}`. */
  eventsSubjectPrefix: string;
  debitsStream: string;
  debitsSubjectPrefix: string;
  notifyStream: string;
  notifySubjectPrefix: string;
  /** Core NATS subject announcing catalog changes (raters reload). */
  catalogSubject: string;
  raterStateBucket: string;
}

export function names(namespace: string): Names {
  const n = (x: string) => (namespace ? `${namespace}_${x}` : x);
  const s = (x: string) => (namespace ? `${namespace}.${x}` : x);
  return {
    eventsStream: n('EVENTS'),
    eventsSubjectPrefix: s('events'),
    debitsStream: n('DEBITS'),
    debitsSubjectPrefix: s('debits'),
    notifyStream: n('NOTIFY'),
    notifySubjectPrefix: s('notify'),
    catalogSubject: s('catalog.changed'),
    raterStateBucket: n('rater_state'),
  };
}

export async function connectNats(url: string, name: string, log: Logger): Promise<NatsConnection> {
  try {
    // noAsyncTraces: a request (every JetStream publish is one) does not capture a stack trace up
    // front for its possible failure; that capture was ~6 % of the all-in-one's main thread.
    // Errors keep their messages.
    const nc = await connect({ servers: url.split(',').map((x) => x.trim()), name, maxReconnectAttempts: -1, reconnectTimeWait: 500, noAsyncTraces: true });
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect' || s.type === 'reconnect' || s.type === 'error') log.warn('nats status', { type: s.type });
      }
    })();
    return nc;
  } catch (err) {
    throw new NatsUnavailableError(`cannot connect to NATS at ${url}: ${(err as Error).message}`, { cause: err });
  }
}

export interface StreamSettings {
  /** How long events stay replayable in the EVENTS stream (default 7 days). */
  eventsMaxAgeMs?: number;
  /** JetStream duplicate window for ingest's per-request message ids (default 10 min). */
  eventsDuplicateWindowMs?: number;
}

async function upsertStream(jsm: JetStreamManager, cfg: Partial<StreamConfig> & { name: string }): Promise<void> {
  try {
    await jsm.streams.info(cfg.name);
    await jsm.streams.update(cfg.name, cfg);
  } catch (err) {
    if ((err as { name?: string }).name === 'StreamNotFoundError' || /stream not found/i.test((err as Error).message)) {
      await jsm.streams.add(cfg);
      return;
    }
    throw err;
  }
}

/** Creates or updates the streams and buckets Drawdown uses. Idempotent; safe to run from every process. */
export async function ensureStreams(nc: NatsConnection, n: Names, opts: StreamSettings = {}): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await upsertStream(jsm, {
    name: n.eventsStream,
    subjects: [`${n.eventsSubjectPrefix}.*`],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_age: (opts.eventsMaxAgeMs ?? 7 * 86_400_000) * NANOS_PER_MS,
    duplicate_window: (opts.eventsDuplicateWindowMs ?? 10 * 60_000) * NANOS_PER_MS,
    discard: DiscardPolicy.Old,
  });
  await upsertStream(jsm, {
    name: n.debitsStream,
    subjects: [`${n.debitsSubjectPrefix}.*`],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_age: 7 * 86_400_000 * NANOS_PER_MS,
    // Batch ids repeat only when a rater replays; the ledger dedups by id for good, this is a first line.
    duplicate_window: 60 * 60_000 * NANOS_PER_MS,
  });
  await upsertStream(jsm, {
    name: n.notifyStream,
    subjects: [`${n.notifySubjectPrefix}.>`],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_age: 7 * 86_400_000 * NANOS_PER_MS,
    duplicate_window: 60 * 60_000 * NANOS_PER_MS,
  });
  const kvm = new Kvm(nc);
  await kvm.create(n.raterStateBucket, { history: 1 });
}

/** Deletes a namespace's streams and buckets (tests). */
export async function deleteStreams(nc: NatsConnection, n: Names): Promise<void> {
  const jsm = await jetstreamManager(nc);
  for (const s of [n.eventsStream, n.debitsStream, n.notifyStream, `KV_${n.raterStateBucket}`]) {
    await jsm.streams.delete(s).catch(() => false);
  }
}

export async function openKv(nc: NatsConnection, bucket: string): Promise<KV> {
  return new Kvm(nc).open(bucket);
}

/** Stream sequence of the newest message of an events partition; 0 when it has none. */
export async function lastEventSeq(jsm: JetStreamManager, n: Names, partition: number): Promise<number> {
  try {
    return (await jsm.streams.getMessage(n.eventsStream, { last_by_subj: `${n.eventsSubjectPrefix}.${partition}` }))?.seq ?? 0;
  } catch {
    return 0; // no message on this partition
  }
}
