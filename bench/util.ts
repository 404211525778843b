/** Shared helpers for the benchmarks. */

/** One measured figure. `target` is the bound when there is one: an upper bound, or a lower one with `higherIsBetter`. */
export interface BenchResult {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly target?: number;
  readonly higherIsBetter?: boolean;
  readonly note?: string;
}

/** Median of a non-empty list. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Render results as a Markdown table. */
export function table(results: readonly BenchResult[]): string {
  const rows = results.map((r) => {
    const v = r.value >= 100 ? r.value.toFixed(0) : r.value >= 10 ? r.value.toFixed(1) : r.value.toFixed(2);
    const t = r.target === undefined ? '' : r.higherIsBetter === true ? `≥ ${r.target}${r.value >= r.target ? ' ✓' : ' ✗'}` : `≤ ${r.target}${r.value <= r.target ? ' ✓' : ' ✗'}`;
    return `| ${r.name} | ${v} | ${r.unit} | ${t} | ${r.note ?? ''} |`;
  });
  return ['| benchmark | value | unit | target | note |', '|---|---|---|---|---|', ...rows].join('\n');
}
