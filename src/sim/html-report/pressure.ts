/**
 * @module sim/html-report/pressure
 * One quantity of a replay over the trace's time: a line through the samples (x the trace's seconds
 * since its first event, y the quantity from 0 to a round tick at or above its peak), the peak
 * marked and labelled. Used by the replay report for live mappings, IOVA space, swiotlb slots,
 * IOTLB invalidations and the flush queue.
 */
import { byteTicks, decimalTicks, esc, fmtBytes, fmtCount, fmtNs, spacedX, spacedY, svg, xAxis, yAxis, yGrid, type Frame } from './svg.ts';

/** One series: [time in seconds, value] points in time order. */
export interface PressureSeries {
  readonly title: string;
  /** The y axis's title (with its unit). */
  readonly unit: string;
  readonly points: ReadonlyArray<readonly [number, number]>;
  /** What y counts: things (whole-number ticks, the default) or bytes (power-of-two ticks, KiB/MiB labels). */
  readonly kind?: 'count' | 'bytes';
}

const LINE = '#00838f';

/** Seconds for a caption: '0 s', '12 µs', '3.5 ms', '1.25 s'. */
function seconds(t: number): string {
  return fmtNs(Math.round(t * 1e9));
}

/** Round ticks from 0 that reach at least `max`: 1-2-5 steps (whole ones for counts) or power-of-two byte steps. */
function ticksUpTo(max: number, kind: 'time' | 'count' | 'bytes'): number[] {
  let t = kind === 'bytes' ? byteTicks(0, max, 5) : decimalTicks(0, Math.max(max, 1e-9), 5);
  if (kind === 'count') t = t.filter((v) => Number.isInteger(v));
  if (t.length < 2) t = [0, kind === 'time' ? max : Math.max(1, Math.ceil(max))];
  const last = t[t.length - 1] as number;
  if (last < max) t.push(Number((last + (last - (t[t.length - 2] as number))).toPrecision(12)));
  return t;
}

/**
 * The chart of one series, with a caption naming its peak.
 * @example pressurePicture({ title: 'swiotlb slots in use', unit: 'slots', points: [[0, 0], [0.5, 128]] })
 */
export function pressurePicture(s: PressureSeries): string {
  if (s.points.length === 0) return '<p class="cap">No samples (the trace had no events).</p>';
  const kind = s.kind ?? 'count';
  const fmt = kind === 'bytes' ? fmtBytes : fmtCount;
  const f: Frame = { x: 82, y: 14, w: 640, h: 150 };
  const t1 = Math.max(...s.points.map((p) => p[0]));
  const peak = Math.max(...s.points.map((p) => p[1]));
  const xt = ticksUpTo(t1 > 0 ? t1 : 1, 'time');
  const xmax = xt[xt.length - 1] as number;
  const yt = ticksUpTo(peak > 0 ? peak : 1, kind);
  const ymax = yt[yt.length - 1] as number;
  const x = (t: number): number => f.x + (f.w * t) / xmax;
  const y = (v: number): number => f.y + f.h - (f.h * v) / ymax;
  const xTicks = spacedX(xt.map((v) => ({ at: v, label: `${v} s` })), x);
  const yTicks = spacedY(yt.map((v) => ({ at: v, label: fmt(v) })), y);
  const path = s.points.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join('');
  const at = s.points.find((p) => p[1] === peak) as readonly [number, number];
  const body = yGrid(f, yTicks, y)
    + `<path d="${path}" fill="none" stroke="${LINE}" stroke-width="1.5"/>`
    + `<circle cx="${x(at[0])}" cy="${y(at[1])}" r="3.5" fill="#d32f2f"><title>${esc(`peak ${fmt(peak)} at ${seconds(at[0])}`)}</title></circle>`
    + xAxis(f, xTicks, x, 'time since the trace\'s first event (s)')
    + yAxis(f, yTicks, y, s.unit);
  return `${svg(f.x + f.w + 30, f.y + f.h + 44, s.title, body)}<p class="cap">${esc(s.title)}: peak ${esc(fmt(peak))} at ${seconds(at[0])} (red dot), ${fmtCount(s.points.length)} samples.</p>`;
}
