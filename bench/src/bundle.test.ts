import { execFile, fork } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { bundleChildren, childEntries, pinImportMetaUrl, workerEntryRefs } from './bundle';

describe('pinImportMetaUrl', () => {
  it("pins import.meta.url to the source file's URL, but keeps it as the base of a worker-thread entry", () => {
    const code = [
      "const dir = fileURLToPath(new URL('../migrations', import.meta.url));",
      "const require = createRequire(import.meta.url);",
      "new Worker(new URL('./edge-worker-entry.mjs', import.meta.url));",
      'new Piscina({ filename: new URL("./pricing/worker-entry.mjs", import.meta.url).href });',
    ].join('\n');
    expect(pinImportMetaUrl(code, 'file:///repo/ledger/src/index.ts').split('\n')).toEqual([
      'const dir = fileURLToPath(new URL(\'../migrations\', "file:///repo/ledger/src/index.ts"));',
      'const require = createRequire("file:///repo/ledger/src/index.ts");',
      "new Worker(new URL('./edge-worker-entry.mjs', import.meta.url));",
      'new Piscina({ filename: new URL("./pricing/worker-entry.mjs", import.meta.url).href });',
    ]);
  });
  it('finds the worker-thread entries a module names', () => {
    expect(workerEntryRefs("new URL('./a.mjs', import.meta.url); new URL('./b.ts', import.meta.url); new URL(\"./p/c.mjs\",import.meta.url)")).toEqual(['./a.mjs', './p/c.mjs']);
    expect(workerEntryRefs("new URL('../migrations', import.meta.url)")).toEqual([]);
  });
});

describe('bundleChildren', () => {
  it('bundles the child processes and their worker threads to run with plain node, with no TypeScript left to load', async () => {
    const b = await bundleChildren(childEntries(['ledger']));
    try {
      const files = ['scenario-ledger.mjs', 'server.mjs', 'loadgen.mjs', 'edge-worker-entry.mjs', join('pricing', 'worker-entry.mjs')];
      for (const f of files) {
        expect(existsSync(join(b.dir, f)), f).toBe(true);
        const code = readFileSync(join(b.dir, f), 'utf8');
        // Every import left is a builtin or a third-party file by absolute path, none of it TypeScript or tsx.
        const imports = [...code.matchAll(/^import\s[^;]*?from\s*"([^"]+)"|^import\s*"([^"]+)"/gm)].map((m) => m[1] ?? m[2]!);
        expect(imports.length, f).toBeGreaterThan(0);
        for (const i of imports) expect(i, `${f} imports ${i}`).toMatch(/^node:|^\/.*\/node_modules\/.*\.(c?js|mjs)$/);
        for (const i of imports) expect(i, `${f} imports ${i}`).not.toMatch(/\/tsx[@/]/);
        expect(code).not.toMatch(/import\(\s*"[^"]*\.ts"|from\s*"tsx/);
      }
      // The pricing worker keeps its default export (piscina calls it).
      const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', `const m = await import(${JSON.stringify(join(b.dir, 'pricing', 'worker-entry.mjs'))}); console.log(typeof m.default)`]);
      expect(stdout.trim()).toBe('function');
      // A child starts from its bundle with plain node and answers over IPC.
      const child = fork(join(b.dir, 'loadgen.mjs'), ['--child'], { execArgv: [], stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
      const first = await new Promise((resolve, reject) => {
        child.once('message', resolve);
        child.once('exit', (code) => reject(new Error(`loadgen bundle exited with ${code}`)));
      });
      expect(first).toEqual({ type: 'ready' });
      child.kill();
    } finally {
      b.remove();
    }
    expect(existsSync(b.dir)).toBe(false);
  });
});
