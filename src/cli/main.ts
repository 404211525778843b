/**
 * @module cli/main
 * The `dmasim` command: `run` (a scenario), `bench coalesce`, `help`. Exit codes: 0 success,
 * 1 the work failed, 2 bad usage.
 */
import { UsageError, checkOutputDirs, loadMachineArg, parseCommandArgs } from './usage.ts';
import { REPLAY_USAGE, replayCommand } from './replay.ts';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { LOG_LEVELS, logLevelFromEnv, setRootLogger } from '../core/log.ts';
import { defaultScenario } from '../sim/scenarios.ts';

/**
 * The CLI's logger: the report already shows the kernel's messages, so only errors are logged
 * unless LOG_LEVEL asks for more; JSON lines for tools, one readable line each on a terminal.
 */
function setupLogging(): void {
  const asked = process.env['LOG_LEVEL'];
  if (asked !== undefined && asked !== '' && !(LOG_LEVELS as readonly string[]).includes(asked)) {
    process.stderr.write(`dmasim: LOG_LEVEL=${asked} is not a level (${LOG_LEVELS.join(', ')}); logging errors only\n`);
  }
  const level = logLevelFromEnv('error');
  if (process.stderr.isTTY !== true) {
    setRootLogger(pino({ name: 'dmasim', level }, pino.destination(2)));
    return;
  }
  const names: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
  const pretty = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) {
        if (line === '') continue;
        try {
          const o = JSON.parse(line) as { level: number; msg?: string; machine?: string; fn?: string };
          process.stderr.write(`${names[o.level] ?? o.level} [${o.machine ?? 'dmasim'}]${o.fn === undefined ? '' : ` ${o.fn}:`} ${o.msg ?? ''}\n`);
        } catch {
          process.stderr.write(`${line}\n`);
        }
      }
      done();
    },
  });
  setRootLogger(pino({ name: 'dmasim', level }, pretty));
}

const USAGE = `usage: dmasim <command> [options]

commands:
  run [scenario.ts]   run a scenario (default: the built-in one) and print its report
  bench coalesce      benchmark segment coalescing (see: dmasim bench coalesce --help)
  sweep <scenario.ts> run a scenario across seeds and parameters on all cores (see: dmasim sweep --help)
  merge <part>...     merge the outputs of a sharded sweep, reporting missing jobs
  describe <preset|machine.json>
                      build a machine from a preset or a JSON description and describe it
  schema              print the JSON Schema of a machine file
  replay <trace.txt>  check a kernel DMA trace (trace-cmd report) as dma-debug would, and replay
                      it on another machine (--iommu, --swiotlb force, --mask, --machine)
  help                this text
  --version           the package version
`;

const BENCH_USAGE = `usage: dmasim bench coalesce [options]

Builds scatterlist tables from page arrays exactly as lib/scatterlist.c and prints ns/page,
entries and bytes per entry, beside a native C build of the same rules when a C compiler exists.

options:
  --n N               pages per build; repeatable (default: 4096, 262144, 1048576)
  --layout L          contiguous | scattered | runs; repeatable (default: all)
  --max-segment M     bytes, e.g. 65536 or UINT_MAX; repeatable (default: UINT_MAX and 65536)
  --mode M            oneshot | append512; repeatable (default: both)
  --no-native         skip the native C yardstick
  --json              JSON lines instead of a table
`;

const SWEEP_USAGE = `usage: dmasim sweep <scenario.ts> [options]

Runs the scenario's default export once per combination of parameters, on worker threads.
The function receives { seed, ...params } and returns an object of numbers (one result row).

options:
  --seeds A..B        seeds A to B (default 1..8)
  --param k=v1,v2     a parameter and its values; repeatable (numbers are parsed)
  --shard i/n         run only shard i of n (0-based), to split a sweep across machines
  --shard auto        the shard a Kubernetes Indexed Job (JOB_COMPLETION_INDEX, JOB_COMPLETIONS)
                      or a Slurm job array (SLURM_ARRAY_TASK_ID, _MIN/_MAX/_COUNT) assigned
  --workers N         worker threads (default: one per core)
  --timeout MS        a job running longer fails (its worker is stopped and replaced)
  --retries N         run a failed job (error, crash, out of memory, timeout) up to N more times
  --max-memory MB     heap limit of each worker (default 2048): a job past it fails, out of memory
  --format F          jsonl (default) or csv
  --out FILE          write there instead of stdout (each row as it completes)
  --resume            skip the jobs whose successful rows are already in --out, and append
  --no-progress       no progress bar
  --summary           print a table to stderr: per swept parameter, each numeric field's median
                      and [min..max]
  --html FILE         an HTML page with one chart per numeric field against the swept parameter
  --allow-findings    exit 0 even when a job's machines end with findings

Each row carries \`findings\`: how many findings (leaks, dma-debug errors, access violations, audit
problems, WARNs) the machines the job made ended with, and \`of\`: the jobs in the whole sweep.
A job whose worker exits, crashes or runs out of memory is an error row; the sweep goes on.
Exit codes: 0 every job ran clean; 1 a job failed or ended with findings; 2 bad usage.
`;

const MERGE_USAGE = `usage: dmasim merge <part.jsonl>... [--out FILE] [--format jsonl|csv]

Merges the JSON-lines outputs of a sharded sweep: one row per job (a successful row wins over an
error row), in job order; reports duplicates and the jobs no part holds. Exit codes: 0 complete;
1 jobs are missing or failed; 2 bad usage.
`;

async function mergeCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    out: { type: 'string' }, format: { type: 'string' }, help: { type: 'boolean', short: 'h' },
  }, MERGE_USAGE);
  if (values.help === true) {
    process.stdout.write(MERGE_USAGE);
    return 0;
  }
  const bad = (message: string): never => { throw new UsageError(message, MERGE_USAGE); };
  if (positionals.length === 0) bad('merge needs at least one part file');
  const format = values.format ?? 'jsonl';
  if (format !== 'jsonl' && format !== 'csv') bad(`--format must be jsonl or csv, got '${format}'`);
  const { existsSync, statSync } = await import('node:fs');
  for (const p of positionals) if (!existsSync(p)) bad(`no part file ${p}`);
  if (values.out !== undefined) {
    const { dirname, resolve } = await import('node:path');
    const dir = dirname(resolve(values.out));
    if (!existsSync(dir) || !statSync(dir).isDirectory()) bad(`--out ${values.out}: no directory ${dir}`);
  }
  const { mergeParts, writeMerged } = await import('./sweep.ts');
  const r = mergeParts(positionals);
  writeMerged(r.rows, format as 'jsonl' | 'csv', values.out);
  const failed = r.rows.filter((x) => x.error !== undefined).length;
  process.stderr.write(`dmasim merge: ${r.rows.length} job(s) from ${positionals.length} part(s)${r.duplicates > 0 ? `, ${r.duplicates} duplicate row(s) dropped` : ''}${failed > 0 ? `, ${failed} failed` : ''}${r.missing.length > 0 ? `; missing ${r.missing.length}: ${r.missing.slice(0, 20).join(', ')}${r.missing.length > 20 ? ', ...' : ''}` : ''}\n`);
  return r.missing.length > 0 || failed > 0 ? 1 : 0;
}

async function sweepCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    seeds: { type: 'string' }, param: { type: 'string', multiple: true }, shard: { type: 'string' },
    workers: { type: 'string' }, format: { type: 'string' }, out: { type: 'string' }, 'no-progress': { type: 'boolean' },
    'allow-findings': { type: 'boolean' }, help: { type: 'boolean', short: 'h' }, timeout: { type: 'string' },
    retries: { type: 'string' }, resume: { type: 'boolean' }, summary: { type: 'boolean' }, html: { type: 'string' },
    'max-memory': { type: 'string' },
  }, SWEEP_USAGE);
  const bad = (message: string): never => { throw new UsageError(message, SWEEP_USAGE); };
  if (values.help === true) {
    process.stdout.write(SWEEP_USAGE);
    return 0;
  }
  const file = positionals[0];
  if (file === undefined) bad('sweep needs a scenario file');
  if (positionals.length > 1) bad(`one scenario file, got ${positionals.length} arguments`);
  const seedsM = /^(\d+)\.\.(\d+)$/.exec(values.seeds ?? '1..8');
  if (seedsM === null) return bad(`--seeds must look like 1..8, got '${values.seeds}'`);
  if (Number(seedsM[1]) > Number(seedsM[2])) bad(`--seeds ${values.seeds} is empty: the first seed is above the last`);
  if (values.workers !== undefined && !/^[1-9]\d{0,3}$/.test(values.workers)) bad(`--workers must be a whole number of threads in [1, 9999], got '${values.workers}'`);
  const seeds: number[] = [];
  for (let s = Number(seedsM[1]); s <= Number(seedsM[2]); s++) seeds.push(s);
  const grid: Record<string, unknown[]> = { seed: seeds };
  for (const p of values.param ?? []) {
    const eq = p.indexOf('=');
    if (eq <= 0) bad(`--param must look like key=v1,v2, got '${p}'`);
    grid[p.slice(0, eq)] = p.slice(eq + 1).split(',').map((v) => (v !== '' && !Number.isNaN(Number(v)) ? Number(v) : v));
  }
  let shard: { index: number; count: number } | undefined;
  if (values.timeout !== undefined && !/^[1-9]\d{0,9}$/.test(values.timeout)) bad(`--timeout must be a whole number of milliseconds, got '${values.timeout}'`);
  if (values.retries !== undefined && !/^\d{1,3}$/.test(values.retries)) bad(`--retries must be a whole number in [0, 999], got '${values.retries}'`);
  if (values.resume === true && values.out === undefined) bad('--resume needs --out: the file whose rows to keep');
  if (values['max-memory'] !== undefined && !/^[1-9]\d{1,5}$/.test(values['max-memory'])) bad(`--max-memory must be a whole number of MiB in [10, 999999], got '${values['max-memory']}'`);
  if (values.shard === 'auto') {
    const { detectShard } = await import('./sweep.ts');
    shard = detectShard(process.env);
    if (shard === undefined) bad('--shard auto: no batch-system index in the environment (JOB_COMPLETION_INDEX with JOB_COMPLETIONS, or SLURM_ARRAY_TASK_ID with SLURM_ARRAY_TASK_COUNT or _MIN/_MAX)');
  } else if (values.shard !== undefined) {
    const sm = /^(\d+)\/(\d+)$/.exec(values.shard);
    if (sm === null || Number(sm[1]) >= Number(sm[2])) return bad(`--shard must be i/n with 0 <= i < n, got '${values.shard}'`);
    shard = { index: Number(sm[1]), count: Number(sm[2]) };
  }
  const format = values.format ?? 'jsonl';
  if (format !== 'jsonl' && format !== 'csv') bad(`--format must be jsonl or csv, got '${format}'`);
  const { existsSync, statSync } = await import('node:fs');
  if (!existsSync(file as string)) bad(`no scenario file ${file}`);
  if (values.out !== undefined) {
    // Checked before the first job runs: a typo should not cost a whole sweep.
    const { dirname, resolve } = await import('node:path');
    const dir = dirname(resolve(values.out));
    if (!existsSync(dir) || !statSync(dir).isDirectory()) bad(`--out ${values.out}: no directory ${dir}`);
  }
  if (values.html !== undefined) {
    const { dirname, resolve } = await import('node:path');
    const dir = dirname(resolve(values.html));
    if (!existsSync(dir) || !statSync(dir).isDirectory()) bad(`--html ${values.html}: no directory ${dir}`);
  }
  const { sweep } = await import('./sweep.ts');
  const rows = await sweep({
    file: file as string, grid, format: format as 'jsonl' | 'csv',
    ...(shard === undefined ? {} : { shard }),
    ...(values.workers === undefined ? {} : { workers: Number(values.workers) }),
    ...(values.out === undefined ? {} : { out: values.out }),
    ...(values.timeout === undefined ? {} : { timeout: Number(values.timeout) }),
    ...(values.retries === undefined ? {} : { retries: Number(values.retries) }),
    ...(values.resume === true ? { resume: true } : {}),
    ...(values['max-memory'] === undefined ? {} : { maxMemoryMb: Number(values['max-memory']) }),
    // The bar only on a terminal: piped stderr (CI logs) gets no redraw noise.
    progress: values['no-progress'] !== true && process.stderr.isTTY === true,
  });
  if (values.summary === true || values.html !== undefined) {
    const { summarizeSweep, formatSweepSummary, sweepSummaryHtml } = await import('./sweep-summary.ts');
    const groups = summarizeSweep(rows);
    if (values.summary === true) process.stderr.write(formatSweepSummary(groups));
    if (values.html !== undefined) {
      const { writeFileSync } = await import('node:fs');
      const { basename } = await import('node:path');
      writeFileSync(values.html, sweepSummaryHtml(groups, `dmasim sweep ${basename(file as string)}`));
    }
  }
  const withFindings = rows.filter((r) => (r.findings ?? 0) > 0).length;
  if (withFindings > 0) process.stderr.write(`dmasim: ${withFindings} of ${rows.length} job(s) ended with findings (the findings column); run one with dmasim run to see them\n`);
  return rows.some((r) => r.error !== undefined) || (withFindings > 0 && values['allow-findings'] !== true) ? 1 : 0;
}

/** A whole number as kernel people write it (decimal or 0x hex), NaN for anything else. */
function wholeNumber(v: string): number {
  return /^(\d+|0x[0-9a-f]+)$/i.test(v) ? Number(v) : NaN;
}

/** A --max-segment value: sg_alloc_table_from_pages_segment refuses one below PAGE_SIZE (-EINVAL). */
function parseMaxSegment(v: string): number {
  if (v.toUpperCase() === 'UINT_MAX') return 0xffffffff;
  const n = wholeNumber(v);
  if (!Number.isInteger(n) || n < 4096 || n > 0xffffffff) throw new UsageError(`--max-segment must be a whole number of bytes in [4096 (PAGE_SIZE), UINT_MAX], got '${v}'`, BENCH_USAGE);
  return n;
}

async function benchCoalesceCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    n: { type: 'string', multiple: true },
    layout: { type: 'string', multiple: true },
    'max-segment': { type: 'string', multiple: true },
    mode: { type: 'string', multiple: true },
    'no-native': { type: 'boolean' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  }, BENCH_USAGE);
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`, BENCH_USAGE);
  if (values.help === true) {
    process.stdout.write(BENCH_USAGE);
    return 0;
  }
  const bench = await import('../../bench/coalesce.bench.ts');
  const uniq = <T>(xs: readonly T[] | undefined): T[] | undefined => (xs === undefined ? undefined : [...new Set(xs)]);
  const sizes = uniq(values.n)?.map((v) => {
    const n = wholeNumber(v);
    if (!Number.isInteger(n) || n < 1 || n > 2 ** 26) throw new UsageError(`--n must be a whole number of pages in [1, 2^26], got '${v}'`, BENCH_USAGE);
    return n;
  });
  const layouts = uniq(values.layout)?.map((v) => {
    if (!(bench.LAYOUTS as readonly string[]).includes(v)) throw new UsageError(`--layout must be one of ${bench.LAYOUTS.join(', ')}, got '${v}'`, BENCH_USAGE);
    return v as (typeof bench.LAYOUTS)[number];
  });
  const modes = uniq(values.mode)?.map((v) => {
    if (!(bench.MODES as readonly string[]).includes(v)) throw new UsageError(`--mode must be one of ${bench.MODES.join(', ')}, got '${v}'`, BENCH_USAGE);
    return v as (typeof bench.MODES)[number];
  });
  const rows = await bench.benchCoalesce({
    ...(sizes === undefined ? {} : { sizes }),
    ...(layouts === undefined ? {} : { layouts }),
    ...(modes === undefined ? {} : { modes }),
    ...(values['max-segment'] === undefined ? {} : { maxSegments: [...new Set(values['max-segment'].map(parseMaxSegment))] }),
    native: values['no-native'] !== true,
  });
  if (values.json === true) for (const r of rows) process.stdout.write(`${JSON.stringify(r)}\n`);
  else process.stdout.write(`${bench.coalesceTable(rows)}\n`);
  return 0;
}

const RUN_USAGE = `usage: dmasim run [scenario.ts] [options]

Runs a scenario (default: the built-in one) and prints its report.

options:
  --html FILE     also write a self-contained HTML report with pictures (built-in scenario)
  --trace FILE    also write the event trace in Chrome trace-event format (open in Perfetto)
  --jsonl FILE    also write the event trace as JSON lines
  --ftrace FILE   also write the DMA events as the kernel's trace file prints them (dma:*,
                  swiotlb:swiotlb_bounced, iommu:map/unmap/io_page_fault), for dmasim replay
                  or tools that read ftrace text
  --json          print the results as JSON instead of text
  --allow-findings  exit 0 even when a machine the scenario made ends with findings

Exit codes: 0 done; 1 the scenario threw, or a machine it made ends with findings (leaked
mappings, dma-debug errors, device or CPU access violations, audit problems, WARNs), which are
printed; 2 bad usage.
`;

async function runCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    html: { type: 'string' }, trace: { type: 'string' }, jsonl: { type: 'string' }, ftrace: { type: 'string' }, json: { type: 'boolean' },
    'allow-findings': { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  }, RUN_USAGE);
  if (positionals.length > 1) throw new UsageError(`one scenario file, got ${positionals.length} arguments`, RUN_USAGE);
  if (values.help === true) {
    process.stdout.write(RUN_USAGE);
    return 0;
  }
  const file = positionals[0];
  // Every output path is checked before anything runs: a typo should not cost a long run.
  checkOutputPaths(values);
  if (file !== undefined) return runScenarioFile(file, values);
  const r = defaultScenario();
  await writeOutputs(r.machine, values, { title: 'dmasim: the default scenario', entryLengths: r.entryLengths, segmentLengths: r.segmentLengths, iovaRanges: r.iovaRanges, text: r.report });
  if (values.json === true) {
    const { machine: _m, report: _r, entryLengths: _e, segmentLengths: _s, iovaRanges: _i, ...nums } = r;
    process.stdout.write(`${JSON.stringify(nums, null, 2)}\n`);
  } else {
    process.stdout.write(`${r.report}\n`);
  }
  return r.leaks === 0 && r.accessViolations === 0 && r.bytesVerified ? 0 : 1;
}

type RunOutputs = { html?: string | undefined; trace?: string | undefined; jsonl?: string | undefined; ftrace?: string | undefined };

/** Bad usage (2) when an output path's directory does not exist. */
function checkOutputPaths(opts: RunOutputs): void {
  checkOutputDirs([['--html', opts.html], ['--trace', opts.trace], ['--jsonl', opts.jsonl], ['--ftrace', opts.ftrace]], RUN_USAGE);
}

/** Write the pictures and traces --html, --trace and --jsonl ask for, of one machine. */
async function writeOutputs(machine: InstanceType<typeof import('../sim/machine.ts').Machine>, opts: RunOutputs, data: Parameters<typeof import('../sim/html-report.ts').htmlReport>[1]): Promise<void> {
  const { writeFileSync } = await import('node:fs');
  const { htmlReport } = await import('../sim/html-report.ts');
  const { chromeTrace, traceJsonLines } = await import('../core/trace.ts');
  if (opts.html !== undefined) writeFileSync(opts.html, htmlReport(machine, data));
  if ((opts.trace !== undefined || opts.jsonl !== undefined || opts.ftrace !== undefined) && !machine.trace.enabled) {
    process.stderr.write(`dmasim: machine ${machine.name} was built without trace: true; its trace is empty\n`);
  }
  if (opts.trace !== undefined) writeFileSync(opts.trace, JSON.stringify(chromeTrace(machine.trace, { process: `machine ${machine.name}` })));
  if (opts.jsonl !== undefined) writeFileSync(opts.jsonl, `${traceJsonLines(machine.trace)}\n`);
  if (opts.ftrace !== undefined) {
    const { traceFtrace } = await import('../sim/replay/write.ts');
    // An untraced machine gives the header alone (said above), as an empty kernel trace would.
    writeFileSync(opts.ftrace, machine.trace.enabled ? traceFtrace(machine) : '# tracer: nop\n#\n');
  }
}

/**
 * Import a scenario. TypeScript files go through tsx, loaded only then (the compiled CLI runs under
 * plain node; a .js or .mjs scenario needs nothing more).
 */
async function importScenario(url: string): Promise<unknown> {
  // Under tsx (a checkout: this module is .ts) TypeScript already loads. In the package, tsx's
  // hooks are registered for the whole process rather than through tsImport, whose namespaced
  // loading would give the scenario a second copy of dmasim (its Machines unseen by this CLI).
  if (/\.[cm]?tsx?$/.test(url) && !import.meta.url.endsWith('.ts') && !tsxRegistered) {
    const { register } = (await import('tsx/esm/api')) as { register: () => unknown };
    register();
    tsxRegistered = true;
  }
  return import(url);
}
let tsxRegistered = false;

/**
 * Run a scenario module: its default export (a function, maybe async) is called and what it
 * returns is printed (a string, or an object's `report`); a module without one runs at import.
 */
async function runScenarioFile(file: string, opts: RunOutputs & { json?: boolean | undefined; 'allow-findings'?: boolean | undefined }): Promise<number> {
  const { pathToFileURL } = await import('node:url');
  const { resolve, extname } = await import('node:path');
  const { existsSync, statSync } = await import('node:fs');
  const { onMachineCreated, traceMachinesByDefault, Machine } = await import('../sim/machine.ts');
  const { judgeMachine } = await import('../sim/findings.ts');
  const path = resolve(file);
  if (!existsSync(path)) throw new UsageError(`no scenario file ${file}`, RUN_USAGE);
  if (!statSync(path).isFile() || !/^\.[cm]?[jt]s$/.test(extname(path))) {
    throw new UsageError(`${file} is not a scenario module (a .ts, .mts, .js or .mjs file)`, RUN_USAGE);
  }
  const made: object[] = [];
  const stop = onMachineCreated((m) => { made.push(m); });
  // Outputs drawn from the trace: machines the scenario builds record one unless they say trace: false.
  const wantsTrace = opts.html !== undefined || opts.trace !== undefined || opts.jsonl !== undefined || opts.ftrace !== undefined;
  const stopTrace = wantsTrace ? traceMachinesByDefault() : (): void => {};
  let out: unknown;
  try {
    const mod = (await importScenario(pathToFileURL(path).href)) as { default?: unknown };
    if (typeof mod.default === 'function') out = await (mod.default as () => unknown)();
    else if (mod.default !== undefined) throw new UsageError(`the default export of ${file} is ${typeof mod.default === 'object' ? 'an object' : `a ${typeof mod.default}`}; a scenario exports a function (or runs at import, with no default export)`, RUN_USAGE);
  } finally {
    stop();
    stopTrace();
  }
  const report = typeof out === 'string' ? out : typeof out === 'object' && out !== null && 'report' in out ? String((out as { report: unknown }).report) : out === undefined ? '' : undefined;
  if (opts.json === true) {
    const plain = typeof out === 'object' && out !== null ? Object.fromEntries(Object.entries(out).filter(([, v]) => !made.includes(v as object))) : out;
    process.stdout.write(`${JSON.stringify(plain ?? null, null, 2)}\n`);
  } else {
    const text = report ?? JSON.stringify(out, null, 2);
    if (text !== '') process.stdout.write(`${text}\n`);
  }
  const verdicts = made.map((m) => ({ m, verdict: judgeMachine(m) }));
  // The pictures and traces of the machine the scenario returned, else of the last one it made.
  const returned = typeof out === 'object' && out !== null ? Object.values(out).find((v) => made.includes(v as object)) : undefined;
  const pictured = (returned ?? made.at(-1)) as InstanceType<typeof Machine> | undefined;
  if (wantsTrace) {
    if (pictured === undefined) throw new UsageError('--html, --trace, --jsonl and --ftrace need a scenario that makes a Machine', RUN_USAGE);
    if (!(pictured instanceof Machine)) throw new UsageError(`${file} made its machines with another copy of dmasim (it imports dmasim from elsewhere); import 'dmasim' so they can be pictured`, RUN_USAGE);
    const judged = verdicts.find((v) => v.m === pictured)?.verdict;
    const findingsText = judged === undefined || judged === null || judged.findings.length === 0 ? '' : `\n\nfindings (${judged.findings.length}):\n${judged.text}`;
    await writeOutputs(pictured, opts, { title: `dmasim: ${file}`, text: `${report ?? ''}${findingsText}` });
  }
  let bad = 0;
  for (const { m, verdict } of verdicts) {
    if (verdict === null || verdict.findings.length === 0) continue;
    bad += verdict.findings.length;
    process.stderr.write(`dmasim: machine ${(m as { name?: string }).name ?? '?'} ends with ${verdict.findings.length} finding(s):\n${verdict.text}\n`);
  }
  return bad > 0 && opts['allow-findings'] !== true ? 1 : 0;
}

const DESCRIBE_USAGE = `usage: dmasim describe <preset|machine.json>

Builds the machine and prints what defines it: arch, RAM and zones, the IOMMU, swiotlb, dma-debug,
each device's DMA parameters, and the isolation the IOMMU gives. A machine file is checked against
the JSON Schema the package carries (dmasim/machine.schema.json; print it with dmasim schema).
`;

async function describeCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { help: { type: 'boolean', short: 'h' } }, DESCRIBE_USAGE);
  const { PRESETS, buildMachine } = await import('../sim/config.ts');
  const presets = `presets: ${Object.keys(PRESETS).join(', ')}\n`;
  if (values.help === true) {
    process.stdout.write(`${DESCRIBE_USAGE}\n${presets}`);
    return 0;
  }
  const what = positionals[0];
  if (what === undefined) throw new UsageError('describe needs a preset or a machine file', `${DESCRIBE_USAGE}\n${presets}`);
  if (positionals.length > 1) throw new UsageError(`one preset or machine file, got ${positionals.length} arguments`, DESCRIBE_USAGE);
  const { describeMachine } = await import('../sim/describe.ts');
  const { KernelError } = await import('../core/errors.ts');
  const config = await loadMachineArg(what, DESCRIBE_USAGE);
  try {
    process.stdout.write(`${describeMachine(buildMachine(config).machine)}\n`);
  } catch (e) {
    // A machine file's content is the user's input: a machine that cannot be built is bad usage.
    if (e instanceof KernelError) throw new UsageError(e.message, DESCRIBE_USAGE);
    throw e;
  }
  return 0;
}

async function schemaCommand(args: string[]): Promise<number> {
  const usage = 'usage: dmasim schema\n\nPrints the JSON Schema of a machine file (also in the package as dmasim/machine.schema.json).\n';
  const { values, positionals } = parseCommandArgs(args, { help: { type: 'boolean', short: 'h' } }, usage);
  if (values.help === true) {
    process.stdout.write(usage);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`, usage);
  const { MACHINE_SCHEMA } = await import('../sim/machine-schema.ts');
  process.stdout.write(`${JSON.stringify(MACHINE_SCHEMA, null, 2)}\n`);
  return 0;
}

/** The version in the package.json above this module (src/ in a checkout, dist/src/ in the package). */
async function packageVersion(): Promise<string> {
  const { readFileSync, existsSync } = await import('node:fs');
  const { dirname, join } = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    const p = join(dir, 'package.json');
    if (!existsSync(p)) continue;
    const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === 'dmasim') return pkg.version ?? 'unknown';
  }
  return 'unknown';
}

async function main(argv: string[]): Promise<number> {
  const [cmd = 'help', ...rest] = argv;
  switch (cmd) {
    case 'run':
      return runCommand(rest);
    case 'bench':
      if (rest[0] === 'coalesce') return benchCoalesceCommand(rest.slice(1));
      if (rest[0] === '--help' || rest[0] === '-h' || rest[0] === 'help') {
        process.stdout.write(BENCH_USAGE);
        return 0;
      }
      throw new UsageError(`unknown benchmark '${rest[0] ?? ''}' (available: coalesce)`, BENCH_USAGE);
    case 'sweep':
      return sweepCommand(rest);
    case 'merge':
      return mergeCommand(rest);
    case 'describe':
      return describeCommand(rest);
    case 'schema':
      return schemaCommand(rest);
    case 'replay':
      return replayCommand(rest);
    case '--version':
    case '-V':
    case 'version':
      process.stdout.write(`${await packageVersion()}\n`);
      return 0;
    case 'help':
    case '--help':
    case '-h': {
      // `dmasim help <command>`: that command's usage.
      const topic = rest[0];
      const usage = topic === undefined ? USAGE : ({ run: RUN_USAGE, bench: BENCH_USAGE, sweep: SWEEP_USAGE, merge: MERGE_USAGE, describe: DESCRIBE_USAGE, replay: REPLAY_USAGE } as Record<string, string>)[topic];
      if (usage === undefined) throw new UsageError(`no help for '${topic}' (commands: run, bench, sweep, merge, describe, schema, replay)`, USAGE);
      process.stdout.write(usage);
      return 0;
    }
    default:
      throw new UsageError(`unknown command '${cmd}'`, USAGE);
  }
}

setupLogging();
main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`dmasim: ${err.message}\n\n${err.usage}`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`dmasim: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
