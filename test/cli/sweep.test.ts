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
