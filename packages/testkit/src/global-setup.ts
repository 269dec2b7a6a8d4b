// Integration tests need real Postgres and NATS JetStream. If either is missing the run
// fails here, loudly, instead of skipping.
import net from 'node:net';
import { loadConfig } from '@drawdown/config';

function reachable(url: string, defPort: number): Promise<boolean> {
  const u = new URL(url.split(',')[0]!);
  return new Promise((resolve) => {
    const s = net.connect({ host: u.hostname, port: Number(u.port || defPort) });
    s.setTimeout(2000, () => (s.destroy(), resolve(false)));
    s.once('connect', () => (s.end(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

export default async function setup(): Promise<void> {
  const c = loadConfig({ DATABASE_URL: process.env.DATABASE_URL, NATS_URL: process.env.NATS_URL });
  const missing: string[] = [];
  if (!(await reachable(c.databaseUrl, 5432))) missing.push(`Postgres at ${c.databaseUrl} (start: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start)`);
  if (!(await reachable(c.natsUrl, 4222))) missing.push(`NATS at ${c.natsUrl} (start: nats-server -js -a 127.0.0.1 -p 4222 -sd /var/lib/nats-server)`);
  if (missing.length > 0) throw new Error(`integration tests need real services; not reachable:\n  - ${missing.join('\n  - ')}`);
}
