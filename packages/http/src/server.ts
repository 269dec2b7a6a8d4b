// The HTTP edge on uWebSockets.js, shared by every service. Handlers are plain async
// functions from a copied request to a reply; this file deals with uWS's rules:
// request data is copied before any await, every async response has onAborted, and writes
// after an await happen inside cork().
import { createRequire } from 'node:module';
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import type { Logger } from '@drawdown/log';
import { counter, histogram, renderMetrics } from '@drawdown/metrics';
import { stringifyJson } from '@drawdown/money';
import { ApiError, problemFor, statusText } from './errors';

const require = createRequire(import.meta.url);

export type Scope = 'ingest' | 'read' | 'admin';

export interface Principal {
  keyId: string;
  scopes: readonly Scope[];
}

export interface Request {
  method: string;
  path: string;
  query: URLSearchParams;
  params: Record<string, string>;
  /** Lower-cased names. */
  headers: Record<string, string>;
  body: Buffer;
  principal: Principal | undefined;
  /** JSON body parsed, or an ApiError naming the position. */
  json(): unknown;
}

export interface Reply {
  status?: number;
  headers?: Record<string, string>;
  /** An object is written as JSON (bigints as exact decimals); strings and bytes as they are. */
  body?: unknown;
}

export type Handler = (req: Request) => Promise<Reply> | Reply;

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** `/v1/customers/:id/credits`; `:name` segments become params. */
  path: string;
  handler: Handler;
  /** Scope required; `public` needs no key. */
  scope: Scope | 'public';
  /** Largest body accepted (413 above); default 1 MiB. */
  maxBodyBytes?: number;
  /** Metric label; default the path pattern. */
  name?: string;
}

export type Authenticate = (authorization: string | undefined) => Promise<Principal>;

export interface ServerOptions {
  host: string;
  port: number;
  routes: Route[];
  authenticate: Authenticate;
  log: Logger;
  /** /readyz answers 200 only when this returns true. */
  ready: () => boolean;
  /** What /metrics shows; default this thread's registry (renderMetrics). */
  metrics?: () => Promise<{ contentType: string; body: string }>;
}

export interface HttpServer {
  port: number;
  /** Stops accepting, waits for in-flight requests (up to timeoutMs). */
  close(timeoutMs?: number): Promise<void>;
}

type Uws = typeof import('uWebSockets.js');

/**
 * Loads the native uWebSockets.js binary. The package falls back silently to a slow pure-JS
 * server when the binary does not load; we refuse to run on that fallback.
 */
export function loadNativeUws(): Uws {
  // The package itself switches to the fallback when UWS_USE_FALLBACK is set, or when the
  // binary for this Node ABI fails to load: detect the result, whatever the cause.
  const uws = require('uWebSockets.js') as Uws & { getParts?: unknown; SSLApp?: unknown };
  // The fallback exports only App, us_listen_socket_close, us_socket_local_port and _cfg.
  if (typeof uws.getParts !== 'function' || typeof uws.SSLApp !== 'function') {
    const flag = process.env.UWS_USE_FALLBACK;
    throw new Error(
      `uWebSockets.js loaded its pure-JS fallback, not the native binary (node ABI ${process.versions.modules}, ${process.platform}-${process.arch}); refusing to start. ` +
        (flag ? `UWS_USE_FALLBACK=${flag} is set: unset it.` : 'Install @trufflesuite/uws-js-unofficial@20.30.0-unofficial.0 under the alias uWebSockets.js on Node 20.'),
    );
  }
  return uws;
}

const DEFAULT_MAX_BODY = 1024 * 1024;
const PREALLOCATE_MAX_BYTES = 64 * 1024;

interface CompiledRoute extends Route {
  segments: string[];
}

function compile(routes: Route[]): CompiledRoute[] {
  // Static segments win over params: sort by number of params.
  return routes
    .map((r) => ({ ...r, segments: r.path.split('/').filter(Boolean) }))
    .sort((a, b) => a.segments.filter((s) => s.startsWith(':')).length - b.segments.filter((s) => s.startsWith(':')).length);
}

function match(routes: CompiledRoute[], method: string, path: string): { route?: CompiledRoute; params: Record<string, string>; pathMatched: boolean } {
  const parts = path.split('/').filter(Boolean);
  let pathMatched = false;
  for (const route of routes) {
    if (route.segments.length !== parts.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < parts.length; i++) {
      const seg = route.segments[i]!;
      const part = parts[i]!;
      if (seg.startsWith(':')) {
        try {
          params[seg.slice(1)] = decodeURIComponent(part);
        } catch {
          ok = false;
          break;
        }
      } else if (seg !== part) {
        ok = false;
        break;
      }
    }
    if (!ok) continue;
    pathMatched = true;
    if (route.method === method) return { route, params, pathMatched };
  }
  return { params: {}, pathMatched };
}

const requests = counter('drawdown_http_requests_total', 'HTTP requests by route and status', ['route', 'status']);
const latency = histogram('drawdown_http_request_seconds', 'HTTP request latency by route', ['route']);

function allows(principal: Principal, scope: Scope): boolean {
  if (principal.scopes.includes('admin')) return true;
  return principal.scopes.includes(scope);
}

export async function startHttpServer(opts: ServerOptions): Promise<HttpServer> {
  const uws = loadNativeUws();
  const app: TemplatedApp = uws.App();
  const routes = compile(opts.routes);
  // Routes without params by "METHOD /path": one lookup for the busy ones (ingest) whatever the
  // number of routes; everything else goes through match().
  const fixed = new Map<string, CompiledRoute>();
  for (const r of routes) {
    const key = `${r.method} /${r.segments.join('/')}`;
    if (!r.segments.some((x) => x.startsWith(':')) && !fixed.has(key)) fixed.set(key, r); // the first wins, as in match()
  }
  let inflight = 0;
  let closing = false;
  let drained: (() => void) | undefined;

  const write = (res: HttpResponse, state: { aborted: boolean }, reply: Reply, route: string, started: number) => {
    if (state.aborted) {
      // The client went away while the handler ran: nothing may touch res any more.
      requests.inc({ route, status: 'aborted' });
      return;
    }
    const status = reply.status ?? 200;
    let body: string | Uint8Array = '';
    let contentType: string | undefined;
    if (reply.body === undefined || reply.body === null) body = '';
    else if (typeof reply.body === 'string') body = reply.body;
    else if (reply.body instanceof Uint8Array) body = reply.body;
    else {
      body = stringifyJson(reply.body);
      contentType = status >= 400 ? 'application/problem+json' : 'application/json';
    }
    res.cork(() => {
      res.writeStatus(`${status} ${statusText(status)}`);
      if (contentType) res.writeHeader('content-type', contentType);
      for (const [k, v] of Object.entries(reply.headers ?? {})) res.writeHeader(k, v);
      res.end(body);
    });
    requests.inc({ route, status: String(status) });
    latency.observe({ route }, (performance.now() - started) / 1000);
  };

  const fail = (res: HttpResponse, state: { aborted: boolean }, err: unknown, route: string, started: number) => {
    const p = problemFor(err);
    if (p.status >= 500) opts.log.error('request failed', { route, err });
    write(res, state, { status: p.status, headers: p.headers, body: p.body }, route, started);
  };

  app.any('/*', (res: HttpResponse, req: HttpRequest) => {
    const started = performance.now();
    const state = { aborted: false };
    // uWS keeps one abort handler per response: later stages hook in through onAbort.
    const hooks: { onAbort?: () => void } = {};
    res.onAborted(() => {
      state.aborted = true;
      hooks.onAbort?.();
    });
    // Copy everything from req now: it is invalid after this callback returns.
    const method = req.getCaseSensitiveMethod().toUpperCase();
    const url = req.getUrl();
    const queryString = req.getQuery() ?? '';
    const headers: Record<string, string> = {};
    req.forEach((k, v) => {
      headers[k] = v;
    });

    if (method === 'GET' && (url === '/healthz' || url === '/readyz' || url === '/metrics')) {
      inflight++;
      void (async () => {
        try {
          if (url === '/metrics') {
            const m = await (opts.metrics ?? renderMetrics)();
            write(res, state, { status: 200, headers: { 'content-type': m.contentType }, body: m.body }, url, started);
          } else if (url === '/healthz') {
            write(res, state, { status: 200, body: { status: 'ok' } }, url, started);
          } else {
            const ok = !closing && opts.ready();
            write(res, state, { status: ok ? 200 : 503, body: { status: ok ? 'ready' : 'not ready' } }, url, started);
          }
        } catch (err) {
          fail(res, state, err, url, started);
        } finally {
          done();
        }
      })();
      return;
    }

    const exact = fixed.get(`${method} ${url}`);
    const { route, params, pathMatched } = exact !== undefined ? { route: exact, params: {}, pathMatched: true } : match(routes, method, url);
    if (!route) {
      const err = new ApiError(pathMatched ? 'method_not_allowed' : 'not_found', pathMatched ? `${method} is not allowed on ${url}` : `no route for ${method} ${url}`);
      fail(res, state, err, 'unmatched', started);
      return;
    }
    if (closing) {
      fail(res, state, new ApiError('unavailable', 'server is shutting down', [], { 'retry-after': '1' }), route.name ?? route.path, started);
      return;
    }
    const name = route.name ?? route.path;
    const maxBody = route.maxBodyBytes ?? DEFAULT_MAX_BODY;
    const declared = Number(headers['content-length'] ?? '0');
    if (declared > maxBody) {
      const p = problemFor(new ApiError('body_too_large', `request body of ${declared} bytes is over the limit of ${maxBody} bytes`));
      res.cork(() => {
        res.writeStatus(`413 ${statusText(413)}`).writeHeader('content-type', 'application/problem+json').end(stringifyJson(p.body), true);
      });
      requests.inc({ route: name, status: '413' });
      return;
    }

    inflight++;
    // Exactly one done() per counted request, whether it ends normally, is aborted by the
    // client mid-body, or is refused for size.
    let counted = true;
    let running = false;
    const settle = () => {
      if (!counted) return;
      counted = false;
      done();
    };
    hooks.onAbort = () => {
      if (!running && counted) {
        requests.inc({ route: name, status: 'aborted' });
        settle();
      }
    };
    // A body with a Content-Length of up to 64 KiB (the usual case) is copied once, straight into
    // a buffer of that size, allocated when its first bytes arrive; larger or chunked bodies are
    // collected and joined (memory grows only with the bytes received).
    const preallocate = headers['content-length'] !== undefined && Number.isSafeInteger(declared) && declared > 0 && declared <= PREALLOCATE_MAX_BYTES;
    let whole: Buffer | undefined;
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    const run = async () => {
      running = true;
      try {
        const body = whole !== undefined ? (size === whole.length ? whole : whole.subarray(0, size)) : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
        let principal: Principal | undefined;
        if (route.scope !== 'public') {
          principal = await opts.authenticate(headers['authorization']);
          if (!allows(principal, route.scope)) {
            throw new ApiError('forbidden', `this API key lacks the "${route.scope}" scope needed for ${method} ${route.path} (it has: ${principal.scopes.join(', ')})`);
          }
        }
        const request: Request = {
          method,
          path: url,
          query: new URLSearchParams(queryString),
          params,
          headers,
          body,
          principal,
          json: () => parseJsonBody(body),
        };
        const reply = await route.handler(request);
        write(res, state, reply, name, started);
      } catch (err) {
        fail(res, state, err, name, started);
      } finally {
        settle();
      }
    };
    if (method === 'GET' || method === 'DELETE' || method === 'HEAD') {
      // uWS delivers no data callback for bodiless requests.
      void run();
      return;
    }
    res.onData((ab, isLast) => {
      if (tooLarge || state.aborted) return;
      size += ab.byteLength;
      if (size > maxBody) {
        tooLarge = true;
        const p = problemFor(new ApiError('body_too_large', `request body is over the limit of ${maxBody} bytes`));
        res.cork(() => {
          res.writeStatus(`413 ${statusText(413)}`).writeHeader('content-type', 'application/problem+json').end(stringifyJson(p.body), true);
        });
        state.aborted = true;
        requests.inc({ route: name, status: '413' });
        settle();
        return;
      }
      // The ArrayBuffer is neutered after this callback: copy it.
      if (preallocate && size === ab.byteLength) whole = Buffer.allocUnsafe(declared);
      if (whole !== undefined && size > whole.length) {
        // More than the Content-Length said (uWS frames by it, so not expected): collect chunks.
        chunks.push(whole.subarray(0, size - ab.byteLength));
        whole = undefined;
      }
      if (whole !== undefined) whole.set(new Uint8Array(ab), size - ab.byteLength);
      else chunks.push(Buffer.from(ab.slice(0)));
      if (isLast) void run();
    });
  });

  function done() {
    inflight--;
    if (closing && inflight === 0) drained?.();
  }

  const listenSocket = await new Promise<us_listen_socket>((resolve, reject) => {
    app.listen(opts.host, opts.port, (s) => (s ? resolve(s) : reject(new Error(`cannot listen on ${opts.host}:${opts.port} (port in use?)`))));
  });
  const port = uws.us_socket_local_port(listenSocket);
  opts.log.info('http listening', { host: opts.host, port });

  return {
    port,
    async close(timeoutMs = 30_000) {
      if (closing) return;
      closing = true;
      uws.us_listen_socket_close(listenSocket);
      if (inflight > 0) {
        await Promise.race([
          new Promise<void>((r) => (drained = r)),
          new Promise<void>((r) => setTimeout(r, timeoutMs).unref()),
        ]);
      }
      opts.log.info('http closed', { inflight });
    },
  };
}

export function parseJsonBody(body: Buffer): unknown {
  if (body.length === 0) return {};
  const text = body.toString('utf8');
  try {
    return JSON.parse(text);
  } catch (err) {
    const m = /position (\d+)/.exec((err as Error).message);
    throw new ApiError('malformed_json', `request body is not valid JSON${m ? ` (at byte ${m[1]})` : ''}: ${(err as Error).message}`);
  }
}
