// Signing as Orb signs: X-Orb-Timestamp is the send time (ISO 8601, UTC) and X-Orb-Signature
// is `v1=<hex HMAC-SHA256 of "v1:<timestamp>:<body>" keyed by the secret's UTF-8 bytes>`, one
// per valid secret separated by spaces (during a rotation both the new and the old secret sign,
// and the orb-billing SDK's webhooks.unwrap accepts any one that matches).
import { createHmac, randomBytes } from 'node:crypto';

export function signatureHeaders(body: string, secrets: string[], now: Date = new Date()): Record<string, string> {
  const timestamp = now.toISOString();
  const signature = secrets.map((s) => `v1=${createHmac('sha256', Buffer.from(s, 'utf8')).update(`v1:${timestamp}:${body}`, 'utf8').digest('hex')}`).join(' ');
  return { 'x-orb-timestamp': timestamp, 'x-orb-signature': signature };
}

/** A new endpoint secret: 32 random bytes, printable. */
export function newSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`;
}
