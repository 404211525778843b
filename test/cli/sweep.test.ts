import { describe, expect, it } from 'vitest';
import { gridJobs, sweep } from '../../src/cli/sweep.ts';

describe('dmasim sweep', () => {
  it('expands the grid in a fixed order', () => {
    expect(gridJobs({ seed: [1, 2], level: [0.5, 1] })).toEqual([
      { seed: 1, level: 0.5 }, { seed: 1, level: 1 }, { seed: 2, level: 0.5 }, { seed: 2, level: 1 },
    ]);
  });

  it('runs jobs on worker threads; shards split the jobs; results are deterministic by seed', async () => {
    const out = '/tmp/dmasim-sweep-test.jsonl';
    const grid = { seed: [1, 2], level: [0.3, 0.9] };
    const rows = await sweep({ file: 'examples/fragmentation-sweep.ts', grid, workers: 2, out, progress: false });
    expect(rows).toHaveLength(4);
    expect(rows.every((r) => r.error === undefined)).toBe(true);
    expect(rows.find((r) => r.params['level'] === 0.3)?.result?.['meanRun']).toBe(128);
    const shard0 = await sweep({ file: 'examples/fragmentation-sweep.ts', grid, shard: { index: 0, count: 2 }, workers: 1, out, progress: false });
    expect(shard0.map((r) => r.index)).toEqual([0, 2]);
    expect(shard0[1]?.result).toEqual(rows[2]?.result);
  });
});

describe('dmasim sweep: usage checked before any job runs', () => {
  it('--out in a missing directory, --workers abc, --seeds 5..1 are exit 2 with the reason', async () => {
    const { spawnSync } = await import('node:child_process');
    const run = (...args: string[]) => spawnSync(process.execPath, ['bin/dmasim.mjs', 'sweep', 'examples/fragmentation-sweep.ts', ...args], { encoding: 'utf8' });
    for (const [args, why] of [
      [['--out', '/nonexistent/dir/x.jsonl'], /--out \/nonexistent\/dir\/x\.jsonl: no directory/],
      [['--workers', 'abc'], /--workers must be a whole number/],
      [['--seeds', '5..1'], /--seeds 5\.\.1 is empty/],
    ] as const) {
      const r = run(...args);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(why);
      expect(r.stderr).toContain('usage: dmasim sweep');
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  }, 60_000);
});
