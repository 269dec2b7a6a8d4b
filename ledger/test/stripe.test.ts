// The Stripe provider on the real `stripe` SDK. By default the SDK talks to a local stand-in
// (stripe-standin.ts) that checks every request as Stripe would; with STRIPE_API_KEY set
// (a sk_test_ key) the same test runs against Stripe's test mode instead (never required).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, ensureDatabase, migrate, withTx, type Pool } from '@drawdown/pg';
import { testEnv, type TestEnv } from '@drawdown/testkit';
import { LEDGER_MIGRATIONS } from '../src/index';
import { newId } from '../src/ids';
import { createLedgerEntry } from '../src/credits/entries';
import { parseLedgerEntry } from '../src/credits/parse';
import { balancesOf } from '../src/credits/queries';
import { StripeProvider } from '../src/payments/stripe';
import { collectPayments, handleStripeWebhook } from '../src/payments/collect';
import { StripeStandIn } from './stripe-standin';

const REAL = process.env.STRIPE_API_KEY;
const SECRET = 'whsec_drawdown_test';

describe(`Stripe provider (${REAL ? 'Stripe test mode' : 'local stand-in'})`, () => {
  let env: TestEnv;
  let pool: Pool;
  let standin: StripeStandIn | undefined;
  let provider: StripeProvider;

  beforeAll(async () => {
    env = testEnv();
    await ensureDatabase(env.config.databaseUrl);
    pool = createPool(env.config.databaseUrl, { max: 4 });
    await migrate(pool, [LEDGER_MIGRATIONS]);
    if (!REAL) {
      standin = new StripeStandIn();
      await standin.start();
    }
    provider = new StripeProvider({ apiKey: REAL ?? StripeStandIn.KEY, apiUrl: standin?.url, maxNetworkRetries: 1 });
  });

  afterAll(async () => {
    await standin?.stop();
    await pool?.end();
    await env?.cleanup();
  });

  /** A customer with a card on file in Stripe, as Checkout would leave it. */
  const customerWithCard = async (ext: string, card: string) => {
    const sc = await provider.client.customers.create(
      { email: `${ext}@example.com`, payment_method: card, invoice_settings: { default_payment_method: card } },
      { idempotencyKey: `test-${ext}-${newId()}` },
    );
    const id = newId();
    await pool.query("INSERT INTO customers (id, external_customer_id, name, email, payment_provider, payment_provider_id) VALUES ($1, $2, $3, $4, 'stripe', $5)", [id, ext, ext, `${ext}@example.com`, sc.id]);
    return { id, external_customer_id: ext, stripeId: sc.id };
  };

  const purchase = (c: { id: string; external_customer_id: string }, amount: number, cost: string) =>
    createLedgerEntry(pool, c, parseLedgerEntry({
      entry_type: 'increment', amount, currency: 'credits', per_unit_cost_basis: cost,
      invoice_settings: { auto_collection: true, net_terms: 0, memo: 'credits', require_successful_payment: true },
    }));

  const invoiceOf = async (blockId: string) =>
    (await pool.query('SELECT i.* FROM invoices i JOIN credit_blocks b ON b.invoice_id = i.id WHERE b.id = $1', [blockId])).rows[0];
  const balance = async (customerId: string) => (await balancesOf(pool, customerId)).find((b) => b.pricing_unit === 'credits')?.balance ?? 0n;

  it('collects a purchase with the card on file: invoice, items, finalize, pay; the block becomes available', async () => {
    const c = await customerWithCard('paying', 'pm_card_visa');
    const entry = await purchase(c, 1000, '0.015');
    expect(entry.entry_status).toBe('pending');
    expect(await balance(c.id)).toBe(0n);
    const before = standin?.requests.length ?? 0;

    expect(await collectPayments(pool, provider, { now: new Date(), limit: 10 })).toBe(1);
    const inv = await invoiceOf(entry.credit_block.id);
    expect([inv.status, inv.collection, inv.provider]).toEqual(['paid', 'succeeded', 'stripe']);
    expect(inv.provider_invoice_id).toMatch(/^in_/);
    expect(await balance(c.id)).toBe(1000n * 10n ** 12n);
    const attempts = await pool.query('SELECT succeeded, amount::text FROM payment_attempts WHERE invoice_id = $1', [inv.id]);
    expect(attempts.rows).toEqual([{ succeeded: true, amount: '15.000000000000' }]);

    if (standin) {
      const calls = standin.requests.slice(before);
      expect(calls.map((r) => `${r.method} ${r.path.replace(/in_[0-9a-f]+/, 'in_X')}`)).toEqual([
        'POST /v1/invoices', 'POST /v1/invoiceitems', 'POST /v1/invoices/in_X/finalize', 'POST /v1/invoices/in_X/pay',
      ]);
      expect(calls.every((r) => r.idempotencyKey?.startsWith(`drawdown-${inv.id}-`))).toBe(true);
      expect(calls[0]!.params).toMatchObject({ customer: c.stripeId, currency: 'usd', collection_method: 'charge_automatically', auto_advance: 'false', 'metadata[drawdown_invoice_id]': inv.id });
      expect(calls[1]!.params).toMatchObject({ amount: '1500', currency: 'usd', invoice: inv.provider_invoice_id, description: '1000 credits' });
      expect(standin.invoices.get(inv.provider_invoice_id)!.status).toBe('paid');
    }
  });

  it('a retried collection replays Stripe\'s answers instead of charging twice', async () => {
    const c = await customerWithCard('retry', 'pm_card_visa');
    const entry = await purchase(c, 10, '1.5');
    const inv = await invoiceOf(entry.credit_block.id);
    const input = {
      invoiceId: inv.id, invoiceNumber: inv.invoice_number, customer: { id: c.id, name: 'retry', email: 'retry@example.com', providerCustomerId: c.stripeId },
      currency: 'USD', memo: 'credits', lines: [{ description: '10 credits', amountMinor: 1500n }], totalMinor: 1500n,
    };
    const first = await provider.collect(input);
    const second = await provider.collect(input);
    expect(first.outcome).toBe('paid');
    expect(second.providerInvoiceId).toBe(first.providerInvoiceId);
    if (standin) {
      expect([...standin.invoices.values()].filter((i) => i.metadata.drawdown_invoice_id === inv.id)).toHaveLength(1);
      expect(standin.requests.slice(-4).every((r) => r.replayed)).toBe(true);
    }
    // The collector's own pass sends the same requests: replayed, and the invoice is paid.
    await collectPayments(pool, provider, { now: new Date(), limit: 10 });
    expect((await invoiceOf(entry.credit_block.id)).status).toBe('paid');
  });

  it('a collection that crashed mid-way is claimed again later and replays, charging once', async () => {
    const c = await customerWithCard('crash', 'pm_card_visa');
    const entry = await purchase(c, 40, '0.25');
    const inv = await invoiceOf(entry.credit_block.id);
    // The crashed attempt: Stripe got every call, our transaction never committed.
    await provider.collect({
      invoiceId: inv.id, invoiceNumber: inv.invoice_number, customer: { id: c.id, name: 'crash', email: 'crash@example.com', providerCustomerId: c.stripeId },
      currency: 'USD', memo: 'credits', lines: [{ description: '40 credits', amountMinor: 1000n }], totalMinor: 1000n,
    });
    const claimedAt = new Date(Date.now() - 3_600_000);
    await pool.query("UPDATE invoices SET collection = 'started', payment_started_at = $2 WHERE id = $1", [inv.id, claimedAt]);
    await collectPayments(pool, provider, { now: new Date(claimedAt.getTime() + 60_000), limit: 10, retryAfterMs: 600_000 });
    expect((await invoiceOf(entry.credit_block.id)).collection).toBe('started'); // not stale yet
    await collectPayments(pool, provider, { now: new Date(), limit: 10, retryAfterMs: 600_000 });
    const after = await invoiceOf(entry.credit_block.id);
    expect([after.status, after.collection]).toEqual(['paid', 'succeeded']);
    if (standin) expect([...standin.invoices.values()].filter((i) => i.metadata.drawdown_invoice_id === inv.id).map((i) => [i.status, i.total])).toEqual([['paid', 1000]]);
  });

  it('a declined card leaves the invoice issued and the block pending; Stripe\'s signed invoice.paid webhook settles both', async () => {
    const c = await customerWithCard('declined', 'pm_card_chargeCustomerFail');
    const entry = await purchase(c, 200, '0.05');
    await collectPayments(pool, provider, { now: new Date(), limit: 10 });
    const inv = await invoiceOf(entry.credit_block.id);
    expect([inv.status, inv.collection]).toEqual(['issued', 'failed']);
    expect(inv.payment_failed_at).not.toBeNull();
    expect(await balance(c.id)).toBe(0n);

    // The customer pays later in Stripe (another card); Stripe sends invoice.paid.
    const payload = JSON.stringify({
      id: `evt_${newId()}`, object: 'event', type: 'invoice.paid', api_version: '2025-01-01', created: Math.floor(Date.now() / 1000),
      data: { object: { id: inv.provider_invoice_id, object: 'invoice', status: 'paid', metadata: { drawdown_invoice_id: inv.id } } },
    });
    const header = provider.client.webhooks.generateTestHeaderString({ payload, secret: SECRET });
    await expect(handleStripeWebhook(pool, provider.client, 'whsec_other', Buffer.from(payload), header, new Date())).rejects.toThrow(/signature/i);
    await expect(handleStripeWebhook(pool, provider.client, SECRET, Buffer.from(payload.replace('invoice.paid', 'invoice.paid ')), header, new Date())).rejects.toThrow(/signature/i);
    expect((await invoiceOf(entry.credit_block.id)).status).toBe('issued');

    const r = await handleStripeWebhook(pool, provider.client, SECRET, Buffer.from(payload), header, new Date());
    expect(r).toEqual({ applied: true, type: 'invoice.paid' });
    expect((await invoiceOf(entry.credit_block.id)).status).toBe('paid');
    expect(await balance(c.id)).toBe(200n * 10n ** 12n);
    // Stripe redelivers: applied once.
    expect(await handleStripeWebhook(pool, provider.client, SECRET, Buffer.from(payload), header, new Date())).toEqual({ applied: false, type: 'invoice.paid' });
    const ledger = await pool.query("SELECT entry_status FROM ledger_entries WHERE block_id = $1", [entry.credit_block.id]);
    expect(ledger.rows).toEqual([{ entry_status: 'committed' }]);
  });

  it('voiding an unpaid purchase invoice voids its pending block', async () => {
    const c = await customerWithCard('voided', 'pm_card_chargeCustomerFail');
    const entry = await purchase(c, 50, '0.1');
    const inv = await invoiceOf(entry.credit_block.id);
    const { voidInvoice } = await import('../src/invoices/invoices');
    await withTx(pool, (tx) => voidInvoice(tx, inv.id, new Date()));
    const block = await pool.query('SELECT status, remaining::text FROM credit_blocks WHERE id = $1', [entry.credit_block.id]);
    expect(block.rows[0]).toEqual({ status: 'void', remaining: '0.000000000000' });
    expect((await invoiceOf(entry.credit_block.id)).collection).toBe('none');
    expect(await collectPayments(pool, provider, { now: new Date(), limit: 10 })).toBe(0);
  });
});
