/**
 * Sweep scaling: `npm run bench sweep`. The real command (`dmasim sweep`, the built package as a
 * user gets it: DMASIM_DIST=1) sweeps bench/sweep/scenario.mjs over 32 seeds with 1 and then 2
 * workers, alternating, 3 rounds; the figure is the ratio of the medians (target: 2 workers at
 * least 1.8× one). The wall times include starting the command and its workers, as a user waits.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, type BenchResult } from './util.ts';

export async function benchSweep(): Promise<BenchResult[]> {
  // bench/ or .build/bench/: the repository root is the nearest parent with bin/dmasim.mjs.
  let root = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(root, 'bin', 'dmasim.mjs'))) root = dirname(root);
  const built = spawnSync(process.execPath, [join(root, 'scripts', 'build-dist.mjs')], { encoding: 'utf8' });
  if (built.status !== 0) throw new Error(`npm run build:dist failed: ${built.stderr}`);
  const dir = join(root, 'bench', 'sweep');
  const timed = (args: string[], env: NodeJS.ProcessEnv = process.env): number => {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', env });
    if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}: ${r.stderr}`);
    return performance.now() - t0;
  };
  const sweep = (file: string, workers: number): number => timed([join(root, 'bin', 'dmasim.mjs'), 'sweep', join(dir, file), '--seeds', '1..32', '--workers', String(workers), '--no-progress', '--format', 'csv'], { ...process.env, DMASIM_DIST: '1' });
  // Two plain processes side by side, each running half the jobs (no sweep code at all).
  const plainPair = async (): Promise<number> => {
    const t0 = performance.now();
    const half = (from: string, to: string): Promise<void> => new Promise((res, rej) => {
      spawn(process.execPath, [join(dir, 'plain.mjs'), from, to]).on('exit', (code) => { if (code === 0) res(); else rej(new Error(`plain.mjs exited ${code}`)); });
    });
    await Promise.all([half('1', '16'), half('17', '32')]);
    return performance.now() - t0;
  };
  const rows: BenchResult[] = [];
  for (const [file, what] of [['scenario.mjs', 'simulation jobs (4 GiB machine, 600 sg map/unmap rounds)'], ['spin.mjs', 'control: 250 ms spins touching no memory']] as const) {
    const one: number[] = [];
    const two: number[] = [];
    for (let round = 0; round < 3; round++) {
      one.push(sweep(file, 1));
      two.push(sweep(file, 2));
    }
    const a = median(one);
    const b = median(two);
    rows.push(
      { name: `${what}: 32 jobs, 1 worker`, value: Math.round(a), unit: 'ms', note: `runs ${one.map(Math.round).join(', ')}` },
      { name: `${what}: 32 jobs, 2 workers`, value: Math.round(b), unit: 'ms', note: `runs ${two.map(Math.round).join(', ')}` },
      { name: `${what}: speed-up`, value: Number((a / b).toFixed(2)), unit: '×', target: 1.8, higherIsBetter: true },
    );
  }
  return rows.concat(await plainControl(dir, timed, plainPair));
}

/** The machine's own scaling: the simulation jobs in one plain process, then in two side by side. */
async function plainControl(dir: string, timed: (args: string[]) => number, pair: () => Promise<number>): Promise<BenchResult[]> {
  const one: number[] = [];
  const two: number[] = [];
  for (let round = 0; round < 3; round++) {
    one.push(timed([join(dir, 'plain.mjs'), '1', '32']));
    two.push(await pair());
  }
  const a = median(one);
  const b = median(two);
  return [
    { name: 'control: the simulation jobs in one plain node process', value: Math.round(a), unit: 'ms', note: `runs ${one.map(Math.round).join(', ')}` },
    { name: 'control: the same jobs in two plain processes side by side', value: Math.round(b), unit: 'ms', note: `runs ${two.map(Math.round).join(', ')}` },
    { name: 'control: what this machine gives two processes', value: Number((a / b).toFixed(2)), unit: '×', note: 'no dmasim sweep code: the ceiling for any pool here' },
  ];
}
