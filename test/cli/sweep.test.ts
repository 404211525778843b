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
    // The seed matters: the same level gives different layouts for different seeds, the same seed the same.
    const at = (seed: number, level: number) => rows.find((r) => r.params['seed'] === seed && r.params['level'] === level)?.result;
    expect(at(1, 0.3)).not.toEqual(at(2, 0.3));
    expect((await sweep({ file: 'examples/fragmentation-sweep.ts', grid: { seed: [1], level: [0.3] }, workers: 1, out, progress: false }))[0]?.result).toEqual(at(1, 0.3));
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

describe('dmasim sweep: findings', () => {
  it('a job whose machine leaks is counted in its row and fails the sweep; --allow-findings accepts it', async () => {
    const { spawnSync } = await import('node:child_process');
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join, resolve } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'dmasim-sweep-'));
    const src = resolve('src/index.ts');
    writeFileSync(join(dir, 'leaky.ts'), `import { Machine, dma_map_single, DMA_TO_DEVICE } from ${JSON.stringify(src)};
export default ({ seed }: { seed: number }) => {
  const m = new Machine({ memory: '64M', seed });
  const dev = m.pci.addDevice({ name: 'd', dmaMask: 64 });
  m.pci.bind(dev, { name: 'x', probe() {} });
  if (seed === 2) dma_map_single(dev, m.mm.kmalloc(64)!, 64, DMA_TO_DEVICE); // the planted leak
  m.pci.unbind(dev);
  return { mapped: seed === 2 ? 1 : 0 };
};
`);
    const run = (...extra: string[]) => spawnSync(process.execPath, ['bin/dmasim.mjs', 'sweep', join(dir, 'leaky.ts'), '--seeds', '1..3', '--workers', '1', '--no-progress', ...extra], { encoding: 'utf8' });
    const r = run();
    expect(r.status).toBe(1);
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { params: { seed: number }; findings: number });
    expect(rows.map((x) => [x.params.seed, x.findings > 0])).toEqual([[1, false], [2, true], [3, false]]);
    expect(r.stderr).toContain('1 of 3 job(s) ended with findings');
    expect(run('--allow-findings').status).toBe(0);
    const csv = run('--format', 'csv', '--allow-findings');
    expect(csv.stdout.split('\n')[0]).toBe('index,seed,mapped,findings,error');
  }, 60_000);
});

describe('dmasim sweep: the progress bar', () => {
  it('is not drawn when stderr is not a terminal (piped into CI logs)', async () => {
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync(process.execPath, ['bin/dmasim.mjs', 'sweep', 'examples/fragmentation-sweep.ts', '--seeds', '1..2', '--workers', '1'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stderr).not.toContain('sweep [');
    expect(r.stdout.trim().split('\n').length).toBe(2);
  }, 60_000);
});
