// The load generator: a separate process speaking HTTP/1.1 over raw keep-alive sockets, so it
// stays light on the shared cores. Bodies are pre-encoded templates; each request is a byte
// copy with its request number stamped into the idempotency keys. Two modes:
// - closed: every connection sends its next request when the previous one is answered (peak);
// - open: requests are scheduled at a fixed rate whatever the answers (steady load); latency
//   counts from the scheduled time, so a stalled server cannot hide queueing (no coordinated
//   omission). Requests that would queue beyond maxQueue are counted as dropped.
// Run by the bench through child_process.fork; talks over IPC.
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { buildTemplates, stamp, type BodyTemplate, type Format, type Shape } from './workload';

export interface TemplateSpec {
  count: number;
  eventsPerRequest: number;
  customers: number;
  shape: Shape;
  format: Format;
  seed: number;
  firstCustomer?: number;
}

export interface LoadSpec {
  host: string;
  port: number;
  path: string;
  authorization?: string;
  /** POST bodies (ingest); required unless `get` is given. */
  templates?: TemplateSpec;
  /** GET these paths in turn instead of POSTing templates. */
  get?: { paths: string[] };
  connections: number;
  mode: 'closed' | 'open';
  /** Requests per second (open mode). */
  rateRps?: number;
  durationMs: number;
  /** Closed mode: stop once this many requests are answered (rates then count the time taken). */
  maxRequests?: number;
  /** Requests excluded from latency figures at the start (warm-up), in ms. */
  warmupMs?: number;
  /** Open mode: most requests waiting for a free connection before new ones are dropped. */
  maxQueue?: number;
}

export interface SecondStats {
  /** Seconds since the phase started. */
  t: number;
  okRequests: number;
  okEvents: number;
  errors: number;
}

export interface LoadResult {
  durationS: number;
  requests: number;
  okRequests: number;
  okEvents: number;
  byStatus: Record<string, number>;
  socketErrors: number;
  dropped: number;
  eventsPerS: number;
  /** Events acknowledged while the load ran (answers after the end not counted), per second: what the server kept up with. */
  inWindowEventsPerS: number;
  /** Open mode: requests due by the schedule (sent, queued or dropped); closed mode: requests sent. */
  scheduledRequests: number;
  /** Requests answered 2xx while the load ran. */
  inWindowOkRequests: number;
  requestsPerS: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; samples: number };
  cpuS: number;
  series: SecondStats[];
  firstBody: string;
  /** The first non-2xx answer, if any. */
  errorSample: string;
}

// Templates are built once per spec; every request gets its own keys and the time it is sent (stamp).
const templatesCache = new Map<string, BodyTemplate[]>();
// One tag per generator process: keys never repeat across phases or runs.
const TAG = randomBytes(4).toString('hex');
let requestNo = 0;

function requestsFor(spec: LoadSpec) {
  if (spec.get) {
    const auth = spec.authorization ? `Authorization: ${spec.authorization}\r\n` : '';
    return spec.get.paths.map((path) => ({ bytes: Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${spec.host}:${spec.port}\r\n${auth}\r\n`, 'latin1'), slots: [] as number[], tsSlots: [] as number[], events: 1 }));
  }
  if (!spec.templates) throw new Error('load spec: templates or get is required');
  const key = JSON.stringify(spec.templates);
  let t = templatesCache.get(key);
  if (!t) {
    t = buildTemplates({ ...spec.templates, tag: TAG, timestampMs: Date.now() });
    templatesCache.set(key, t);
  }
  const ctype = spec.templates.format === 'json' ? 'application/json' : 'application/msgpack';
  return t.map((tpl) => {
    const head = Buffer.from(
      `POST ${spec.path} HTTP/1.1\r\nHost: ${spec.host}:${spec.port}\r\n` +
        (spec.authorization ? `Authorization: ${spec.authorization}\r\n` : '') +
        `Content-Type: ${ctype}\r\nContent-Length: ${tpl.bytes.length}\r\n\r\n`,
      'latin1',
    );
    return { bytes: Buffer.concat([head, tpl.bytes]), slots: tpl.slots.map((s) => s + head.length), tsSlots: tpl.tsSlots.map((s) => s + head.length), events: tpl.events };
  });
}

class Conn {
  private pending: Buffer = Buffer.alloc(0);
  busy = false;
  startedAt = 0;
  events = 0;
  readonly sock: net.Socket;
  constructor(host: string, port: number, private readonly onResponse: (c: Conn, status: number, body: Buffer) => void, onError: (c: Conn) => void, onIdleClose: (c: Conn) => void) {
    this.sock = net.connect({ host, port, noDelay: true });
    this.sock.on('data', (d) => this.onData(d));
    this.sock.on('error', () => onError(this));
    // A server closes keep-alive connections that stay idle (uWS after 10 s): a client's pool
    // opens a new one, it is not a failed request. A close with a request in flight is one.
    this.sock.on('close', (hadError) => {
      if (hadError) return;
      if (this.busy) onError(this);
      else onIdleClose(this);
    });
  }
  send(req: Buffer, startedAt: number, events: number): void {
    this.busy = true;
    this.startedAt = startedAt;
    this.events = events;
    this.sock.write(req);
  }
  private onData(chunk: Buffer): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    for (;;) {
      const end = this.pending.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = this.pending.toString('latin1', 0, end);
      const status = Number(head.slice(9, 12));
      const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      let total: number;
      if (cl) total = end + 4 + Number(cl[1]);
      else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
        const z = this.pending.indexOf('\r\n0\r\n\r\n', end);
        if (z < 0) return;
        total = z + 7;
      } else total = end + 4;
      if (this.pending.length < total) return;
      const body = this.pending.subarray(end + 4, total);
      this.pending = this.pending.subarray(total);
      this.busy = false;
      this.onResponse(this, status, body);
    }
  }
  close(): void {
    this.sock.destroy();
  }
}

export async function runLoad(spec: LoadSpec, onSecond?: (s: SecondStats) => void): Promise<LoadResult> {
  const reqs = requestsFor(spec);
  const cpu0 = process.cpuUsage();
  const latencies: number[] = [];
  const byStatus: Record<string, number> = {};
  const series: SecondStats[] = [];
  let cur: SecondStats = { t: 1, okRequests: 0, okEvents: 0, errors: 0 };
  let requests = 0;
  let okRequests = 0;
  let okEvents = 0;
  let okEventsInWindow = 0;
  let okRequestsInWindow = 0;
  let scheduled = 0;
  let socketErrors = 0;
  let dropped = 0;
  let firstBody = '';
  let errorSample = '';
  let running = true;
  const t0 = performance.now();
  const warmupEnd = t0 + (spec.warmupMs ?? 0);
  const queue: number[] = []; // scheduled start times (open mode)
  let tplIdx = 0;

  const nextRequest = () => {
    const tpl = reqs[tplIdx++ % reqs.length]!;
    const copy = Buffer.allocUnsafe(tpl.bytes.length);
    tpl.bytes.copy(copy);
    stamp(copy, tpl.slots, requestNo++, tpl.tsSlots, Date.now());
    return { copy, events: tpl.events };
  };
  let answered = 0;
  let allAnswered: (() => void) | undefined;
  const dispatch = (c: Conn, startedAt: number) => {
    if (spec.maxRequests !== undefined && requests >= spec.maxRequests) return;
    const { copy, events } = nextRequest();
    requests++;
    c.send(copy, startedAt, events);
  };
  const conns: Conn[] = [];
  const onResponse = (c: Conn, status: number, body: Buffer) => {
    const now = performance.now();
    byStatus[status] = (byStatus[status] ?? 0) + 1;
    if (status >= 200 && status < 300) {
      okRequests++;
      okEvents += c.events;
      if (running) {
        okEventsInWindow += c.events;
        okRequestsInWindow++;
      }
      cur.okRequests++;
      cur.okEvents += c.events;
      if (!firstBody) firstBody = body.toString('utf8').slice(0, 300);
    } else {
      cur.errors++;
      if (!errorSample) errorSample = `${status} ${body.toString('utf8').slice(0, 300)}`;
    }
    if (c.startedAt >= warmupEnd) latencies.push(now - c.startedAt);
    if (++answered === spec.maxRequests) allAnswered?.();
    if (!running) return;
    if (spec.mode === 'closed') dispatch(c, now);
    else if (queue.length > 0) dispatch(c, queue.shift()!);
  };
  const replace = (c: Conn) => {
    const i = conns.indexOf(c);
    if (i < 0) return false;
    c.close();
    if (running) conns[i] = newConn();
    else conns.splice(i, 1);
    return true;
  };
  const onError = (c: Conn) => {
    if (!replace(c)) return;
    socketErrors++;
    cur.errors++;
  };
  const newConn = (): Conn => new Conn(spec.host, spec.port, onResponse, onError, replace);
  for (let i = 0; i < spec.connections; i++) conns.push(newConn());
  await Promise.all(conns.map((c) => new Promise<void>((r) => (c.sock.once('connect', () => r()), c.sock.once('error', () => r())))));

  const secondTimer = setInterval(() => {
    series.push(cur);
    onSecond?.(cur);
    cur = { t: cur.t + 1, okRequests: 0, okEvents: 0, errors: 0 };
  }, 1000);

  let measuredMs = spec.durationMs;
  if (spec.mode === 'closed') {
    const start = performance.now();
    for (const c of conns) dispatch(c, start);
    await new Promise<void>((r) => {
      const t = setTimeout(r, spec.durationMs);
      allAnswered = () => (clearTimeout(t), r());
    });
    if (spec.maxRequests !== undefined) measuredMs = Math.min(spec.durationMs, performance.now() - start);
  } else {
    const rate = spec.rateRps ?? 1;
    const maxQueue = spec.maxQueue ?? spec.connections * 4;
    let issued = 0;
    const start = performance.now();
    await new Promise<void>((resolve) => {
      const tick = () => {
        const now = performance.now();
        if (now - start >= spec.durationMs) return resolve();
        const due = Math.floor(((now - start) * rate) / 1000);
        let ci = 0;
        while (issued < due) {
          const at = start + (issued * 1000) / rate;
          issued++;
          scheduled = issued;
          let free: Conn | undefined;
          for (; ci < conns.length; ci++) if (!conns[ci]!.busy) { free = conns[ci]; break; }
          if (free) dispatch(free, at);
          else if (queue.length < maxQueue) queue.push(at);
          else dropped++;
        }
        setTimeout(tick, 1);
      };
      tick();
    });
  }
  running = false;
  clearInterval(secondTimer);
  if (cur.okRequests + cur.errors > 0) series.push(cur);
  // Let in-flight answers land (their latency counts), then close.
  const until = performance.now() + 5000;
  while (conns.some((c) => c.busy) && performance.now() < until) await new Promise((r) => setTimeout(r, 10));
  for (const c of conns) c.close();
  const durationS = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const sorted = Float64Array.from(latencies).sort();
  const pct = (p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]! : NaN);
  const r2 = (x: number) => Math.round(x * 100) / 100;
  return {
    durationS: r2(durationS),
    requests,
    okRequests,
    okEvents,
    byStatus,
    socketErrors,
    dropped,
    eventsPerS: Math.round(okEvents / (measuredMs / 1000)),
    inWindowEventsPerS: Math.round(okEventsInWindow / (measuredMs / 1000)),
    scheduledRequests: spec.mode === 'open' ? scheduled : requests,
    inWindowOkRequests: okRequestsInWindow,
    requestsPerS: Math.round(okRequests / (measuredMs / 1000)),
    latencyMs: { p50: r2(pct(50)), p90: r2(pct(90)), p99: r2(pct(99)), max: r2(sorted.length ? sorted[sorted.length - 1]! : NaN), samples: sorted.length },
    cpuS: r2((cpu.user + cpu.system) / 1e6),
    series,
    firstBody,
    errorSample,
  };
}

// As a child process: run each spec sent by the parent, answer with the result.
if (process.send && process.argv.includes('--child')) {
  process.on('message', (m: { type: string; spec?: LoadSpec; id?: number }) => {
    if (m.type === 'exit') process.exit(0);
    if (m.type === 'run' && m.spec) {
      runLoad(m.spec, (s) => process.send!({ type: 'second', id: m.id, s })).then(
        (result) => process.send!({ type: 'result', id: m.id, result }),
        (err: Error) => process.send!({ type: 'error', id: m.id, error: err.stack ?? String(err) }),
      );
    }
  });
  process.send({ type: 'ready' });
}
