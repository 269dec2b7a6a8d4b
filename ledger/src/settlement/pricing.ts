// Pricing a period's quantity with a price model (Orb's configs, decimals as strings). Exact:
// each product rounds once, half-even at 12 places (the scale of @drawdown/money). Matrix
// prices are priced per combination of property values (priceMatrix), not on one quantity.
import { PriceConfigError, matrixDimensions, matrixUnitAmount, type PropertyValue } from '@drawdown/catalog';
import { ceilDivQuantity, mul, parseDecimal, type Picos } from '@drawdown/money';

export class PricingError extends Error {
  override readonly name = 'PricingError';
  readonly code = 'unprocessable';
}

interface Tier {
  first_unit: string | number;
  last_unit?: string | number | null;
  unit_amount: string | number;
}

export function priceQuantity(modelType: string, config: Record<string, unknown>, quantity: Picos): Picos {
  switch (modelType) {
    case 'unit': {
      const c = config.unit_config as { unit_amount: string } | undefined;
      if (!c) throw new PricingError('unit price without unit_config');
      return mul(quantity, parseDecimal(c.unit_amount, 'unit_config.unit_amount'));
    }
    case 'tiered': {
      const tiers = (config.tiered_config as { tiers?: Tier[] } | undefined)?.tiers;
      if (!tiers || tiers.length === 0) throw new PricingError('tiered price without tiered_config.tiers');
      let total = 0n;
      for (const t of tiers) {
        const first = parseDecimal(t.first_unit, 'first_unit');
        const last = t.last_unit === undefined || t.last_unit === null ? null : parseDecimal(t.last_unit, 'last_unit');
        const top = last === null || quantity < last ? quantity : last;
        if (top > first) total += mul(top - first, parseDecimal(t.unit_amount, 'unit_amount'));
      }
      return total;
    }
    case 'package': {
      const c = config.package_config as { package_amount: string; package_size: string | number } | undefined;
      if (!c) throw new PricingError('package price without package_config');
      const packages = ceilDivQuantity(quantity, parseDecimal(c.package_size, 'package_size'));
      return packages * parseDecimal(c.package_amount, 'package_amount');
    }
    case 'matrix':
      throw new PricingError('matrix prices are priced per combination of property values (priceMatrix), not on a period quantity');
    default:
      throw new PricingError(`price model ${modelType} cannot be priced on a period quantity`);
  }
}

/** A period's quantity for one combination of matrix dimension values (raw JSON, '' when absent). */
export interface MatrixGroup {
  values: string[];
  quantity: Picos;
}

function propertyOf(raw: string): PropertyValue | undefined {
  if (raw === '') return undefined;
  try {
    const v = JSON.parse(raw) as unknown;
    return v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? v : raw;
  } catch {
    return raw;
  }
}

/**
 * Matrix: each group's quantity at the unit amount of its property values (the rater's lookup,
 * @drawdown/catalog matrixUnitAmount), each product rounded once. Returns the total quantity,
 * the amount, and the unit amount when every group has the same one (else null).
 */
export function priceMatrix(priceId: string, config: Record<string, unknown>, groups: MatrixGroup[]): { quantity: Picos; amount: Picos; unitAmount: Picos | null } {
  let dims: string[];
  try {
    dims = matrixDimensions(config, priceId);
  } catch (err) {
    throw new PricingError((err as Error).message);
  }
  let quantity = 0n;
  let amount = 0n;
  const units = new Set<Picos>();
  for (const g of groups) {
    const props: Record<string, PropertyValue> = {};
    dims.forEach((d, i) => {
      const v = propertyOf(g.values[i] ?? '');
      if (v !== undefined) props[d] = v;
    });
    let unit: Picos;
    try {
      unit = matrixUnitAmount(config, props, priceId);
    } catch (err) {
      if (err instanceof PriceConfigError) throw new PricingError(err.message);
      throw err;
    }
    units.add(unit);
    quantity += g.quantity;
    amount += mul(g.quantity, unit);
  }
  return { quantity, amount, unitAmount: units.size === 1 ? [...units][0]! : null };
}
