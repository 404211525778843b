/**
 * @module mm/fragment
 * Dial-a-fragmentation: age the allocator so later allocations come back in physically contiguous
 * runs of the length you ask for, and measure the runs you get.
 */
import { EINVAL } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import { Rng } from '../core/rng.ts';
import { MAX_PAGE_ORDER } from './constants.ts';
import { Mm } from './mm.ts';
import { OWNER_ID, PG_ALLOCATED } from './page-meta.ts';
import { layOutFragments } from './fragment-layout.ts';
import { checkObject, checkInt, notInstance } from '../core/args.ts';

/** How to fragment free memory. */
export interface FragmentOptions {
  /**
   * 0 = leave memory alone (everything contiguous), 1 = no two free pages adjacent. In between, every
   * free run is 2^round(10·(1-level)) pages (level 0.6 → 16 pages). Ignored when `run` is given.
   */
  readonly level?: number;
  /**
   * Free-run length range in pages, inclusive: [min, max]. Each run is laid out as one aligned buddy
   * block, so lengths are rounded down to powers of two (at most 2^MAX_PAGE_ORDER). With a mixture,
   * later allocations get the short runs first: the buddy allocator serves the smallest order first.
   */
  readonly run?: readonly [number, number];
  /** Held-gap length range in pages between free runs, inclusive. Default [1, 2]. */
  readonly gap?: readonly [number, number];
  /** Seed for the run/gap draws. Default 1. */
  readonly seed?: number;
}

/** What fragment() did. */
export interface FragmentResult {
  /** Pages now held by the fragmenter (owner 'fragmenter'); `unfragment` returns them. */
  readonly heldPages: number;
  /** Free runs created. */
  readonly runs: number;
}

function range(v: readonly [number, number] | undefined, dflt: readonly [number, number], arg: string): readonly [number, number] {
  const r = v ?? dflt;
  if (!Array.isArray(r) || r.length !== 2 || !r.every((x) => Number.isSafeInteger(x) && x >= 1) || r[0] > r[1]) {
    throw new KernelError(EINVAL, 'fragment', `expected [min, max] whole numbers >= 1 with min <= max, got ${JSON.stringify(v)}`, arg);
  }
  return r;
}

/**
 * Re-lay every zone's free memory as free runs separated by held gaps. Allocated memory is not
 * touched. Runs are aligned power-of-two blocks: the buddy allocator serves the smallest order first,
 * so a run that is not one block would be handed out in pieces at different times. Deterministic for a given seed and allocator state.
 * @example fragment(machine.mm, { level: 0.7, seed: 3 })
 */
export function fragment(mm: Mm, opts: FragmentOptions): FragmentResult {
  checkObject(opts, 'fragment', 'opts');
  const level: unknown = opts.level === undefined ? 0 : opts.level;
  if (typeof level !== 'number') throw new KernelError(EINVAL, 'fragment', `level is a number in [0, 1], got ${JSON.stringify(level)}`, 'level');
  if (opts.seed !== undefined && !(typeof opts.seed === 'number' && Number.isSafeInteger(opts.seed) && opts.seed >= 0)) throw new KernelError(EINVAL, 'fragment', `seed is a whole number, got ${JSON.stringify(opts.seed)}`, 'seed');
  if (opts.run === undefined && !(level >= 0 && level <= 1)) throw new KernelError(EINVAL, 'fragment', `level must be in [0, 1], got ${level}`, 'level');
  if (opts.run === undefined && level === 0) return { heldPages: 0, runs: 0 };
  const single = 2 ** Math.round(MAX_PAGE_ORDER * (1 - level));
  const run = range(opts.run, [single, single], 'run');
  // Both ends clamp to the largest block: a minimum past it made orders [12, 10], and the draw
  // of a block size beyond the table threw half-way, with free blocks already taken out.
  const orders = [Math.min(MAX_PAGE_ORDER, Math.floor(Math.log2(run[0]))), Math.min(MAX_PAGE_ORDER, Math.floor(Math.log2(run[1])))] as const;
  const gap = range(opts.gap, [1, 2], 'gap');
  return layOutFragments(mm, orders, gap, new Rng(opts.seed ?? 1), true);
}

/**
 * Give back every page the fragmenter holds. Returns the number of pages freed.
 * @example unfragment(machine.mm)
 */
export function unfragment(mm: Mm): number {
  if (!(mm instanceof Mm)) throw notInstance(mm, Mm, 'unfragment', 'mm');
  mm.meta.resolveAll();
  const { state, owner } = mm.meta;
  const fragmenter = OWNER_ID.fragmenter;
  const held: number[] = [];
  mm.meta.forEachRamPage((pfn, i) => {
    if (owner[i] === fragmenter && ((state[i] as number) & PG_ALLOCATED) !== 0) held.push(pfn);
  });
  for (const pfn of held) mm.__free_pages(pfn, 0);
  return held.length;
}

/** Run-length statistics of a page sequence. */
export interface RunHistogram {
  /** Number of maximal runs of pfn-consecutive pages (pfn[i] = pfn[i-1] + 1). */
  readonly runs: number;
  readonly pages: number;
  readonly meanRun: number;
  readonly longestRun: number;
  /** Runs by length bucket: [1], [2,3], [4,7], ... as { min, max, count }. */
  readonly buckets: ReadonlyArray<{ readonly min: number; readonly max: number; readonly count: number }>;
}

/**
 * Measure the physically contiguous runs in a list of pfns (e.g. a vmalloc area's pages).
 * @example runHistogram(area.pages).meanRun
 */
export function runHistogram(pfns: ArrayLike<number>): RunHistogram {
  const n = (pfns as { length?: unknown } | null)?.length;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    throw new KernelError(EINVAL, 'runHistogram', `expected an array of page frame numbers, got length ${String(n)}`, 'pfns');
  }
  const counts: number[] = [];
  let runs = 0;
  let longest = 0;
  let len = 0;
  for (let i = 0; i < pfns.length; i++) {
    if (i > 0 && pfns[i] === (pfns[i - 1] as number) + 1) { len++; continue; }
    if (len > 0) { record(len); }
    len = 1;
  }
  if (len > 0) record(len);
  function record(l: number): void {
    runs++;
    longest = Math.max(longest, l);
    const b = 31 - Math.clz32(l);
    counts[b] = (counts[b] ?? 0) + 1;
  }
  const buckets = [];
  for (let b = 0; b < counts.length; b++) buckets.push({ min: 2 ** b, max: 2 ** (b + 1) - 1, count: counts[b] ?? 0 });
  return { runs, pages: pfns.length, meanRun: runs === 0 ? 0 : pfns.length / runs, longestRun: longest, buckets };
}

/** Render a run histogram as text bars. */
export function formatRunHistogram(h: RunHistogram, width = 40): string {
  checkObject(h, 'formatRunHistogram', 'h');
  if (!Array.isArray((h as { buckets?: unknown }).buckets)) throw new KernelError(EINVAL, 'formatRunHistogram', 'expected what runHistogram returns', 'h');
  checkInt(width, 'formatRunHistogram', 'width', 1, 1000);
  const max = Math.max(1, ...h.buckets.map((b) => b.count));
  const lines = h.buckets.map((b) => {
    const label = b.min === b.max ? `${b.min}` : `${b.min}-${b.max}`;
    return `  ${label.padStart(11)} pages │${'█'.repeat(Math.round((b.count / max) * width)).padEnd(width)}│ ${b.count}`;
  });
  return [`  ${h.runs} runs over ${h.pages} pages, mean ${h.meanRun.toFixed(2)}, longest ${h.longestRun}`, ...lines].join('\n');
}
