// @drawdown/money: exact amounts as bigint picos (10^-12 units). See README.md for the
// representation, the rounding rules and the JSON mapping.

export { SCALE, ONE, MAX_ABS_PICOS, type Picos } from './scale';
export { MoneyError, type MoneyErrorCode } from './errors';
export { parseDecimal, formatDecimal, formatFixed, toNumber, fromInt } from './decimal';
export {
  type Rounding,
  divRoundInt,
  mul,
  div,
  roundTo,
  ceilDivQuantity,
  min,
  max,
  abs,
  cmp,
  sum,
} from './arith';
export { currencyDecimals } from './currency';
export { stringifyJson, assertExactJsonNumbers } from './json';
