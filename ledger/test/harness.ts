// A ledger-only set-up for integration tests: its own database and NATS namespace, the
// ledger's routes on a real HTTP server, the orb-billing SDK pointed at it, and a real webhook
// receiver that verifies every delivery with the SDK.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Orb from 'orb-billing';
import { testEnv, api, type TestEnv } from '@drawdown/testkit';
import { createApiKey, createKeyVerifier } from '@drawdown/auth';
import { createLogger } from '@drawdown/log';
import { connectNats, ensureStreams, names, type NatsConnection } from '@drawdown/nats';
import { createPool, ensureDatabase, migrate, type Pool } from '@drawdown/pg';
import { startHttpServer, type HttpServer } from '@drawdown/http';
import { startLedger, LEDGER_MIGRATIONS, type Ledger } from '../src/index';

export interface Harness {
  env: TestEnv;
  pool: Pool;
  nc: NatsConnection;
  ledger: Ledger | undefined;
  http: HttpServer | undefined;
  orb: Orb;
  call: ReturnType<typeof api>;
  baseUrl: string;
  stop(): Promise<void>;
}

export async function startHarness(overrides: Record<string, string>, opts: { ledger?: boolean } = {}): Promise<Harness> {
  const env = testEnv(overrides);
  await ensureDatabase(env.config.databaseUrl);
  const pool = createPool(env.config.databaseUrl, { max: 10 });
  const log = createLogger({ test: 'ledger' }, { level: env.config.logLevel as 'error' });
  await migrate(pool, [LEDGER_MIGRATIONS]);
  const nc = await connectNats(env.config.natsUrl, 'test', log);
  await ensureStreams(nc, names(env.config.namespace));
  const key = await createApiKey(pool, 'test', ['admin']);
  let ledger: Ledger | undefined;
  let server: HttpServer | undefined;
  let baseUrl = '';
  if (opts.ledger !== false) {
    ledger = await startLedger({ config: env.config, pool, nc, log });
    const verifier = createKeyVerifier(pool);
    server = await startHttpServer({ host: '127.0.0.1', port: 0, routes: ledger.routes, authenticate: (h) => verifier.authenticate(h), log, ready: () => true });
    baseUrl = `http://127.0.0.1:${server.port}`;
  }
  return {
    env, pool, nc, ledger, http: server, baseUrl,
    orb: new Orb({ apiKey: key.key, baseURL: `${baseUrl}/v1`, maxRetries: 0 }),
    call: api(baseUrl, key.key),
    async stop() {
      await server?.close(1000);
      await ledger?.stop();
      await nc.close();
      await pool.end();
      await env.cleanup();
    },
  };
}

export interface Delivery {
  id: string;
  type: string;
  body: Record<string, unknown>;
  at: number;
}

/** A webhook receiver on 127.0.0.1:0. `respond` picks the status per request (default 200). */
export async function startReceiver(secret: () => string, respond: (n: number) => number | Promise<number> = () => 200) {
  const verifier = new Orb({ apiKey: 'unused', baseURL: 'http://127.0.0.1:1' });
  const received: Delivery[] = [];
  const rejected: string[] = [];
  let requests = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const n = ++requests;
        const raw = Buffer.concat(chunks).toString('utf8');
        const status = await respond(n);
        if (status >= 200 && status < 300) {
          try {
            const body = verifier.webhooks.unwrap(raw, req.headers as Record<string, string>, secret()) as Record<string, unknown>;
            received.push({ id: body.id as string, type: body.type as string, body, at: Date.now() });
          } catch (err) {
            rejected.push((err as Error).message);
            res.writeHead(400).end('bad signature');
            return;
          }
        }
        res.writeHead(status).end(status < 300 ? 'ok' : 'nope');
      })();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    received,
    rejected,
    get requests() {
      return requests;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

export async function waitFor<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 15_000): Promise<NonNullable<T>> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
