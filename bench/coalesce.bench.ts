/**
 * bench/coalesce: segment coalescing, the kernel anchor's workload. For each N, layout,
 * max_segment and mode: median ns/page over ≥ 11 runs after warm-up, entries produced, bytes per
 * entry, and the ratio to the native C yardstick measured in the same run.
 */
import { createContext, type KernelContext } from '../src/core/context.ts';
import { GFP_KERNEL } from '../src/mm/gfp.ts';
import { PAGE_SIZE } from '../src/mm/constants.ts';
import { arenaOf, SLOT_WORDS } from '../src/scatterlist/slots.ts';
import { SgAppendTable, SgTable, sg_free_append_table, sg_free_table } from '../src/scatterlist/table.ts';
import { sg_alloc_append_table_from_pages, sg_alloc_table_from_pages_segment } from '../src/scatterlist/from-pages.ts';
import { median } from './util.ts';
import { runNative, type NativeRow } from './native/native.ts';

export type Layout = 'contiguous' | 'scattered' | 'runs';
export type Mode = 'oneshot' | 'append512';
export const LAYOUTS: readonly Layout[] = ['contiguous', 'scattered', 'runs'];
export const MODES: readonly Mode[] = ['oneshot', 'append512'];
export const UINT_MAX = 0xffffffff;

/** The anchor's page layouts, base pfn 0x100000; `runs` uses splitmix64 seeded 0x2545F4914F6CDD1D. */
export function makePages(layout: Layout, n: number): Uint32Array {
  const base = 0x100000;
  const pages = new Uint32Array(n);
  if (layout === 'contiguous') for (let i = 0; i < n; i++) pages[i] = base + i;
  else if (layout === 'scattered') for (let i = 0; i < n; i++) pages[i] = base + 2 * i;
  else {
    let state = 0x2545f4914f6cdd1dn;
    const mask = (1n << 64n) - 1n;
    const r = (): bigint => {
      state = (state + 0x9e3779b97f4a7c15n) & mask;
      let z = state;
      z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & mask;
      z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & mask;
      return z ^ (z >> 31n);
    };
    let pfn = base;
    let i = 0;
    while (i < n) {
      const run = 1 + Number(r() % 16n);
      for (let k = 0; k < run && i < n; k++) pages[i++] = pfn++;
      pfn += 1 + Number(r() % 16n);
    }
  }
  return pages;
}

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

/** One oneshot build: sg_alloc_table_from_pages_segment over all the pages. */
function buildOneshot(ctx: KernelContext, pages: Uint32Array, n: number, maxSegment: number): SgTable {
  const sgt = new SgTable(ctx);
  if (sg_alloc_table_from_pages_segment(sgt, pages, n, 0, n * PAGE_SIZE, maxSegment, GFP_KERNEL) !== 0) throw new Error('build failed');
  return sgt;
}

/** One append512 build: 512-page calls, left_pages = pages still to come. */
function buildAppend512(ctx: KernelContext, pages: Uint32Array, n: number, maxSegment: number): SgAppendTable {
  const app = new SgAppendTable(ctx);
  for (let k = 0; k < n; k += 512) {
    const len = Math.min(512, n - k);
    const part = pages.subarray(k, k + len);
    if (sg_alloc_append_table_from_pages(app, part, len, 0, len * PAGE_SIZE, maxSegment, n - k - len, GFP_KERNEL) !== 0) throw new Error('append failed');
  }
  return app;
}

/**
 * Run one case: build + free `runs` times after warming up on at least 4M pages (small N needs
 * many builds before the JIT has optimised the loop), median ns/page. Each mode's build is a function
 * of its own, as benchmark libraries do: V8 would otherwise compile both modes' loops as one unit.
 */
export function runCase(n: number, layout: Layout, maxSegment: number, mode: Mode, runs = 11, warmup = Math.max(3, Math.ceil(2 ** 22 / n))): CoalesceRow {
  const pages = makePages(layout, n);
  const ctx = createContext('coalesce');
  const arena = arenaOf(ctx);
  let nents = 0;
  let bytesPerEntry = 0;
  const times: number[] = [];
  for (let r = 0; r < warmup + runs; r++) {
    const t0 = process.hrtime.bigint();
    let built: SgTable;
    let app: SgAppendTable | null = null;
    if (mode === 'oneshot') {
      built = buildOneshot(ctx, pages, n, maxSegment);
    } else {
      app = buildAppend512(ctx, pages, n, maxSegment);
      built = app.sgt;
    }
    if (r === 0) {
      nents = built.nents;
      // Slots the live table holds (chain links and pre-allocated slots included), 4 bytes a word.
      bytesPerEntry = (arena.liveSlots * SLOT_WORDS * 4) / nents;
    }
    if (app === null) sg_free_table(built);
    else sg_free_append_table(app);
    const t2 = process.hrtime.bigint();
    if (r >= warmup) times.push(Number(t2 - t0) / n);
  }
  return { n, layout, maxSegment, mode, nsPerPage: median(times), nents, bytesPerEntry };
}

export interface CoalesceOptions {
  readonly sizes?: readonly number[];
  readonly layouts?: readonly Layout[];
  readonly maxSegments?: readonly number[];
  readonly modes?: readonly Mode[];
  readonly native?: boolean;
}

/** The whole matrix (or the part asked for), with native figures beside it when a C compiler exists. */
export async function benchCoalesce(opts: CoalesceOptions = {}): Promise<CoalesceRow[]> {
  const rows: CoalesceRow[] = [];
  const sizes = opts.sizes ?? [4096, 262144, 1048576];
  for (const n of sizes) {
    for (const layout of opts.layouts ?? LAYOUTS) {
      for (const maxSegment of opts.maxSegments ?? [UINT_MAX, 65536]) {
        for (const mode of opts.modes ?? MODES) {
          const row = runCase(n, layout, maxSegment, mode);
          let native: NativeRow | undefined;
          if (opts.native !== false) {
            const got = await runNative({ n, layout, maxSegment, mode });
            native = got?.[0];
          }
          rows.push(native === undefined ? row : { ...row, native });
        }
      }
    }
  }
  return rows;
}

/** Markdown table of coalescing rows. */
export function coalesceTable(rows: readonly CoalesceRow[]): string {
  const head = '| N | layout | max_segment | mode | dmasim ns/page | native ns/page | ratio | entries | bytes/entry |\n|---|---|---|---|---|---|---|---|---|';
  const body = rows.map((r) => {
    const nat = r.native === undefined ? '—' : r.native.nsPerPage.toFixed(2);
    const ratio = r.native === undefined ? '—' : `${(r.nsPerPage / r.native.nsPerPage).toFixed(2)}×`;
    const ok = r.native === undefined || r.native.nents === r.nents ? '' : ` (native ${r.native.nents}!)`;
    return `| ${r.n} | ${r.layout} | ${r.maxSegment === UINT_MAX ? 'UINT_MAX' : r.maxSegment} | ${r.mode} | ${r.nsPerPage.toFixed(2)} | ${nat} | ${ratio} | ${r.nents}${ok} | ${r.bytesPerEntry.toFixed(1)} |`;
  });
  return [head, ...body].join('\n');
}
