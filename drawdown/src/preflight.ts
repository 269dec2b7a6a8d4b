// Before starting: are Postgres and NATS there? If not, start them with this machine's own
// commands where they are installed, else say exactly what is missing and how to fix it.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import net from 'node:net';
import type { Logger } from '@drawdown/log';

function reachable(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const t = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      s.end();
      resolve(true);
    });
    s.once('error', () => {
      clearTimeout(t);
      resolve(false);
    });
  });
}

async function waitFor(host: string, port: number, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await reachable(host, port)) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

function hostPort(url: string, defPort: number): { host: string; port: number } {
  const u = new URL(url.split(',')[0]!.trim());
  return { host: u.hostname || '127.0.0.1', port: Number(u.port || defPort) };
}

const isLocal = (h: string) => h === '127.0.0.1' || h === 'localhost' || h === '::1';

export class PreflightError extends Error {
  override readonly name = 'PreflightError';
  readonly code = 'preflight_failed';
}

export async function preflight(opts: { databaseUrl: string; natsUrl: string; log: Logger }): Promise<void> {
  const problems: string[] = [];
  const pg = hostPort(opts.databaseUrl, 5432);
  if (!(await reachable(pg.host, pg.port))) {
    let started = false;
    if (isLocal(pg.host) && existsSync('/usr/bin/pg_ctlcluster') && existsSync('/etc/postgresql')) {
      const version = readdirSync('/etc/postgresql')[0];
      if (version) {
        opts.log.warn('Postgres is not running; starting the local cluster', { version });
        try {
          execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'start'], { stdio: 'ignore' });
          started = await waitFor(pg.host, pg.port, 15_000);
        } catch {
          started = false;
        }
      }
    }
    if (!started) {
      problems.push(
        `Postgres is not reachable at ${pg.host}:${pg.port} (DATABASE_URL). Start it, e.g. \`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\`, ` +
          'or install it with `apt-get install postgresql`, or point DATABASE_URL at a running server.',
      );
    }
  }
  const nats = hostPort(opts.natsUrl, 4222);
  if (!(await reachable(nats.host, nats.port))) {
    let started = false;
    if (isLocal(nats.host) && existsSync('/usr/sbin/nats-server')) {
      opts.log.warn('NATS is not running; starting the local nats-server with JetStream');
      try {
        execFileSync('start-stop-daemon', ['--start', '--oknodo', '--background', '--exec', '/usr/sbin/nats-server', '--',
          '-a', '127.0.0.1', '-p', String(nats.port), '-js', '-sd', '/var/lib/nats-server', '-l', '/var/log/nats-server.log'], { stdio: 'ignore' });
        started = await waitFor(nats.host, nats.port, 15_000);
      } catch {
        started = false;
      }
    }
    if (!started) {
      problems.push(
        `NATS is not reachable at ${nats.host}:${nats.port} (NATS_URL). Start it with JetStream, e.g. \`nats-server -js -a 127.0.0.1 -p 4222 -sd /var/lib/nats-server\`, ` +
          'or install it with `apt-get install nats-server`, or point NATS_URL at a running server.',
      );
    }
  }
  if (problems.length > 0) throw new PreflightError(`cannot start:\n  - ${problems.join('\n  - ')}`);
}
