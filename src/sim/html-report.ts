/**
 * @module sim/html-report
 * A self-contained HTML page with SVG pictures of a machine: physical memory coloured by owner,
 * segment lengths before and after IOMMU merging, the IOVA space in use, swiotlb occupancy, and a
 * timeline of maps, unmaps, flushes and faults from the trace.
 */
import { OWNERS, PG_ALLOCATED, PG_RESERVED } from '../mm/page-meta.ts';
import { Machine } from './machine.ts';
import { checkObject, notInstance } from '../core/args.ts';

/** Extra data a scenario can add to the report. */
export interface HtmlReportData {
  readonly title?: string;
  /** CPU entry lengths in bytes (before merging). */
  readonly entryLengths?: readonly number[];
  /** DMA segment lengths in bytes (after merging). */
  readonly segmentLengths?: readonly number[];
  /** Free text shown under the title (the text report). */
  readonly text?: string;
  /** IOVA ranges [domain, first pfn, last pfn] captured while mappings were live (default: now). */
  readonly iovaRanges?: ReadonlyArray<readonly [number, number, number]>;
}

/** The IOVA ranges allocated now, as [domain, first pfn, last pfn] (below 2^40). */
export function iovaRangesNow(m: Machine): Array<[number, number, number]> {
  if (!(m instanceof Machine)) throw notInstance(m, Machine, 'iovaRangesNow', 'm');
  const out: Array<[number, number, number]> = [];
  for (const d of m.iommu?.domains ?? []) for (const [lo, hi] of d.iovad?.ranges() ?? []) if (hi < 2 ** 40) out.push([d.id, lo, hi]);
  return out;
}

function rgb(hex: string): [number, number, number] {
  const n = Number.parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

const COLORS: Readonly<Record<string, string>> = {
  free: '#e8eef3', reserved: '#9aa5b1', none: '#c0c0c0', pages: '#6c8ebf', vmalloc: '#2e7d32', kmalloc: '#8e24aa',
  fragmenter: '#f4b183', sg: '#00838f', pgtable: '#d32f2f', swiotlb: '#fbc02d', coherent: '#5d4037', 'pages-exact': '#3949ab',
};

const esc = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] as string);

function memoryMap(m: Machine): string {
  const cols = 128;
  const rows = 48;
  const cells = cols * rows;
  const per = Math.ceil(m.mm.maxPfn / cells);
  const { state, owner } = m.mm.meta;
  const counts = new Map<string, number>();
  let rects = '';
  for (let c = 0; c < cells; c++) {
    const lo = c * per;
    if (lo >= m.mm.maxPfn) break;
    const hi = Math.min(m.mm.maxPfn, lo + per);
    // Every page counts (sampling aliased with the fragmenter's period); the cell's colour is the
    // owners' colours blended by share, so a fragmented region shows as a tint.
    const tally = new Map<string, number>();
    for (let p = lo; p < hi; p++) {
      const s = state[p] as number;
      const k = (s & PG_RESERVED) !== 0 ? 'reserved' : (s & PG_ALLOCATED) !== 0 ? (OWNERS[owner[p] as number] ?? 'none') : 'free';
      tally.set(k, (tally.get(k) ?? 0) + 1);
    }
    let r = 0;
    let g = 0;
    let b = 0;
    for (const [k, n] of tally) {
      const [cr, cg, cb] = rgb(COLORS[k] ?? '#888888');
      r += (cr * n) / (hi - lo);
      g += (cg * n) / (hi - lo);
      b += (cb * n) / (hi - lo);
      counts.set(k, (counts.get(k) ?? 0) + n);
    }
    const what = [...tally].sort((x, y) => y[1] - x[1]).map(([k, n]) => `${k} ${Math.round((100 * n) / (hi - lo))}%`).join(', ');
    rects += `<rect x="${(c % cols) * 6}" y="${Math.floor(c / cols) * 6}" width="6" height="6" fill="rgb(${Math.round(r)},${Math.round(g)},${Math.round(b)})"><title>pfn 0x${lo.toString(16)}-0x${hi.toString(16)}: ${what}</title></rect>`;
  }
  const legend = [...counts.keys()].map((k, i) => `<rect x="${i * 110}" y="${rows * 6 + 8}" width="10" height="10" fill="${COLORS[k] ?? '#888'}"/><text x="${i * 110 + 14}" y="${rows * 6 + 17}">${esc(k)}</text>`).join('');
  return `<svg width="${cols * 6}" height="${rows * 6 + 24}" font-size="11">${rects}${legend}</svg><p class="cap">Each cell is ${per} pages (${((per * 4096) / 2 ** 20).toFixed(1)} MiB), its colour the owners' colours blended by their share of it (hover a cell for the numbers).</p>`;
}

function histogram(before: readonly number[], after: readonly number[]): string {
  const bucket = (n: number): number => Math.max(0, Math.floor(Math.log2(Math.max(1, n / 4096))));
  const nb = Math.max(1, ...[...before, ...after].map(bucket)) + 1;
  const cb = new Array<number>(nb).fill(0);
  const ca = new Array<number>(nb).fill(0);
  for (const n of before) cb[bucket(n)]!++;
  for (const n of after) ca[bucket(n)]!++;
  const max = Math.max(1, ...cb, ...ca);
  const w = 44;
  let bars = '';
  for (let b = 0; b < nb; b++) {
    const hb = (160 * cb[b]!) / max;
    const ha = (160 * ca[b]!) / max;
    bars += `<rect x="${40 + b * w}" y="${180 - hb}" width="${w / 2 - 2}" height="${hb}" fill="#6c8ebf"><title>${cb[b]} CPU entries</title></rect>`;
    bars += `<rect x="${40 + b * w + w / 2}" y="${180 - ha}" width="${w / 2 - 2}" height="${ha}" fill="#d32f2f"><title>${ca[b]} DMA segments</title></rect>`;
    bars += `<text x="${40 + b * w}" y="196">${(4 << b) >= 1024 ? `${(4 << b) / 1024}M` : `${4 << b}K`}</text>`;
  }
  return `<svg width="${Math.max(520, 60 + nb * w)}" height="230" font-size="11">${bars}<line x1="38" y1="180" x2="${40 + nb * w}" y2="180" stroke="#333"/><rect x="40" y="208" width="10" height="10" fill="#6c8ebf"/><text x="54" y="217">CPU entries (${before.length})</text><rect x="190" y="208" width="10" height="10" fill="#d32f2f"/><text x="204" y="217">DMA segments after IOMMU merging (${after.length})</text></svg>`;
}

function iovaSpace(m: Machine, captured?: ReadonlyArray<readonly [number, number, number]>): string {
  const ranges = captured ?? iovaRangesNow(m);
  if (ranges.length === 0) return '<p class="cap">No IOVA in use.</p>';
  const lo = Math.min(...ranges.map((r) => r[1]));
  const hi = Math.max(...ranges.map((r) => r[2])) + 1;
  const span = Math.max(1, hi - lo);
  const rects = ranges.map(([d, a, b]) => `<rect x="${(800 * (a - lo)) / span}" y="${10 + (d % 4) * 14}" width="${Math.max(1, (800 * (b - a + 1)) / span)}" height="12" fill="#00838f"><title>domain ${d}: 0x${(a * 4096).toString(16)}-0x${((b + 1) * 4096).toString(16)}</title></rect>`).join('');
  return `<svg width="820" height="80" font-size="11">${rects}<text x="0" y="78">0x${(lo * 4096).toString(16)}</text><text x="700" y="78">0x${(hi * 4096).toString(16)}</text></svg><p class="cap">${ranges.length} IOVA ranges allocated (rows by domain).</p>`;
}

function swiotlbOccupancy(m: Machine): string {
  const pool = m.swiotlb;
  if (pool === null) return '<p class="cap">No swiotlb pool.</p>';
  const cells = 256;
  const per = pool.nslabs / cells;
  let rects = '';
  for (let c = 0; c < cells; c++) {
    let used = 0;
    for (let s = Math.floor(c * per); s < Math.floor((c + 1) * per); s++) if (pool.slots.list[s] === 0) used++;
    const f = used / per;
    rects += `<rect x="${(c % 64) * 12}" y="${Math.floor(c / 64) * 12}" width="11" height="11" fill="rgba(251,192,45,${0.1 + 0.9 * f})"/>`;
  }
  return `<svg width="770" height="50">${rects}</svg><p class="cap">${pool.io_tlb_used} of ${pool.nslabs} slots in use (high water ${pool.io_tlb_used_hiwater}).</p>`;
}

function timeline(m: Machine): string {
  const ev = m.trace.events;
  if (ev.length === 0) return '<p class="cap">No trace recorded (build the machine with <code>trace: true</code>).</p>';
  const kinds = ['map', 'unmap', 'sync', 'flush', 'fault', 'warn', 'inject'];
  const t0 = ev[0]!.t;
  const t1 = Math.max(t0 + 1, ev[ev.length - 1]!.t);
  const col: Record<string, string> = { map: '#2e7d32', unmap: '#6c8ebf', sync: '#8e24aa', flush: '#fbc02d', fault: '#d32f2f', warn: '#f57c00', inject: '#000' };
  const step = Math.max(1, Math.floor(ev.length / 4000));
  let dots = '';
  for (let i = 0; i < ev.length; i += step) {
    const e = ev[i]!;
    const row = kinds.indexOf(e.kind);
    if (row < 0) continue;
    dots += `<circle cx="${80 + (720 * (e.t - t0)) / (t1 - t0)}" cy="${12 + row * 18}" r="2.5" fill="${col[e.kind]}"><title>${esc(`${e.name} (${e.actor}) t=${e.t} ns`)}</title></circle>`;
  }
  const labels = kinds.map((k, i) => `<text x="0" y="${16 + i * 18}">${k}</text>`).join('');
  return `<svg width="820" height="${kinds.length * 18 + 20}" font-size="11">${labels}${dots}</svg><p class="cap">${ev.length} events over ${((t1 - t0) / 1e6).toFixed(3)} ms of virtual time.</p>`;
}

/**
 * The report page.
 * @example writeFileSync('report.html', htmlReport(machine, { entryLengths, segmentLengths }))
 */
export function htmlReport(m: Machine, data: HtmlReportData = {}): string {
  checkObject(data, 'htmlReport', 'data');
  if (!(m instanceof Machine)) throw notInstance(m, Machine, 'htmlReport', 'm');
  const title = data.title ?? `dmasim: machine ${m.name}`;
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title><style>
body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}h1{font-size:20px}h2{font-size:16px;margin-top:28px}
.cap{color:#555;font-size:12px}pre{background:#f6f8fa;padding:12px;font-size:12px;overflow:auto}svg{display:block}
</style></head><body><h1>${esc(title)}</h1>
<h2>Physical memory by owner</h2>${memoryMap(m)}
<h2>Segment lengths before and after IOMMU merging</h2>${histogram(data.entryLengths ?? [], data.segmentLengths ?? [])}
<h2>IOVA space</h2>${iovaSpace(m, data.iovaRanges)}
<h2>swiotlb occupancy</h2>${swiotlbOccupancy(m)}
<h2>Timeline: maps, unmaps, flushes, faults</h2>${timeline(m)}
${data.text === undefined ? '' : `<h2>Report</h2><pre>${esc(data.text)}</pre>`}
</body></html>`;
}
