// Pricing a period's quantity with a price model (Orb's configs, decimals as strings). Exact:
// each product rounds once, half-even at 12 places (the scale of @drawdown/money).
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
    default:
      throw new PricingError(`price model ${modelType} cannot be priced on a period quantity`);
  }
}
