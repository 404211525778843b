/** Page layouts the yardstick generates (base pfn 0x100000). */
export type NativeLayout = 'contiguous' | 'scattered' | 'runs';
/** `oneshot`: sg_alloc_table_from_pages_segment + sg_free_table; `append512`: 512-page appends + sg_free_append_table. */
export type NativeMode = 'oneshot' | 'append512';
/** One case to run instead of the full matrix. */
export interface NativeArgs {
    readonly n: number;
    readonly layout: string;
    readonly maxSegment: number;
    readonly mode: string;
}
/** One measured case: median ns per input page over ≥ 11 timed build+free runs, and the entries produced. */
export interface NativeRow {
    readonly n: number;
    readonly layout: NativeLayout;
    readonly maxSegment: number;
    readonly mode: NativeMode;
    readonly nsPerPage: number;
    readonly nents: number;
}
/** The C source of the yardstick. */
export declare const NATIVE_SOURCE: string;
/** Where the compiled yardstick is cached (gitignored). */
export declare const NATIVE_BINARY: string;
/**
 * Path of an up-to-date yardstick binary, building it if needed; null when there is no working C compiler.
 * The compiler is `$CC` or `cc`. Falls back to a temporary directory when `bench/native/` is not writable.
 */
export declare function nativeBinary(): Promise<string | null>;
/**
 * Run the native yardstick: one case when `args` is given, otherwise the full matrix (N ∈ {4096, 262144, 1048576} ×
 * 3 layouts × max_segment ∈ {UINT_MAX, 65536} × 2 modes, about 10 s).
 * @returns the rows, or null when no C compiler is available (never throws for that).
 * @throws RangeError on invalid args; Error when the binary fails (its self-test or a table check did not pass).
 * @example const rows = await runNative({ n: 1 << 20, layout: 'runs', maxSegment: 65536, mode: 'oneshot' });
 */
export declare function runNative(args?: NativeArgs): Promise<NativeRow[] | null>;
//# sourceMappingURL=native.d.ts.map