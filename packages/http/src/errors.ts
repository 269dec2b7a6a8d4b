// Errors become HTTP statuses in one table, here, and leave as problem+json
// ({type, title, status, detail, errors: [{field, message}]}).

export interface FieldProblem {
  field: string;
  message: string;
}

/** An error meant for the API client. `code` picks the status (STATUS_BY_CODE). */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly errors: FieldProblem[] = [],
    readonly headers: Record<string, string> = {},
    opts?: { cause?: unknown },
  ) {
    super(message, opts);
  }
}

export type ApiErrorCode = keyof typeof STATUS_BY_CODE;

export const STATUS_BY_CODE = {
  validation_failed: 400,
  malformed_json: 400,
  malformed_msgpack: 400,
  invalid_body: 400,
  too_many_events: 400,
  imprecise_number: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  idempotency_conflict: 409,
  body_too_large: 413,
  unsupported_media_type: 415,
  unprocessable: 422,
  too_many_requests: 429,
  internal: 500,
  unavailable: 503,
} as const;

const TITLES: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  409: 'Conflict', 413: 'Payload Too Large', 415: 'Unsupported Media Type', 422: 'Unprocessable Entity',
  429: 'Too Many Requests', 500: 'Internal Server Error', 503: 'Service Unavailable',
};

export function statusText(status: number): string {
  return TITLES[status] ?? (status < 300 ? 'OK' : 'Error');
}

/** A domain error from a service: anything with a string `code` in the table maps to its status. */
export function problemFor(err: unknown): { status: number; body: Record<string, unknown>; headers: Record<string, string> } {
  const e = err as { code?: unknown; message?: unknown; errors?: unknown; headers?: unknown; field?: unknown; status?: unknown };
  let code = typeof e?.code === 'string' && e.code in STATUS_BY_CODE ? (e.code as ApiErrorCode) : undefined;
  // Domain errors from other packages (money, pg) reuse codes: map the common ones.
  if (!code && typeof e?.code === 'string') {
    if (['invalid_decimal', 'too_many_decimals', 'out_of_range'].includes(e.code)) code = 'validation_failed';
    else if (e.code === 'unique_violation') code = 'conflict';
    else if (e.code === 'nats_unavailable' || e.code === 'unavailable') code = 'unavailable';
  }
  const status = code ? STATUS_BY_CODE[code] : typeof e?.status === 'number' ? e.status : 500;
  const errors = Array.isArray(e?.errors) ? (e.errors as FieldProblem[])
    : typeof e?.field === 'string' ? [{ field: e.field, message: String(e.message) }] : [];
  const detail = status >= 500 && !code ? 'internal error' : String(e?.message ?? 'error');
  return {
    status,
    headers: e?.headers && typeof e.headers === 'object' ? (e.headers as Record<string, string>) : {},
    body: {
      type: `https://drawdown.dev/problems/${code ?? 'internal'}`,
      title: statusText(status),
      status,
      detail,
      ...(errors.length > 0 ? { errors, validation_errors: errors.map((x) => `${x.field}: ${x.message}`) } : {}),
    },
  };
}

/** Collects every problem of one input before failing (STYLE: report every problem at once). */
export class Problems {
  readonly list: FieldProblem[] = [];
  add(field: string, message: string): void {
    this.list.push({ field, message });
  }
  throwIfAny(what = 'request'): void {
    if (this.list.length === 0) return;
    const first = this.list[0]!;
    const more = this.list.length > 1 ? ` (and ${this.list.length - 1} more)` : '';
    throw new ApiError('validation_failed', `invalid ${what}: ${first.field}: ${first.message}${more}`, this.list);
  }
}
