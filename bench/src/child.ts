// Entry of a scenario process started through tsx (BENCH_BUNDLE=0; otherwise each scenario
// has its own bundle, see bundle.ts): runs bench/src/scenarios/<name>.ts's `run(opts)` when
// asked. The scenario's modules load at once, while the bench's main process prepares the run
// (the template database).
import { serveScenario } from './procs';

serveScenario(import(`./scenarios/${process.argv[2]!}.ts`));
