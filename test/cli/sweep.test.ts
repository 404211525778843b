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

describe('dmasim sweep: a pool that survives its jobs, streamed and resumable rows, shards and merge', () => {
  async function scenarioDir(body: string): Promise<{ dir: string; file: string }> {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'dmasim-sweep2-'));
    const file = join(dir, 's.ts');
    writeFileSync(file, body);
    return { dir, file };
  }
  const cli = async (args: string[], env: Record<string, string> = {}) => {
    const { spawnSync } = await import('node:child_process');
    return spawnSync(process.execPath, ['bin/dmasim.mjs', ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  };
  const parse = (text: string) => text.trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { index: number; params: { seed: number }; error?: string; result?: { v: number }; of: number });

  it('a job that exits the process or hangs becomes an error row; the other jobs still run; exit 1', async () => {
    const { file } = await scenarioDir(`export default ({ seed }: { seed: number }) => {
  if (seed === 2) process.exit(3);
  if (seed === 3) { for (;;) { /* a hung job */ } }
  return { v: seed * 10 };
};
`);
    const r = await cli(['sweep', file, '--seeds', '1..4', '--workers', '2', '--timeout', '3000']);
    expect(r.status).toBe(1);
    const rows = parse(r.stdout).sort((a, b) => a.index - b.index);
    expect(rows.map((x) => x.params.seed)).toEqual([1, 2, 3, 4]);
    expect(rows[0]?.result).toEqual({ v: 10 });
    expect(rows[1]?.error).toMatch(/exited with code 3/);
    expect(rows[2]?.error).toMatch(/timed out after 3000 ms/);
    expect(rows[3]?.result).toEqual({ v: 40 });
    expect(rows.every((x) => x.of === 4)).toBe(true);
  }, 60_000);

  it('a job that runs out of memory is an error row; the finished rows are kept', async () => {
    const { file } = await scenarioDir(`export default ({ seed }: { seed: number }) => {
  if (seed === 2) { const hog: number[][] = []; for (;;) hog.push(new Array(1e6).fill(seed)); }
  return { v: seed };
};
`);
    const r = await cli(['sweep', file, '--seeds', '1..3', '--workers', '1', '--max-memory', '64']);
    expect(r.status).toBe(1);
    const rows = parse(r.stdout).sort((a, b) => a.index - b.index);
    expect(rows.map((x) => x.result?.v ?? x.error)).toEqual([1, expect.stringMatching(/out of memory|crashed|exited/i), 3]);
  }, 60_000);

  it('--retries runs a failed job again; a job that keeps failing keeps its error row', async () => {
    const { dir, file } = await scenarioDir('');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(file, `import { existsSync, writeFileSync } from 'node:fs';
export default ({ seed }: { seed: number }) => {
  const mark = ${JSON.stringify(dir)} + '/tried-' + seed;
  if (seed === 1 && !existsSync(mark)) { writeFileSync(mark, ''); throw new Error('transient'); }
  if (seed === 2) throw new Error('always');
  return { v: seed };
};
`);
    const r = await cli(['sweep', file, '--seeds', '1..2', '--workers', '1', '--retries', '2']);
    const rows = parse(r.stdout).sort((a, b) => a.index - b.index);
    expect(rows[0]?.result).toEqual({ v: 1 });
    expect(rows[1]?.error).toBe('always');
    expect(r.status).toBe(1);
  }, 60_000);

  it('--resume runs only what the output file lacks (a cut-off last line runs again) and appends', async () => {
    const { dir, file } = await scenarioDir(`export default ({ seed }: { seed: number }) => ({ v: seed });\n`);
    const { writeFileSync, readFileSync } = await import('node:fs');
    const out = `${dir}/out.jsonl`;
    writeFileSync(out, `${JSON.stringify({ index: 0, params: { seed: 1 }, result: { v: 1 }, findings: 0, of: 4 })}\n{"index":2,"par`);
    const r = await cli(['sweep', file, '--seeds', '1..4', '--workers', '1', '--out', out, '--resume']);
    expect(r.status).toBe(0);
    const rows = parse(readFileSync(out, 'utf8').split('\n').filter((l) => l.startsWith('{') && l.endsWith('}')).join('\n'));
    expect([...new Set(rows.map((x) => x.index))].sort()).toEqual([0, 1, 2, 3]);
    expect(rows.filter((x) => x.index === 0)).toHaveLength(1);
  }, 60_000);

  it('--shard auto from a Kubernetes Indexed Job and a 1-based Slurm array; merge makes the whole sweep and names what is missing', async () => {
    const { dir, file } = await scenarioDir(`export default ({ seed }: { seed: number }) => ({ v: seed * 2 });\n`);
    const parts: string[] = [];
    for (const i of [0, 1]) {
      const out = `${dir}/k8s-${i}.jsonl`;
      expect((await cli(['sweep', file, '--seeds', '1..5', '--workers', '1', '--shard', 'auto', '--out', out], { JOB_COMPLETION_INDEX: String(i), JOB_COMPLETIONS: '3' })).status).toBe(0);
      parts.push(out);
    }
    const slurm = `${dir}/slurm-3.jsonl`;
    expect((await cli(['sweep', file, '--seeds', '1..5', '--workers', '1', '--shard', 'auto', '--out', slurm], { SLURM_ARRAY_TASK_ID: '3', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_MAX: '3' })).status).toBe(0);
    const partial = await cli(['merge', ...parts]);
    expect(partial.status).toBe(1);
    expect(partial.stderr).toMatch(/missing 1: 2/);
    const whole = await cli(['merge', ...parts, slurm, '--format', 'csv']);
    expect(whole.status).toBe(0);
    expect(whole.stdout.trim().split('\n')).toEqual(['index,seed,v,findings,error', '0,1,2,0,', '1,2,4,0,', '2,3,6,0,', '3,4,8,0,', '4,5,10,0,']);
    expect((await cli(['sweep', file, '--shard', 'auto'], {})).status).toBe(2);
  }, 120_000);

  it('CSV has one header from the declared columns, even when the first row is an error', async () => {
    const { file } = await scenarioDir(`export const columns = ['pages', 'runs'];
export default ({ seed }: { seed: number }) => { if (seed === 1) throw new Error('boom'); return { pages: seed, runs: 1 }; };
`);
    const r = await cli(['sweep', file, '--seeds', '1..2', '--workers', '1', '--format', 'csv']);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe('index,seed,pages,runs,findings,error');
    expect(lines).toContain('0,1,,,0,boom');
    expect(lines).toContain('1,2,2,1,0,');
  }, 60_000);
});

describe('dmasim sweep --summary and --html', () => {
  it('groups by the swept parameters (not the seed): median, quartiles and range per numeric field; failures counted', async () => {
    const { summarizeSweep, formatSweepSummary, sweepSummaryHtml } = await import('../../src/cli/sweep-summary.ts');
    const rows = [1, 2, 3, 4, 5].flatMap((seed) => [0.2, 0.8].map((level, k) => ({ index: seed * 2 + k, params: { seed, level }, result: { pages: level * 10 + seed, note: 'x' } })));
    rows.push({ index: 99, params: { seed: 6, level: 0.8 }, error: 'boom' } as never);
    const g = summarizeSweep(rows);
    expect(g.map((x) => x.params)).toEqual([{ level: 0.2 }, { level: 0.8 }]);
    expect(g[0]?.fields['pages']).toEqual({ min: 3, q1: 4, median: 5, q3: 6, max: 7 });
    expect(g[1]).toMatchObject({ jobs: 5, failed: 1 });
    expect(g[0]?.fields['note']).toBeUndefined();
    const text = formatSweepSummary(g);
    expect(text.split('\n')[0]).toMatch(/^level\s+jobs\s+failed\s+pages median \[min\.\.max\]$/);
    expect(text).toContain('5 [3..7]');
    const html = sweepSummaryHtml(g, 't');
    expect(html.match(/<figure>/g)).toHaveLength(1);
    expect(html).not.toMatch(/NaN|Infinity|undefined/);
    // The y axis reaches the largest value (the planted bug: ticks that stopped short of it).
    const ticks = [...html.matchAll(/>(\d+)<\/text>/g)].map((m) => Number(m[1]));
    expect(Math.max(...ticks)).toBeGreaterThanOrEqual(15);
  });

  it('the command prints the table to stderr and writes the page', async () => {
    const { spawnSync } = await import('node:child_process');
    const { mkdtempSync, readFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const out = join(mkdtempSync(join(tmpdir(), 'dmasim-sum-')), 's.html');
    const r = spawnSync(process.execPath, ['bin/dmasim.mjs', 'sweep', 'examples/fragmentation-sweep.ts', '--seeds', '1..2', '--param', 'level=0.2,1', '--workers', '2', '--summary', '--html', out], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/^level\s+jobs\s+failed/m);
    expect(readFileSync(out, 'utf8')).toContain('<figcaption>runs by level');
    expect(spawnSync(process.execPath, ['bin/dmasim.mjs', 'sweep', 'examples/fragmentation-sweep.ts', '--html', '/nonexistent/x.html'], { encoding: 'utf8' }).status).toBe(2);
  }, 60_000);
});
