/**
 * @module sim/html-report/timeline
 * The trace on a timeline: a row per event kind, a dot per event. x is virtual time when the events
 * are spread over it; when they are not (a scenario that never advances the clock puts map, sync
 * and unmap all at t = 0), x falls back to event order, labelled 'event #', with each tick's virtual
 * time under its number, and the page says which axis it chose and why.
 */
import type { TraceEvent } from '../../core/trace.ts';
import { dmaDirectionName } from '../../dma/api/direction.ts';
import { decimalTicks, esc, fmtCount, fmtNs, hex, spacedX, svg, xAxis, yAxis, type Frame } from './svg.ts';

const KINDS = ['map', 'unmap', 'sync', 'flush', 'alloc', 'free', 'fault', 'warn', 'inject'];
const COLORS: Readonly<Record<string, string>> = {
  map: '#2e7d32', unmap: '#6c8ebf', sync: '#8e24aa', flush: '#fbc02d', alloc: '#5d4037', free: '#a1887f', fault: '#d32f2f', warn: '#f57c00', inject: '#000',
};
const ADDRESS_ARGS = new Set(['addr', 'phys', 'iova', 'handle', 'start', 'end']);
/** Most dots drawn; beyond it every n-th event is. */
const MAX_DOTS = 4000;

/** Which x axis: virtual time, unless more than a quarter of the events share one instant. */
export function timelineAxis(ev: readonly TraceEvent[]): { readonly mode: 'time' | 'order'; readonly sameInstant: number; readonly at: number } {
  let best = 0;
  let at = 0;
  for (let i = 0; i < ev.length;) {
    let j = i;
    while (j < ev.length && (ev[j] as TraceEvent).t === (ev[i] as TraceEvent).t) j++;
    if (j - i > best) {
      best = j - i;
      at = (ev[i] as TraceEvent).t;
    }
    i = j;
  }
  return { mode: ev.length > 1 && best * 4 <= ev.length ? 'time' : 'order', sameInstant: best, at };
}

function describe(e: TraceEvent, i: number): string {
  const args = Object.entries(e.args ?? {}).map(([k, v]) => `${k}=${k === 'dir' && typeof v === 'number' ? dmaDirectionName(v) : ADDRESS_ARGS.has(k) && typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? hex(v) : String(v)}`);
  return `#${i} ${e.name} (${e.actor}) at t=${fmtNs(e.t)}${args.length > 0 ? `: ${args.join(', ')}` : ''}`;
}

/**
 * The timeline and its caption. `mark`, when given, is the memory snapshot's place (events before
 * it, virtual time) and `markLabel` its label: a dashed line shows it.
 */
export function timelinePicture(ev: readonly TraceEvent[], mark?: { readonly eventIndex: number; readonly t: number; readonly label: string }): string {
  if (ev.length === 0) return '<p class="cap">No trace recorded (build the machine with <code>trace: true</code>).</p>';
  const kinds = [...KINDS.filter((k) => (k !== 'alloc' && k !== 'free') || ev.some((e) => e.kind === k)), ...new Set(ev.map((e) => e.kind).filter((k) => !KINDS.includes(k)))];
  const axis = timelineAxis(ev);
  const f: Frame = { x: 78, y: 22, w: 700, h: kinds.length * 18 };
  const t1 = Math.max(1, (ev[ev.length - 1] as TraceEvent).t);
  const n = ev.length;
  // Time mode: the axis runs from 0 to the first round tick at or past the last event.
  const unit = t1 >= 1e6 ? 1e6 : t1 >= 1e3 ? 1e3 : 1;
  const tv = decimalTicks(0, t1 / unit, 6);
  const lastTick = tv[tv.length - 1] ?? 0;
  if (lastTick * unit < t1) tv.push(Number((lastTick + (tv.length > 1 ? lastTick - (tv[tv.length - 2] as number) : t1 / unit)).toPrecision(12)));
  const tmax = (tv[tv.length - 1] as number) * unit;
  // Order mode: event i sits in the middle of slot i of n.
  const pos = axis.mode === 'time' ? (t: number): number => f.x + (f.w * t) / tmax : (i: number): number => f.x + (f.w * (i + 0.5)) / n;
  const row = (k: string): number => f.y + 9 + kinds.indexOf(k) * 18;
  const step = Math.max(1, Math.ceil(n / MAX_DOTS));
  let dots = '';
  for (let i = 0; i < n; i += step) {
    const e = ev[i] as TraceEvent;
    dots += `<circle cx="${pos(axis.mode === 'time' ? e.t : i)}" cy="${row(e.kind)}" r="3" fill="${COLORS[e.kind] ?? '#555'}"><title>${esc(describe(e, i))}</title></circle>`;
  }
  // The snapshot sits after its eventIndex-th event: between two slots in order mode.
  const markX = mark === undefined ? undefined : axis.mode === 'time' ? pos(mark.t) : f.x + (f.w * mark.eventIndex) / n;
  // With few events, each dot is named to its right, else its left, where neither another dot of
  // its row nor the snapshot line is in the way.
  let names = '';
  if (n <= 16) {
    const xOf = (i: number): number => pos(axis.mode === 'time' ? (ev[i] as TraceEvent).t : i);
    for (let i = 0; i < n; i++) {
      const e = ev[i] as TraceEvent;
      const x = xOf(i);
      const walls = [f.x, f.x + f.w, ...(markX === undefined ? [] : [markX])];
      for (let j = 0; j < n; j++) if (j !== i && (ev[j] as TraceEvent).kind === e.kind) walls.push(xOf(j));
      const right = Math.min(...walls.filter((w) => w > x));
      const left = Math.max(...walls.filter((w) => w < x));
      const width = e.name.length * 6;
      if (x + 7 + width <= right - 4) names += `<text class="name" x="${x + 7}" y="${row(e.kind) + 3.5}" font-size="10" fill="#444">${esc(e.name)}</text>`;
      else if (x - 7 - width >= left + 4) names += `<text class="name" x="${x - 7}" y="${row(e.kind) + 3.5}" font-size="10" fill="#444" text-anchor="end">${esc(e.name)}</text>`;
    }
  }
  let grid = '';
  for (const k of kinds) grid += `<line x1="${f.x}" y1="${row(k)}" x2="${f.x + f.w}" y2="${row(k)}" stroke="#eef0f2"/>`;
  let xt;
  let title;
  let sub = '';
  if (axis.mode === 'time') {
    const name = unit === 1e6 ? 'ms' : unit === 1e3 ? 'µs' : 'ns';
    xt = spacedX(tv.map((v) => ({ at: v * unit, label: String(v) })), pos);
    title = `virtual time, ${name}`;
  } else {
    const idx = decimalTicks(0, n - 1, Math.min(8, n)).filter((i) => Number.isInteger(i));
    xt = spacedX(idx.map((i) => ({ at: i, label: `#${i}` })), pos);
    // Under each event number, that event's virtual time.
    for (const t of xt) sub += `<text class="tick x2" x="${pos(t.at)}" y="${f.y + f.h + 28}" text-anchor="middle" fill="#666" font-size="10">t=${esc(fmtNs((ev[t.at] as TraceEvent).t))}</text>`;
    title = 'event # (trace order; the virtual time of each ticked event under its number)';
  }
  let markSvg = '';
  if (mark !== undefined && markX !== undefined) {
    const mx = markX;
    markSvg = `<line x1="${mx}" y1="${f.y - 8}" x2="${mx}" y2="${f.y + f.h}" stroke="#333" stroke-dasharray="4 3"><title>${esc(`memory snapshot: ${mark.label}`)}</title></line><text class="mark" x="${Math.min(mx + 4, f.x + f.w - 110)}" y="${f.y - 10}" font-size="10" fill="#333">memory snapshot</text>`;
  }
  const yt = kinds.map((k) => ({ at: row(k), label: k }));
  const xa = xAxis(f, xt, pos, title, axis.mode === 'order' ? 46 : 34);
  const body = grid + markSvg + dots + names + sub + yAxis(f, yt, (v) => v, 'event kind', 12) + xa;
  const why = axis.mode === 'time'
    ? `x is virtual time (${fmtNs(0)} to ${fmtNs(t1)}).`
    : `x is event order, not time: ${fmtCount(axis.sameInstant)} of the ${fmtCount(n)} events happen at the same virtual time (t=${fmtNs(axis.at)}), because the scenario does not advance the machine's clock between them, so a time axis would stack them on one point. The run spans ${fmtNs(t1)} of virtual time.`;
  const sampled = step > 1 ? ` Every ${step}th event is drawn.` : '';
  return `${svg(f.x + f.w + 30, f.y + f.h + 58, 'timeline of trace events', body)}<p class="cap">${fmtCount(n)} events. ${why}${sampled}${mark === undefined ? '' : ' The dashed line is the memory snapshot the pictures above show.'} Hover a dot for the event and its arguments.</p>`;
}
