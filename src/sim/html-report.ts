/**
 * @module sim/html-report
 * A self-contained HTML page (no script, nothing external) with SVG pictures of a machine, each
 * with labelled axes: physical memory coloured by owner, segment lengths before and after IOMMU
 * merging, each DMA domain's IOVA space on its aperture, swiotlb occupancy, and a timeline of the
 * trace. Memory, IOVA and swiotlb are drawn as of a snapshot (see html-report/snapshot.ts) taken
 * while the driver's buffers are live, else as the machine is now.
 */
import { Machine } from './machine.ts';
import { EINVAL } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import { checkObject, notInstance } from '../core/args.ts';
import { MemorySnapshot, markedSnapshot } from './html-report/snapshot.ts';
import { memoryMapPicture } from './html-report/memory-map.ts';
import { histogramPicture } from './html-report/histogram.ts';
import { iovaPicture, viewsFromRanges } from './html-report/iova.ts';
import { swiotlbPicture } from './html-report/swiotlb.ts';
import { timelinePicture } from './html-report/timeline.ts';
import { esc, fmtCount, fmtNs } from './html-report/svg.ts';

export { iovaRangesNow, type IovaDomainView } from './html-report/iova.ts';
export { memorySnapshot, markReportSnapshot, type MemorySnapshot, type MemorySnapshotOptions } from './html-report/snapshot.ts';

/** Extra data a scenario can add to the report. */
export interface HtmlReportData {
  readonly title?: string;
  /** CPU entry lengths in bytes (before merging). */
  readonly entryLengths?: readonly number[];
  /** DMA segment lengths in bytes (after merging). */
  readonly segmentLengths?: readonly number[];
  /** Free text shown under the title (the text report). */
  readonly text?: string;
  /** IOVA ranges [domain, first pfn, last pfn] captured while mappings were live (default: the snapshot's, else now). */
  readonly iovaRanges?: ReadonlyArray<readonly [number, number, number]>;
  /**
   * The moment memory, IOVA space and swiotlb are drawn at: a memorySnapshot(m) taken while the
   * buffers were live. Default: the last markReportSnapshot(m), else a snapshot taken now.
   */
  readonly memorySnapshot?: MemorySnapshot;
}

function checkData(m: Machine, data: HtmlReportData): MemorySnapshot | undefined {
  checkObject(data, 'htmlReport', 'data');
  const snap = data.memorySnapshot;
  if (snap === undefined) return undefined;
  if (!(snap instanceof MemorySnapshot)) throw new KernelError(EINVAL, 'htmlReport', 'memorySnapshot must come from memorySnapshot() or markReportSnapshot()', 'data');
  if (snap.machine !== m) throw new KernelError(EINVAL, 'htmlReport', `memorySnapshot was taken of machine ${snap.machine.name}, not ${m.name}`, 'data');
  return snap;
}

/**
 * The report page.
 * @example
 * markReportSnapshot(machine, { label: 'while the ring is mapped' }); // ... later, after teardown:
 * writeFileSync('report.html', htmlReport(machine, { entryLengths, segmentLengths }))
 */
export function htmlReport(m: Machine, data: HtmlReportData = {}): string {
  if (!(m instanceof Machine)) throw notInstance(m, Machine, 'htmlReport', 'm');
  const given = checkData(m, data);
  const chosen = given ?? markedSnapshot(m);
  const snap = chosen ?? new MemorySnapshot(m, 'at the end of the run');
  const title = data.title ?? `dmasim: machine ${m.name}`;
  // The timeline shows the DMA-level events; the IOMMU's page-table maps and unmaps (kind `iommu`,
  // one or more per DMA mapping) stay in the trace for --ftrace and --trace, not in the picture.
  const all = m.trace.events;
  const shown = all.some((e) => e.kind === 'iommu') ? all.filter((e) => e.kind !== 'iommu') : all;
  const shownBefore = (i: number): number => (shown === all ? i : all.slice(0, i).reduce((n, e) => n + (e.kind === 'iommu' ? 0 : 1), 0));
  const events = shown.length;
  const when = chosen === undefined
    ? `at the end of the run (t=${fmtNs(snap.t)}; no snapshot was taken: call markReportSnapshot(m) while the buffers are live)`
    : `at the snapshot “${snap.label}” (t=${fmtNs(snap.t)}, after ${fmtCount(shownBefore(snap.eventIndex))} of ${fmtCount(events)} trace events)`;
  const iova = data.iovaRanges === undefined ? snap.iova : viewsFromRanges(m, data.iovaRanges, snap.iova);
  const iovaWhen = data.iovaRanges === undefined ? when : 'when the scenario captured its IOVA ranges';
  const mark = chosen === undefined ? undefined : { eventIndex: shownBefore(snap.eventIndex), t: snap.t, label: snap.label };
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title><style>
body{font:14px "DejaVu Sans",system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}h1{font-size:20px}h2{font-size:16px;margin-top:28px}
.cap{color:#555;font-size:12px;max-width:900px}.when{background:#f6f8fa;border-left:3px solid #00838f;padding:6px 10px;font-size:13px}
pre{background:#f6f8fa;padding:12px;font-size:12px;overflow:auto}svg{display:block;font-family:"DejaVu Sans",system-ui,sans-serif}
.axis-title{font-weight:600;fill:#333}
</style></head><body><h1>${esc(title)}</h1>
<p class="when">Memory, IOVA space and swiotlb are shown ${esc(when)}; the timeline covers the whole run.</p>
<h2>Physical memory by owner</h2>${memoryMapPicture(snap, when)}
<h2>Segment lengths before and after IOMMU merging</h2>${histogramPicture(data.entryLengths ?? [], data.segmentLengths ?? [])}
<h2>IOVA space</h2>${iovaPicture(iova, iovaWhen)}
<h2>swiotlb occupancy</h2>${swiotlbPicture(snap.swiotlb, when)}
<h2>Timeline: maps, unmaps, flushes, faults</h2>${timelinePicture(shown, mark)}
${data.text === undefined ? '' : `<h2>Report</h2><pre>${esc(data.text)}</pre>`}
</body></html>`;
}
