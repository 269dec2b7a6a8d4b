// The reporter: analytics over ClickHouse. Today: period usage for settlement and the
// upcoming invoice (the ledger's UsageSource, wired together in the all-in-one app).
export { clickhouseUsageSource, type PeriodUsageSource } from './usage';
