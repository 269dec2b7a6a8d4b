import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));
/** Runs `pnpm bench ARGS` (its entry point) and returns the exit code and stderr; bad arguments stop it before any work. */
const bench = (...args: string[]) => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stderr: r.stderr };
};

describe('bench command line', () => {
  it('refuses an unknown argument with the usage', () => {
    const r = bench('--fast');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('unknown argument(s): --fast');
    expect(r.stderr).toContain('--e2e-probe=RATE');
  });

  it.each([
    [['--e2e-probe=fast', '--out=/tmp/x'], 'RATE must be a whole number of events/s >= 100, got "fast"'],
    [['--e2e-probe=50', '--out=/tmp/x'], 'RATE must be a whole number of events/s >= 100, got "50"'],
    [['--e2e-probe=5000,skewed', '--out=/tmp/x'], 'SHAPE must be uniform or zipf, got "skewed"'],
    [['--e2e-probe=5000,zipf,2', '--out=/tmp/x'], 'SECONDS must be a whole number >= 5, got "2"'],
    [['--e2e-probe=5000'], 'needs --out=DIR'],
    [['--e2e-probe=5000', '--out=/tmp/x', '--quick'], 'cannot be combined with --quick, --long or --only'],
    [['--e2e-probe=5000', '--out=/tmp/x', '--only=e2e'], 'cannot be combined with --quick, --long or --only'],
  ])('refuses --e2e-probe %j: %s', (args, why) => {
    const r = bench(...args);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`--e2e-probe: ${why}`);
  });
});
