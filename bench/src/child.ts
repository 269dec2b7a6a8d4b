// Entry of a scenario process: runs bench/src/scenarios/<name>.ts's `run(opts)` when asked and
// sends back its result.
const name = process.argv[2]!;

process.on('message', (m: { type: string; id: number; opts: unknown }) => {
  if (m.type !== 'run') return;
  import(`./scenarios/${name}.ts`)
    .then((mod: { run: (o: unknown) => Promise<unknown> }) => mod.run(m.opts))
    .then(
      (result) => process.send!({ type: 'answer', id: m.id, result }),
      (err: Error) => process.send!({ type: 'answer', id: m.id, error: err.stack ?? String(err) }),
    );
});
process.send!({ type: 'ready' });
