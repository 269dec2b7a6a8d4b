// The one error type of this package. Callers (the HTTP layer) map `code` to a status and
// `field` to the offending request field.

export type MoneyErrorCode =
  | 'invalid_decimal'
  | 'too_many_decimals'
  | 'out_of_range'
  | 'division_by_zero'
  | 'imprecise_number';

export class MoneyError extends Error {
  override readonly name = 'MoneyError';
  readonly code: MoneyErrorCode;
  readonly field?: string;

  constructor(code: MoneyErrorCode, message: string, opts?: { field?: string; cause?: unknown }) {
    super(message, opts?.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    if (opts?.field !== undefined) this.field = opts.field;
  }
}

/** "amount: " when a field name is known, "" otherwise. */
export function fieldPrefix(field: string | undefined): string {
  return field === undefined || field === '' ? '' : `${field}: `;
}

/** Quotes user input in a message without letting a huge value flood the log. */
export function shown(input: string): string {
  return input.length <= 48 ? input : `${input.slice(0, 45)}...`;
}
