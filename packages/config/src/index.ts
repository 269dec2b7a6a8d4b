// Every setting of every Drawdown service, in one table: name, type, default, doc.
// Read from the environment once at boot, validated, unknown DRAWDOWN_* names rejected
// (a typo must not silently fall back to a default). `drawdown config` prints this table.

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'invalid_config';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

type Kind = 'string' | 'int' | 'bool' | 'duration_ms' | 'url' | 'secret';

interface Setting<K extends Kind = Kind> {
  env: string;
  kind: K;
  default: string;
  doc: string;
  min?: number;
  max?: number;
}

function s<K extends Kind>(env: string, kind: K, def: string, doc: string, range?: { min?: number; max?: number }): Setting<K> {
  return { env, kind, default: def, doc, ...range };
}

/** Defaults as named constants: the embedded all-in-one set-up on one machine. */
export const SETTINGS = {
  // shared
  databaseUrl: s('DATABASE_URL', 'url', 'postgres://postgres@127.0.0.1:5432/drawdown', 'Postgres, the system of record. The database is created if missing.'),
  natsUrl: s('NATS_URL', 'url', 'nats://127.0.0.1:4222', 'NATS server(s) with JetStream, comma-separated.'),
  clickhouseUrl: s('CLICKHOUSE_URL', 'string', '', 'ClickHouse server URL (http://user:pass@host:8123/db). Empty: embedded chDB under DRAWDOWN_DATA_DIR/chdb.'),
  dataDir: s('DRAWDOWN_DATA_DIR', 'string', '.data', 'Directory for embedded state (chDB data, the generated admin key file).'),
  namespace: s('DRAWDOWN_NAMESPACE', 'string', '', 'Prefix for JetStream stream, subject and KV names, so several deployments (or test runs) can share one NATS. Empty for none.'),
  partitions: s('DRAWDOWN_PARTITIONS', 'int', '8', 'Event partitions (hash of customer mod P). Fixed for the life of a deployment.', { min: 1, max: 1024 }),
  logLevel: s('DRAWDOWN_LOG_LEVEL', 'string', 'info', 'debug, info, warn or error.'),
  // http (all-in-one serves ingest and the billing API on one port)
  httpHost: s('DRAWDOWN_HTTP_HOST', 'string', '127.0.0.1', 'Address the HTTP API listens on.'),
  httpPort: s('DRAWDOWN_HTTP_PORT', 'int', '7070', 'Port of the HTTP API (ingest, billing API, /metrics, /healthz, /readyz). 0 picks a free port.', { min: 0, max: 65535 }),
  adminApiKey: s('DRAWDOWN_ADMIN_API_KEY', 'secret', '', 'Admin API key to create on first start. Empty: one is generated and written to DRAWDOWN_DATA_DIR/admin-api-key.'),
  shutdownTimeoutMs: s('DRAWDOWN_SHUTDOWN_TIMEOUT_MS', 'duration_ms', '30000', 'How long a graceful stop waits for in-flight work before giving up.', { min: 0 }),
  // ingest
  ingestGraceMs: s('DRAWDOWN_INGEST_GRACE_MS', 'duration_ms', String(12 * 3600_000), 'Oldest accepted event timestamp, behind now. Also the dedup horizon.', { min: 60_000 }),
  ingestFutureMs: s('DRAWDOWN_INGEST_FUTURE_MS', 'duration_ms', String(3600_000), 'Newest accepted event timestamp, ahead of now.', { min: 0 }),
  ingestMaxBodyBytes: s('DRAWDOWN_INGEST_MAX_BODY_BYTES', 'int', String(4 * 1024 * 1024), 'Largest request body (413 above).', { min: 1024 }),
  ingestMaxEvents: s('DRAWDOWN_INGEST_MAX_EVENTS', 'int', '500', 'Most events in one request.', { min: 1, max: 100_000 }),
  ingestMaxInflightBytes: s('DRAWDOWN_INGEST_MAX_INFLIGHT_BYTES', 'int', String(64 * 1024 * 1024), 'Bytes awaiting a JetStream ack before ingest answers 503 with Retry-After.', { min: 1024 }),
  ingestPublishTimeoutMs: s('DRAWDOWN_INGEST_PUBLISH_TIMEOUT_MS', 'duration_ms', '5000', 'Longest wait for a JetStream ack before the request fails with 503.', { min: 100 }),
  // rater
  raterBatchMaxEvents: s('DRAWDOWN_RATER_BATCH_MAX_EVENTS', 'int', '20000', 'Most events a rater processes as one batch (one ClickHouse insert, one debit batch).', { min: 1, max: 500_000 }),
  raterBatchMaxWaitMs: s('DRAWDOWN_RATER_BATCH_MAX_WAIT_MS', 'duration_ms', '100', 'Longest a rater waits to fill a batch before processing what it has.', { min: 1 }),
  raterWorkers: s('DRAWDOWN_RATER_WORKERS', 'int', '1', 'Pricing worker threads (piscina) per rater process.', { min: 1, max: 64 }),
  raterDedupMemoryEvents: s('DRAWDOWN_RATER_DEDUP_MEMORY_EVENTS', 'int', '2000000', 'Fingerprints held in memory per rater process for exact dedup; older copies are checked against ClickHouse.', { min: 1000 }),
  // ledger
  ledgerBatchMax: s('DRAWDOWN_LEDGER_BATCH_MAX', 'int', '64', 'Most debit batches the ledger applies in one transaction.', { min: 1, max: 10_000 }),
  // catalog (billing API)
  catalogMaxPricesPerPlan: s('DRAWDOWN_CATALOG_MAX_PRICES_PER_PLAN', 'int', '100', 'Most prices (allocations included) in one plan, and most price replacements in one subscription.', { min: 1, max: 10_000 }),
  catalogMaxPriceEntries: s('DRAWDOWN_CATALOG_MAX_PRICE_ENTRIES', 'int', '1000', 'Most tiers of a tiered price, and most matrix values of a matrix price.', { min: 1, max: 100_000 }),
  usageMaxBuckets: s('DRAWDOWN_USAGE_MAX_BUCKETS', 'int', '1000', 'Most buckets (days or billing periods) one subscription usage request answers.', { min: 1, max: 100_000 }),
  customerMaxAdditionalEmails: s('DRAWDOWN_CUSTOMER_MAX_ADDITIONAL_EMAILS', 'int', '50', 'Most invoicing emails (additional_emails) of one customer; Orb allows 50.', { min: 0, max: 1000 }),
} as const satisfies Record<string, Setting>;

type Settings = typeof SETTINGS;
type ValueOf<K extends Kind> = K extends 'int' | 'duration_ms' ? number : K extends 'bool' ? boolean : string;
export type Config = { [P in keyof Settings]: ValueOf<Settings[P]['kind']> };

const KNOWN = new Set<string>(Object.values(SETTINGS).map((x) => x.env));

function parseOne(setting: Setting, raw: string, problems: string[]): string | number | boolean {
  switch (setting.kind) {
    case 'int':
    case 'duration_ms': {
      if (!/^-?\d+$/.test(raw)) {
        problems.push(`${setting.env}: must be an integer${setting.kind === 'duration_ms' ? ' (milliseconds)' : ''}, got "${raw}"`);
        return 0;
      }
      const n = Number(raw);
      if (setting.min !== undefined && n < setting.min) problems.push(`${setting.env}: must be at least ${setting.min}, got ${n}`);
      if (setting.max !== undefined && n > setting.max) problems.push(`${setting.env}: must be at most ${setting.max}, got ${n}`);
      return n;
    }
    case 'bool':
      if (!/^(true|false|1|0)$/.test(raw)) problems.push(`${setting.env}: must be true or false, got "${raw}"`);
      return raw === 'true' || raw === '1';
    case 'url':
      try {
        for (const part of raw.split(',')) new URL(part.trim());
      } catch {
        problems.push(`${setting.env}: not a valid URL: "${raw}"`);
      }
      return raw;
    default:
      return raw;
  }
}

/** Reads every setting from `env`; throws ConfigError listing every problem at once. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const problems: string[] = [];
  for (const name of Object.keys(env)) {
    if (name.startsWith('DRAWDOWN_') && !KNOWN.has(name)) problems.push(`${name}: unknown setting (see \`drawdown config\` for the list)`);
  }
  const out: Record<string, unknown> = {};
  for (const [key, setting] of Object.entries(SETTINGS) as [string, Setting][]) {
    const raw = env[setting.env];
    out[key] = parseOne(setting, raw === undefined || raw === '' ? setting.default : raw, problems);
  }
  const level = out.logLevel as string;
  if (!['debug', 'info', 'warn', 'error'].includes(level)) problems.push(`DRAWDOWN_LOG_LEVEL: must be debug, info, warn or error, got "${level}"`);
  if (problems.length > 0) throw new ConfigError(problems);
  return out as Config;
}

/** The config with secrets and URL passwords masked, for the start-up log line. */
export function redacted(config: Config): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, setting] of Object.entries(SETTINGS) as [keyof Config, Setting][]) {
    const v = config[key];
    if (setting.kind === 'secret') out[key] = v ? '***' : '';
    else if (typeof v === 'string' && /:\/\/[^/]*:[^@/]*@/.test(v)) out[key] = v.replace(/(:\/\/[^:/]*:)[^@/]*@/, '$1***@');
    else out[key] = v;
  }
  return out;
}

/** The settings table as Markdown (env, default, doc), for `drawdown config` and the docs. */
export function settingsTable(): string {
  const rows = Object.values(SETTINGS).map((x: Setting) => `| \`${x.env}\` | \`${x.default}\` | ${x.doc} |`);
  return ['| variable | default | meaning |', '| --- | --- | --- |', ...rows].join('\n');
}

/** Name of a JetStream stream, subject root or KV bucket within the configured namespace. */
export function nsName(config: Pick<Config, 'namespace'>, name: string): string {
  return config.namespace ? `${config.namespace}_${name}` : name;
}
export function nsSubject(config: Pick<Config, 'namespace'>, subject: string): string {
  return config.namespace ? `${config.namespace}.${subject}` : subject;
}
