// @drawdown/bench: the benchmark harness (run it with `pnpm bench`; see bench/README.md).
export { runLoad, type LoadSpec, type LoadResult } from './loadgen';
export { buildTemplates, stamp, customerSampler, zipfTopShare, type Shape, type Format } from './workload';
export { encodePng, lineChart } from './plot';
