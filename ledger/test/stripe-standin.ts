// A local HTTP stand-in for the few Stripe endpoints Drawdown uses, for tests of the real
// `stripe` SDK (pointed here with host/port/protocol). It checks each request as Stripe would
// (path, method, secret key, form encoding, fields, idempotency keys: a reused key with other
// parameters is an error, with the same parameters the first answer is replayed) and keeps
// state (customers, invoices, invoice items). Payment methods follow Stripe's test cards:
// pm_card_visa pays, pm_card_chargeCustomerFail declines.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';

export interface RecordedRequest {
  method: string;
  path: string;
  params: Record<string, string>;
  idempotencyKey: string | undefined;
  replayed: boolean;
}

interface Customer { id: string; object: 'customer'; name: string | null; email: string | null; metadata: Record<string, string>; invoice_settings: { default_payment_method: string | null } }
interface Item { id: string; object: 'invoiceitem'; customer: string; invoice: string; amount: number; currency: string; description: string | null }
interface Invoice {
  id: string; object: 'invoice'; customer: string; currency: string; status: 'draft' | 'open' | 'paid' | 'void'; collection_method: string;
  auto_advance: boolean; description: string | null; metadata: Record<string, string>; number: string | null; total: number; amount_due: number; amount_paid: number;
  attempt_count: number; lines: { object: 'list'; data: Item[] };
}

class StripeError extends Error {
  constructor(readonly status: number, readonly type: string, message: string, readonly param?: string, readonly code?: string) {
    super(message);
  }
}

const id = (prefix: string) => `${prefix}_${randomBytes(8).toString('hex')}`;

function metadataOf(p: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(p)) {
    const m = /^metadata\[(.+)\]$/.exec(k);
    if (m) out[m[1]!] = v;
  }
  return out;
}

export class StripeStandIn {
  readonly requests: RecordedRequest[] = [];
  readonly customers = new Map<string, Customer>();
  readonly invoices = new Map<string, Invoice>();
  private readonly idem = new Map<string, { fingerprint: string; status: number; body: string }>();
  private server!: Server;
  port = 0;
  static readonly KEY = 'sk_test_standin';

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const path = (req.url ?? '').split('?')[0]!;
    const method = req.method ?? 'GET';
    const send = (status: number, body: string, replayed = false) => {
      res.writeHead(status, { 'content-type': 'application/json', 'request-id': id('req'), ...(replayed ? { 'idempotent-replayed': 'true' } : {}) });
      res.end(body);
    };
    try {
      if (req.headers.authorization !== `Bearer ${StripeStandIn.KEY}`) throw new StripeError(401, 'invalid_request_error', 'Invalid API Key provided');
      if (method === 'POST' && raw.length > 0 && !String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
        throw new StripeError(400, 'invalid_request_error', 'Stripe accepts form-encoded request bodies only');
      }
      const params = Object.fromEntries(new URLSearchParams(raw));
      const key = req.headers['idempotency-key'] as string | undefined;
      const rec: RecordedRequest = { method, path, params, idempotencyKey: key, replayed: false };
      this.requests.push(rec);
      if (method === 'POST') {
        if (!key) throw new StripeError(400, 'invalid_request_error', 'Drawdown always sends an Idempotency-Key; this request had none');
        const fingerprint = `${method} ${path} ${raw}`;
        const prior = this.idem.get(key);
        if (prior) {
          if (prior.fingerprint !== fingerprint) {
            throw new StripeError(400, 'idempotency_error', `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${key}' if you meant to execute a different request.`);
          }
          rec.replayed = true;
          send(prior.status, prior.body, true);
          return;
        }
        let status = 200;
        let body: string;
        try {
          body = JSON.stringify(this.route(method, path, params));
        } catch (err) {
          if (!(err instanceof StripeError)) throw err;
          status = err.status;
          body = JSON.stringify({ error: { type: err.type, message: err.message, param: err.param, code: err.code } });
        }
        // Stripe stores the first result of a key, errors included (not 5xx).
        this.idem.set(key, { fingerprint, status, body });
        send(status, body);
        return;
      }
      send(200, JSON.stringify(this.route(method, path, params)));
    } catch (err) {
      const e = err instanceof StripeError ? err : new StripeError(500, 'api_error', String(err));
      send(e.status, JSON.stringify({ error: { type: e.type, message: e.message, param: e.param, code: e.code } }));
    }
  }

  private route(method: string, path: string, p: Record<string, string>): unknown {
    let m: RegExpExecArray | null;
    if (method === 'POST' && path === '/v1/customers') return this.createCustomer(p);
    if (method === 'POST' && path === '/v1/invoices') return this.createInvoice(p);
    if (method === 'POST' && path === '/v1/invoiceitems') return this.createItem(p);
    if (method === 'POST' && (m = /^\/v1\/invoices\/([^/]+)\/finalize$/.exec(path))) return this.finalize(m[1]!, p);
    if (method === 'POST' && (m = /^\/v1\/invoices\/([^/]+)\/pay$/.exec(path))) return this.pay(m[1]!);
    if (method === 'GET' && (m = /^\/v1\/invoices\/([^/]+)$/.exec(path))) return this.invoice(m[1]!);
    throw new StripeError(404, 'invalid_request_error', `Unrecognized request URL (${method}: ${path}).`);
  }

  private createCustomer(p: Record<string, string>): Customer {
    const allowed = /^(name|email|description|payment_method|invoice_settings\[default_payment_method\]|metadata\[.+\])$/;
    for (const k of Object.keys(p)) if (!allowed.test(k)) throw new StripeError(400, 'invalid_request_error', `Received unknown parameter: ${k}`, k);
    if (p.email !== undefined && !/^[^@\s]+@[^@\s]+$/.test(p.email)) throw new StripeError(400, 'invalid_request_error', 'Invalid email address', 'email');
    const c: Customer = { id: id('cus'), object: 'customer', name: p.name ?? null, email: p.email ?? null, metadata: metadataOf(p), invoice_settings: { default_payment_method: p['invoice_settings[default_payment_method]'] ?? p.payment_method ?? null } };
    this.customers.set(c.id, c);
    return c;
  }

  private createInvoice(p: Record<string, string>): Invoice {
    const allowed = /^(customer|currency|collection_method|auto_advance|pending_invoice_items_behavior|description|metadata\[.+\])$/;
    for (const k of Object.keys(p)) if (!allowed.test(k)) throw new StripeError(400, 'invalid_request_error', `Received unknown parameter: ${k}`, k);
    if (!p.customer || !this.customers.has(p.customer)) throw new StripeError(400, 'invalid_request_error', `No such customer: '${p.customer ?? ''}'`, 'customer', 'resource_missing');
    if (p.currency !== undefined && !/^[a-z]{3}$/.test(p.currency)) throw new StripeError(400, 'invalid_request_error', 'Invalid currency', 'currency');
    if (p.collection_method !== undefined && !['charge_automatically', 'send_invoice'].includes(p.collection_method)) throw new StripeError(400, 'invalid_request_error', 'Invalid collection_method', 'collection_method');
    if (p.auto_advance !== undefined && !['true', 'false'].includes(p.auto_advance)) throw new StripeError(400, 'invalid_request_error', 'Invalid boolean', 'auto_advance');
    if (p.pending_invoice_items_behavior !== undefined && !['exclude', 'include'].includes(p.pending_invoice_items_behavior)) throw new StripeError(400, 'invalid_request_error', 'Invalid pending_invoice_items_behavior', 'pending_invoice_items_behavior');
    const inv: Invoice = {
      id: id('in'), object: 'invoice', customer: p.customer, currency: p.currency ?? 'usd', status: 'draft', collection_method: p.collection_method ?? 'charge_automatically',
      auto_advance: p.auto_advance === 'true', description: p.description ?? null, metadata: metadataOf(p), number: null, total: 0, amount_due: 0, amount_paid: 0, attempt_count: 0,
      lines: { object: 'list', data: [] },
    };
    this.invoices.set(inv.id, inv);
    return inv;
  }

  private createItem(p: Record<string, string>): Item {
    const allowed = /^(customer|invoice|amount|currency|description|metadata\[.+\])$/;
    for (const k of Object.keys(p)) if (!allowed.test(k)) throw new StripeError(400, 'invalid_request_error', `Received unknown parameter: ${k}`, k);
    if (!p.customer || !this.customers.has(p.customer)) throw new StripeError(400, 'invalid_request_error', `No such customer: '${p.customer ?? ''}'`, 'customer', 'resource_missing');
    const inv = p.invoice ? this.invoices.get(p.invoice) : undefined;
    if (!inv) throw new StripeError(400, 'invalid_request_error', `No such invoice: '${p.invoice ?? ''}'`, 'invoice', 'resource_missing');
    if (inv.customer !== p.customer) throw new StripeError(400, 'invalid_request_error', 'The invoice belongs to another customer', 'invoice');
    if (inv.status !== 'draft') throw new StripeError(400, 'invalid_request_error', 'Invoice items can only be added to a draft invoice', 'invoice');
    if (p.amount === undefined || !/^-?\d+$/.test(p.amount)) throw new StripeError(400, 'invalid_request_error', 'Invalid integer: amount must be a whole number of the smallest currency unit', 'amount');
    if (p.currency !== inv.currency) throw new StripeError(400, 'invalid_request_error', 'The currency of the invoice item must match the invoice', 'currency');
    const item: Item = { id: id('ii'), object: 'invoiceitem', customer: p.customer, invoice: inv.id, amount: Number(p.amount), currency: p.currency, description: p.description ?? null };
    inv.lines.data.push(item);
    inv.total += item.amount;
    inv.amount_due = inv.total;
    return item;
  }

  private invoice(invId: string): Invoice {
    const inv = this.invoices.get(invId);
    if (!inv) throw new StripeError(404, 'invalid_request_error', `No such invoice: '${invId}'`, 'id', 'resource_missing');
    return inv;
  }

  private finalize(invId: string, p: Record<string, string>): Invoice {
    for (const k of Object.keys(p)) if (k !== 'auto_advance') throw new StripeError(400, 'invalid_request_error', `Received unknown parameter: ${k}`, k);
    const inv = this.invoice(invId);
    if (inv.status !== 'draft') throw new StripeError(400, 'invalid_request_error', `This invoice is already finalized, you can't re-finalize a non-draft invoice.`);
    inv.status = inv.total === 0 ? 'paid' : 'open';
    inv.number = `STANDIN-${this.invoices.size.toString().padStart(4, '0')}`;
    return inv;
  }

  private pay(invId: string): Invoice {
    const inv = this.invoice(invId);
    if (inv.status === 'paid') throw new StripeError(400, 'invalid_request_error', 'Invoice is already paid', undefined, 'invoice_already_paid');
    if (inv.status !== 'open') throw new StripeError(400, 'invalid_request_error', 'You can only pay an open invoice', undefined, 'invoice_not_open');
    inv.attempt_count++;
    const pm = this.customers.get(inv.customer)!.invoice_settings.default_payment_method;
    if (!pm) throw new StripeError(400, 'invalid_request_error', 'The customer has no default payment method', undefined, 'invoice_no_customer_payment_method');
    if (pm === 'pm_card_chargeCustomerFail') throw new StripeError(402, 'card_error', 'Your card was declined.', undefined, 'card_declined');
    inv.status = 'paid';
    inv.amount_paid = inv.total;
    inv.amount_due = 0;
    return inv;
  }
}
