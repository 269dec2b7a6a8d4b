// Entry of a scenario process started through tsx (BENCH_BUNDLE=0; otherwise each scenario
// has its own bundle, see bundle.ts): loads bench/src/scenarios/<name>.ts at once, says it is
// ready, and runs the scenario's `run(opts)` when asked (serveScenario).
import { serveScenario } from './procs';

serveScenario(import(`./scenarios/${process.argv[2]!}.ts`));
