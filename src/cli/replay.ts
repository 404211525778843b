/**
 * @module cli/replay
 * `dmasim replay TRACE`: read a kernel DMA trace (`trace-cmd report`, `/sys/kernel/tracing/trace`,
 * or `trace-cmd report -R`), streaming, and check it as dma-debug would have (see replay/check).
 */
import { parseFtrace } from '../sim/replay/parse.ts';
import { TraceChecker, type TraceFinding } from '../sim/replay/check.ts';
import { UsageError, parseCommandArgs } from './usage.ts';

export const REPLAY_USAGE = `usage: dmasim replay <trace.txt | -> [options]

Reads a kernel DMA trace (Linux 6.12+: trace-cmd record -e dma -e swiotlb -e iommu; then
trace-cmd report, or cat /sys/kernel/tracing/trace; - reads standard input), streaming, and checks
it offline as dma-debug would: unmaps of unknown addresses, double unmaps, size or direction
mismatches, syncs outside a mapping or in the wrong direction, and mappings still live at the end
(per device), in dma-debug's words, with the trace line of each party.

options:
  --json              one JSON object a line per finding: { kind, device, message, lines }
  --max-findings N    print at most N findings (all are counted; default: all)

What a trace cannot show is not reported: dma_mapping_error is not traced, so no mapping counts as
unchecked. Unknown events are skipped and counted; malformed lines are reported on stderr with
their line numbers.
Exit codes: 0 no findings; 1 findings; 2 bad usage or an unreadable trace.
`;

/** Run `dmasim replay`. */
export async function replayCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    json: { type: 'boolean' }, 'max-findings': { type: 'string' }, help: { type: 'boolean', short: 'h' },
  }, REPLAY_USAGE);
  if (values.help === true) {
    process.stdout.write(REPLAY_USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'a trace file is needed' : `one trace file, got ${positionals.length} arguments`, REPLAY_USAGE);
  const max = values['max-findings'] === undefined ? Infinity : Number(values['max-findings']);
  if (!Number.isInteger(max) && max !== Infinity || max < 0) throw new UsageError(`--max-findings: expected a whole number, got ${values['max-findings']}`, REPLAY_USAGE);
  const file = positionals[0] as string;
  if (file !== '-') {
    const { existsSync, statSync } = await import('node:fs');
    if (!existsSync(file) || !statSync(file).isFile()) throw new UsageError(`${file}: no such file`, REPLAY_USAGE);
  }
  const stream = parseFtrace(file === '-' ? process.stdin : file);
  const checker = new TraceChecker();
  for await (const ev of stream) checker.add(ev);
  const findings = checker.finish();
  const st = stream.stats;
  for (const m of st.malformedLines) process.stderr.write(`dmasim replay: ${m.message}\n`);
  if (st.malformed > st.malformedLines.length) process.stderr.write(`dmasim replay: ... and ${st.malformed - st.malformedLines.length} more malformed lines\n`);
  const shown = findings.slice(0, max);
  if (values.json === true) {
    for (const f of shown) process.stdout.write(`${JSON.stringify({ kind: f.kind, device: f.device, message: f.message, lines: f.lines })}\n`);
  } else {
    const c = checker.stats;
    const unknown = Object.entries(st.unknownByName).map(([n, k]) => `${n} ${k}`).join(', ');
    process.stdout.write([
      `${file}: ${st.lines} lines, ${st.events} DMA events (${c.maps} maps, ${c.unmaps} unmaps, ${c.syncs} syncs, ${c.allocs} allocations, ${c.frees} frees, ${c.other} swiotlb/iommu)`,
      `devices: ${c.devices.length === 0 ? 'none' : c.devices.join(', ')}`,
      `skipped: ${st.unknown} other events${unknown === '' ? '' : ` (${unknown})`}, ${st.malformed} malformed lines${st.lostEvents > 0 ? `, ${st.lostEvents} events lost by the tracer` : ''}`,
      ...(c.failedMaps > 0 ? [`mappings that failed in the traced kernel: ${c.failedMaps}`] : []),
      ...(c.truncated > 0 ? [`dma_map_sg events cut at 128 entries (checked on what the trace kept): ${c.truncated}`] : []),
      `findings: ${findings.length}${findings.length === 0 ? '' : ` (${countKinds(findings)})`}`,
      ...shown.map((f) => `  line ${f.lines.join(', ')}: ${f.kind}: ${f.message}`),
      ...(shown.length < findings.length ? [`  ... and ${findings.length - shown.length} more`] : []),
    ].join('\n') + '\n');
  }
  return findings.length > 0 ? 1 : 0;
}

function countKinds(fs: readonly TraceFinding[]): string {
  const n = new Map<string, number>();
  for (const f of fs) n.set(f.kind, (n.get(f.kind) ?? 0) + 1);
  return [...n].map(([k, v]) => `${v} ${k}`).join(', ');
}
