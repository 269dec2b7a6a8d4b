// @drawdown/events: the event schema shared by the ingest edge (validates) and the rater (consumes).
export * from './types';
export { RequestError, BatchDecodeError, type RequestErrorCode } from './errors';
export { customerRef, validateEvents, EXTERNAL_REF_PREFIX } from './validate';
export { decodeBody, mediaTypeOf, SUPPORTED_MEDIA_TYPES } from './decode';
export { encodeBatch, joinBatches, batchLength, decodeBatch, partitionOf, groupByPartition, batchMessageId, sortByRefThenKey, fnv1a32, type EventKey } from './batch';
export { parseTimestamp, formatDuration } from './timestamp';
