// Reading a price's config where the rater and settlement must agree: the matrix unit amount
// of an event's (or a group's) property values. Pure, exact (@drawdown/money picos).
import { parseDecimal } from '@drawdown/money';

/** A price config that cannot price (missing or malformed field); the message names the field. */
export class PriceConfigError extends Error {
  override readonly name = 'PriceConfigError';
  readonly code = 'unpriceable';
}

export type PropertyValue = string | number | boolean | null;

/** A decimal of a price config (string or JSON number) as picos. */
export function configDecimal(v: unknown, field: string): bigint {
  if (typeof v !== 'string' && typeof v !== 'number') throw new PriceConfigError(`price config ${field}: not a decimal`);
  try {
    return parseDecimal(v, field);
  } catch (err) {
    throw new PriceConfigError((err as Error).message);
  }
}

interface MatrixConfig {
  dimensions?: unknown;
  default_unit_amount?: unknown;
  matrix_values?: { dimension_values?: unknown; unit_amount?: unknown }[];
}

/** The property names a matrix price looks up (its matrix_config.dimensions). */
export function matrixDimensions(config: Record<string, unknown>, priceId = ''): string[] {
  const cfg = config.matrix_config as MatrixConfig | undefined;
  if (!cfg || !Array.isArray(cfg.dimensions) || cfg.dimensions.some((d) => typeof d !== 'string')) {
    throw new PriceConfigError(`${priceId ? `price ${priceId}: ` : ''}matrix_config.dimensions missing`);
  }
  return cfg.dimensions as string[];
}

/**
 * Matrix: the unit amount of the first `matrix_values` entry whose `dimension_values` equal the
 * values of `dimensions` in `props` (compared as strings; a null entry matches any value), else
 * `default_unit_amount`.
 */
export function matrixUnitAmount(config: Record<string, unknown>, props: Record<string, PropertyValue>, priceId = ''): bigint {
  const dims = matrixDimensions(config, priceId);
  const cfg = config.matrix_config as MatrixConfig;
  const values = dims.map((d) => {
    const v = props[d];
    return v === undefined || v === null ? null : String(v);
  });
  for (const [i, entry] of (cfg.matrix_values ?? []).entries()) {
    const want = entry.dimension_values;
    if (!Array.isArray(want)) continue;
    let ok = true;
    for (let j = 0; j < dims.length; j++) {
      const w = want[j] as unknown;
      if (w === null || w === undefined) continue;
      if (values[j] !== String(w)) {
        ok = false;
        break;
      }
    }
    if (ok) return configDecimal(entry.unit_amount, `matrix_config.matrix_values[${i}].unit_amount`);
  }
  return configDecimal(cfg.default_unit_amount, 'matrix_config.default_unit_amount');
}
