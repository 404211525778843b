/**
 * @module cli/sweep
 * `dmasim sweep`: run a scenario across seeds or parameter values on a pool of worker threads (one
 * per core), with a progress bar, sharding for batch systems, and results as JSON lines or CSV.
 */
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { createWriteStream } from 'node:fs';
import { resolve } from 'node:path';
import cliProgress from 'cli-progress';

/** What to sweep. */
export interface SweepOptions {
  readonly file: string;
  /** The parameter grid: every combination is one job (e.g. { seed: [1..10], level: [0.2, 0.6] }). */
  readonly grid: Readonly<Record<string, readonly unknown[]>>;
  /** Run only the jobs of shard i of n (0-based): job k belongs to shard k % n. */
  readonly shard?: { readonly index: number; readonly count: number };
  readonly workers?: number;
  readonly format?: 'jsonl' | 'csv';
  /** Output file; stdout when absent. */
  readonly out?: string;
  readonly progress?: boolean;
}

/** One result row. */
/** One job's row: its parameters, what it returned (or its error), and the findings its machines ended with. */
export interface SweepRow { index: number; params: Record<string, unknown>; result?: Record<string, unknown>; error?: string; findings?: number }

/** Every combination of the grid, in a fixed order. */
export function gridJobs(grid: Readonly<Record<string, readonly unknown[]>>): Array<Record<string, unknown>> {
  let jobs: Array<Record<string, unknown>> = [{}];
  for (const [k, values] of Object.entries(grid)) jobs = jobs.flatMap((j) => values.map((v) => ({ ...j, [k]: v })));
  return jobs;
}

/**
 * Run the sweep; resolves with the rows in job order.
 * @example await sweep({ file: 'examples/fragmentation-sweep.ts', grid: { seed: [1, 2, 3], level: [0.2, 0.8] } })
 */
export async function sweep(opts: SweepOptions): Promise<SweepRow[]> {
  const all = gridJobs(opts.grid).map((params, index) => ({ index, params }));
  const jobs = opts.shard === undefined ? all : all.filter((j) => j.index % opts.shard!.count === opts.shard!.index);
  const nWorkers = Math.max(1, Math.min(opts.workers ?? availableParallelism(), jobs.length));
  const bar = opts.progress === false ? null : new cliProgress.SingleBar({ format: 'sweep [{bar}] {value}/{total} jobs | {eta_formatted} left', noTTYOutput: true, stream: process.stderr }, cliProgress.Presets.shades_classic);
  bar?.start(jobs.length, 0);
  const rows: SweepRow[] = [];
  const queue = [...jobs];
  const file = resolve(opts.file);
  const workerUrl = new URL('./sweep-worker-boot.mjs', import.meta.url);
  const workers: Worker[] = [];
  const pool = Promise.all(Array.from({ length: nWorkers }, () => new Promise<void>((done, fail) => {
    const w = new Worker(workerUrl, { workerData: { file } });
    workers.push(w);
    const next = (): void => {
      const job = queue.shift();
      w.postMessage(job ?? null);
      if (job === undefined) done();
    };
    w.on('message', (msg: SweepRow & { ready?: boolean }) => {
      if (msg.ready !== true) {
        rows.push(msg);
        bar?.increment();
      }
      next();
    });
    w.on('error', fail);
  })));
  try {
    await pool;
  } catch (e) {
    await Promise.all(workers.map((w) => w.terminate()));
    bar?.stop();
    throw e;
  }
  bar?.stop();
  rows.sort((a, b) => a.index - b.index);
  const text = opts.format === 'csv' ? toCsv(rows) : rows.map((r) => JSON.stringify(r)).join('\n');
  if (opts.out === undefined) process.stdout.write(`${text}\n`);
  else await new Promise<void>((res) => createWriteStream(opts.out as string).end(`${text}\n`, res));
  return rows;
}

function toCsv(rows: readonly SweepRow[]): string {
  const pkeys = [...new Set(rows.flatMap((r) => Object.keys(r.params)))];
  const rkeys = [...new Set(rows.flatMap((r) => Object.keys(r.result ?? {})))];
  const esc = (v: unknown): string => {
    const s = v === undefined ? '' : String(v);
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const head = ['index', ...pkeys, ...rkeys, 'findings', 'error'].join(',');
  return [head, ...rows.map((r) => [r.index, ...pkeys.map((k) => esc(r.params[k])), ...rkeys.map((k) => esc(r.result?.[k])), esc(r.findings ?? 0), esc(r.error)].join(','))].join('\n');
}
