/** Shared helpers for the benchmarks. */
/** Median of a non-empty list. */
export function median(xs) {
    const s = [...xs].sort((a, b) => a - b);
    const mid = s.length >> 1;
    return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}
/** Render results as a Markdown table. */
export function table(results) {
    const rows = results.map((r) => {
        const v = r.value >= 100 ? r.value.toFixed(0) : r.value >= 10 ? r.value.toFixed(1) : r.value.toFixed(2);
        const t = r.target === undefined ? '' : `≤ ${r.target}${r.value <= r.target ? ' ✓' : ' ✗'}`;
        return `| ${r.name} | ${v} | ${r.unit} | ${t} | ${r.note ?? ''} |`;
    });
    return ['| benchmark | value | unit | target | note |', '|---|---|---|---|---|', ...rows].join('\n');
}
//# sourceMappingURL=util.js.map