/**
 * @module sim/html-report/swiotlb
 * The swiotlb picture: the pool's slots in equal bins along x (slot index, with the pool's physical
 * range in the title), the share of each bin's slots in use on y (0-100 %).
 */
import { Machine } from '../machine.ts';
import { decimalTicks, esc, fmtBytes, fmtCount, hex, spacedX, svg, xAxis, yAxis, yGrid, type Frame } from './svg.ts';

/** The pool's occupancy at one moment. */
export interface SwiotlbView {
  /** Physical address of slot 0. */
  readonly start: number;
  /** One past the pool's last byte. */
  readonly end: number;
  readonly nslabs: number;
  /** Slots per bin (the last bin may hold fewer). */
  readonly perBin: number;
  // INVARIANT: used[b] counts the allocated slots (list === 0) among slots [b*perBin, min(nslabs, (b+1)*perBin)).
  readonly used: Uint32Array;
  readonly inUse: number;
  readonly hiwater: number;
}

/** The machine's swiotlb pool now, in at most `bins` bins; null without a pool. */
export function swiotlbNow(m: Machine, bins = 256): SwiotlbView | null {
  const pool = m.swiotlb;
  if (pool === null || pool.nslabs === 0) return null;
  const perBin = Math.max(1, Math.ceil(pool.nslabs / bins));
  const used = new Uint32Array(Math.ceil(pool.nslabs / perBin));
  const list = pool.slots.list;
  for (let s = 0; s < pool.nslabs; s++) {
    if (list[s] !== 0) continue;
    const b = Math.floor(s / perBin);
    used[b] = (used[b] ?? 0) + 1;
  }
  return { start: pool.start, end: pool.end, nslabs: pool.nslabs, perBin, used, inUse: pool.io_tlb_used, hiwater: pool.io_tlb_used_hiwater };
}

/** The occupancy chart and its caption. */
export function swiotlbPicture(v: SwiotlbView | null, when: string): string {
  if (v === null) return '<p class="cap">No swiotlb pool.</p>';
  const f: Frame = { x: 70, y: 12, w: 700, h: 120 };
  const bins = v.used.length;
  const bx = (slot: number): number => f.x + (f.w * slot) / v.nslabs;
  const by = (pct: number): number => f.y + f.h - (f.h * pct) / 100;
  const yt = decimalTicks(0, 100, 4).map((p) => ({ at: p, label: `${p}%` }));
  const slotBytes = (v.end - v.start) / v.nslabs;
  let bars = '';
  for (let b = 0; b < bins; b++) {
    const n = Math.min(v.perBin, v.nslabs - b * v.perBin);
    const u = v.used[b] as number;
    if (u === 0) continue;
    const pct = (100 * u) / n;
    bars += `<rect x="${bx(b * v.perBin)}" y="${by(pct)}" width="${Math.max(1, bx(b * v.perBin + n) - bx(b * v.perBin) - 0.5)}" height="${f.y + f.h - by(pct)}" fill="#fbc02d"><title>slots ${b * v.perBin}-${b * v.perBin + n - 1} (${hex(v.start + b * v.perBin * slotBytes)}): ${u} of ${n} in use</title></rect>`;
  }
  const xt = decimalTicks(0, v.nslabs, 6).map((s) => ({ at: s, label: fmtCount(s) }));
  const body = yGrid(f, yt, by) + bars + (v.inUse === 0 ? `<text x="${f.x + f.w / 2}" y="${f.y + f.h / 2}" text-anchor="middle" fill="#777">no slot in use</text>` : '')
    + yAxis(f, yt, by, 'slots in use, %') + xAxis(f, spacedX(xt, bx, [{ at: 0, label: '0' }, { at: v.nslabs, label: fmtCount(v.nslabs) }]), bx, `slot index (${fmtBytes(slotBytes)} slots, ${fmtCount(v.perBin)} per bar; physical ${hex(v.start)}–${hex(v.end - 1)})`);
  return `${svg(f.x + f.w + 30, f.y + f.h + 44, 'swiotlb occupancy', body)}<p class="cap">${fmtCount(v.inUse)} of ${fmtCount(v.nslabs)} slots in use ${esc(when)} (high water ${fmtCount(v.hiwater)}); each bar is the share of its ${fmtCount(v.perBin)} slots allocated.</p>`;
}
