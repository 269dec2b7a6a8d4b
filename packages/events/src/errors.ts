export type RequestErrorCode =
  | 'malformed_json'
  | 'malformed_msgpack'
  | 'invalid_body'
  | 'too_many_events'
  | 'unsupported_media_type'
  | 'body_too_large';

function defaultStatus(code: RequestErrorCode): number {
  if (code === 'body_too_large') return 413;
  if (code === 'unsupported_media_type') return 415;
  return 400;
}

/** A whole request is unusable; no event of it is accepted. The edge answers `status` with `message`. */
export class RequestError extends Error {
  override readonly name = 'RequestError';
  readonly status: number;
  constructor(
    readonly code: RequestErrorCode,
    message: string,
    status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.status = status ?? defaultStatus(code);
  }
}

/** A JetStream payload is not a batch of accepted events: a bug or a foreign publisher, never a client error. */
export class BatchDecodeError extends Error {
  override readonly name = 'BatchDecodeError';
  readonly code = 'invalid_batch';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
