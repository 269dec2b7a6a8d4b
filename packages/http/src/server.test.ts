// The uWS server's own rules, on a real local socket: the native binary or nothing, request
// bodies in chunks, size limits while reading, and no in-flight leak when clients go away.
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '@drawdown/log';
import { startHttpServer, loadNativeUws, type Route } from './index';

const serverFile = fileURLToPath(new URL('./server.ts', import.meta.url));

function loadInChild(env: Record<string, string>): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const script = `import { loadNativeUws } from ${JSON.stringify(serverFile)}; loadNativeUws(); console.log('native loaded');`;
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env: { ...process.env, ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('loadNativeUws', { timeout: 60_000 }, () => {
  it('loads the native binary', async () => {
    expect(typeof loadNativeUws().App).toBe('function');
    const r = await loadInChild({});
    expect(r.stdout).toContain('native loaded');
    expect(r.code).toBe(0);
  });

  it('refuses to run on the pure-JS fallback (forced here with UWS_USE_FALLBACK=1)', async () => {
    const r = await loadInChild({ UWS_USE_FALLBACK: '1' });
    expect(r.code).not.toBe(0);
    expect(r.stdout).not.toContain('native loaded');
    expect(r.stderr).toContain('uWebSockets.js loaded its pure-JS fallback, not the native binary');
    expect(r.stderr).toContain('UWS_USE_FALLBACK=1 is set: unset it.');
  });
});

/** Raw HTTP over a socket, so a test can send part of a body and hang up. */
function rawRequest(port: number, head: string, bodyParts: string[], opts: { hangUp?: boolean; pauseMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, async () => {
      s.write(head);
      for (const p of bodyParts) {
        if (opts.pauseMs) await new Promise((r) => setTimeout(r, opts.pauseMs));
        s.write(p);
      }
      if (opts.hangUp) s.destroy();
    });
    let out = '';
    s.on('data', (d) => {
      out += d.toString();
      if (/\r\n\r\n/.test(out)) {
        const len = /content-length: (\d+)/i.exec(out);
        if (len && out.length >= out.indexOf('\r\n\r\n') + 4 + Number(len[1])) s.end();
      }
    });
    s.on('close', () => resolve(out));
    s.on('error', (e) => (opts.hangUp ? resolve('') : reject(e)));
  });
}

describe('startHttpServer', { timeout: 30_000 }, () => {
  it('reassembles chunked bodies, limits size while reading, and does not leak in-flight requests on abort', async () => {
    let handled = 0;
    const routes: Route[] = [
      { method: 'POST', path: '/echo', scope: 'public', maxBodyBytes: 1000, handler: async (req) => {
        handled++;
        await new Promise((r) => setTimeout(r, 10)); // the reply is written after an await
        return { body: { bytes: req.body.length, text: req.body.toString() } };
      } },
      // The body must be a, b, c, ... z, a, b, ...
      { method: 'POST', path: '/sum', scope: 'public', maxBodyBytes: 1_000_000, handler: (req) => {
        let same = true;
        for (let i = 0; i < req.body.length; i++) if (req.body[i] !== 97 + (i % 26)) same = false;
        return { body: { bytes: req.body.length, same } };
      } },
    ];
    const server = await startHttpServer({ host: '127.0.0.1', port: 0, routes, authenticate: async () => ({ keyId: 'x', scopes: [] }), log: silentLogger, ready: () => true });
    try {
      const ok = await rawRequest(server.port, 'POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\nconnection: close\r\n\r\n', ['hello', 'world']);
      expect(ok).toMatch(/^HTTP\/1.1 200 OK/);
      expect(ok).toContain('{"bytes":10,"text":"helloworld"}');

      // Bodies over many socket writes: with a Content-Length under and over the preallocation
      // size (64 KiB), and chunked (no Content-Length): every byte in order.
      for (const n of [900, 300_000]) {
        const text = Array.from({ length: n }, (_, i) => String.fromCharCode(97 + (i % 26))).join('');
        const parts = Array.from({ length: 9 }, (_, i) => text.slice(Math.floor((i * n) / 9), Math.floor(((i + 1) * n) / 9)));
        const r = await rawRequest(server.port, `POST /sum HTTP/1.1\r\nhost: x\r\ncontent-length: ${n}\r\nconnection: close\r\n\r\n`, parts, { pauseMs: 5 });
        expect(r).toContain(`{"bytes":${n},"same":true}`);
      }
      const chunked = await rawRequest(server.port, 'POST /sum HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n', ['5\r\nabcde\r\n', '3\r\nfgh\r\n', '0\r\n\r\n'], { pauseMs: 5 });
      expect(chunked).toContain('{"bytes":8,"same":true}');

      const big = await rawRequest(server.port, 'POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 2000\r\nconnection: close\r\n\r\n', ['x'.repeat(2000)]);
      expect(big).toMatch(/^HTTP\/1.1 413 Payload Too Large/);
      expect(big).toContain('request body of 2000 bytes is over the limit of 1000 bytes');

      // A client that sends half its body and hangs up.
      for (let i = 0; i < 5; i++) await rawRequest(server.port, 'POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n', ['x'.repeat(40)], { hangUp: true });
      // A client that hangs up while the handler awaits: the late reply must not touch the socket.
      await rawRequest(server.port, 'POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n', ['hi'], { hangUp: true });
      await new Promise((r) => setTimeout(r, 50));
      const after = await rawRequest(server.port, 'POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nconnection: close\r\n\r\n', ['ok']);
      expect(after).toContain('{"bytes":2,"text":"ok"}');
      expect(handled).toBeGreaterThanOrEqual(2);
    } finally {
      const t0 = performance.now();
      await server.close(5000);
      // Nothing left in flight: close does not wait for its timeout.
      expect(performance.now() - t0).toBeLessThan(1000);
    }
  });
});
