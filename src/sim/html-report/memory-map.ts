/**
 * @module sim/html-report/memory-map
 * Physical memory by owner: one cell per 2^k pages, 128 cells a row, rows top to bottom from pfn 0;
 * y is the row's first physical address, x the offset inside the row, a zone bar on the right.
 * A cell's colour is its owners' colours blended by share, which is honest but hides small owners
 * spread thin (a 64 MiB buffer among 16 GiB is a few pages a cell); so a cell holding any page of
 * an owner with under 5% of memory also gets a dot in that owner's colour (the rarest owner wins).
 */
import { MAP_COLS, OWNER_KEYS, type MemorySnapshot } from './snapshot.ts';
import { byteTicks, esc, fmtBytes, fmtCount, hex, legend, spacedX, spacedY, svg, xAxis, yAxis, type Frame, type Tick } from './svg.ts';

/** Each owner's colour; the map, its legend and the tests use these. */
export const OWNER_COLORS: Readonly<Record<string, string>> = {
  free: '#e8eef3', reserved: '#9aa5b1', none: '#c0c0c0', pages: '#6c8ebf', vmalloc: '#2e7d32', kmalloc: '#8e24aa',
  fragmenter: '#f4b183', sg: '#00838f', pgtable: '#d32f2f', swiotlb: '#fbc02d', coherent: '#5d4037', 'pages-exact': '#3949ab', user: '#ef6c00',
};

/** Owners below this share of all pages get dots. */
const SPARSE_SHARE = 0.05;
const CELL = 6;
const ZONE_COLORS = ['#546e7a', '#90a4ae'];

function rgb(hexColor: string): [number, number, number] {
  const n = Number.parseInt(hexColor.slice(1), 16);
  return [Math.floor(n / 65536) % 256, Math.floor(n / 256) % 256, n % 256];
}

/** The map, its axes, zone bar and legend, and a caption. `when` says what moment it shows. */
export function memoryMapPicture(s: MemorySnapshot, when: string): string {
  const K = OWNER_KEYS.length;
  const rows = Math.ceil(s.cells / MAP_COLS);
  const f: Frame = { x: 78, y: 8, w: MAP_COLS * CELL, h: rows * CELL };
  const rowBytes = MAP_COLS * s.pagesPerCell * 4096;
  const colors = OWNER_KEYS.map((k) => rgb(OWNER_COLORS[k] ?? '#888888'));
  // Sparse owners, rarest first: the dot priority.
  const sparse = OWNER_KEYS.map((k, i) => ({ k, i, n: s.totals[i] as number }))
    .filter((o) => o.n > 0 && o.k !== 'free' && o.k !== 'reserved' && o.n < SPARSE_SHARE * s.maxPfn)
    .sort((a, b) => a.n - b.n);
  let cells = '';
  let dots = '';
  for (let c = 0; c < s.cells; c++) {
    const lo = c * s.pagesPerCell;
    const n = Math.min(s.maxPfn, lo + s.pagesPerCell) - lo;
    let r = 0;
    let g = 0;
    let b = 0;
    const parts: Array<[string, number]> = [];
    for (let k = 0; k < K; k++) {
      const m = s.counts[c * K + k] as number;
      if (m === 0) continue;
      const [cr, cg, cb] = colors[k] as [number, number, number];
      r += (cr * m) / n;
      g += (cg * m) / n;
      b += (cb * m) / n;
      parts.push([OWNER_KEYS[k] as string, m]);
    }
    parts.sort((x, y) => y[1] - x[1]);
    const x = f.x + (c % MAP_COLS) * CELL;
    const y = f.y + Math.floor(c / MAP_COLS) * CELL;
    const what = parts.map(([k, m]) => `${k} ${m}`).join(', ');
    cells += `<rect x="${x}" y="${y}" width="${CELL}" height="${CELL}" fill="rgb(${Math.round(r)},${Math.round(g)},${Math.round(b)})"><title>pfn ${hex(lo)}-${hex(lo + n - 1)} (${hex(lo * 4096)}): ${esc(what)} pages</title></rect>`;
    const dot = sparse.find((o) => (s.counts[c * K + o.i] as number) > 0);
    if (dot !== undefined) dots += `<rect class="dot" x="${x + 1.5}" y="${y + 1.5}" width="3" height="3" fill="${OWNER_COLORS[dot.k] ?? '#888'}" pointer-events="none"/>`;
  }
  // y: each row's first address; x: the offset inside a row.
  const ry = (addr: number): number => f.y + (f.h * addr) / (rows * rowBytes);
  const total = s.maxPfn * 4096;
  const yt: Tick[] = byteTicks(0, rows * rowBytes, 8).filter((a) => a <= total).map((a) => ({ at: a, label: fmtBytes(a) }));
  const xPos = (off: number): number => f.x + (f.w * off) / rowBytes;
  const xt: Tick[] = byteTicks(0, rowBytes, 4).map((a) => ({ at: a, label: fmtBytes(a) }));
  let zones = '';
  s.zones.forEach((z, i) => {
    const y0 = ry(z.startPfn * 4096);
    const y1 = ry(z.endPfn * 4096);
    zones += `<rect x="${f.x + f.w + 6}" y="${y0}" width="6" height="${Math.max(1, y1 - y0)}" fill="${ZONE_COLORS[i % 2]}"><title>ZONE_${esc(z.name)}: ${hex(z.startPfn * 4096)}-${hex(z.endPfn * 4096 - 1)}</title></rect>`;
  });
  const zoneLabels = spacedY(s.zones.map((z) => ({ at: (ry(z.startPfn * 4096) + ry(z.endPfn * 4096)) / 2, label: z.name })), (v) => v);
  for (const t of zoneLabels) zones += `<text class="zone" x="${f.x + f.w + 16}" y="${t.at + 4}">${esc(t.label)}</text>`;
  const items = OWNER_KEYS.map((k, i) => ({ k, n: s.totals[i] as number }))
    .filter((o) => o.n > 0)
    .sort((a, b) => b.n - a.n)
    .map((o) => ({ color: OWNER_COLORS[o.k] ?? '#888', text: `${o.k} ${fmtBytes(o.n * 4096)} (${((100 * o.n) / s.maxPfn).toFixed(o.n < s.maxPfn / 1000 ? 3 : 1)}%)`, marker: sparse.some((sp) => sp.k === o.k) }));
  const leg = legend(items, f.x, f.y + f.h + 46, f.w + 40);
  const body = cells + dots + zones
    + yAxis(f, spacedY(yt, ry), ry, 'physical address of row start', 12)
    + xAxis(f, spacedX(xt, xPos), xPos, `offset within the row (a row is ${fmtBytes(rowBytes)}; a cell ${fmtCount(s.pagesPerCell)} pages, ${fmtBytes(s.pagesPerCell * 4096)})`)
    + leg.svg;
  const dotted = sparse.map((o) => o.k).join(', ');
  return `${svg(f.x + f.w + 70, f.y + f.h + 50 + leg.height, 'physical memory by owner', body)}<p class="cap">Physical memory ${esc(when)}. Each cell's colour is its owners' colours blended by their share of its pages (hover a cell for the counts).${dotted === '' ? '' : ` A dot marks a cell holding any page of a small owner (${esc(dotted)}: each under ${SPARSE_SHARE * 100}% of memory), which blending would hide; a boxed swatch in the legend marks those owners.`} The bar on the right shows the zones.</p>`;
}
