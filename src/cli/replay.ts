/**
 * @module cli/replay
 * `dmasim replay TRACE`: read a kernel DMA trace (`trace-cmd report`, `/sys/kernel/tracing/trace`,
 * or `trace-cmd report -R`), streaming, and check it as dma-debug would have (see replay/check).
 */
import { KernelError } from '../core/errors.ts';
import { replayTrace, type ReplayTraceOptions, type ReplayTraceResult } from '../sim/replay/replay.ts';
import { allFindings, formatReplaySummary, replayHtml } from '../sim/replay/report.ts';
import { UsageError, checkOutputDirs, loadMachineArg, parseCommandArgs } from './usage.ts';

export const REPLAY_USAGE = `usage: dmasim replay <trace.txt | -> [options]

Reads a kernel DMA trace (Linux 6.12+: trace-cmd record -e dma -e swiotlb -e iommu; then
trace-cmd report, or cat /sys/kernel/tracing/trace; - reads standard input), streaming, and checks
it offline as dma-debug would: unmaps of unknown addresses, double unmaps, size or direction
mismatches, syncs outside a mapping or in the wrong direction, and mappings still live at the end
(per device), in dma-debug's words, with the trace line of each party.

With a machine (any of --machine, --iommu, --swiotlb, --mask) it also replays every map, sync,
unmap, allocation and free through dmasim's real layers on that machine, at the trace's times and
CPUs, and reports what would fail there (in the kernel's words), IOVA, swiotlb, IOTLB and flush
queue pressure over time, and how dmasim's addresses and segment merging compare with the traced
kernel's. Devices the machine does not describe are made from the trace (each assumption printed).

options:
  --machine M         replay on a preset (dmasim describe lists them) or a machine.json file
  --iommu MODE        strict, lazy or off (no IOMMU: dma-direct)
  --swiotlb force     bounce every streaming mapping through swiotlb (swiotlb=force)
  --mask N            every trace device's DMA mask, in bits (1-64)
  --json              one JSON object a line per finding: { kind, device, message, lines, where }
                      (where: trace for the offline check, replay for the replay machine)
  --html FILE         an HTML page: the summary, pressure over time, segment lengths, findings
  --max-findings N    print at most N findings (all are counted; default: all)

What a trace cannot show is not reported: dma_mapping_error is not traced, so no mapping counts as
unchecked. Unknown events are skipped and counted; malformed lines are reported on stderr with
their line numbers.
Exit codes: 0 no findings; 1 findings (of the trace, or of the replay machine); 2 bad usage or an
unreadable trace.
`;

/** Run `dmasim replay`. */
export async function replayCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    json: { type: 'boolean' }, 'max-findings': { type: 'string' }, help: { type: 'boolean', short: 'h' },
    machine: { type: 'string' }, iommu: { type: 'string' }, swiotlb: { type: 'string' }, mask: { type: 'string' }, html: { type: 'string' },
  }, REPLAY_USAGE);
  if (values.help === true) {
    process.stdout.write(REPLAY_USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'a trace file is needed' : `one trace file, got ${positionals.length} arguments`, REPLAY_USAGE);
  const max = values['max-findings'] === undefined ? Infinity : Number(values['max-findings']);
  if (!Number.isInteger(max) && max !== Infinity || max < 0) throw new UsageError(`--max-findings: expected a whole number, got ${values['max-findings']}`, REPLAY_USAGE);
  const opts = await machineOptions(values);
  const file = positionals[0] as string;
  if (file !== '-') {
    const { existsSync, statSync, openSync, readSync, closeSync } = await import('node:fs');
    if (!existsSync(file)) throw new UsageError(`${file}: no such file`, REPLAY_USAGE);
    if (!statSync(file).isFile()) throw new UsageError(`${file}: not a file (a directory?)`, REPLAY_USAGE);
    // trace-cmd's binary trace.dat: its text is what `trace-cmd report` prints.
    const head = Buffer.alloc(10);
    const fd = openSync(file, 'r');
    const n = readSync(fd, head, 0, 10, 0);
    closeSync(fd);
    if (n === 10 && head[0] === 0x17 && head[1] === 0x08 && head[2] === 0x44 && head.subarray(3).toString('latin1') === 'tracing') {
      throw new UsageError(`${file} is trace-cmd's binary trace.dat: give its text (trace-cmd report -i ${file} > trace.txt)`, REPLAY_USAGE);
    }
  }
  checkOutputDirs([['--html', values.html]], REPLAY_USAGE);
  let r: ReplayTraceResult;
  try {
    r = await replayTrace(file === '-' ? process.stdin : file, opts);
  } catch (e) {
    // A machine file whose machine cannot be built is the user's input: bad usage.
    if (e instanceof KernelError) throw new UsageError(e.message, REPLAY_USAGE);
    throw e;
  }
  const st = r.parse;
  for (const m of st.malformedLines) process.stderr.write(`dmasim replay: ${m.message}\n`);
  if (st.malformed > st.malformedLines.length) process.stderr.write(`dmasim replay: ... and ${st.malformed - st.malformedLines.length} more malformed lines\n`);
  if (st.events === 0) {
    process.stderr.write(`dmasim replay: ${file} has no DMA events (${st.lines} lines, ${st.unknown} of other events, ${st.malformed} malformed): was it recorded with -e dma (trace-cmd record -e dma -e swiotlb -e iommu), on Linux 6.12 or later?\n`);
    // Not one line read as a trace line: this is no trace at all (exit 2, an unreadable trace).
    if (st.malformed > 0 && st.unknown === 0) return 2;
  }
  const all = allFindings(r);
  if (values.json === true) {
    for (const f of all.slice(0, max)) process.stdout.write(`${JSON.stringify({ kind: f.kind, device: f.device, message: f.message, lines: f.lines, where: f.where })}\n`);
  } else {
    process.stdout.write(formatReplaySummary(r, file, max));
  }
  if (values.html !== undefined) {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(values.html, replayHtml(r, file));
    if (values.json !== true) process.stdout.write(`wrote ${values.html}\n`);
  }
  return all.length > 0 ? 1 : 0;
}

/** The replay machine the options ask for (none: the check only). */
async function machineOptions(values: { machine?: string | undefined; iommu?: string | undefined; swiotlb?: string | undefined; mask?: string | undefined }): Promise<ReplayTraceOptions> {
  const out: { -readonly [K in keyof ReplayTraceOptions]: ReplayTraceOptions[K] } = {};
  if (values.iommu !== undefined) {
    if (values.iommu !== 'strict' && values.iommu !== 'lazy' && values.iommu !== 'off') throw new UsageError(`--iommu: expected strict, lazy or off, got ${values.iommu}`, REPLAY_USAGE);
    out.iommu = values.iommu;
  }
  if (values.swiotlb !== undefined) {
    if (values.swiotlb !== 'force') throw new UsageError(`--swiotlb: expected force, got ${values.swiotlb}`, REPLAY_USAGE);
    out.swiotlbForce = true;
  }
  if (values.mask !== undefined) {
    const n = Number(values.mask);
    if (!Number.isInteger(n) || n < 1 || n > 64) throw new UsageError(`--mask: expected a number of bits from 1 to 64, got ${values.mask}`, REPLAY_USAGE);
    out.mask = n;
  }
  if (values.machine !== undefined) out.machine = await loadMachineArg(values.machine, REPLAY_USAGE, '--machine: ');
  return out;
}
