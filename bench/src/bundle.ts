// The bench's child processes (scenarios, services under test, load generators) started from
// JavaScript bundles instead of through tsx: each entry is bundled once per run with esbuild
// into a temporary directory and started with plain `node`. Through tsx the loader hooks run
// for every module (on their own thread): a scenario process took 0.93-1.01 s of CPU to load
// and the load generator 0.26-0.30 s; from bundles 0.25-0.30 s and 0.07-0.08 s (measured
// 2026-11-26, two rounds each, until the process's CPU stopped rising). A run starts over a
// dozen such processes and threads on a 2-core machine.
//
// What is bundled: the workspace's own TypeScript (bench, services, packages). Third-party
// packages stay outside, imported from where the workspace resolves them (absolute paths), so
// they run exactly as under tsx (native modules: chDB, uWebSockets.js, msgpackr-extract;
// piscina's own worker file). In bundled code `import.meta.url` is the source file's URL (the
// ledger's migrations folder, createRequire), except in `new URL('./x.mjs', import.meta.url)`:
// those are worker-thread entries (the ingest edge's threads, the rater's pricing workers),
// bundled too, to the same path relative to the bundle. Their `register()` of tsx is a no-op
// in a bundle.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build, type BuildOptions, type Plugin } from 'esbuild';
import { scenarioBundleName } from './procs';

const SRC = dirname(fileURLToPath(import.meta.url));

/** A bundled child entry: its output name (without .mjs) and its code (imports by absolute path). */
export interface BundleEntry {
  out: string;
  contents: string;
}

/** The entries of the bench's child processes: each scenario's process, the services' process and the load generator's. */
export function childEntries(scenarios: string[]): BundleEntry[] {
  const abs = (f: string) => JSON.stringify(join(SRC, f));
  return [
    ...scenarios.map((name) => ({
      out: scenarioBundleName(name),
      contents: `import { serveScenario } from ${abs('procs.ts')};\nserveScenario(import(${abs(`scenarios/${name}.ts`)}));\n`,
    })),
    { out: 'server', contents: `import ${abs('server.ts')};\n` },
    { out: 'loadgen', contents: `import ${abs('loadgen.ts')};\n` },
  ];
}

/** Worker-thread entries a module names as `new URL('./x.mjs', import.meta.url)`: relative paths (pure, unit-tested). */
export function workerEntryRefs(code: string): string[] {
  return [...code.matchAll(WORKER_REF)].map((m) => m[2]!);
}

const WORKER_REF = /new URL\((['"])(\.{1,2}\/[^'"]+\.mjs)\1,\s*import\.meta\.url\)/g;

/**
 * `import.meta.url` replaced by the source file's URL (so paths relative to the source still
 * work from a bundle elsewhere), except as the base of a worker-thread entry, which is bundled
 * next to the bundle (pure, unit-tested).
 */
export function pinImportMetaUrl(code: string, fileUrl: string): string {
  const KEEP = '\u0000bench-keep-import-meta-url\u0000';
  return code
    .replace(WORKER_REF, (m) => m.replace('import.meta.url', KEEP))
    .replaceAll('import.meta.url', JSON.stringify(fileUrl))
    .replaceAll(KEEP, 'import.meta.url');
}

const inNodeModules = (p: string) => p.split(sep).includes('node_modules');

/** Builds the bundles into a new temporary directory; returns it and a remover. */
export async function bundleChildren(entries: BundleEntry[]): Promise<{ dir: string; remove(): void }> {
  const dir = mkdtempSync(join(tmpdir(), 'drawdown-bench-'));
  try {
    // Worker entries found while bundling: output path (relative to dir) -> source file.
    const workers = new Map<string, string>();
    const plugin: Plugin = {
      name: 'bench-children',
      setup(b) {
        b.onResolve({ filter: /^bench-entry:/ }, (a) => ({ path: a.path.slice('bench-entry:'.length), namespace: 'bench-entry' }));
        b.onLoad({ filter: /.*/, namespace: 'bench-entry' }, (a) => ({ contents: entries.find((e) => e.out === a.path)!.contents, loader: 'js', resolveDir: SRC }));
        // The worker entries register tsx for their thread: nothing to register in a bundle.
        b.onResolve({ filter: /^tsx\/esm\/api$/ }, () => ({ path: 'tsx', namespace: 'bench-no-tsx' }));
        b.onLoad({ filter: /.*/, namespace: 'bench-no-tsx' }, () => ({ contents: 'export function register() {}\n', loader: 'js' }));
        // Third-party packages: external, by the absolute path the workspace resolves them to.
        b.onResolve({ filter: /^[^./]/ }, async (a) => {
          if (a.pluginData === 'bench-resolve' || a.path.startsWith('node:') || a.path.startsWith('@drawdown/') || a.namespace !== 'file') return undefined;
          const r = await b.resolve(a.path, { kind: a.kind, resolveDir: a.resolveDir, importer: a.importer, pluginData: 'bench-resolve' });
          if (r.errors.length > 0) return { errors: r.errors };
          if (r.external || !inNodeModules(r.path)) return undefined; // builtins; workspace packages are bundled
          return { path: r.path, external: true };
        });
        b.onLoad({ filter: /\.(ts|mts|mjs|js)$/, namespace: 'file' }, (a) => {
          if (inNodeModules(a.path)) return undefined;
          const code = readFileSync(a.path, 'utf8');
          for (const ref of workerEntryRefs(code)) {
            const out = join(dirname(a.path), ref);
            const rel = ref.replace(/^\.\//, '');
            const prev = workers.get(rel);
            if (prev && prev !== out) throw new Error(`bench bundle: two worker entries bundle to ${rel}: ${prev} and ${out}`);
            workers.set(rel, out);
          }
          return { contents: pinImportMetaUrl(code, pathToFileURL(a.path).href), loader: a.path.endsWith('ts') ? 'ts' : 'js', resolveDir: dirname(a.path) };
        });
      },
    };
    const common: BuildOptions = { bundle: true, platform: 'node', format: 'esm', target: 'node20', outdir: dir, outExtension: { '.js': '.mjs' }, plugins: [plugin], logLevel: 'warning', legalComments: 'none' };
    await build({ ...common, entryPoints: entries.map((e) => ({ in: `bench-entry:${e.out}`, out: e.out })) });
    // Worker entries (and the ones they name in turn), each to its path relative to the bundles.
    const built = new Set<string>();
    for (let todo = [...workers]; todo.length > 0; todo = [...workers].filter(([rel]) => !built.has(rel))) {
      for (const [rel] of todo) built.add(rel);
      await build({ ...common, entryPoints: todo.map(([rel, src]) => ({ in: src, out: rel.replace(/\.mjs$/, '') })) });
    }
    return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
