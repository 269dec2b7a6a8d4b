import { describe, expect, it } from 'vitest';
import { reasonOf, reasonsOf } from './reasons';

describe('reject reasons', () => {
  it('reads the field a validation message is about', () => {
    expect(reasonOf('idempotency_key: is required')).toBe('idempotency_key');
    expect(reasonOf('customer_id, external_customer_id: exactly one must be given, got neither')).toBe('customer');
    expect(reasonOf('subject: is required (the external customer id)')).toBe('customer');
    expect(reasonOf('event_name: is required')).toBe('event_name');
    expect(reasonOf('timestamp: must be ISO 8601 with a time zone, got "x"')).toBe('timestamp');
    expect(reasonOf("timestamp: 2026-01-01T00:00:00Z is 1h before the accept window's lower bound (now - 12h)")).toBe('time_window');
    expect(reasonOf('properties.a: nested objects are not allowed')).toBe('properties');
    expect(reasonOf('events[3]: must be an object, got number')).toBe('not_an_object');
    expect(reasonOf('something else')).toBe('other');
  });

  it('counts each reason of an event once', () => {
    expect([...reasonsOf(['properties.a: x', 'properties.b: y', 'event_name: is required'])]).toEqual(['properties', 'event_name']);
  });
});
