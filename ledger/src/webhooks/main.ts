// The webhook dispatcher as its own process (distributed set-up, and the crash tests):
// `node --import tsx ledger/src/webhooks/main.ts`, configured by the usual environment.
import { loadConfig } from '@drawdown/config';
import { createLogger, isLevel } from '@drawdown/log';
import { connectNats } from '@drawdown/nats';
import { createPool } from '@drawdown/pg';
import { startWebhookDispatcher } from './dispatcher';

const config = loadConfig();
const log = createLogger({ service: 'webhooks' }, { level: isLevel(config.logLevel) ? config.logLevel : 'info' });
const pool = createPool(config.databaseUrl, { max: 8, application: 'drawdown-webhooks' });
const nc = await connectNats(config.natsUrl, 'drawdown-webhooks', log);
const dispatcher = await startWebhookDispatcher({ pool, nc, config, log });
log.info('webhook dispatcher started');
process.stdout.write('READY\n');

const stop = async () => {
  await dispatcher.stop();
  await nc.drain().catch(() => {});
  await pool.end().catch(() => {});
  process.exit(0);
};
process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());
