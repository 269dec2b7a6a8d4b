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
  clickhouseMergeSelectorBase: s('DRAWDOWN_CLICKHOUSE_MERGE_SELECTOR_BASE', 'int', '20', 'How many parts of about one size rated_events collects before ClickHouse merges them (the table setting merge_selector_base, applied at every start; ClickHouse\'s own default is 5). Every merge rewrites its rows: higher lets more parts collect first (fewer rewrites per event, more parts for reads to open), though ClickHouse lowers the base as parts pile up: 50 merged much like 20 over 50 million rows (packages/clickhouse/README.md, "Merges").', { min: 2, max: 1000 }),
  dataDir: s('DRAWDOWN_DATA_DIR', 'string', '.data', 'Directory for embedded state (chDB data, the generated admin key file).'),
  namespace: s('DRAWDOWN_NAMESPACE', 'string', '', 'Prefix for JetStream stream, subject and KV names, so several deployments (or test runs) can share one NATS. Empty for none.'),
  partitions: s('DRAWDOWN_PARTITIONS', 'int', '2', 'Event partitions (hash of customer mod P), each rated in order by one rater at a time. Fixed for the life of a deployment: the rater records it and refuses to start with another value. Every partition\'s batch is one ClickHouse insert, and an embedded chDB runs inserts one at a time, so on one machine few partitions (larger inserts) rate fastest: 2 sustained about 2x the rate of 8 in the all-in-one here (bench/README.md). Choose more (e.g. 16-64) before going live when several rater processes will share the load.', { min: 1, max: 1024 }),
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
  ingestLingerMs: s('DRAWDOWN_INGEST_LINGER_MS', 'duration_ms', '2', 'How long ingest holds a partition\'s JetStream message open for the events of other requests (fewer, larger messages). 0: one message per partition per request.', { min: 0, max: 1000 }),
  ingestMessageMaxEvents: s('DRAWDOWN_INGEST_MESSAGE_MAX_EVENTS', 'int', '1000', 'Most events ingest puts in one JetStream message when it joins requests (one request\'s events of a partition are never split).', { min: 1, max: 1_000_000 }),
  ingestMessageMaxBytes: s('DRAWDOWN_INGEST_MESSAGE_MAX_BYTES', 'int', String(256 * 1024), 'Largest JetStream message ingest builds by joining requests (keep it under the NATS max_payload, 1 MiB by default).', { min: 1024 }),
  ingestMaxKeyLength: s('DRAWDOWN_INGEST_MAX_KEY_LENGTH', 'int', '256', 'Longest idempotency_key, customer_id, external_customer_id and event_name (UTF-16 code units); longer is a validation error of that event.', { min: 16, max: 65_536 }),
  ingestMaxPropertyKeyLength: s('DRAWDOWN_INGEST_MAX_PROPERTY_KEY_LENGTH', 'int', '128', 'Longest property name of an event (UTF-16 code units).', { min: 8, max: 65_536 }),
  ingestMaxStringValueLength: s('DRAWDOWN_INGEST_MAX_STRING_VALUE_LENGTH', 'int', '1024', 'Longest string property value of an event (UTF-16 code units).', { min: 16, max: 1_048_576 }),
  ingestMaxProperties: s('DRAWDOWN_INGEST_MAX_PROPERTIES', 'int', '100', 'Most properties on one event. Properties must be flat (string, number, boolean, null): nested objects and arrays are always refused.', { min: 1, max: 10_000 }),
  ingestThreads: s('DRAWDOWN_INGEST_THREADS', 'int', '2', 'Threads of a standalone ingest edge (`drawdown ingest`), each with its own uWebSockets.js server on the same port (the kernel spreads connections over them), NATS connection, API-key cache and in-flight bound; /metrics shows all threads added up. 2 took 1.2x the events/s of 1 in the quietest runs on the 2-core bench machine (ingest/README.md). The all-in-one (`drawdown start`) always serves ingest on its one thread.', { min: 1, max: 64 }),
  ingestRetryAfterSeconds: s('DRAWDOWN_INGEST_RETRY_AFTER_SECONDS', 'int', '1', 'Retry-After sent with a 503 when ingest is over its in-flight limit or JetStream did not acknowledge.', { min: 1, max: 3600 }),
  apiKeyCacheTtlMs: s('DRAWDOWN_API_KEY_CACHE_TTL_MS', 'duration_ms', '2000', 'How long an edge trusts a cached API key lookup. Revocations are also announced over NATS and drop the cache at once; this bounds the delay if an announcement is lost.', { min: 0, max: 600_000 }),
  apiKeyCacheMaxEntries: s('DRAWDOWN_API_KEY_CACHE_MAX_ENTRIES', 'int', '10000', 'Most API keys (valid or not) an edge caches; the cache is cleared when full.', { min: 1 }),
  // rater
  raterBatchMaxEvents: s('DRAWDOWN_RATER_BATCH_MAX_EVENTS', 'int', '50000', 'Most events a rater processes as one batch (one ClickHouse insert, one debit batch). Below the rater\'s capacity batches are cut sooner, by DRAWDOWN_RATER_BATCH_MAX_WAIT_MS; near it they grow to this size. Larger batches mean fewer inserts and merges (50,000 against 20,000: 12 % less CPU per event for the rater alone, and a 10 % higher end-to-end capacity here, rater/README.md) and a longer wait for the balance near capacity, and hold more memory while they run.', { min: 1, max: 500_000 }),
  raterBatchMaxWaitMs: s('DRAWDOWN_RATER_BATCH_MAX_WAIT_MS', 'duration_ms', '100', 'Longest a rater waits to fill a batch before processing what it has.', { min: 1 }),
  raterWorkers: s('DRAWDOWN_RATER_WORKERS', 'int', '1', 'Pricing worker threads (piscina) per rater process.', { min: 1, max: 64 }),
  raterDedupMemoryEvents: s('DRAWDOWN_RATER_DEDUP_MEMORY_EVENTS', 'int', '2000000', 'Dedup fingerprints held in memory, split evenly over the partitions (each owned partition holds this / DRAWDOWN_PARTITIONS, at least 1000; about 24 bytes each). Copies older than what memory holds are checked against ClickHouse.', { min: 1000 }),
  raterLeaseTtlMs: s('DRAWDOWN_RATER_LEASE_TTL_MS', 'duration_ms', '10000', 'Partition lease lifetime in NATS KV, renewed every third of it. A dead rater\'s partitions move to the others within about this long plus one renewal interval.', { min: 300 }),
  raterId: s('DRAWDOWN_RATER_ID', 'string', '', 'This rater process\'s lease owner id; a restarted process with the same id takes its leases back at once. Empty: host name and data directory. Must differ between live processes.'),
  raterRerateMaxEvents: s('DRAWDOWN_RATER_RERATE_MAX_EVENTS', 'int', '100000', 'Most unpriced events one re-rating round (catalog change or POST /v1/unpriced_events/rerate) looks at.', { min: 1 }),
  // ledger
  ledgerBatchMax: s('DRAWDOWN_LEDGER_BATCH_MAX', 'int', '64', 'Most debit batches the ledger applies in one transaction (in each lane; a lane queues at most twice this).', { min: 1, max: 10_000 }),
  ledgerLanes: s('DRAWDOWN_LEDGER_LANES', 'int', '2', 'Debit batches are applied in this many concurrent transaction streams (event partition mod lanes, each with its own Postgres connection). Partitions split the customers, so lanes do not wait for each other\'s row locks, and one partition\'s batches stay in order in one lane. More lanes than DRAWDOWN_PARTITIONS leaves the extra ones idle; 1 applies every batch in one stream.', { min: 1, max: 64 }),
  ledgerExpiryIntervalMs: s('DRAWDOWN_LEDGER_EXPIRY_INTERVAL_MS', 'duration_ms', '60000', 'How often the ledger expires due credit blocks and prunes old records. Expiry entries are dated at the expiry time whatever the interval.', { min: 100 }),
  ledgerExpiryMaxPairs: s('DRAWDOWN_LEDGER_EXPIRY_MAX_PAIRS', 'int', '1000', 'Most (customer, pricing unit) balances one expiry pass handles (the rest wait for the next pass).', { min: 1, max: 1_000_000 }),
  ledgerReplayHorizonMs: s('DRAWDOWN_LEDGER_REPLAY_HORIZON_MS', 'duration_ms', String(8 * 86_400_000), 'How long applied debit batch ids are kept to make replays no-ops. Must exceed the DEBITS stream retention (7 days).', { min: 60_000 }),
  ledgerVacuumIntervalMs: s('DRAWDOWN_LEDGER_VACUUM_INTERVAL_MS', 'duration_ms', '30000', 'Only while the Postgres server runs with autovacuum off: how often the ledger vacuums its own hot tables (credit blocks, balances, grouped usage entries, snapshots, outbox...) whose dead rows passed autovacuum\'s default threshold, so they do not bloat without bound. Checked every round: with autovacuum on it does nothing. 0: never.', { min: 0 }),
  idempotencyTtlMs: s('DRAWDOWN_IDEMPOTENCY_TTL_MS', 'duration_ms', String(86_400_000), 'How long an Idempotency-Key answer is kept for replay.', { min: 60_000 }),
  idempotencyStaleMs: s('DRAWDOWN_IDEMPOTENCY_STALE_MS', 'duration_ms', '60000', 'A request holding an Idempotency-Key longer than this is presumed dead; a retry with the same key may run again.', { min: 1000 }),
  // webhooks, alerts and access control (ledger/src/webhooks, ledger/src/access)
  webhookDispatcher: s('DRAWDOWN_WEBHOOK_DISPATCHER', 'bool', 'true', 'Run the webhook dispatcher in this process (false when it runs elsewhere).'),
  webhookTimeoutMs: s('DRAWDOWN_WEBHOOK_TIMEOUT_MS', 'duration_ms', '10000', 'Longest wait for a webhook receiver to answer one delivery.', { min: 100 }),
  webhookConcurrency: s('DRAWDOWN_WEBHOOK_CONCURRENCY', 'int', '32', 'Most webhook deliveries in flight per dispatcher (events of one customer go one at a time).', { min: 1, max: 10_000 }),
  webhookPollMs: s('DRAWDOWN_WEBHOOK_POLL_MS', 'duration_ms', '250', 'How often the dispatcher looks for due retries (new events wake it at once).', { min: 10 }),
  webhookRetryBaseMs: s('DRAWDOWN_WEBHOOK_RETRY_BASE_MS', 'duration_ms', '10000', 'First retry delay of a failed delivery; doubles per attempt, with jitter (50-100%).', { min: 1 }),
  webhookRetryMaxMs: s('DRAWDOWN_WEBHOOK_RETRY_MAX_MS', 'duration_ms', String(6 * 3600_000), 'Longest delay between two attempts of one delivery.', { min: 1 }),
  webhookRetryWindowMs: s('DRAWDOWN_WEBHOOK_RETRY_WINDOW_MS', 'duration_ms', String(3 * 86_400_000), 'How long a delivery is retried after its first attempt before it is marked failed.', { min: 1 }),
  webhookDisableAfterMs: s('DRAWDOWN_WEBHOOK_DISABLE_AFTER_MS', 'duration_ms', String(5 * 86_400_000), 'An endpoint failing every attempt for this long is disabled (and webhook_endpoint.disabled announced).', { min: 1 }),
  webhookRetentionMs: s('DRAWDOWN_WEBHOOK_RETENTION_MS', 'duration_ms', String(30 * 86_400_000), 'Webhook events and the delivery log are kept this long (then pruned; pending deliveries are kept).', { min: 60_000 }),
  webhookSecretGraceMs: s('DRAWDOWN_WEBHOOK_SECRET_GRACE_MS', 'duration_ms', String(24 * 3600_000), 'After a secret rotation, the old secret keeps signing (beside the new one) this long.', { min: 0 }),
  balanceUpdatedIntervalMs: s('DRAWDOWN_BALANCE_UPDATED_INTERVAL_MS', 'duration_ms', '60000', 'credit_balance.updated is coalesced: at most one per customer and pricing unit per interval.', { min: 100 }),
  accessPollMs: s('DRAWDOWN_ACCESS_POLL_MS', 'duration_ms', '100', 'How often the access cache reads balance, policy and unpaid-invoice changes from Postgres.', { min: 10 }),
  accessCacheMaxCustomers: s('DRAWDOWN_ACCESS_CACHE_MAX_CUSTOMERS', 'int', '1000000', 'Most customers the access cache holds (the oldest loaded is dropped first).', { min: 1 }),
  accessCatalogTtlMs: s('DRAWDOWN_ACCESS_CATALOG_TTL_MS', 'duration_ms', '60000', 'How long the access cache trusts a customer\'s metric -> price mapping (catalog changes also clear it).', { min: 0 }),
  accessDefaultPolicy: s('DRAWDOWN_ACCESS_DEFAULT_POLICY', 'string', 'block_when_depleted', 'Access policy of customers without one: block_when_depleted, allow_overage or always_allow.'),
  // billing (invoices, top-ups, payments, settlement)
  billingDefaultCurrency: s('DRAWDOWN_BILLING_DEFAULT_CURRENCY', 'string', 'USD', 'Invoice currency of a credit purchase when neither the customer nor the pricing unit names one.'),
  billingDefaultNetTerms: s('DRAWDOWN_BILLING_DEFAULT_NET_TERMS', 'int', '0', 'Days from invoice date to due date when neither the request, the customer nor the plan sets net terms.', { min: 0, max: 365 }),
  billingAutoIssue: s('DRAWDOWN_BILLING_AUTO_ISSUE', 'bool', 'true', 'Settlement invoices are issued at once; false leaves them as drafts (a customer\'s auto_issuance overrides).'),
  billingRestrictOnUnpaidOverage: s('DRAWDOWN_BILLING_RESTRICT_ON_UNPAID_OVERAGE', 'bool', 'false', 'The access check denies a customer while an issued overage invoice of theirs is unpaid.'),
  billingTickMs: s('DRAWDOWN_BILLING_TICK_MS', 'duration_ms', '30000', 'How often the billing scheduler runs (settlement, allocations, scheduled purchases, top-up intents, collection).', { min: 100 }),
  billingBatchMax: s('DRAWDOWN_BILLING_BATCH_MAX', 'int', '100', 'Most items (top-up intents, periods, invoices to collect) one scheduler pass handles per kind.', { min: 1, max: 10_000 }),
  billingCollectionRetryMs: s('DRAWDOWN_BILLING_COLLECTION_RETRY_MS', 'duration_ms', '600000', 'A collection claimed but not finished (a crash mid-call) is retried after this long; idempotency keys make the retry safe.', { min: 1000 }),
  paymentProvider: s('DRAWDOWN_PAYMENT_PROVIDER', 'string', 'manual', 'manual (invoices are marked paid through the API) or stripe.'),
  stripeApiKey: s('DRAWDOWN_STRIPE_API_KEY', 'secret', '', 'Stripe secret key (sk_test_... or sk_live_...), for DRAWDOWN_PAYMENT_PROVIDER=stripe.'),
  stripeWebhookSecret: s('DRAWDOWN_STRIPE_WEBHOOK_SECRET', 'secret', '', 'Signing secret (whsec_...) of the Stripe webhook endpoint POST /v1/payments/stripe/webhook.'),
  stripeApiUrl: s('DRAWDOWN_STRIPE_API_URL', 'string', '', 'Stripe API base URL override (http://127.0.0.1:port for a local stand-in); empty for api.stripe.com.'),
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
  if (!['block_when_depleted', 'allow_overage', 'always_allow'].includes(out.accessDefaultPolicy as string)) {
    problems.push(`DRAWDOWN_ACCESS_DEFAULT_POLICY: must be block_when_depleted, allow_overage or always_allow, got "${String(out.accessDefaultPolicy)}"`);
  }
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
