// Entry of a scenario process: runs bench/src/scenarios/<name>.ts's `run(opts)` when asked and
// sends back its result. The scenario's modules load at once, while the bench's main process
// prepares the run (the template database).
const name = process.argv[2]!;
const scenario = import(`./scenarios/${name}.ts`) as Promise<{ run: (o: unknown) => Promise<unknown> }>;
scenario.catch(() => {}); // reported when the run is asked for

process.on('message', (m: { type: string; id: number; opts: unknown }) => {
  if (m.type !== 'run') return;
  scenario
    .then((mod) => mod.run(m.opts))
    .then(
      (result) => process.send!({ type: 'answer', id: m.id, result }),
      (err: Error) => process.send!({ type: 'answer', id: m.id, error: err.stack ?? String(err) }),
    );
});
process.send!({ type: 'ready' });
