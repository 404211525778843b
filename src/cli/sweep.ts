/**
 * @module cli/sweep
 * `dmasim sweep`: run a scenario across seeds or parameter values on a pool of worker threads (one
 * per core). The pool survives its jobs: a worker that exits, crashes, runs out of memory or passes
 * the per-job timeout becomes an error row for its job (retried if asked) and is replaced. Rows are
 * written as they complete (JSON lines, or CSV under one fixed header), so an interrupted sweep
 * keeps what finished and `--resume` runs only the rest. Shards for batch systems, and a merge.
 */
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { closeSync, existsSync, openSync, readFileSync, writeSync } from 'node:fs';
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
  /** Milliseconds a job may run before its worker is stopped and the job fails. */
  readonly timeout?: number;
  /** Times a failed job (error, crash, timeout) is run again before its error row is kept. */
  readonly retries?: number;
  /** Skip the jobs whose successful rows are already in `out`, and append. */
  readonly resume?: boolean;
  /** Heap limit of each worker, MiB (default 2048): a job past it fails as out of memory. */
  readonly maxMemoryMb?: number;
}

/** One job's row: its parameters, what it returned (or its error), the findings its machines ended with. */
export interface SweepRow {
  index: number;
  params: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: string;
  findings?: number;
  /** Jobs in the whole (unsharded) sweep: what `dmasim merge` checks for missing rows. */
  of?: number;
}

/** Every combination of the grid, in a fixed order. */
export function gridJobs(grid: Readonly<Record<string, readonly unknown[]>>): Array<Record<string, unknown>> {
  let jobs: Array<Record<string, unknown>> = [{}];
  for (const [k, values] of Object.entries(grid)) jobs = jobs.flatMap((j) => values.map((v) => ({ ...j, [k]: v })));
  return jobs;
}

/**
 * The shard a batch system assigned this process, from its environment: a Kubernetes Indexed Job
 * (JOB_COMPLETION_INDEX of JOB_COMPLETIONS) or a Slurm job array (SLURM_ARRAY_TASK_ID within
 * SLURM_ARRAY_TASK_MIN..MAX, often 1-based; SLURM_ARRAY_TASK_COUNT tasks). Undefined when neither.
 * @example detectShard({ JOB_COMPLETION_INDEX: '2', JOB_COMPLETIONS: '8' }) // { index: 2, count: 8 }
 */
export function detectShard(env: Readonly<Record<string, string | undefined>>): { index: number; count: number } | undefined {
  const int = (v: string | undefined): number => (v !== undefined && /^\d+$/.test(v) ? Number(v) : NaN);
  const k8sIndex = int(env['JOB_COMPLETION_INDEX']);
  const k8sCount = int(env['JOB_COMPLETIONS']);
  if (!Number.isNaN(k8sIndex) && !Number.isNaN(k8sCount) && k8sIndex < k8sCount) return { index: k8sIndex, count: k8sCount };
  const id = int(env['SLURM_ARRAY_TASK_ID']);
  if (!Number.isNaN(id)) {
    const min = int(env['SLURM_ARRAY_TASK_MIN']);
    const max = int(env['SLURM_ARRAY_TASK_MAX']);
    const count = int(env['SLURM_ARRAY_TASK_COUNT']);
    const lo = Number.isNaN(min) ? 0 : min;
    const n = !Number.isNaN(count) ? count : !Number.isNaN(max) ? max - lo + 1 : NaN;
    if (!Number.isNaN(n) && id >= lo && id - lo < n) return { index: id - lo, count: n };
  }
  return undefined;
}

/** The job indices whose successful rows a JSON-lines or CSV output file already holds. */
export function doneIndices(path: string): Set<number> {
  const done = new Set<number>();
  if (!existsSync(path)) return done;
  const lines = readFileSync(path, 'utf8').split('\n').filter((l) => l.trim() !== '');
  if (lines.length === 0) return done;
  if ((lines[0] as string).startsWith('{')) {
    for (const l of lines) {
      try {
        const r = JSON.parse(l) as SweepRow;
        if (typeof r.index === 'number' && r.error === undefined) done.add(r.index);
      } catch { /* a line cut short by the interruption: its job runs again */ }
    }
    return done;
  }
  const head = (lines[0] as string).split(',');
  const errAt = head.indexOf('error');
  for (const l of lines.slice(1)) {
    const cells = l.split(',');
    if (cells.length >= head.length && /^\d+$/.test(cells[0] as string) && (errAt < 0 || cells[errAt] === '')) done.add(Number(cells[0]));
  }
  return done;
}

/** Rows as they complete, to a file (or stdout): JSON lines, or CSV under one fixed header. */
class RowWriter {
  readonly #fd: number | null;
  readonly #format: 'jsonl' | 'csv';
  readonly #params: readonly string[];
  #columns: readonly string[] | null;
  #headerDone: boolean;
  readonly #held: SweepRow[] = [];

  constructor(out: string | undefined, format: 'jsonl' | 'csv', params: readonly string[], columns: readonly string[] | null, append: boolean) {
    this.#format = format;
    this.#params = params;
    this.#columns = columns;
    // What an earlier run left, read once: whether to append, its CSV header, a cut-off last line.
    const previous = append && out !== undefined && existsSync(out) ? readFileSync(out, 'utf8') : '';
    const had = previous.trim() !== '';
    this.#fd = out === undefined ? null : openSync(out, append ? 'a' : 'w');
    // An interrupted run can leave its last line cut short: the next row starts on a line of its own.
    if (had && !previous.endsWith('\n')) this.#emit('\n');
    this.#headerDone = format === 'jsonl' || had;
    if (had && format === 'csv') this.#columns = (previous.split('\n')[0] ?? '').split(',').filter((c) => c !== 'index' && c !== 'findings' && c !== 'error' && !params.includes(c));
  }

  /** The columns the scenario declared (`export const columns = [...]`), when it does. */
  declare(columns: readonly string[] | null): void {
    if (this.#columns === null && columns !== null) this.#columns = columns;
  }

  write(row: SweepRow): void {
    if (this.#format === 'jsonl') { this.#emit(`${JSON.stringify(row)}\n`); return; }
    if (!this.#headerDone) {
      // Without declared columns, the first successful row fixes them (error rows wait for it).
      if (this.#columns === null && row.result === undefined) { this.#held.push(row); return; }
      this.#columns ??= Object.keys(row.result ?? {});
      this.#emit(`${['index', ...this.#params, ...this.#columns, 'findings', 'error'].join(',')}\n`);
      this.#headerDone = true;
      for (const r of this.#held.splice(0)) this.#emitCsv(r);
    }
    this.#emitCsv(row);
  }

  close(): void {
    if (!this.#headerDone && this.#format === 'csv') {
      this.#columns ??= [];
      this.#emit(`${['index', ...this.#params, ...this.#columns, 'findings', 'error'].join(',')}\n`);
      for (const r of this.#held.splice(0)) this.#emitCsv(r);
    }
    if (this.#fd !== null) closeSync(this.#fd);
  }

  #emitCsv(r: SweepRow): void {
    const esc = (v: unknown): string => {
      const s = v === undefined ? '' : String(v);
      return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
    };
    const cols = this.#columns ?? [];
    this.#emit(`${[r.index, ...this.#params.map((k) => esc(r.params[k])), ...cols.map((k) => esc(r.result?.[k])), esc(r.findings ?? 0), esc(r.error)].join(',')}\n`);
  }

  #emit(text: string): void {
    if (this.#fd === null) process.stdout.write(text);
    else writeSync(this.#fd, text);
  }
}

interface Job { readonly index: number; readonly params: Record<string, unknown>; attempts: number }

/**
 * Run the sweep; resolves with this run's rows in job order (written to `out` as they completed).
 * @example await sweep({ file: 'examples/fragmentation-sweep.ts', grid: { seed: [1, 2, 3], level: [0.2, 0.8] }, timeout: 60_000 })
 */
export async function sweep(opts: SweepOptions): Promise<SweepRow[]> {
  const all = gridJobs(opts.grid).map((params, index) => ({ index, params }));
  let jobs = opts.shard === undefined ? all : all.filter((j) => j.index % opts.shard!.count === opts.shard!.index);
  if (opts.resume === true && opts.out !== undefined) {
    const done = doneIndices(opts.out);
    jobs = jobs.filter((j) => !done.has(j.index));
  }
  const format = opts.format ?? 'jsonl';
  const writer = new RowWriter(opts.out, format, Object.keys(opts.grid), null, opts.resume === true);
  const queue: Job[] = jobs.map((j) => ({ ...j, attempts: 0 }));
  const retries = opts.retries ?? 0;
  const nWorkers = Math.max(1, Math.min(opts.workers ?? availableParallelism(), jobs.length));
  const bar = opts.progress === false ? null : new cliProgress.SingleBar({ format: 'sweep [{bar}] {value}/{total} jobs | {eta_formatted} left', noTTYOutput: true, stream: process.stderr }, cliProgress.Presets.shades_classic);
  bar?.start(jobs.length, 0);
  const rows: SweepRow[] = [];
  const file = resolve(opts.file);
  const workerUrl = new URL('./sweep-worker-boot.mjs', import.meta.url);
  const live = new Set<Worker>();

  const finish = (job: Job, row: SweepRow, retry: () => void): void => {
    if (row.error !== undefined && job.attempts <= retries) { queue.unshift(job); retry(); return; }
    const full = { ...row, of: all.length };
    rows.push(full);
    writer.write(full);
    bar?.increment();
    retry();
  };

  /** One worker slot: runs jobs until the queue is empty, replacing its worker when one dies. */
  const slot = (): Promise<void> => new Promise<void>((done, reject) => {
    let current: Job | null = null;
    let timer: NodeJS.Timeout | null = null;
    const start = (): void => {
      const worker = new Worker(workerUrl, { workerData: { file }, resourceLimits: { maxOldGenerationSizeMb: opts.maxMemoryMb ?? 2048 } });
      live.add(worker);
      let settled = false;
      let ready = false;
      const fail = (why: string): void => {
        if (settled) return;
        settled = true;
        if (timer !== null) clearTimeout(timer);
        live.delete(worker);
        void worker.terminate();
        // A worker that dies before it could load the scenario would die again: the sweep stops.
        if (!ready) { reject(new Error(why)); return; }
        const job = current;
        current = null;
        if (job === null) { if (queue.length > 0) start(); else done(); return; }
        finish(job, { index: job.index, params: job.params, error: why, findings: 0 }, () => { if (queue.length > 0) start(); else done(); });
      };
      worker.on('message', (msg: SweepRow & { ready?: boolean; columns?: string[] | null }) => {
        if (msg.ready === true) { ready = true; writer.declare(msg.columns ?? null); next(); return; }
        if (timer !== null) clearTimeout(timer);
        const job = current as Job;
        current = null;
        finish(job, msg, next);
      });
      worker.on('error', (e: Error) => fail(`the worker crashed: ${e.message}`));
      worker.on('exit', (code) => {
        if (current !== null) fail(`the worker exited with code ${code} during the job`);
        else if (!settled) { settled = true; live.delete(worker); }
      });
      const next = (): void => {
        const job = queue.shift();
        if (job === undefined) {
          settled = true;
          worker.postMessage(null);
          live.delete(worker);
          done();
          return;
        }
        job.attempts++;
        current = job;
        if (opts.timeout !== undefined) timer = setTimeout(() => fail(`timed out after ${opts.timeout} ms`), opts.timeout);
        worker.postMessage({ index: job.index, params: job.params });
      };
    };
    if (queue.length > 0) start(); else done();
  });

  try {
    await Promise.all(Array.from({ length: nWorkers }, slot));
  } finally {
    await Promise.all([...live].map((w) => w.terminate()));
    bar?.stop();
    writer.close();
  }
  rows.sort((a, b) => a.index - b.index);
  return rows;
}

/** What `dmasim merge` found. */
export interface MergeResult { readonly rows: SweepRow[]; readonly missing: number[]; readonly duplicates: number }

/**
 * Merge JSON-lines parts of a sweep: one row per job index (a successful row wins over an error
 * row, the later part over the earlier), sorted, with the indices no part holds.
 * @example mergeParts(['part0.jsonl', 'part1.jsonl']).missing // []
 */
export function mergeParts(paths: readonly string[]): MergeResult {
  const byIndex = new Map<number, SweepRow>();
  let duplicates = 0;
  let of = 0;
  for (const p of paths) {
    for (const line of readFileSync(p, 'utf8').split('\n')) {
      if (line.trim() === '') continue;
      let r: SweepRow;
      try { r = JSON.parse(line) as SweepRow; } catch { continue; }
      if (typeof r.index !== 'number') continue;
      of = Math.max(of, r.of ?? 0);
      const had = byIndex.get(r.index);
      if (had !== undefined) duplicates++;
      if (had === undefined || had.error !== undefined || r.error === undefined) byIndex.set(r.index, r);
    }
  }
  const rows = [...byIndex.values()].sort((a, b) => a.index - b.index);
  const missing: number[] = [];
  for (let i = 0; i < of; i++) if (!byIndex.has(i)) missing.push(i);
  return { rows, missing, duplicates };
}

/** Write merged rows as JSON lines or CSV (the header from the rows' parameters and results). */
export function writeMerged(rows: readonly SweepRow[], format: 'jsonl' | 'csv', out: string | undefined): void {
  const params = [...new Set(rows.flatMap((r) => Object.keys(r.params)))];
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r.result ?? {})))];
  const w = new RowWriter(out, format, params, format === 'csv' ? columns : null, false);
  for (const r of rows) w.write(r);
  w.close();
}
