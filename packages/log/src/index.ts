// Structured JSON logs, one object per line on stdout. Small on purpose: the hot paths log
// per batch, never per event, and never log event payloads, API keys or secrets.

export type Level = 'debug' | 'info' | 'warn' | 'error';
const LEVELS: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  child(fields: Fields): Logger;
}

export interface LoggerOptions {
  level?: Level;
  /** Where lines go; stdout by default. Tests pass an array sink. */
  write?: (line: string) => void;
}

function serializeError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const out: Record<string, unknown> = { name: err.name, message: err.message };
  const code = (err as { code?: unknown }).code;
  if (code !== undefined) out.code = code;
  if (err.stack) out.stack = err.stack.split('\n').slice(0, 6).join('\n');
  if (err.cause !== undefined) out.cause = serializeError(err.cause);
  return out;
}

function replacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) return serializeError(value);
  return value;
}

class JsonLogger implements Logger {
  constructor(
    private readonly base: Fields,
    private readonly min: number,
    private readonly write: (line: string) => void,
  ) {}

  private emit(level: Level, msg: string, fields?: Fields): void {
    if (LEVELS[level] < this.min) return;
    const line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...this.base, ...fields }, replacer);
    this.write(line + '\n');
  }
  debug(msg: string, fields?: Fields): void { this.emit('debug', msg, fields); }
  info(msg: string, fields?: Fields): void { this.emit('info', msg, fields); }
  warn(msg: string, fields?: Fields): void { this.emit('warn', msg, fields); }
  error(msg: string, fields?: Fields): void { this.emit('error', msg, fields); }
  child(fields: Fields): Logger { return new JsonLogger({ ...this.base, ...fields }, this.min, this.write); }
}

export function isLevel(s: string): s is Level {
  return s in LEVELS;
}

export function createLogger(base: Fields, opts: LoggerOptions = {}): Logger {
  const write = opts.write ?? ((line: string) => void process.stdout.write(line));
  return new JsonLogger(base, LEVELS[opts.level ?? 'info'], write);
}

/** A logger that drops everything: for tests that don't look at logs. */
export const silentLogger: Logger = createLogger({}, { level: 'error', write: () => {} });
