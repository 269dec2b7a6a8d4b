// The ingest edge: validates Orb-shaped event batches and publishes the valid events to
// JetStream, grouped by partition, answering only once JetStream acknowledged every batch of
// the request. Never a 2xx for an event that is not durable.
import type { Config } from '@drawdown/config';
import { RequestError, type IngestLimits } from '@drawdown/events';
import { ApiError, type Route, type Request, type Reply } from '@drawdown/http';
import type { Logger } from '@drawdown/log';
import { counter, gauge, histogram } from '@drawdown/metrics';
import { names, type NatsConnection } from '@drawdown/nats';
import { reasonsOf } from './reasons';
import { createPublisher, type MessageOutcome } from './publisher';
import { prepareRequest, type PreparedRequest } from './prepare';

export { reasonOf, reasonsOf, type RejectReason } from './reasons';
export { startIngestEdge, type IngestEdge } from './edge';

const eventsTotal = counter('drawdown_ingest_events_total', 'Events received, by outcome (accepted, duplicate, rejected)', ['outcome']);
const rejectedEvents = counter('drawdown_ingest_events_rejected_total', 'Rejected events by reason (an event with several problems counts once per reason)', ['reason']);
const publishSeconds = histogram('drawdown_ingest_publish_seconds', 'JetStream publish latency of one message, until its ack');
const publishFailures = counter('drawdown_ingest_publish_failures_total', 'JetStream messages not acknowledged (timeout, no stream, disconnected)');
const messageEvents = histogram('drawdown_ingest_message_events', 'Events per JetStream message (requests joined by the linger)', [], [1, 10, 25, 50, 100, 250, 500, 1000, 5000]);
const requestEvents = histogram('drawdown_ingest_request_events', 'Events per ingest request', [], [1, 10, 50, 100, 250, 500, 1000, 5000]);
const rejectedRequests = counter('drawdown_ingest_requests_rejected_total', 'Requests refused as a whole, by reason', ['reason']);
const inflightGauge = gauge('drawdown_ingest_inflight_bytes', 'Request bytes awaiting JetStream acks');

export interface Ingest {
  routes: Route[];
  /** Bytes currently awaiting JetStream acks. */
  inflightBytes(): number;
}

export function ingestLimits(config: Config): IngestLimits {
  return {
    maxEventsPerRequest: config.ingestMaxEvents,
    maxKeyLength: config.ingestMaxKeyLength,
    maxPropertyKeyLength: config.ingestMaxPropertyKeyLength,
    maxStringValueLength: config.ingestMaxStringValueLength,
    maxProperties: config.ingestMaxProperties,
  };
}

export function createIngest(opts: { config: Config; nc: NatsConnection; log: Logger; now?: () => number }): Ingest {
  const { config } = opts;
  const log = opts.log.child({ service: 'ingest' });
  const n = names(config.namespace);
  const now = opts.now ?? Date.now;
  const limits = ingestLimits(config);
  const retryAfter = { 'retry-after': String(config.ingestRetryAfterSeconds) };
  let inflight = 0;
  const publisher = createPublisher({
    nc: opts.nc,
    subjectPrefix: n.eventsSubjectPrefix,
    lingerMs: config.ingestLingerMs,
    maxEvents: config.ingestMessageMaxEvents,
    maxBytes: config.ingestMessageMaxBytes,
    timeoutMs: config.ingestPublishTimeoutMs,
    onSettled: (m) => {
      if (m.error) publishFailures.inc();
      else publishSeconds.observe(m.seconds);
      messageEvents.observe(m.events);
    },
  });

  const refuse = (err: RequestError): never => {
    rejectedRequests.inc({ reason: err.code });
    throw new ApiError(err.code, err.message);
  };

  const handler = async (req: Request): Promise<Reply> => {
    const size = req.body.length;
    // A lone request may always go (so a body under the size limit is never refused forever).
    if (inflight > 0 && inflight + size > config.ingestMaxInflightBytes) {
      rejectedRequests.inc({ reason: 'backpressure' });
      throw new ApiError('unavailable', `ingest has ${inflight} bytes awaiting JetStream acks, over its limit of ${config.ingestMaxInflightBytes}; retry shortly`, [], retryAfter);
    }
    // The SDK sends `backfill_id=` for null: only a real id asks for a backfill.
    const backfill = req.query.get('backfill_id');
    if (backfill !== null && backfill !== '') {
      rejectedRequests.inc({ reason: 'backfill' });
      throw new ApiError('validation_failed', 'backfill_id: backfills are not supported; send events inside the accept window', [{ field: 'backfill_id', message: 'backfills are not supported' }]);
    }
    let result: PreparedRequest;
    const window = { nowMs: now(), graceMs: config.ingestGraceMs, futureMs: config.ingestFutureMs };
    try {
      result = prepareRequest(req.headers['content-type'], req.body, window, limits, config.partitions);
    } catch (err) {
      if (err instanceof RequestError) return refuse(err);
      throw err;
    }
    let accepted = 0;
    for (const part of result.parts) accepted += part.events.length;
    requestEvents.observe(accepted + result.failed.length + result.duplicates.length);
    const debugAsked = req.query.get('debug');
    const wantDebug = debugAsked === 'true' || debugAsked === '1';
    // The key lists are built only when asked for; the counts always.
    const duplicates = wantDebug ? [...result.duplicates] : [];
    const ingested: string[] = [];
    let ingestedCount = 0;
    let duplicateCount = result.duplicates.length;
    inflight += size;
    inflightGauge.set(inflight);
    try {
      // Every message carrying events of this request is awaited (allSettled, not all): the
      // answer waits until JetStream has settled each one, so a 503 never races a message still
      // in flight. A message may carry other requests' events too (the linger joins them).
      const waits: Promise<MessageOutcome>[] = [];
      for (const part of result.parts) waits.push(publisher.add(part.partition, part.payload, part.events));
      const outcomes = await Promise.allSettled(waits);
      let failed = 0;
      let first: Error | undefined;
      for (const o of outcomes) {
        if (o.status === 'rejected') {
          failed++;
          first ??= o.reason as Error;
        }
      }
      if (failed > 0) {
        rejectedRequests.inc({ reason: 'publish_failed' });
        log.warn('publish to JetStream failed', { err: first?.message, batches: result.parts.length, failed, events: accepted });
        throw new ApiError(
          'unavailable',
          'events could not be stored durably (JetStream unavailable or slow); nothing in this request is acknowledged, retry it whole',
          [], retryAfter, { cause: first },
        );
      }
      for (let i = 0; i < outcomes.length; i++) {
        const o = outcomes[i]!;
        if (o.status !== 'fulfilled') continue;
        const events = result.parts[i]!.events;
        if (o.value.duplicate) duplicateCount += events.length;
        else ingestedCount += events.length;
        if (wantDebug) for (const e of events) (o.value.duplicate ? duplicates : ingested).push(e.k);
      }
    } finally {
      inflight -= size;
      inflightGauge.set(inflight);
    }
    eventsTotal.inc({ outcome: 'accepted' }, ingestedCount);
    eventsTotal.inc({ outcome: 'duplicate' }, duplicateCount);
    eventsTotal.inc({ outcome: 'rejected' }, result.failed.length);
    for (const f of result.failed) for (const reason of reasonsOf(f.validation_errors)) rejectedEvents.inc({ reason });
    const debug = wantDebug ? { duplicate: duplicates, ingested } : null;
    return { status: 200, body: { validation_failed: result.failed, debug } };
  };

  return {
    routes: [{ method: 'POST', path: '/v1/ingest', scope: 'ingest', handler, maxBodyBytes: config.ingestMaxBodyBytes, name: 'ingest' }],
    inflightBytes: () => inflight,
  };
}
