/**
 * @module cli/sweep-summary
 * What a sweep measured, readable: rows grouped by the swept parameters (every one but the seed),
 * and for each numeric result field its median and spread (min, quartiles, max) per group, as a
 * text table (`--summary`) or an HTML page with one chart per field against the swept parameter
 * (`--html`).
 */
import { decimalTicks, esc, spacedX, spacedY, svg, xAxis, yAxis, yGrid, type Frame } from '../sim/html-report/svg.ts';
import type { SweepRow } from './sweep.ts';

/** One group of rows (one combination of the swept parameters) and each numeric field's spread. */
export interface SummaryGroup {
  /** The swept parameters' values (the seed left out). */
  readonly params: Readonly<Record<string, unknown>>;
  /** Successful rows in the group. */
  readonly jobs: number;
  /** Rows that failed. */
  readonly failed: number;
  readonly fields: Readonly<Record<string, { readonly min: number; readonly q1: number; readonly median: number; readonly q3: number; readonly max: number }>>;
}

function quantile(sorted: readonly number[], q: number): number {
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return (sorted[lo] as number) + ((sorted[hi] as number) - (sorted[lo] as number)) * (at - lo);
}

/**
 * Group rows by every parameter but `seed` and summarise each numeric result field.
 * @example summarizeSweep(rows).map((g) => g.fields['pages']?.median)
 */
export function summarizeSweep(rows: readonly SweepRow[]): SummaryGroup[] {
  const groups = new Map<string, { params: Record<string, unknown>; rows: SweepRow[] }>();
  for (const r of rows) {
    const params = Object.fromEntries(Object.entries(r.params).filter(([k]) => k !== 'seed'));
    const key = JSON.stringify(params);
    let g = groups.get(key);
    if (g === undefined) groups.set(key, (g = { params, rows: [] }));
    g.rows.push(r);
  }
  return [...groups.values()].map((g) => {
    const ok = g.rows.filter((r) => r.error === undefined && r.result !== undefined);
    const names = [...new Set(ok.flatMap((r) => Object.keys(r.result ?? {}).filter((k) => typeof r.result?.[k] === 'number')))];
    const fields: Record<string, SummaryGroup['fields'][string]> = {};
    for (const n of names) {
      const v = ok.map((r) => r.result?.[n]).filter((x): x is number => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
      if (v.length === 0) continue;
      fields[n] = { min: v[0] as number, q1: quantile(v, 0.25), median: quantile(v, 0.5), q3: quantile(v, 0.75), max: v[v.length - 1] as number };
    }
    return { params: g.params, jobs: ok.length, failed: g.rows.length - ok.length, fields };
  });
}

const num = (v: number): string => (Number.isInteger(v) ? String(v) : Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));

/**
 * The summary as a text table: one line per group, `median [min..max]` per field.
 * @example process.stdout.write(formatSweepSummary(summarizeSweep(rows)))
 */
export function formatSweepSummary(groups: readonly SummaryGroup[]): string {
  const pnames = [...new Set(groups.flatMap((g) => Object.keys(g.params)))];
  const fnames = [...new Set(groups.flatMap((g) => Object.keys(g.fields)))];
  const head = [...pnames, 'jobs', 'failed', ...fnames.map((f) => `${f} median [min..max]`)];
  const body = groups.map((g) => [
    ...pnames.map((p) => String(g.params[p] ?? '')), String(g.jobs), String(g.failed),
    ...fnames.map((f) => { const s = g.fields[f]; return s === undefined ? '-' : `${num(s.median)} [${num(s.min)}..${num(s.max)}]`; }),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] as string).length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i] as number)).join('  ').trimEnd();
  return `${[line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n')}\n`;
}

/**
 * An HTML page with one chart per numeric field: the median (a dot) with its quartiles (a bar)
 * and min..max (a whisker) for each value of the swept parameter (each combination, when several).
 * @example writeFileSync('summary.html', sweepSummaryHtml(summarizeSweep(rows), 'fragmentation sweep'))
 */
export function sweepSummaryHtml(groups: readonly SummaryGroup[], title: string): string {
  const fnames = [...new Set(groups.flatMap((g) => Object.keys(g.fields)))];
  const label = (g: SummaryGroup): string => Object.entries(g.params).map(([k, v]) => `${k}=${String(v)}`).join(' ') || 'all';
  const xName = [...new Set(groups.flatMap((g) => Object.keys(g.params)))].join(', ') || 'sweep';
  const charts = fnames.map((f) => {
    const f0: Frame = { x: 70, y: 20, w: 520, h: 220 };
    const pts = groups.map((g, i) => ({ i, g, s: g.fields[f] })).filter((p) => p.s !== undefined);
    const lo = Math.min(...pts.map((p) => p.s!.min));
    const hi = Math.max(...pts.map((p) => p.s!.max));
    const yt = decimalTicks(Math.min(0, lo), hi === lo ? hi + 1 : hi);
    // The ticks must reach the largest value: the axis ends at the last tick.
    const step = yt.length > 1 ? (yt[1] as number) - (yt[0] as number) : 1;
    while ((yt[yt.length - 1] as number) < hi) yt.push((yt[yt.length - 1] as number) + step);
    const y0 = yt[0] as number;
    const y1 = yt[yt.length - 1] as number;
    const py = (v: number): number => f0.y + f0.h - ((v - y0) / (y1 - y0 || 1)) * f0.h;
    const px = (i: number): number => f0.x + ((i + 0.5) / Math.max(1, groups.length)) * f0.w;
    const yTicks = spacedY(yt.map((v) => ({ at: v, label: num(v) })), py);
    // One swept parameter: its values label the axis; several: each combination.
    const single = new Set(groups.flatMap((g) => Object.keys(g.params))).size === 1;
    const xTicks = spacedX(groups.map((g, i) => ({ at: i, label: single ? String(Object.values(g.params)[0]) : label(g) })), px);
    const marks = pts.map(({ i, s }) => {
      const x = px(i);
      return `<line x1="${x}" x2="${x}" y1="${py(s!.min)}" y2="${py(s!.max)}" stroke="#555"/>`
        + `<rect x="${x - 6}" y="${py(s!.q3)}" width="12" height="${Math.max(1, py(s!.q1) - py(s!.q3))}" fill="#90caf9" stroke="#1565c0"/>`
        + `<circle cx="${x}" cy="${py(s!.median)}" r="3.5" fill="#0d47a1"><title>${esc(`${label(groups[i] as SummaryGroup)}: median ${num(s!.median)}, quartiles ${num(s!.q1)}..${num(s!.q3)}, min ${num(s!.min)}, max ${num(s!.max)}`)}</title></circle>`;
    }).join('');
    const body = yGrid(f0, yTicks, py) + yAxis(f0, yTicks, py, f) + xAxis(f0, xTicks, px, xName) + marks;
    return `<figure><figcaption>${esc(f)} by ${esc(xName)}: median (dot), quartiles (box), min..max (whisker)</figcaption>${svg(620, 290, `${f} by ${xName}`, body)}</figure>`;
  }).join('\n');
  const oneParam = new Set(groups.flatMap((g) => Object.keys(g.params))).size === 1;
  const rows = groups.map((g) => `<tr><td>${esc(oneParam ? String(Object.values(g.params)[0]) : label(g))}</td><td>${g.jobs}</td><td>${g.failed}</td></tr>`).join('');
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title><style>
body{font:13px sans-serif;margin:24px;color:#222} figure{margin:16px 0} figcaption{font-weight:600;margin-bottom:4px}
table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:2px 8px;text-align:left} svg text{font:11px sans-serif}
</style></head><body><h1>${esc(title)}</h1><table><tr><th>${esc(xName)}</th><th>jobs</th><th>failed</th></tr>${rows}</table>
${charts || '<p>No numeric result fields.</p>'}
</body></html>
`;
}
