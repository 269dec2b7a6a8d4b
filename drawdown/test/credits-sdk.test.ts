// Every credits endpoint driven through the official orb-billing SDK against a started
// all-in-one server: blocks, ledger (filters, pagination), every writable entry type,
// credit blocks retrieve/delete, Idempotency-Key, expiry, shared pools, errors.
import Orb from 'orb-billing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv, type TestEnv } from '@drawdown/testkit';
import { createLogger } from '@drawdown/log';
import { applyDebitBatches } from '@drawdown/ledger';
import { startApp, type App } from '../src/index';

const day = (offsetDays: number) => new Date(Date.now() + offsetDays * 86_400_000).toISOString().slice(0, 10);

describe('credits through the orb-billing SDK', () => {
  let env: TestEnv;
  let app: App;
  let orb: Orb;

  beforeAll(async () => {
    env = testEnv();
    app = await startApp(env.config, createLogger({ test: 'credits-sdk' }, { level: env.config.logLevel as 'error' }));
    orb = new Orb({ apiKey: app.adminKey, baseURL: `${app.baseUrl}/v1`, maxRetries: 0 });
  });

  afterAll(async () => {
    await app?.stop();
    await env?.cleanup();
  });

  it('grants, decrements across blocks, moves expiry, voids, amends, lists and pages', async () => {
    const customer = await orb.customers.create({ name: 'Acme', email: 'billing@acme.test', external_customer_id: 'acme' });
    const soon = await orb.customers.credits.ledger.createEntry(customer.id, {
      entry_type: 'increment', amount: 100, expiry_date: day(30), per_unit_cost_basis: '0.10', description: 'promo',
      invoice_settings: { auto_collection: false, net_terms: 0 }, metadata: { campaign: 'spring' },
    });
    expect(soon.entry_type).toBe('increment');
    expect(soon.starting_balance).toBe(0);
    expect(soon.ending_balance).toBe(100);
    expect(soon.amount).toBe(100);
    expect(soon.ledger_sequence_number).toBe(1);
    expect(soon.customer).toEqual({ id: customer.id, external_customer_id: 'acme' });
    expect(soon.credit_block.per_unit_cost_basis).toBe('0.1');
    expect(soon.metadata).toEqual({ campaign: 'spring' });
    const stored = await app.pool.query('SELECT invoice_settings FROM credit_blocks WHERE id = $1', [soon.credit_block.id]);
    expect(stored.rows[0].invoice_settings).toEqual({ auto_collection: false, net_terms: 0, memo: null, require_successful_payment: false });

    const never = await orb.customers.credits.ledger.createEntryByExternalID('acme', { entry_type: 'increment', amount: 50, currency: 'credits' });
    expect(never.ending_balance).toBe(150);
    const tokens = await orb.customers.credits.ledger.createEntry(customer.id, { entry_type: 'increment', amount: 7.25, currency: 'tokens' });
    expect(tokens.currency).toBe('tokens');
    expect(tokens.ending_balance).toBe(7.25);

    // 120 spans blocks: the soonest-expiring block first, then the non-expiring one.
    const dec = await orb.customers.credits.ledger.createEntry(customer.id, { entry_type: 'decrement', amount: 120, description: 'manual usage' });
    expect(dec.entry_type).toBe('decrement');
    expect(dec.credit_block.id).toBe(never.credit_block.id);
    expect(dec.amount).toBe(-20);
    expect(dec.ending_balance).toBe(30);

    const active = await orb.customers.credits.list(customer.id, { currency: 'credits' });
    expect(active.data.map((b) => [b.id, b.balance])).toEqual([[never.credit_block.id, 30]]);
    const all = await orb.customers.credits.listByExternalID('acme', { include_all_blocks: true });
    expect(all.data).toHaveLength(3);
    const first = all.data.find((b) => b.id === soon.credit_block.id)!;
    expect(first).toMatchObject({ balance: 0, maximum_initial_balance: 100, status: 'active', credit_block_source: 'manual', per_unit_cost_basis: '0.1', filters: [] });

    const moved = await orb.customers.credits.ledger.createEntry(customer.id, { entry_type: 'expiration_change', block_id: never.credit_block.id, amount: 10, target_expiry_date: day(60) });
    expect(moved.entry_type).toBe('expiration_change');
    if (moved.entry_type !== 'expiration_change') throw new Error('unreachable');
    expect(moved.amount).toBe(10);
    expect(moved.starting_balance).toBe(moved.ending_balance);
    expect(moved.new_block_expiry_date?.slice(0, 10)).toBe(day(60));

    const voided = await orb.customers.credits.ledger.createEntry(customer.id, { entry_type: 'void', block_id: never.credit_block.id, amount: 5, void_reason: 'refund' });
    if (voided.entry_type !== 'void') throw new Error(`expected void, got ${voided.entry_type}`);
    expect(voided.void_amount).toBe(5);
    expect(voided.void_reason).toBe('refund');
    expect(voided.ending_balance).toBe(25);

    const paged = [];
    for await (const b of orb.customers.credits.list(customer.id, { include_all_blocks: true, limit: 1 })) paged.push(b.id);
    expect(paged).toHaveLength(4); // promo, general, tokens, and the block the expiration change created
    expect(new Set(paged).size).toBe(4);

    const amended = await orb.customers.credits.ledger.createEntry(customer.id, { entry_type: 'amendment', block_id: soon.credit_block.id, amount: 3 });
    expect(amended.entry_type).toBe('amendment');
    expect(amended.ending_balance).toBe(28);

    // Ledger: newest first, filters, pagination through the SDK's auto-pager.
    const entries = [];
    for await (const e of orb.customers.credits.ledger.list(customer.id, { limit: 2 })) entries.push(e);
    expect(entries.map((e) => e.entry_type)).toEqual(['amendment', 'void', 'expiration_change', 'decrement', 'decrement', 'increment', 'increment', 'increment']);
    const credits = entries.filter((e) => e.currency === 'credits');
    expect(credits.map((e) => e.ledger_sequence_number)).toEqual([7, 6, 5, 4, 3, 2, 1]);
    const decs = await orb.customers.credits.ledger.list(customer.id, { entry_type: 'decrement' });
    expect(decs.data.map((e) => e.amount).sort()).toEqual([-100, -20]);
    const big = await orb.customers.credits.ledger.listByExternalID('acme', { minimum_amount: '50' });
    expect(big.data.map((e) => e.amount).sort((a, b) => a - b)).toEqual([-100, 50, 100]);
    const tok = await orb.customers.credits.ledger.list(customer.id, { currency: 'tokens' });
    expect(tok.data).toHaveLength(1);
    const none = await orb.customers.credits.ledger.list(customer.id, { 'created_at[gte]': new Date(Date.now() + 3600_000).toISOString() });
    expect(none.data).toHaveLength(0);

    // Credit blocks: retrieve, delete (remaining voided, block gone).
    const block = await orb.creditBlocks.retrieve(never.credit_block.id);
    expect(block.balance).toBe(15);
    await orb.creditBlocks.delete(never.credit_block.id);
    await expect(orb.creditBlocks.retrieve(never.credit_block.id)).rejects.toBeInstanceOf(Orb.NotFoundError);
    const lastVoid = await orb.customers.credits.ledger.list(customer.id, { entry_type: 'void', limit: 1 });
    expect(lastVoid.data[0]!.amount).toBe(-15);
    expect(lastVoid.data[0]!.ending_balance).toBe(13);
  });

  it('answers bad input with 400 naming the field, and unknown ids with 404', async () => {
    const customer = await orb.customers.create({ name: 'Errors', email: 'e@x.test' });
    const bad = await orb.customers.credits.ledger.createEntry(customer.id, { entry_type: 'void', amount: -1 } as never).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(Orb.BadRequestError);
    const fields = ((bad as { error: { errors: { field: string }[] } }).error.errors).map((x) => x.field).sort();
    expect(fields).toEqual(['amount', 'block_id']);
    const over = await orb.customers.credits.ledger.createEntry(customer.id, { entry_type: 'decrement', amount: 1 }).catch((e: unknown) => e);
    expect(over).toBeInstanceOf(Orb.BadRequestError);
    expect((over as Error).message).toMatch(/amount/);
    await expect(orb.customers.credits.ledger.createEntry('nope', { entry_type: 'increment', amount: 1 })).rejects.toBeInstanceOf(Orb.NotFoundError);
    await expect(orb.customers.credits.ledger.list(customer.id, { entry_type: 'bogus' as never })).rejects.toBeInstanceOf(Orb.BadRequestError);
  });

  it('honours Idempotency-Key: replays the first answer, 409 for another body', async () => {
    const customer = await orb.customers.create({ name: 'Idem', email: 'i@x.test' });
    const a = await orb.customers.credits.ledger.createEntry(customer.id, { entry_type: 'increment', amount: 10 }, { idempotencyKey: 'grant-1' });
    const b = await orb.customers.credits.ledger.createEntry(customer.id, { entry_type: 'increment', amount: 10 }, { idempotencyKey: 'grant-1' });
    expect(b).toEqual(a);
    const blocks = await orb.customers.credits.list(customer.id);
    expect(blocks.data).toHaveLength(1);
    await expect(orb.customers.credits.ledger.createEntry(customer.id, { entry_type: 'increment', amount: 11 }, { idempotencyKey: 'grant-1' })).rejects.toBeInstanceOf(Orb.ConflictError);
    // A failed request does not burn its key.
    await expect(orb.customers.credits.ledger.createEntry(customer.id, { entry_type: 'decrement', amount: 1000 }, { idempotencyKey: 'dec-1' })).rejects.toBeInstanceOf(Orb.BadRequestError);
    await orb.customers.credits.ledger.createEntry(customer.id, { entry_type: 'increment', amount: 1000 });
    const ok = await orb.customers.credits.ledger.createEntry(customer.id, { entry_type: 'decrement', amount: 1000 }, { idempotencyKey: 'dec-1' });
    expect(ok.ending_balance).toBe(10);
    // Other domains' POSTs get the same treatment (ledgerRoutes wraps every POST).
    const c1 = await orb.customers.create({ name: 'Once', email: 'o@x.test' }, { idempotencyKey: 'cust-1' });
    const c2 = await orb.customers.create({ name: 'Once', email: 'o@x.test' }, { idempotencyKey: 'cust-1' });
    expect(c2.id).toBe(c1.id);
  });

  it('expires a block at its expiry time, even when the job runs late', async () => {
    const customer = await orb.customers.create({ name: 'Expiry', email: 'x@x.test' });
    const g = await orb.customers.credits.ledger.createEntry(customer.id, { entry_type: 'increment', amount: 40, expiry_date: day(1) });
    await orb.customers.credits.ledger.createEntry(customer.id, { entry_type: 'increment', amount: 2 });
    await orb.customers.credits.ledger.createEntry(customer.id, { entry_type: 'decrement', amount: 15 });
    // The clock passes the expiry: the block's expiry time is moved an hour into the past.
    const expiredAt = new Date(Date.now() - 3600_000);
    await app.pool.query("UPDATE credit_blocks SET expiry_date = $2, effective_date = $2::timestamptz - interval '1 day' WHERE id = $1", [g.credit_block.id, expiredAt]);
    await app.ledger.creditJobs.runOnce();
    const e = await orb.customers.credits.ledger.list(customer.id, { entry_type: 'credit_block_expiry' });
    expect(e.data).toHaveLength(1);
    expect(e.data[0]).toMatchObject({ amount: -25, starting_balance: 27, ending_balance: 2, created_at: expiredAt.toISOString() });
    const blocks = await orb.customers.credits.list(customer.id);
    expect(blocks.data.map((b) => b.balance)).toEqual([2]);
    await app.ledger.creditJobs.runOnce();
    expect((await orb.customers.credits.ledger.list(customer.id, { entry_type: 'credit_block_expiry' })).data).toHaveLength(1);
  });

  it('voids a block bought through an open invoice in two steps: void_initiated, then void when the invoice closes', async () => {
    const customer = await orb.customers.create({ name: 'Refund', email: 'r@x.test' });
    const bought = await orb.customers.credits.ledger.createEntry(customer.id, {
      entry_type: 'increment', amount: 50, per_unit_cost_basis: '0.5', invoice_settings: { auto_collection: false, net_terms: 30 },
    });
    if (bought.entry_type !== 'increment') throw new Error('unreachable');
    const invoiceId = (await app.pool.query('SELECT invoice_id FROM credit_blocks WHERE id = $1', [bought.credit_block.id])).rows[0].invoice_id as string;
    expect(invoiceId).toBeTruthy();
    const plain = await orb.customers.credits.ledger.createEntry(customer.id, { entry_type: 'increment', amount: 5 });

    // The invoice is still open: the void starts; the credits leave the balance at once.
    const started = await orb.customers.credits.ledger.createEntry(customer.id, { entry_type: 'void', block_id: bought.credit_block.id, amount: 20, void_reason: 'refund', description: 'customer asked' });
    if (started.entry_type !== 'void_initiated') throw new Error(`expected void_initiated, got ${started.entry_type}`);
    expect(started).toMatchObject({ amount: -20, void_amount: 20, void_reason: 'refund', starting_balance: 55, ending_balance: 35, description: 'customer asked' });
    expect(Date.parse(started.new_block_expiry_date)).toBeLessThanOrEqual(Date.now());
    expect((await orb.customers.credits.list(customer.id)).data.map((b) => [b.id, b.balance])).toEqual([[bought.credit_block.id, 30], [plain.credit_block.id, 5]]);
    // Nothing completes while the invoice is open.
    await app.ledger.creditJobs.runOnce();
    expect((await orb.customers.credits.ledger.list(customer.id, { entry_type: 'void' })).data).toHaveLength(0);

    // A block with no open invoice is voided in one step.
    const direct = await orb.customers.credits.ledger.createEntry(customer.id, { entry_type: 'void', block_id: plain.credit_block.id, amount: 1 });
    expect(direct.entry_type).toBe('void');

    // The invoice is paid: the void completes (amount 0: the credits already left), once.
    await orb.invoices.markPaid(invoiceId, { payment_received_date: day(0) });
    await app.ledger.creditJobs.runOnce();
    await app.ledger.creditJobs.runOnce();
    const voids = await orb.customers.credits.ledger.list(customer.id, { entry_type: 'void' });
    const done = voids.data.filter((e) => e.metadata.void_initiated_entry_id === started.id);
    expect(done).toHaveLength(1);
    expect(done[0]).toMatchObject({ amount: 0, void_amount: 20, void_reason: 'refund', starting_balance: 34, ending_balance: 34, credit_block: { id: bought.credit_block.id } });
    const listed = await orb.customers.credits.ledger.list(customer.id, { entry_type: 'void_initiated' });
    expect(listed.data.map((e) => [e.id, e.entry_type, e.amount])).toEqual([[started.id, 'void_initiated', -20]]);
    const all = [];
    for await (const e of orb.customers.credits.ledger.list(customer.id)) all.push(e.entry_type);
    expect(all).toEqual(['void', 'void', 'void_initiated', 'increment', 'increment']);
  });

  it('settles overage from a block once its effective date passes', async () => {
    const customer = await orb.customers.create({ name: 'Later', email: 'l@x.test' });
    await orb.alerts.createForCustomer(customer.id, { type: 'credit_balance_recovered', currency: 'credits' });
    const line = { customerId: customer.id, pricingUnit: 'credits', priceId: 'p1', day: day(0), amountPicos: '6000000000000', quantityPicos: '0', events: 1 };
    await applyDebitBatches(app.pool, [{ id: `later:${customer.id}`, partition: 0, firstSeq: 1, lastSeq: 1, receivedAtMax: Date.now(), lines: [line] }]);
    const g = await orb.customers.credits.ledger.createEntry(customer.id, { entry_type: 'increment', amount: 10, effective_date: day(2) });
    expect([g.starting_balance, g.ending_balance]).toEqual([-6, -6]); // not yet effective
    // The clock passes the effective date.
    await app.pool.query("UPDATE credit_blocks SET effective_date = now() - interval '1 minute' WHERE id = $1", [g.credit_block.id]);
    await app.ledger.creditJobs.runOnce();
    const settled = await orb.customers.credits.ledger.list(customer.id, { entry_type: 'decrement', limit: 1 });
    expect(settled.data[0]).toMatchObject({ amount: -6, starting_balance: 4, ending_balance: 4, credit_block: { id: g.credit_block.id } });
    expect((await orb.customers.credits.list(customer.id)).data.map((b) => b.balance)).toEqual([4]);
    const out = await app.pool.query("SELECT topic FROM outbox WHERE customer_id = $1 AND topic = 'customer.credit_balance_recovered'", [customer.id]);
    expect(out.rowCount).toBe(1);
  });

  it('lets a child draw on its parent pool once its own credits are used, overage stays the child’s', async () => {
    const parent = await orb.customers.create({ name: 'Group', email: 'g@x.test' });
    const child = await orb.customers.create({ name: 'Subsidiary', email: 's@x.test' });
    await app.pool.query('UPDATE customers SET parent_id = $1 WHERE id = $2', [parent.id, child.id]);
    await orb.customers.credits.ledger.createEntry(parent.id, { entry_type: 'increment', amount: 100 });
    await orb.customers.credits.ledger.createEntry(child.id, { entry_type: 'increment', amount: 10 });
    const line = (amount: string) => ({ customerId: child.id, pricingUnit: 'credits', priceId: 'p1', day: day(0), amountPicos: `${amount}000000000000`, quantityPicos: '0', events: 1 });
    await applyDebitBatches(app.pool, [{ id: 'pool:1-1', partition: 0, firstSeq: 1, lastSeq: 1, receivedAtMax: Date.now(), lines: [line('30')] }]);
    const bal = async (id: string) => (await orb.customers.credits.list(id)).data.reduce((a, b) => a + b.balance, 0);
    expect(await bal(child.id)).toBe(0);
    expect(await bal(parent.id)).toBe(80);
    const parentDecs = await orb.customers.credits.ledger.list(parent.id, { entry_type: 'decrement' });
    expect(parentDecs.data).toHaveLength(1);
    expect(parentDecs.data[0]).toMatchObject({ amount: -20, metadata: { usage_customer_id: child.id } });
    await applyDebitBatches(app.pool, [{ id: 'pool:2-2', partition: 0, firstSeq: 2, lastSeq: 2, receivedAtMax: Date.now(), lines: [line('90')] }]);
    expect(await bal(parent.id)).toBe(0);
    const childBalance = await app.pool.query("SELECT overage::text FROM credit_balances WHERE customer_id = $1 AND pricing_unit = 'credits'", [child.id]);
    expect(Number(childBalance.rows[0].overage)).toBe(10);
    // The grouped entry on the parent's block grew rather than adding a row.
    expect((await orb.customers.credits.ledger.list(parent.id, { entry_type: 'decrement' })).data.map((e) => e.amount)).toEqual([-100]);
    // The child's next grant settles its overage first.
    const g = await orb.customers.credits.ledger.createEntry(child.id, { entry_type: 'increment', amount: 25 });
    expect(g.starting_balance).toBe(-10);
    expect(g.ending_balance).toBe(15);
    expect(await bal(child.id)).toBe(15);
  });

  it('draws usage only from blocks whose item filters admit the price', async () => {
    const customer = await orb.customers.create({ name: 'Filters', email: 'f@x.test' });
    await app.pool.query("INSERT INTO items (id, name) VALUES ('item-gpu', 'GPU'), ('item-cpu', 'CPU')");
    await app.pool.query(`INSERT INTO prices (id, lineage_id, item_id, name, model_type, cadence, currency, config)
      VALUES ('price-gpu', 'price-gpu', 'item-gpu', 'GPU', 'unit', 'monthly', 'credits', '{}'), ('price-cpu', 'price-cpu', 'item-cpu', 'CPU', 'unit', 'monthly', 'credits', '{}')`);
    const gpuOnly = await orb.customers.credits.ledger.createEntry(customer.id, {
      entry_type: 'increment', amount: 10, expiry_date: day(5), filters: [{ field: 'item_id', operator: 'includes', values: ['item-gpu'] }],
    });
    const general = await orb.customers.credits.ledger.createEntry(customer.id, { entry_type: 'increment', amount: 100 });
    const listed = await orb.customers.credits.list(customer.id);
    expect(listed.data.find((b) => b.id === gpuOnly.credit_block.id)!.filters).toEqual([{ field: 'item_id', operator: 'includes', values: ['item-gpu'] }]);
    const line = (priceId: string, amount: number) => ({ customerId: customer.id, pricingUnit: 'credits', priceId, day: day(0), amountPicos: `${amount}000000000000`, quantityPicos: '0', events: 1 });
    // CPU usage skips the GPU-only block although it expires first; GPU usage takes it first.
    await applyDebitBatches(app.pool, [{ id: 'filters:1-1', partition: 0, firstSeq: 1, lastSeq: 1, receivedAtMax: Date.now(), lines: [line('price-cpu', 5), line('price-gpu', 3)] }]);
    const blocks = new Map((await orb.customers.credits.list(customer.id, { include_all_blocks: true })).data.map((b) => [b.id, b.balance]));
    expect(blocks.get(gpuOnly.credit_block.id)).toBe(7);
    expect(blocks.get(general.credit_block.id)).toBe(95);
    // Beyond the GPU block, GPU usage falls through to the general block.
    await applyDebitBatches(app.pool, [{ id: 'filters:2-2', partition: 0, firstSeq: 2, lastSeq: 2, receivedAtMax: Date.now(), lines: [line('price-gpu', 9)] }]);
    const after = new Map((await orb.customers.credits.list(customer.id, { include_all_blocks: true })).data.map((b) => [b.id, b.balance]));
    expect([after.get(gpuOnly.credit_block.id), after.get(general.credit_block.id)]).toEqual([0, 93]);
  });
});
