/**
 * @module replay/report
 * A replay's results for people: the text summary `dmasim replay` prints (the trace's counts, the
 * offline check's findings, and for a replay machine what fails there, the pressure peaks and the
 * fidelity comparison) and the HTML page of `--html` (the same text, pressure over time, segment
 * lengths before and after merging, every finding with its lines).
 */
import { EINVAL } from '../../core/errno.ts';
import { KernelError } from '../../core/errors.ts';
import { fmtBytes, fmtCount, esc } from '../html-report/svg.ts';
import { histogramPicture } from '../html-report/histogram.ts';
import { pressurePicture } from '../html-report/pressure.ts';
import type { Machine } from '../machine.ts';
import type { TraceFinding } from './check.ts';
import type { ReplayFinding } from './machine-replay.ts';
import type { ReplayTraceResult } from './replay.ts';

/** Any finding of a replay, with where it came from. */
export interface ReplayOutputFinding {
  readonly kind: string;
  readonly device: string;
  readonly message: string;
  readonly lines: readonly number[];
  /** `trace`: the offline check of the traced kernel's events; `replay`: the replay machine. */
  readonly where: 'trace' | 'replay';
}

/** A replayTrace result and a file name, else EINVAL naming the argument. */
function checkResult(r: unknown, file: unknown, fn: string): void {
  const o = r as Partial<ReplayTraceResult> | null;
  if (typeof o !== 'object' || o === null || !Array.isArray(o.findings) || typeof o.parse !== 'object' || o.parse === null || typeof o.check !== 'object' || o.check === null) {
    throw new KernelError(EINVAL, fn, 'expected the result of replayTrace', 'r');
  }
  if (typeof file !== 'string') throw new KernelError(EINVAL, fn, `expected the trace's name, got ${typeof file}`, 'file');
}

/** The offline check's findings then the replay machine's, each marked with where it came from. */
export function allFindings(r: ReplayTraceResult): ReplayOutputFinding[] {
  const tag = (where: 'trace' | 'replay') => (f: TraceFinding | ReplayFinding): ReplayOutputFinding => ({ kind: f.kind, device: f.device, message: f.message, lines: f.lines, where });
  return [...r.findings.map(tag('trace')), ...(r.replay?.findings ?? []).map(tag('replay'))];
}

function countKinds(fs: readonly { kind: string }[]): string {
  const n = new Map<string, number>();
  for (const f of fs) n.set(f.kind, (n.get(f.kind) ?? 0) + 1);
  return [...n].map(([k, v]) => `${v} ${k}`).join(', ');
}

/** One line naming the replay machine's DMA path. */
export function describeReplayMachine(m: Machine): string {
  const io = m.iommu;
  const sw = m.swiotlb;
  return [
    `${fmtBytes(m.mm.totalPages * 4096)} RAM, ${m.cpus} CPUs`,
    io === null ? 'no IOMMU (dma-direct)' : `IOMMU ${io.mode} (${io.format}, ${io.addressWidth}-bit)`,
    sw === null ? 'no swiotlb' : `swiotlb ${fmtBytes(sw.io_tlb_nslabs * 2048)}${m.swiotlbForce ? ' forced' : ''}`,
  ].join(', ');
}

/** `line 3, 2: ` or nothing when a finding has no line (a leak whose map the trace does not show). */
const where = (lines: readonly number[]): string => (lines.length === 0 ? '' : `line ${lines.join(', ')}: `);

const pct = (a: number, b: number): string => (b === 0 ? '-' : `${a}/${b} (${Math.round((100 * a) / b)}%)`);

/**
 * The text summary. `shown` caps the findings listed (all are counted; 0 lists none and says nothing
 * of them, as the HTML page does, which has its own table).
 * @example process.stdout.write(formatReplaySummary(result, 'trace.txt'))
 */
export function formatReplaySummary(r: ReplayTraceResult, file: string, shown = Infinity): string {
  checkResult(r, file, 'formatReplaySummary');
  if (typeof shown !== 'number' || !(shown >= 0)) throw new KernelError(EINVAL, 'formatReplaySummary', `expected a count of findings to list, got ${String(shown)}`, 'shown');
  const st = r.parse;
  const c = r.check;
  const unknown = Object.entries(st.unknownByName).map(([n, k]) => `${n} ${k}`).join(', ');
  const lines = [
    `${file}: ${st.lines} lines, ${st.events} DMA events (${c.maps} maps, ${c.unmaps} unmaps, ${c.syncs} syncs, ${c.allocs} allocations, ${c.frees} frees, ${c.other} swiotlb/iommu)`,
    `devices: ${c.devices.length === 0 ? 'none' : c.devices.join(', ')}`,
    `skipped: ${st.unknown} other events${unknown === '' ? '' : ` (${unknown})`}, ${st.malformed} malformed lines${st.lostEvents > 0 ? `, ${st.lostEvents} events lost by the tracer` : ''}`,
    ...(c.failedMaps > 0 ? [`mappings that failed in the traced kernel: ${c.failedMaps}`] : []),
    ...(c.truncated > 0 ? [`dma_map_sg events cut at 128 entries (checked on what the trace kept): ${c.truncated}`] : []),
    `findings: ${r.findings.length}${r.findings.length === 0 ? '' : ` (${countKinds(r.findings)})`}`,
  ];
  const all = allFindings(r);
  const list = all.slice(0, shown);
  const traceShown = list.filter((f) => f.where === 'trace');
  lines.push(...traceShown.map((f) => `  ${where(f.lines)}${f.kind}: ${f.message}`));
  if (r.replay !== null && r.machine !== null && r.plan !== null) {
    const rp = r.replay;
    const s = rp.stats;
    const fi = rp.fidelity;
    const last = rp.samples[rp.samples.length - 1];
    const skipped = Object.entries(s.skipped);
    lines.push(
      '',
      `replay machine: ${describeReplayMachine(r.machine)}`,
      ...r.plan.notes.map((n) => `  ${n}`),
      `replayed: ${s.replayed} of ${s.events - s.iommuEvents - s.bounceEvents} DMA events${s.bounceEvents === 0 ? '' : ` (and ${s.bounceEvents} swiotlb_bounced events, compared in the fidelity line)`}${s.iommuEvents === 0 ? '' : r.machine.iommu === null ? ` (and ${s.iommuEvents} iommu events, not replayed: the replay machine has no IOMMU)` : ` (and ${s.iommuEvents} iommu events, done by the replay machine's own IOMMU)`}${skipped.length === 0 ? '' : `; not replayed: ${skipped.map(([k, v]) => `${v} ${k}`).join(', ')}`}`,
      `mappings the traced kernel made that fail here: ${s.failed}`,
      ...(s.tracedFailures > 0 ? [`mappings that failed in the traced kernel and would succeed here: ${s.wouldSucceed} of ${s.tracedFailures}`] : []),
      `pressure: peak ${fmtCount(s.peakLive)} live mappings, peak IOVA space ${fmtBytes(s.peakIovaBytes)}, swiotlb peak ${fmtCount(s.swiotlbHiwater)} of ${fmtCount(s.swiotlbSlots)} slots, ${fmtCount(last?.iotlbInvalidations ?? 0)} IOTLB invalidations`,
      `fidelity (meaningful when the replay machine is configured as the traced one): single maps at the traced DMA address ${pct(fi.sameAddress, fi.singleMaps)}; sg maps with the traced segment count ${pct(fi.sameSegmentCount, fi.sgMaps)}, lengths ${pct(fi.sameSegmentLengths, fi.sgMaps)}, addresses ${pct(fi.sameSegmentAddresses, fi.sgMaps)}${fi.sgLengthsInferred > 0 ? ` (${fi.sgLengthsInferred} with entry lengths inferred)` : ''}; swiotlb bounces traced ${fi.tracedBounces}, here ${fi.replayBounces}`,
      ...fi.examples.slice(0, 5).map((e) => `  line ${e.line} ${e.device}: traced ${e.traced}, here ${e.replay}`),
      `findings on the replay machine: ${rp.findings.length}${rp.findings.length === 0 ? '' : ` (${countKinds(rp.findings)})`}`,
      ...list.filter((f) => f.where === 'replay').map((f) => `  ${where(f.lines)}${f.kind}: ${f.message}`),
    );
  }
  if (list.length < all.length && shown > 0) lines.push(`  ... and ${all.length - list.length} more findings`);
  return `${lines.join('\n')}\n`;
}

/**
 * The HTML page of a replay: the summary, pressure over time, segment lengths, every finding.
 * @example writeFileSync('replay.html', replayHtml(result, 'trace.txt'))
 */
export function replayHtml(r: ReplayTraceResult, file: string): string {
  checkResult(r, file, 'replayHtml');
  const rp = r.replay;
  const t = (get: (s: NonNullable<typeof rp>['samples'][number]) => number): Array<[number, number]> => (rp?.samples ?? []).map((s) => [Number(s.time.toPrecision(9)), get(s)]);
  const charts = rp === null ? '<p class="cap">No replay machine was asked for (--machine, --iommu, --swiotlb or --mask): only the trace check ran.</p>' : [
    `<h2>Live mappings</h2>${pressurePicture({ title: 'live streaming mappings and allocations', unit: 'mappings', points: t((s) => s.live) })}`,
    `<h2>IOVA space</h2>${pressurePicture({ title: 'IOVA space taken by live mappings', unit: 'bytes', points: t((s) => s.iovaBytes), kind: 'bytes' })}`
      + pressurePicture({ title: 'ranges in the IOVA trees (live, cached, or waiting for a flush)', unit: 'ranges', points: t((s) => s.iovaRanges) }),
    `<h2>swiotlb</h2>${pressurePicture({ title: 'swiotlb slots in use (2 KiB each)', unit: 'slots', points: t((s) => s.swiotlbSlots) })}`,
    `<h2>IOTLB and flush queue</h2>${pressurePicture({ title: 'IOTLB invalidations so far', unit: 'invalidations', points: t((s) => s.iotlbInvalidations) })}`
      + pressurePicture({ title: 'IOVAs waiting in flush queues', unit: 'IOVAs', points: t((s) => s.flushQueued) }),
    `<h2>Segment lengths before and after merging</h2>${rp.entryLengths.length === 0 ? '<p class="cap">The trace has no dma_map_sg the replay could rebuild.</p>' : histogramPicture(rp.entryLengths, rp.segmentLengths)}`,
  ].join('\n');
  const all = allFindings(r);
  const rows = all.map((f) => `<tr><td>${f.where}</td><td>${esc(f.kind)}</td><td>${esc(f.device)}</td><td>${f.lines.join(', ')}</td><td><pre>${esc(f.message)}</pre></td></tr>`).join('');
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(`dmasim replay: ${file}`)}</title><style>
body{font:14px "DejaVu Sans",system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}h1{font-size:20px}h2{font-size:16px;margin-top:28px}
.cap{color:#555;font-size:12px;max-width:900px}pre{background:#f6f8fa;padding:8px;font-size:12px;overflow:auto;margin:0;white-space:pre-wrap}
svg{display:block;font-family:"DejaVu Sans",system-ui,sans-serif}.axis-title{font-weight:600;fill:#333}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ddd;padding:4px;vertical-align:top;text-align:left}
</style></head><body><h1>${esc(`dmasim replay: ${file}`)}</h1>
<h2>Summary</h2><pre>${esc(formatReplaySummary(r, file, 0))}</pre>
${charts}
<h2>Findings (${fmtCount(all.length)})</h2>${all.length === 0 ? '<p>None.</p>' : `<table><tr><th>where</th><th>kind</th><th>device</th><th>lines</th><th>message</th></tr>${rows}</table>`}
</body></html>`;
}
