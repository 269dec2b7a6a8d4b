import { createServer, type AddressInfo, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { runLoad } from './loadgen';

let server: Server | undefined;
afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

/**
 * A local HTTP/1.1 server that answers every request and closes a keep-alive connection once it
 * has been idle for `idleMs` (as uWS does after 10 s).
 */
async function listen(idleMs: number): Promise<{ port: number; served: () => number }> {
  let served = 0;
  server = createServer((sock) => {
    let buf = '';
    let idle: NodeJS.Timeout | undefined;
    sock.on('data', (d) => {
      clearTimeout(idle);
      buf += d.toString('latin1');
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) break;
        const len = Number(/content-length:\s*(\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0);
        if (buf.length < end + 4 + len) break;
        buf = buf.slice(end + 4 + len);
        served++;
        sock.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}');
      }
      idle = setTimeout(() => sock.end(), idleMs);
    });
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  return { port: (server.address() as AddressInfo).port, served: () => served };
}

describe('load generator', () => {
  it('replaces keep-alive connections the server closed while idle instead of counting failed requests', async () => {
    // 8 connections, a request every 100 ms, idle close after 20 ms: every connection is closed between uses.
    const s = await listen(20);
    const r = await runLoad({
      host: '127.0.0.1', port: s.port, path: '/v1/ingest', connections: 8, mode: 'open', rateRps: 10, durationMs: 2000,
      templates: { count: 4, eventsPerRequest: 2, customers: 10, shape: 'uniform', format: 'json', seed: 1 },
    });
    expect(r.socketErrors).toBe(0);
    expect(r.requests).toBeGreaterThanOrEqual(18);
    expect(r.okRequests).toBe(r.requests);
    expect(s.served()).toBe(r.requests);
  });
});
