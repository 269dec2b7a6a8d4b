import { describe, expect, it } from 'vitest';
import { loadConfig } from '@drawdown/config';
import { DEFAULT_INGEST_LIMITS, DEFAULT_GRACE_MS, DEFAULT_FUTURE_MS } from '@drawdown/events';
import { ingestLimits } from './index';

describe('ingest limits', () => {
  it('default to the documented event limits', () => {
    const c = loadConfig({});
    expect(ingestLimits(c)).toEqual(DEFAULT_INGEST_LIMITS);
    expect(c.ingestGraceMs).toBe(DEFAULT_GRACE_MS);
    expect(c.ingestFutureMs).toBe(DEFAULT_FUTURE_MS);
  });

  it('come from the settings', () => {
    const c = loadConfig({
      DRAWDOWN_INGEST_MAX_EVENTS: '10',
      DRAWDOWN_INGEST_MAX_KEY_LENGTH: '64',
      DRAWDOWN_INGEST_MAX_PROPERTY_KEY_LENGTH: '32',
      DRAWDOWN_INGEST_MAX_STRING_VALUE_LENGTH: '100',
      DRAWDOWN_INGEST_MAX_PROPERTIES: '7',
    });
    expect(ingestLimits(c)).toEqual({ maxEventsPerRequest: 10, maxKeyLength: 64, maxPropertyKeyLength: 32, maxStringValueLength: 100, maxProperties: 7 });
  });
});
