/**
 * @module cli
 * The `dmasim` command: `run` (a scenario), `bench coalesce`, `help`. Exit codes: 0 success,
 * 1 the work failed, 2 bad usage.
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { LOG_LEVELS, logLevelFromEnv, setRootLogger } from './core/log.ts';
import { defaultScenario } from './scenarios.ts';

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
  describe <preset|machine.json>
                      build a machine from a preset or a JSON description and describe it
  help                this text
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

class UsageError extends Error {}

const SWEEP_USAGE = `usage: dmasim sweep <scenario.ts> [options]

Runs the scenario's default export once per combination of parameters, on worker threads.
The function receives { seed, ...params } and returns an object of numbers (one result row).

options:
  --seeds A..B        seeds A to B (default 1..8)
  --param k=v1,v2     a parameter and its values; repeatable (numbers are parsed)
  --shard i/n         run only shard i of n (0-based), to split a sweep across machines
  --workers N         worker threads (default: one per core)
  --format F          jsonl (default) or csv
  --out FILE          write there instead of stdout
  --no-progress       no progress bar
`;

async function sweepCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      seeds: { type: 'string' }, param: { type: 'string', multiple: true }, shard: { type: 'string' },
      workers: { type: 'string' }, format: { type: 'string' }, out: { type: 'string' }, 'no-progress': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(SWEEP_USAGE);
    return 0;
  }
  const file = positionals[0];
  if (file === undefined) throw new UsageError('sweep needs a scenario file');
  const seedsM = /^(\d+)\.\.(\d+)$/.exec(values.seeds ?? '1..8');
  if (seedsM === null) throw new UsageError(`--seeds must look like 1..8, got '${values.seeds}'`);
  const seeds: number[] = [];
  for (let s = Number(seedsM[1]); s <= Number(seedsM[2]); s++) seeds.push(s);
  const grid: Record<string, unknown[]> = { seed: seeds };
  for (const p of values.param ?? []) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new UsageError(`--param must look like key=v1,v2, got '${p}'`);
    grid[p.slice(0, eq)] = p.slice(eq + 1).split(',').map((v) => (v !== '' && !Number.isNaN(Number(v)) ? Number(v) : v));
  }
  let shard: { index: number; count: number } | undefined;
  if (values.shard !== undefined) {
    const sm = /^(\d+)\/(\d+)$/.exec(values.shard);
    if (sm === null || Number(sm[1]) >= Number(sm[2])) throw new UsageError(`--shard must be i/n with 0 <= i < n, got '${values.shard}'`);
    shard = { index: Number(sm[1]), count: Number(sm[2]) };
  }
  const format = values.format ?? 'jsonl';
  if (format !== 'jsonl' && format !== 'csv') throw new UsageError(`--format must be jsonl or csv, got '${format}'`);
  const { existsSync } = await import('node:fs');
  if (!existsSync(file)) throw new UsageError(`no scenario file ${file}`);
  const { sweep } = await import('./sweep.ts');
  const rows = await sweep({
    file, grid, format,
    ...(shard === undefined ? {} : { shard }),
    ...(values.workers === undefined ? {} : { workers: Number(values.workers) }),
    ...(values.out === undefined ? {} : { out: values.out }),
    progress: values['no-progress'] !== true,
  });
  return rows.some((r) => r.error !== undefined) ? 1 : 0;
}

function parseMaxSegment(v: string): number {
  if (v.toUpperCase() === 'UINT_MAX') return 0xffffffff;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new UsageError(`--max-segment must be a whole number of bytes up to UINT_MAX, got '${v}'`);
  return n;
}

async function benchCoalesceCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      n: { type: 'string', multiple: true },
      layout: { type: 'string', multiple: true },
      'max-segment': { type: 'string', multiple: true },
      mode: { type: 'string', multiple: true },
      'no-native': { type: 'boolean' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(BENCH_USAGE);
    return 0;
  }
  const bench = await import('../bench/coalesce.bench.ts');
  const sizes = values.n?.map((v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > 2 ** 26) throw new UsageError(`--n must be a whole number of pages in [1, 2^26], got '${v}'`);
    return n;
  });
  const layouts = values.layout?.map((v) => {
    if (!(bench.LAYOUTS as readonly string[]).includes(v)) throw new UsageError(`--layout must be one of ${bench.LAYOUTS.join(', ')}, got '${v}'`);
    return v as (typeof bench.LAYOUTS)[number];
  });
  const modes = values.mode?.map((v) => {
    if (!(bench.MODES as readonly string[]).includes(v)) throw new UsageError(`--mode must be one of ${bench.MODES.join(', ')}, got '${v}'`);
    return v as (typeof bench.MODES)[number];
  });
  const rows = await bench.benchCoalesce({
    ...(sizes === undefined ? {} : { sizes }),
    ...(layouts === undefined ? {} : { layouts }),
    ...(modes === undefined ? {} : { modes }),
    ...(values['max-segment'] === undefined ? {} : { maxSegments: values['max-segment'].map(parseMaxSegment) }),
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
  --json          print the results as JSON instead of text
`;

async function runCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args, allowPositionals: true,
    options: { html: { type: 'string' }, trace: { type: 'string' }, jsonl: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help === true) {
    process.stdout.write(RUN_USAGE);
    return 0;
  }
  const file = positionals[0];
  if (file !== undefined) return runScenarioFile(file);
  const r = defaultScenario();
  const { writeFileSync } = await import('node:fs');
  const { htmlReport } = await import('./sim/html-report.ts');
  const { chromeTrace, traceJsonLines } = await import('./core/trace.ts');
  if (values.html !== undefined) writeFileSync(values.html, htmlReport(r.machine, { title: 'dmasim: the default scenario', entryLengths: r.entryLengths, segmentLengths: r.segmentLengths, iovaRanges: r.iovaRanges, text: r.report }));
  if (values.trace !== undefined) writeFileSync(values.trace, JSON.stringify(chromeTrace(r.machine.trace)));
  if (values.jsonl !== undefined) writeFileSync(values.jsonl, `${traceJsonLines(r.machine.trace)}\n`);
  if (values.json === true) {
    const { machine: _m, report: _r, entryLengths: _e, segmentLengths: _s, iovaRanges: _i, ...nums } = r;
    process.stdout.write(`${JSON.stringify(nums, null, 2)}\n`);
  } else {
    process.stdout.write(`${r.report}\n`);
  }
  return r.leaks === 0 && r.accessViolations === 0 && r.bytesVerified ? 0 : 1;
}

/**
 * Import a scenario. TypeScript files go through tsx, loaded only then (the compiled CLI runs under
 * plain node; a .js or .mjs scenario needs nothing more).
 */
async function importScenario(url: string): Promise<unknown> {
  if (!/\.[cm]?tsx?$/.test(url)) return import(url);
  const { tsImport } = (await import('tsx/esm/api')) as { tsImport: (specifier: string, parent: string) => Promise<unknown> };
  return tsImport(url, import.meta.url);
}

/**
 * Run a scenario module: its default export (a function, maybe async) is called and what it
 * returns is printed (a string, or an object's `report`); a module without one runs at import.
 */
async function runScenarioFile(file: string): Promise<number> {
  const { pathToFileURL } = await import('node:url');
  const { resolve } = await import('node:path');
  const { existsSync } = await import('node:fs');
  const path = resolve(file);
  if (!existsSync(path)) throw new UsageError(`no scenario file ${file}`);
  const mod = (await importScenario(pathToFileURL(path).href)) as { default?: unknown };
  if (typeof mod.default === 'function') {
    const out: unknown = await (mod.default as () => unknown)();
    const text = typeof out === 'string' ? out : typeof out === 'object' && out !== null && 'report' in out ? String((out as { report: unknown }).report) : out === undefined ? '' : JSON.stringify(out, null, 2);
    if (text !== '') process.stdout.write(`${text}\n`);
  }
  return 0;
}

async function describeCommand(args: string[]): Promise<number> {
  const what = args[0];
  const { PRESETS, buildMachine } = await import('./sim/config.ts');
  const { memoryReport } = await import('./sim/report.ts');
  const { isolationReport } = await import('./sim/isolation.ts');
  const { formatMask } = await import('./device/mask.ts');
  if (what === undefined || what === '--help' || what === '-h') {
    process.stdout.write(`usage: dmasim describe <preset|machine.json>\n\npresets: ${Object.keys(PRESETS).join(', ')}\n`);
    return what === undefined ? 2 : 0;
  }
  let config: unknown = PRESETS[what];
  if (config === undefined) {
    const { existsSync, readFileSync } = await import('node:fs');
    if (!existsSync(what)) throw new UsageError(`'${what}' is neither a preset (${Object.keys(PRESETS).join(', ')}) nor a file`);
    try {
      config = JSON.parse(readFileSync(what, 'utf8'));
    } catch (e) {
      throw new UsageError(`${what} is not valid JSON: ${(e as Error).message}`);
    }
  }
  const { machine, devices } = buildMachine(config as Parameters<typeof buildMachine>[0]);
  const lines = [memoryReport(machine), '', 'devices:'];
  for (const d of Object.values(devices)) {
    const g = machine.iommu?.groupOf(d);
    lines.push(`  ${d.bus.name} ${d.name}: dma_mask ${d.dma_mask === null ? 'none' : `0x${formatMask(d.dma_mask)}`}, max segment ${d.dma_parms?.max_segment_size ?? 65536}${d.untrusted ? ', untrusted' : ''}${d.dma_coherent ? '' : ', non-coherent'}${g === undefined ? '' : `, iommu group ${g.id} (${g.domain.typeName})`}`);
  }
  lines.push('', 'isolation:', ...isolationReport(machine).map((l) => `  ${l}`));
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [cmd = 'help', ...rest] = argv;
  switch (cmd) {
    case 'run':
      return runCommand(rest);
    case 'bench':
      if (rest[0] === 'coalesce') return benchCoalesceCommand(rest.slice(1));
      throw new UsageError(`unknown benchmark '${rest[0] ?? ''}' (available: coalesce)`);
    case 'sweep':
      return sweepCommand(rest);
    case 'describe':
      return describeCommand(rest);
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return 0;
    default:
      throw new UsageError(`unknown command '${cmd}'`);
  }
}

setupLogging();
main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    if (err instanceof UsageError || (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS'))) {
      process.stderr.write(`dmasim: ${err.message}\n\n${USAGE}`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`dmasim: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
