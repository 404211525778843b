/** Shared helpers for the benchmarks. */
/** One measured figure. `target` is the bound (lower is better) when there is one. */
export interface BenchResult {
    readonly name: string;
    readonly value: number;
    readonly unit: string;
    readonly target?: number;
    readonly note?: string;
}
/** Median of a non-empty list. */
export declare function median(xs: readonly number[]): number;
/** Render results as a Markdown table. */
export declare function table(results: readonly BenchResult[]): string;
//# sourceMappingURL=util.d.ts.map