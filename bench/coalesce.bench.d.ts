import { type NativeRow } from './native/native.ts';
export type Layout = 'contiguous' | 'scattered' | 'runs';
export type Mode = 'oneshot' | 'append512';
export declare const LAYOUTS: readonly Layout[];
export declare const MODES: readonly Mode[];
export declare const UINT_MAX = 4294967295;
/** The anchor's page layouts, base pfn 0x100000; `runs` uses splitmix64 seeded 0x2545F4914F6CDD1D. */
export declare function makePages(layout: Layout, n: number): Uint32Array;
export interface CoalesceRow {
    readonly n: number;
    readonly layout: Layout;
    readonly maxSegment: number;
    readonly mode: Mode;
    readonly nsPerPage: number;
    readonly nents: number;
    /** Bytes of slots the live table holds per entry (28-byte slots; chain links and unused pre-allocated slots included). */
    readonly bytesPerEntry: number;
    readonly native?: NativeRow;
}
/**
 * Run one case: warm up, then time build + free runs and take the median ns/page.
 * Warm-up lasts until at least 2^24 pages have been built and 150 ms have passed: V8 compiles the
 * hot functions on a background thread while the first builds run, and the last tier arrives after
 * a few thousand calls (contiguous append512 at 1M pages measured 1.05-1.42 ns/page after 4 warm-up
 * builds, 0.71-0.90 after 30). Timed runs: at least `minRuns`, and until 200 ms have been timed, as
 * the native yardstick does. Each mode's build is a function of its own, as benchmark libraries
 * do: V8 would otherwise compile both modes' loops as one unit.
 */
export declare function runCase(n: number, layout: Layout, maxSegment: number, mode: Mode, minRuns?: number): CoalesceRow;
export interface CoalesceOptions {
    readonly sizes?: readonly number[];
    readonly layouts?: readonly Layout[];
    readonly maxSegments?: readonly number[];
    readonly modes?: readonly Mode[];
    readonly native?: boolean;
}
/**
 * runCase in a fresh process (bench/coalesce-case), started as this one was (same node flags and
 * loader, so it runs compiled code under node or sources under tsx alike).
 */
export declare function runCaseAlone(n: number, layout: Layout, maxSegment: number, mode: Mode): CoalesceRow;
/**
 * The whole matrix (or the part asked for), each case in a process of its own, with native figures
 * beside it when a C compiler exists.
 */
export declare function benchCoalesce(opts?: CoalesceOptions): Promise<CoalesceRow[]>;
/** Markdown table of coalescing rows. */
export declare function coalesceTable(rows: readonly CoalesceRow[]): string;
//# sourceMappingURL=coalesce.bench.d.ts.map