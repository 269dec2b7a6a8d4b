#!/usr/bin/env -S node --import tsx
// drawdown: the command line. `start` runs the all-in-one pipeline; `config` prints every setting.
import { ConfigError, loadConfig, settingsTable } from '@drawdown/config';
import { createLogger, isLevel } from '@drawdown/log';
import { preflight } from './preflight';
import { startApp } from './app';

async function main(): Promise<number> {
  const cmd = process.argv[2] ?? 'start';
  if (cmd === 'config') {
    process.stdout.write(settingsTable() + '\n');
    return 0;
  }
  if (cmd !== 'start') {
    process.stderr.write(`unknown command "${cmd}"; commands: start, config\n`);
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
  const app = await startApp(config, log);
  process.stdout.write(`\nDrawdown is running at ${app.baseUrl}\nAdmin API key: see ${config.adminApiKey ? 'DRAWDOWN_ADMIN_API_KEY' : `${config.dataDir}/admin-api-key`}\n\n`);
  await new Promise<void>((resolve) => {
    const onSignal = (sig: string) => {
      log.info('signal received', { signal: sig });
      resolve();
    };
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    process.once('SIGINT', () => onSignal('SIGINT'));
  });
  await app.stop();
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`drawdown failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
