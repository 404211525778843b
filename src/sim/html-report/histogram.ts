/**
 * @module sim/html-report/histogram
 * Segment lengths before (CPU scatterlist entries) and after (DMA segments) IOMMU merging, side by
 * side in power-of-two buckets: x is the length, bucket b holding (4 KiB·2^(b-1), 4 KiB·2^b] and
 * labelled with its upper end, so lengths that are powers of two (a page, a 64 KiB max segment)
 * stand over their own label; the first bucket also holds anything shorter. y is how many entries
 * or segments fell in each.
 */
import { decimalTicks, fmtBytes, fmtCount, legend, svg, xAxis, yAxis, yGrid, type Frame } from './svg.ts';

const BLUE = '#6c8ebf';
const RED = '#d32f2f';

function bucket(n: number): number {
  return Math.max(0, Math.ceil(Math.log2(Math.max(1, n / 4096))));
}

/** The chart and its caption. */
export function histogramPicture(before: readonly number[], after: readonly number[]): string {
  const nb = Math.max(1, ...[...before, ...after].map(bucket)) + 1;
  const cb = new Array<number>(nb).fill(0);
  const ca = new Array<number>(nb).fill(0);
  for (const n of before) cb[bucket(n)] = (cb[bucket(n)] ?? 0) + 1;
  for (const n of after) ca[bucket(n)] = (ca[bucket(n)] ?? 0) + 1;
  const max = Math.max(1, ...cb, ...ca);
  const w = Math.max(56, Math.min(110, Math.floor(640 / nb)));
  const f: Frame = { x: 70, y: 16, w: nb * w, h: 180 };
  // Ticks from 0 to the first one at or above the tallest bar, which is the axis's top.
  const yt = decimalTicks(0, max, Math.min(5, max)); // counts: whole-number steps
  const last = yt[yt.length - 1] ?? max;
  if (last < max) yt.push(last + (yt.length > 1 ? last - (yt[yt.length - 2] as number) : max));
  const top = yt[yt.length - 1] ?? max;
  const y = (v: number): number => f.y + f.h - (f.h * v) / top;
  const ticks = yt.map((v) => ({ at: v, label: fmtCount(v) }));
  let bars = '';
  const bar = (x: number, count: number, color: string, what: string): string => {
    if (count === 0) return '';
    // A non-zero bucket is at least 2 px tall, so a count of 1 beside 2,048 still shows (in its
    // series' colour, its value above it).
    const top = Math.min(y(count), f.y + f.h - 2);
    const label = `<text class="value" x="${x + (w / 2 - 4) / 2}" y="${top - 3}" text-anchor="middle" font-size="10" fill="${color}">${fmtCount(count)}</text>`;
    return `<rect x="${x}" y="${top}" width="${w / 2 - 4}" height="${f.y + f.h - top}" fill="${color}"><title>${fmtCount(count)} ${what}</title></rect>${label}`;
  };
  for (let b = 0; b < nb; b++) {
    const x0 = f.x + b * w + 2;
    const range = b === 0 ? 'up to 4 KiB' : `over ${fmtBytes(4096 * 2 ** (b - 1))}, up to ${fmtBytes(4096 * 2 ** b)}`;
    bars += bar(x0, cb[b] ?? 0, BLUE, `CPU entries of ${range}`) + bar(x0 + w / 2 - 2, ca[b] ?? 0, RED, `DMA segments of ${range}`);
  }
  const xs = (b: number): number => f.x + (b + 0.5) * w;
  const xt = Array.from({ length: nb }, (_, b) => ({ at: b, label: fmtBytes(4096 * 2 ** b) }));
  const empty = before.length + after.length === 0 ? `<text x="${f.x + f.w / 2}" y="${f.y + f.h / 2}" text-anchor="middle" fill="#777">no lengths given</text>` : '';
  const leg = legend([
    { color: BLUE, text: `CPU entries before merging (${fmtCount(before.length)})` },
    { color: RED, text: `DMA segments after IOMMU merging (${fmtCount(after.length)})` },
  ], f.x, f.y + f.h + 46, Math.max(f.w, 560));
  const body = yGrid(f, ticks, y) + bars + empty + yAxis(f, ticks, y, 'count') + xAxis(f, xt, xs, 'length, bytes (a bucket: above the label to its left, up to its own)') + leg.svg;
  return `${svg(Math.max(f.x + f.w + 30, f.x + 580), f.y + f.h + 50 + leg.height, 'segment lengths before and after IOMMU merging', body)}<p class="cap">How many scatterlist entries (CPU side) and DMA segments (device side) have each length; merging joins IOVA-contiguous entries up to the device's max segment size.</p>`;
}
