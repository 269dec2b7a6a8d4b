// ISO 4217 minor units: how many decimal places an invoice amount in that currency carries.

const MINOR_UNITS: ReadonlyMap<string, number> = new Map([
  ...['USD', 'EUR', 'GBP', 'CAD', 'AUD', 'CHF', 'NZD', 'SEK', 'NOK', 'DKK', 'INR', 'BRL', 'MXN', 'CNY'].map(
    (c) => [c, 2] as const,
  ),
  ...['JPY', 'KRW', 'VND', 'CLP', 'ISK'].map((c) => [c, 0] as const),
  ...['BHD', 'KWD', 'JOD', 'OMR', 'TND'].map((c) => [c, 3] as const),
]);

/**
 * Decimal places of the currency's minor unit (ISO 4217): 2 for USD/EUR/GBP/CAD/AUD and most
 * others, 0 for JPY/KRW/VND/CLP/ISK, 3 for BHD/KWD/JOD/OMR/TND. Codes are case-insensitive;
 * a code not in the table (including custom credit units) gets the default, 2.
 */
export function currencyDecimals(code: string): number {
  return MINOR_UNITS.get(code.toUpperCase()) ?? 2;
}
