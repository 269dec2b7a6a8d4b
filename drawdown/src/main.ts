#!/usr/bin/env -S node --import tsx
// drawdown: the command line. `start` runs the all-in-one pipeline; `ingest` runs a standalone
// ingest edge (on DRAWDOWN_INGEST_THREADS threads) in front of the same NATS and Postgres;
// `config` prints every setting.
import { ConfigError, loadConfig, settingsTable } from '@drawdown/config';
import { startIngestEdge } from '@drawdown/ingest';
import { createLogger, isLevel } from '@drawdown/log';
import { preflight } from './preflight';
import { startApp } from './app';

async function main(): Promise<number> {
  const cmd = process.argv[2] ?? 'start';
  if (cmd === 'config') {
    process.stdout.write(settingsTable() + '\n');
    return 0;
  }
  if (cmd !== 'start' && cmd !== 'ingest') {
    process.stderr.write(`unknown command "${cmd}"; commands: start, ingest, config\n`);
    return 2;
  }
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(err.message + '\n');
      return 2;
    }
    throw err;
  }
  const log = createLogger({ service: 'drawdown' }, { level: isLevel(config.logLevel) ? config.logLevel : 'info' });
  try {
    await preflight({ databaseUrl: config.databaseUrl, natsUrl: config.natsUrl, log });
  } catch (err) {
    log.error((err as Error).message);
    process.stderr.write((err as Error).message + '\n');
    return 1;
  }
  let stop: () => Promise<void>;
  if (cmd === 'ingest') {
    // API keys are created and revoked through the all-in-one's API, in the same Postgres.
    const edge = await startIngestEdge({ config, log });
    process.stdout.write(`\nDrawdown ingest edge is running at http://${config.httpHost}:${edge.port}/v1/ingest (${edge.threads} thread${edge.threads === 1 ? '' : 's'})\n\n`);
    stop = () => edge.close();
  } else {
    const app = await startApp(config, log);
    process.stdout.write(`\nDrawdown is running at ${app.baseUrl}\nAdmin API key: see ${config.adminApiKey ? 'DRAWDOWN_ADMIN_API_KEY' : `${config.dataDir}/admin-api-key`}\n\n`);
    stop = () => app.stop();
  }
  await new Promise<void>((resolve) => {
    const onSignal = (sig: string) => {
      log.info('signal received', { signal: sig });
      resolve();
    };
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    process.once('SIGINT', () => onSignal('SIGINT'));
  });
  await stop();
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`drawdown failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
