import { describe, expect, it } from 'vitest';
import Orb from 'orb-billing';
import { newSecret, signatureHeaders } from './sign';

describe('webhook signatures', () => {
  const orb = new Orb({ apiKey: 'unused', baseURL: 'http://127.0.0.1:1' });
  const body = JSON.stringify({ id: 'e1', type: 'customer.credit_balance_depleted', created_at: new Date().toISOString(), properties: { balance: '0' } });

  it('verifies with the orb-billing SDK', () => {
    const secret = newSecret();
    expect(orb.webhooks.unwrap(body, signatureHeaders(body, [secret]), secret)).toEqual(JSON.parse(body));
  });

  it('verifies with either secret during a rotation, and fails with another', () => {
    const a = newSecret();
    const b = newSecret();
    const h = signatureHeaders(body, [a, b]);
    expect(() => orb.webhooks.verifySignature(body, h, a)).not.toThrow();
    expect(() => orb.webhooks.verifySignature(body, h, b)).not.toThrow();
    expect(() => orb.webhooks.verifySignature(body, h, newSecret())).toThrow(/signatures/);
    expect(() => orb.webhooks.verifySignature(body + ' ', h, a)).toThrow(/signatures/);
  });

  it('is refused when older than the SDK tolerance', () => {
    const s = newSecret();
    expect(() => orb.webhooks.verifySignature(body, signatureHeaders(body, [s], new Date(Date.now() - 10 * 60_000)), s)).toThrow(/too old/);
  });
});
