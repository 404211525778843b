/**
 * @module sim/html-report/svg
 * What every picture of the HTML report shares: escaping, tick values (decimal 1-2-5 steps and
 * power-of-two byte steps), number formats, and x/y axes with tick marks, tick labels and a title.
 * Tick labels that would overlap are dropped (the ends kept), from a width estimate of the 11 px
 * sans-serif the page uses; the report's Chromium test measures the real glyphs.
 */

/** One tick: where (in data units) and what it says. */
export interface Tick {
  readonly at: number;
  readonly label: string;
}

/** A plot area in SVG pixels, and the data range each axis maps onto it. */
export interface Frame {
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
}

/** Average advance of one character of the page's 11 px sans-serif (DejaVu Sans ~0.6 em), px. */
export const CHAR_PX = 6.6;

/** Escape text for HTML and SVG content and attributes. */
export function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] as string);
}

/** A number as a C programmer writes an address: 0x-prefixed lower-case hex. */
export function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** Bytes in binary units, compact: '0', '512 B', '4 KiB', '1.5 GiB', '256 TiB'. */
export function fmtBytes(n: number): string {
  if (n === 0) return '0';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${Number.isInteger(v) ? v : Number(v.toFixed(2))} ${units[u]}`;
}

/** A count with thousands separators ('16,384'). */
export function fmtCount(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** Virtual nanoseconds for people: '0 ns', '750 ns', '12.5 µs', '10 ms', '2.25 s'. */
export function fmtNs(ns: number): string {
  if (ns === 0) return '0 ns';
  const [div, unit] = ns >= 1e9 ? [1e9, 's'] : ns >= 1e6 ? [1e6, 'ms'] : ns >= 1e3 ? [1e3, 'µs'] : [1, 'ns'];
  return `${Number((ns / div).toFixed(3))} ${unit}`;
}

/** Multiples of a 1-2-5 step covering [lo, hi], about `target` of them. */
export function decimalTicks(lo: number, hi: number, target = 6): number[] {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / Math.max(1, target);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** The power of two nearest above span / target: a byte step that makes round labels. */
export function byteStep(span: number, target = 6): number {
  return 2 ** Math.max(0, Math.ceil(Math.log2(Math.max(1, span / Math.max(1, target)))));
}

/** Multiples of a power-of-two byte step covering [lo, hi], about `target` of them. */
export function byteTicks(lo: number, hi: number, target = 6): number[] {
  if (!(hi > lo)) return [lo];
  const step = byteStep(hi - lo, target);
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi; v += step) out.push(v);
  return out;
}

/** Estimated width of a label, px. */
function labelWidth(label: string): number {
  return label.length * CHAR_PX;
}

/**
 * The ticks whose labels fit side by side along a horizontal axis: `keep` ticks (the ends) first,
 * then the others in order, each only if it overlaps nothing already placed (4 px apart).
 */
export function spacedX(ticks: readonly Tick[], pos: (v: number) => number, keep: readonly Tick[] = []): Tick[] {
  const placed: Array<{ t: Tick; a: number; b: number }> = [];
  const fits = (a: number, b: number): boolean => placed.every((p) => b + 4 <= p.a || a >= p.b + 4);
  for (const t of [...keep, ...ticks]) {
    const w = labelWidth(t.label);
    const c = pos(t.at);
    if (fits(c - w / 2, c + w / 2)) placed.push({ t, a: c - w / 2, b: c + w / 2 });
  }
  return placed.map((p) => p.t).sort((x, y) => x.at - y.at);
}

/** The ticks whose labels fit one above another along a vertical axis (13 px a line). */
export function spacedY(ticks: readonly Tick[], pos: (v: number) => number, keep: readonly Tick[] = []): Tick[] {
  const placed: Array<{ t: Tick; y: number }> = [];
  for (const t of [...keep, ...ticks]) {
    const y = pos(t.at);
    if (placed.every((p) => Math.abs(p.y - y) >= 13)) placed.push({ t, y });
  }
  return placed.map((p) => p.t).sort((x, y) => x.at - y.at);
}

/**
 * An x axis along the bottom of `f`: the line, a mark and label per tick, the title centred below.
 * Labels near the frame's ends are anchored inward so they stay inside the picture.
 */
export function xAxis(f: Frame, ticks: readonly Tick[], pos: (v: number) => number, title: string, titleDy = 34): string {
  const base = f.y + f.h;
  let out = `<line class="axis" x1="${f.x}" y1="${base}" x2="${f.x + f.w}" y2="${base}" stroke="#333"/>`;
  for (const t of ticks) {
    const x = pos(t.at);
    const w = labelWidth(t.label);
    const anchor = x - w / 2 < f.x - 30 ? 'start' : x + w / 2 > f.x + f.w + 30 ? 'end' : 'middle';
    out += `<line x1="${x}" y1="${base}" x2="${x}" y2="${base + 4}" stroke="#333"/>`;
    out += `<text class="tick x" x="${x}" y="${base + 16}" text-anchor="${anchor}">${esc(t.label)}</text>`;
  }
  return `${out}<text class="axis-title x" x="${f.x + f.w / 2}" y="${base + titleDy}" text-anchor="middle">${esc(title)}</text>`;
}

/** A y axis along the left of `f`: the line, a mark and right-aligned label per tick, the title turned 90°. */
export function yAxis(f: Frame, ticks: readonly Tick[], pos: (v: number) => number, title: string, titleX = 14): string {
  let out = `<line class="axis" x1="${f.x}" y1="${f.y}" x2="${f.x}" y2="${f.y + f.h}" stroke="#333"/>`;
  for (const t of ticks) {
    const y = pos(t.at);
    out += `<line x1="${f.x - 4}" y1="${y}" x2="${f.x}" y2="${y}" stroke="#333"/>`;
    out += `<text class="tick y" x="${f.x - 7}" y="${y + 4}" text-anchor="end">${esc(t.label)}</text>`;
  }
  const cy = f.y + f.h / 2;
  return `${out}<text class="axis-title y" x="${titleX}" y="${cy}" text-anchor="middle" transform="rotate(-90 ${titleX} ${cy})">${esc(title)}</text>`;
}

/** Horizontal grid lines at the y ticks, drawn under the data. */
export function yGrid(f: Frame, ticks: readonly Tick[], pos: (v: number) => number): string {
  return ticks.map((t) => `<line x1="${f.x}" y1="${pos(t.at)}" x2="${f.x + f.w}" y2="${pos(t.at)}" stroke="#e3e6ea"/>`).join('');
}

/** An SVG element of the given size with an accessible name; `body` is its content. */
export function svg(width: number, height: number, label: string, body: string): string {
  return `<svg class="chart" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-size="11" role="img" aria-label="${esc(label)}">${body}</svg>`;
}

/** A legend row: coloured swatches with text, wrapped to lines of `width` px starting at (x, y). */
export function legend(items: ReadonlyArray<{ readonly color: string; readonly text: string; readonly marker?: boolean }>, x: number, y: number, width: number): { svg: string; height: number } {
  let cx = x;
  let cy = y;
  let out = '';
  for (const it of items) {
    const w = 18 + labelWidth(it.text) + 16;
    if (cx + w > x + width && cx > x) {
      cx = x;
      cy += 18;
    }
    out += it.marker === true
      ? `<rect x="${cx}" y="${cy}" width="11" height="11" fill="#fff" stroke="#999"/><rect x="${cx + 3}" y="${cy + 3}" width="5" height="5" fill="${it.color}"/>`
      : `<rect x="${cx}" y="${cy}" width="11" height="11" fill="${it.color}" stroke="#999" stroke-width="0.5"/>`;
    out += `<text class="legend" x="${cx + 16}" y="${cy + 10}">${esc(it.text)}</text>`;
    cx += w;
  }
  return { svg: out, height: items.length === 0 ? 0 : cy - y + 18 };
}
