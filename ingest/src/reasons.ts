// Bounded metric labels for why an event was rejected, read from its validation messages
// (which always start with the field they are about).

export type RejectReason = 'idempotency_key' | 'customer' | 'event_name' | 'timestamp' | 'time_window' | 'properties' | 'not_an_object' | 'other';

export function reasonOf(message: string): RejectReason {
  const field = message.slice(0, Math.max(0, message.indexOf(':')));
  if (field === 'idempotency_key' || field === 'id') return 'idempotency_key';
  if (field.includes('customer') || field === 'subject') return 'customer';
  if (field === 'event_name' || field === 'type') return 'event_name';
  if (field === 'timestamp' || field === 'time') return message.includes("accept window's") ? 'time_window' : 'timestamp';
  if (field.startsWith('properties') || field.startsWith('data')) return 'properties';
  if (field.startsWith('events[')) return 'not_an_object';
  return 'other';
}

/** The distinct reasons of one failed event. */
export function reasonsOf(messages: readonly string[]): Set<RejectReason> {
  const out = new Set<RejectReason>();
  for (const m of messages) out.add(reasonOf(m));
  return out;
}
