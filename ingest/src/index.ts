// The ingest edge: validates Orb-shaped event batches and publishes the valid events to
// JetStream, grouped by partition, answering only once JetStream acknowledged every batch of
// the request. Never a 2xx for an event that is not durable.
import type { Config } from '@drawdown/config';
import {
  decodeBody, validateEvents, encodeBatch, partitionOf, batchMessageId, RequestError,
  type AcceptedEvent, type IngestLimits, DEFAULT_INGEST_LIMITS,
} from '@drawdown/events';
import { ApiError, type Route, type Request, type Reply } from '@drawdown/http';
import type { Logger } from '@drawdown/log';
import { counter, histogram } from '@drawdown/metrics';
import { jetstream, names, type NatsConnection } from '@drawdown/nats';

const eventsTotal = counter('drawdown_ingest_events_total', 'Events received by outcome', ['outcome']);
const publishSeconds = histogram('drawdown_ingest_publish_seconds', 'JetStream publish latency of one partition batch');
const rejected = counter('drawdown_ingest_requests_rejected_total', 'Requests refused as a whole, by reason', ['reason']);

export interface Ingest {
  routes: Route[];
  /** Bytes currently awaiting JetStream acks. */
  inflightBytes(): number;
}

export function createIngest(opts: { config: Config; nc: NatsConnection; log: Logger; now?: () => number }): Ingest {
  const { config } = opts;
  const log = opts.log.child({ service: 'ingest' });
  const js = jetstream(opts.nc);
  const n = names(config.namespace);
  const now = opts.now ?? Date.now;
  const limits: IngestLimits = { ...DEFAULT_INGEST_LIMITS, maxEventsPerRequest: config.ingestMaxEvents };
  let inflight = 0;

  const handler = async (req: Request): Promise<Reply> => {
    const size = req.body.length;
    if (inflight + size > config.ingestMaxInflightBytes) {
      rejected.inc({ reason: 'backpressure' });
      throw new ApiError('unavailable', 'ingest is over its in-flight limit while JetStream catches up; retry shortly', [], { 'retry-after': '1' });
    }
    let decoded: unknown;
    try {
      decoded = decodeBody(req.headers['content-type'], req.body);
    } catch (err) {
      if (err instanceof RequestError) {
        rejected.inc({ reason: err.code });
        throw new ApiError(err.code, err.message);
      }
      throw err;
    }
    const receivedAt = now();
    let result;
    try {
      result = validateEvents(decoded, { nowMs: receivedAt, graceMs: config.ingestGraceMs, futureMs: config.ingestFutureMs }, limits);
    } catch (err) {
      if (err instanceof RequestError) {
        rejected.inc({ reason: err.code });
        throw new ApiError(err.code, err.message);
      }
      throw err;
    }
    const groups = new Map<number, AcceptedEvent[]>();
    for (const e of result.accepted) {
      const p = partitionOf(e.c, config.partitions);
      const g = groups.get(p);
      if (g) g.push(e);
      else groups.set(p, [e]);
    }
    const duplicates = [...result.duplicates];
    const ingested: string[] = [];
    inflight += size;
    try {
      await Promise.all(
        [...groups].map(async ([p, events]) => {
          const t0 = performance.now();
          const ack = await js.publish(`${n.eventsSubjectPrefix}.${p}`, encodeBatch(events), {
            msgID: batchMessageId(p, events),
            timeout: config.ingestPublishTimeoutMs,
          });
          publishSeconds.observe((performance.now() - t0) / 1000);
          for (const e of events) (ack.duplicate ? duplicates : ingested).push(e.k);
        }),
      );
    } catch (err) {
      rejected.inc({ reason: 'publish_failed' });
      log.warn('publish to JetStream failed', { err: (err as Error).message, events: result.accepted.length });
      throw new ApiError('unavailable', 'events could not be stored durably (JetStream unavailable or slow); nothing in this request is acknowledged, retry it', [], { 'retry-after': '2' }, { cause: err });
    } finally {
      inflight -= size;
    }
    eventsTotal.inc({ outcome: 'accepted' }, ingested.length);
    eventsTotal.inc({ outcome: 'duplicate' }, duplicates.length);
    eventsTotal.inc({ outcome: 'rejected' }, result.failed.length);
    const debug = req.query.get('debug') === 'true' ? { duplicate: duplicates, ingested } : null;
    return { status: 200, body: { validation_failed: result.failed, debug } };
  };

  return {
    routes: [{ method: 'POST', path: '/v1/ingest', scope: 'ingest', handler, maxBodyBytes: config.ingestMaxBodyBytes, name: 'ingest' }],
    inflightBytes: () => inflight,
  };
}
