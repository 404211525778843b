/**
 * @module scatterlist/from-pages
 * Building tables from page arrays: sg_alloc_append_table_from_pages and
 * sg_alloc_table_from_pages_segment, with the kernel's coalescing rules. This is the hot path:
 * no object per page or per entry, typed arrays only, one pass over the pages.
 *
 * The kernel counts chunks first, because get_next_sg sizes each new chunk from the entries still
 * needed. Only the last chunk of a call can come out smaller than a page (128 slots), and only the
 * last entry can take a chunk's END slot, so this builds in one pass with full chunks and then
 * fixes those two cases up: the same layout, the same allocations seen by fault injection.
 *
 * Tests: test/scatterlist/build.test.ts checks this against test/scatterlist/model.ts, a plain
 * transcription of the kernel's steps (one object per slot, no fast-path tricks), on fixed cases
 * and random page arrays; bench/coalesce.bench.ts measures it against a native C build.
 */
import { EINVAL, ENOMEM } from '../core/errno.ts';
import { KernelBug, KernelError } from '../core/errors.ts';
import { PAGE_SIZE } from '../mm/constants.ts';
import { MAX_PFN_LIMIT } from '../core/page.ts';
import { Scatterlist, sg_mark_end, sg_phys } from './entry.ts';
import * as slots from './slots.ts';
import type { SlotArena } from './slots.ts';
import { SgAppendTable, sg_free_append_table, SgTable } from './table.ts';
import { notInstance } from '../core/args.ts';

// Local copies of the slot layout: when a script loads dmasim as CommonJS (tsx does so for a .ts
// file outside an ESM package), imported bindings become getter calls; read in the loop they cost
// 270 ns/page on scattered pages (measured: 270 → 19 ns/page with these copies).
const SEG_MASK = slots.SEG_MASK;
const SEG_SHIFT = slots.SEG_SHIFT;
const SG_CHAIN = slots.SG_CHAIN;
const SG_END = slots.SG_END;
const MAX = slots.SG_MAX_SINGLE_ALLOC;
const SW = slots.SLOT_WORDS;
const W_FLAGS = slots.W_FLAGS;
const W_LENGTH = slots.W_LENGTH;
const W_OFFSET = slots.W_OFFSET;
const W_PAGE = slots.W_PAGE;
const PFN_HI_SHIFT = slots.PFN_HI_SHIFT;
const FLAGS_LOW_MASK = slots.FLAGS_LOW_MASK;
const PG = 4096;

const FN_APPEND = 'sg_alloc_append_table_from_pages';
const UINT_MAX = 0xffffffff;
const TWO32 = 2 ** 32;

/** Page arrays the builders accept: pfns in a number[], Uint32Array or Float64Array. */
export type PageArray = ArrayLike<number>;

function checkArgs(pages: PageArray, n_pages: number, offset: number, size: number | bigint, max_segment: number, left_pages: number, gfp: number, fn: string): number {
  if (pages === null || typeof pages !== 'object' || typeof pages.length !== 'number') {
    throw new KernelError(EINVAL, fn, 'expected an array of page frame numbers', 'pages');
  }
  checkUint(n_pages, fn, 'n_pages');
  checkUint(offset, fn, 'offset');
  checkUint(max_segment, fn, 'max_segment');
  checkUint(left_pages, fn, 'left_pages');
  checkUint(gfp, fn, 'gfp');
  if (n_pages > pages.length) throw new KernelError(EINVAL, fn, `n_pages ${n_pages} exceeds the ${pages.length} pages given`, 'n_pages');
  if (typeof size === 'bigint') {
    if (size < 0n || size >= 2n ** 64n) throw new KernelError(EINVAL, fn, `expected an unsigned long, got ${size}n`, 'size');
    return Number(size);
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new KernelError(EINVAL, fn, `expected an unsigned long (a whole number in [0, 2^53) or a bigint), got ${String(size)}`, 'size');
  }
  return size;
}

function checkUint(v: unknown, fn: string, name: string): void {
  if (typeof v !== 'number' || (v >>> 0) !== v) throw new KernelError(EINVAL, fn, `expected an unsigned int, got ${String(v)}`, name);
}

/**
 * The continuation merge: how many of pages[0..n) extend prv, a page at a time, while each is
 * pfn-consecutive and prv stays within maxSeg. Its own small function: inside the entry point
 * it shared that function's feedback and was compiled poorly for long merges.
 */
function mergeIntoPrv(pages: PageArray, n: number, nextPfn: number, prvLen: number, maxSeg: number): number {
  // The room left in prv, in pages, bounds the scan up front: the loop then compares small integers
  // only (prv's length can pass 2^31, a double; contiguous append512: 1.87 -> 1.45 ns/page).
  const room = Math.floor((maxSeg - prvLen) / PG);
  const lim = room < n ? room : n;
  return nextPfn >= TWO32 || BUILD.wide ? runEndWide(pages, 0, lim, nextPfn) : runEnd(pages, 0, lim, nextPfn);
}

/**
 * End (exclusive) of the run in pages[from..lim) that holds pfn, pfn + 1, ...: the scan shared by
 * the continuation merge and an entry's extent. Nothing at or past 2^32 follows, so the scan stops
 * short of it and compares the rest as 32-bit patterns, four pages a pass (xor, or): 0.57 ns/page
 * against 1.1 for one compare a page (512-page scans, .scratch/scan3).
 */
function runEnd(pages: PageArray, from: number, lim: number, pfn: number): number {
  const below = from + (TWO32 - pfn);
  const end = below < lim ? below : lim;
  let i = from;
  let x = pfn | 0;
  const end4 = end - 3;
  while (i < end4) {
    const diff = ((pages[i] as number) ^ x) | ((pages[i + 1] as number) ^ (x + 1)) |
      ((pages[i + 2] as number) ^ (x + 2)) | ((pages[i + 3] as number) ^ (x + 3));
    if (diff !== 0) break;
    i += 4;
    x = (x + 4) | 0;
  }
  while (i < end && ((pages[i] as number) ^ x) === 0) {
    i++;
    x = (x + 1) | 0;
  }
  return i;
}

/**
 * The same scan for page arrays holding pfns at or past 2^32: plain double compares, one a page.
 * Only arrays that hold such a pfn take it, so the 32-bit scan above pays nothing for them.
 */
function runEndWide(pages: PageArray, from: number, lim: number, pfn: number): number {
  let i = from;
  while (i < lim && pages[i] === pfn + (i - from)) i++;
  return i;
}

/** pfnWidth: every pfn below 2^32 (a Uint32Array always is). */
const NARROW = 0;
/** pfnWidth: every pfn below 2^40, some at or past 2^32. */
const WIDE = 1;
/** pfnWidth: some entry is not a page frame number below 2^40. */
const BAD_PFN = -1;

/** Which build pages[0..n) need, or BAD_PFN. */
function pfnWidth(pages: PageArray, n: number): number {
  if (pages instanceof Uint32Array) return NARROW;
  let width = NARROW;
  for (let i = 0; i < n; i++) {
    const p = pages[i] as unknown;
    if (typeof p === 'number' && (p >>> 0) === p) continue;
    if (typeof p !== 'number' || !Number.isInteger(p) || p < 0 || p >= MAX_PFN_LIMIT) return BAD_PFN;
    width = WIDE;
  }
  return width;
}

/** Write pfn into the slot at word w: its low word, and bits 32..39 into the flags word. */
function setPfnWords(seg: Uint32Array, w: number, pfn: number): void {
  seg[w + W_PAGE] = pfn;
  if (pfn >= TWO32) seg[w + W_FLAGS] = ((seg[w + W_FLAGS] as number) & FLAGS_LOW_MASK) | (Math.floor(pfn / TWO32) << PFN_HI_SHIFT);
}

/**
 * Build state between the hot loop and the rare paths.
 * INVARIANT: slots strictly between `s` and `chunkLast` are unused (flags 0) slots of s's chunk;
 *   chunkLast is the first marked (END or CHAIN) slot after s (s + 1 when s is an END slot taken
 *   by the last entry).
 * INVARIANT: lastBase/lastEntry/lastLink describe the newest chunk this call allocated (-1 when
 *   none): it was allocated with 128 slots for entry lastEntry, linked from lastLink (-1: sgl).
 */
interface Build {
  app: SgAppendTable;
  /** Some page of this call is at or past pfn 2^32: the scans compare whole numbers. */
  wide: boolean;
  arena: SlotArena;
  leftPages: number;
  s: number;
  chunkLast: number;
  lastBase: number;
  lastEntry: number;
  lastLink: number;
  /** Entries written so far in this call. */
  entries: number;
  /** First page of the next entry to write. */
  start: number;
  /** First page of the entry fillPlain stopped at. */
  openStart: number;
}

const BUILD: Build = {
  app: null as unknown as SgAppendTable, wide: false, arena: null as unknown as SlotArena, leftPages: 0, s: -1, chunkLast: -1,
  lastBase: -1, lastEntry: -1, lastLink: -1, entries: 0, start: 0, openStart: 0,
};

/**
 * sg_alloc_append_table_from_pages: append pages to a table, merging pfn-consecutive pages into
 * entries of at most `max_segment` bytes (aligned down to PAGE_SIZE).
 * - A continuation call (sgt_append.prv set) first merges pages into prv a page at a time; its
 *   offset must be 0 (WARN, -EINVAL).
 * - `size` is an unsigned long that wraps: entries after the one where it runs out get their full
 *   length. The offset applies to the first new entry only.
 * - `left_pages` (pages still to come) sizes chunk pre-allocation; the END mark is written only
 *   when it is 0.
 * @returns 0, -EINVAL (max_segment below PAGE_SIZE with a WARN; offset on a continuation with a
 *   WARN; no pages), -ENOMEM (entries written so far stay in the table for
 *   sg_free_append_table; nents and prv are not updated; prv's length is restored).
 * @throws KernelBug when new entries follow an END-marked prv (the kernel dereferences NULL).
 * @example
 * const app = new SgAppendTable(machine);
 * sg_alloc_append_table_from_pages(app, pfns, 512, 0, 512 * 4096, 0xffffffff, 512, GFP_KERNEL);
 */
export function sg_alloc_append_table_from_pages(
  sgt_append: SgAppendTable, pages: PageArray, n_pages: number, offset: number, size: number | bigint,
  max_segment: number, left_pages: number, gfp: number,
): number {
  if (!(sgt_append instanceof SgAppendTable)) throw notInstance(sgt_append, SgAppendTable, 'sg_alloc_append_table_from_pages', 'sgt_append');
  const sizeNum = checkArgs(pages, n_pages, offset, size, max_segment, left_pages, gfp, FN_APPEND);
  const sgt = sgt_append.sgt;
  const klog = sgt.ctx.klog;
  // ALIGN_DOWN on the checked u32 by masking: `%` on a value past 2^31 (UINT_MAX is) is a call
  // into the runtime (1-page merge calls: 58-63 -> 53-58 ns).
  const maxSeg = (max_segment & ~(PAGE_SIZE - 1)) >>> 0;
  if (maxSeg < PAGE_SIZE) {
    klog.warn(FN_APPEND, 'WARN_ON(max_segment < PAGE_SIZE)');
    return -EINVAL;
  }
  // The C code reads pages[0] without checking; refuse an empty array as the Rust binding does.
  if (n_pages === 0) return -EINVAL;
  // Before the merge, which compares pfns as 32-bit patterns unless some reach past 2^32.
  const width = pfnWidth(pages, n_pages);
  if (width === BAD_PFN) throw new KernelError(EINVAL, FN_APPEND, 'every page must be a page frame number in [0, 2^40)', 'pages');
  BUILD.wide = width === WIDE;
  const arena = sgt.arena;
  const prv = sgt_append.prv;
  let from = 0;
  let prvLen = 0;
  if (prv !== null) {
    if (prv.arena !== arena) throw new KernelError(EINVAL, FN_APPEND, 'prv belongs to another machine', 'sgt_append');
    if (offset !== 0) {
      klog.warn(FN_APPEND, 'WARN_ON(offset)');
      return -EINVAL;
    }
    prvLen = prv.length;
    const nextPfn = Math.floor((sg_phys(prv) + prvLen) / PAGE_SIZE);
    if (pages[0] === nextPfn) {
      from = mergeIntoPrv(pages, n_pages, nextPfn, prvLen, maxSeg);
      prv.length = prvLen + from * PAGE_SIZE;
      if (from === n_pages) {
        if (left_pages === 0) sg_mark_end(prv);
        return 0;
      }
    }
    if ((prv.flagsWord & SG_END) !== 0) {
      prv.length = prvLen;
      throw new KernelBug(FN_APPEND, 'Unable to handle kernel NULL pointer dereference in get_next_sg: appending after a call that passed left_pages = 0');
    }
  }
  // One build state reused across calls (single-threaded, never held across calls): allocating it
  // per call cost ~3% in append512 (2048 calls per table; measured scattered 8.58 -> 8.28 ns/page).
  const b = BUILD;
  b.app = sgt_append;
  b.arena = arena;
  b.leftPages = left_pages;
  // chunkLast = s + 1 sends the first entry through the exact get_next_sg step; the previous call's
  // record of where prv's chunk ends skips the walk to it (1-page calls: 174 -> 81 ns a call).
  b.s = prv === null ? -1 : prv.slot;
  b.chunkLast = prv === null ? -1 : sgt_append.hintPrv === prv.slot ? sgt_append.hintEnd : prv.slot + 1;
  b.lastBase = b.lastEntry = b.lastLink = -1;
  b.entries = 0;
  b.start = b.openStart = from;
  // | 0: a whole number (at most 2^20) kept a small integer, so the hot loop adds integers, not doubles.
  const entries = fill(b, pages, from, n_pages, offset, sizeNum, (maxSeg / PAGE_SIZE) | 0);
  if (entries < 0) {
    if (prv !== null) prv.length = prvLen;
    return entries;
  }
  settleLastChunk(b, entries);
  sgt.nents += entries;
  sgt.orig_nents = sgt.nents;
  sgt_append.prv = new Scatterlist(arena, b.s);
  sgt_append.hintPrv = b.s;
  sgt_append.hintEnd = b.chunkLast;
  if (left_pages === 0) sg_mark_end(sgt_append.prv);
  return 0;
}

/**
 * The one pass: coalesce pages[from..n) into entries written as their runs end. Entry 0 (which
 * carries the offset and the u32 chunk arithmetic) and the one entry `size` may trim are done here;
 * the rest in fillPlain, which holds no rarely-taken code: a branch first taken inside optimised
 * code deoptimises it, and that cost 3-8x per build (bench/coalesce, before → after).
 * Returns the number of entries, or -ENOMEM.
 */
function fill(b: Build, pages: PageArray, from: number, n: number, offset: number, size: number, maxPages: number): number {
  if (b.s < 0 || b.s + 1 === b.chunkLast) {
    const err = takeSlot(b, 0, pages, from, n, maxPages);
    if (err !== 0) return err;
  } else {
    b.s++;
  }
  const first = pages[from] as number;
  const end0 = scanRun(pages, from, n, maxPages);
  const chunk0 = ((end0 - from) * PG - offset) >>> 0;
  let seg = b.arena.segs[b.s >>> SEG_SHIFT] as Uint32Array;
  let w = (b.s & SEG_MASK) * SW;
  setPfnWords(seg, w, first);
  seg[w + W_OFFSET] = offset;
  seg[w + W_LENGTH] = size < chunk0 ? size : chunk0;
  // size is an unsigned long: after the entry where it runs out it wraps, and every later entry
  // gets its full length. So at most one later entry is trimmed: the one holding page q.
  const rem = size - chunk0;
  // q = n: no page left to trim (an int, not Infinity, keeps the hot loop's compare on integers).
  let q = size < chunk0 ? n : Math.min(n, end0 + Math.floor(rem / PG));
  b.entries = 1;
  b.start = end0;
  while (b.start < n) {
    const r = b.wide ? fillPlainWide(b, pages, n, q, maxPages) : fillPlain(b, pages, n, q, maxPages);
    if (r < 0) return r;
    if (r === TRIMMED) {
      seg = b.arena.segs[b.s >>> SEG_SHIFT] as Uint32Array;
      w = (b.s & SEG_MASK) * SW;
      seg[w + W_LENGTH] = rem - (b.openStart - end0) * PG;
      q = n;
    }
  }
  return b.entries;
}

/** fillPlain stopped at the entry holding page q; its length is left for the caller. */
const TRIMMED = 1;

/** End (exclusive) of the entry that starts at page `start`: its pfn-consecutive run, at most maxPages pages. */
function scanRun(pages: PageArray, start: number, n: number, maxPages: number): number {
  const lim = Math.min(n, start + maxPages);
  const next = (pages[start] as number) + 1;
  return BUILD.wide ? runEndWide(pages, start + 1, lim, next) : runEnd(pages, start + 1, lim, next);
}

/**
 * Entries from page b.start on, each taking the next slot (get_next_sg at chunk boundaries),
 * until the pages end (returns 0), an entry holds page q (returns TRIMMED with that entry's slot in
 * b.s and its first page in b.openStart; b.start is where the next entry begins), or -ENOMEM.
 * q >= n: no entry is trimmed.
 */
function fillPlain(b: Build, pages: PageArray, n: number, q: number, maxPages: number): number {
  const segs = b.arena.segs;
  // A local small integer: a parameter is re-checked as a tagged value on every loop pass.
  const trimAt = q | 0;
  let start = b.start;
  let e = b.entries;
  while (start < n) {
    const s = slotFor(b, e, pages, start, n, maxPages);
    if (s < 0) return s;
    // Slots s .. chunkLast - 1 are free and in one segment: the loop over them makes no call and
    // keeps the segment in a local (scattered 1M pages, tsx: 6.6 -> 6.0 ns/page).
    const seg = segs[s >>> SEG_SHIFT] as Uint32Array;
    const w0 = (s & SEG_MASK) * SW;
    // The loop keeps only the word index: the slot and entry counts follow from it at the exits
    // (fewer live values, fewer spills: scattered 1M oneshot 4.13-4.31 -> 3.83-4.04 ns/page).
    const lastW = w0 + (b.chunkLast - 1 - s) * SW;
    let w = w0;
    // Each page is read once: the pfn that ends a run is carried over as the next entry's first
    // page (scattered 1M pages: 5.2 -> 4.86 ns/page; it was read twice). Pfns are handled as their
    // 32-bit patterns (| 0): no sign check per load from a Uint32Array, no overflow check per + 1;
    // the page after pfn 0xFFFFFFFF (pattern 0) is never consecutive. A single-page entry takes one
    // compare before the run loop's bookkeeping (with the patterns: scattered 4.85 -> 4.13 ns/page).
    let p = (pages[start] as number) | 0;
    for (;;) {
      seg[w + W_PAGE] = p;
      let end = start + 1;
      let next = 0;
      if (end < n) {
        next = (pages[end] as number) | 0;
        let expect = (p + 1) | 0;
        if (next === expect && expect !== 0 && maxPages > 1) {
          const lim = start + maxPages < n ? start + maxPages : n;
          end++;
          for (;;) {
            if (end >= lim) {
              next = end < n ? (pages[end] as number) | 0 : 0;
              break;
            }
            next = (pages[end] as number) | 0;
            expect = (expect + 1) | 0;
            if (next !== expect || expect === 0) break;
            end++;
          }
        }
      }
      p = next;
      if (end > trimAt) {
        b.s = s + (w - w0) / SW;
        b.entries = e + (w - w0) / SW + 1;
        b.openStart = start;
        b.start = end;
        return TRIMMED;
      }
      // At most 0xfffff pages (max_segment <= UINT_MAX): the shift's int32 result stores as the
      // right uint32, with no overflow check as `* PG` needs.
      seg[w + W_LENGTH] = (end - start) << 12;
      start = end;
      if (start >= n || w === lastW) break;
      w += SW;
    }
    const used = (w - w0) / SW;
    e += used + 1;
    b.s = s + used;
  }
  b.entries = e;
  b.start = start;
  return 0;
}

/**
 * fillPlain for page arrays with pfns at or past 2^32: one entry a pass, each scanned with whole-
 * number compares and its pfn split into the page word and the flags word's high byte. The same
 * contract as fillPlain; kept apart so the 32-bit loop stays free of the split.
 */
function fillPlainWide(b: Build, pages: PageArray, n: number, q: number, maxPages: number): number {
  const segs = b.arena.segs;
  let start = b.start;
  let e = b.entries;
  while (start < n) {
    const s = slotFor(b, e, pages, start, n, maxPages);
    if (s < 0) return s;
    b.s = s;
    const seg = segs[s >>> SEG_SHIFT] as Uint32Array;
    const w = (s & SEG_MASK) * SW;
    setPfnWords(seg, w, pages[start] as number);
    const end = scanRun(pages, start, n, maxPages);
    e++;
    if (end > q) {
      b.entries = e;
      b.openStart = start;
      b.start = end;
      return TRIMMED;
    }
    seg[w + W_LENGTH] = (end - start) << 12;
    start = end;
  }
  b.entries = e;
  b.start = start;
  return 0;
}

/** The slot for entry `e` (starting at page `start`): the next one, or get_next_sg's at a chunk boundary; or -ENOMEM. */
function slotFor(b: Build, e: number, pages: PageArray, start: number, n: number, maxPages: number): number {
  const s = b.s + 1;
  if (s !== b.chunkLast) return s;
  const err = takeSlot(b, e, pages, start, n, maxPages);
  return err !== 0 ? err : b.s;
}

/**
 * get_next_sg for entry `e`, which starts at page `start`, at a chunk boundary (or the first entry
 * of a call): follow a chain link, take a plain slot, or at an END slot either take it (the last
 * entry the call needs) or allocate a chunk and chain it there. Returns 0 or -ENOMEM.
 */
function takeSlot(b: Build, e: number, pages: PageArray, start: number, n: number, maxPages: number): number {
  const arena = b.arena;
  if (b.s < 0) {
    const base = arena.allocChunk(MAX);
    if (base < 0) return -ENOMEM;
    b.app.sgt.sgl = new Scatterlist(arena, base);
    b.app.total_nents = MAX;
    b.lastBase = base;
    b.lastEntry = e;
    b.lastLink = -1;
    b.s = base;
    b.chunkLast = base + MAX - 1;
    return 0;
  }
  const segs = arena.segs;
  let next = b.s + 1;
  let f = flagsOf(segs, next);
  if ((f & SG_CHAIN) !== 0) {
    next = (segs[next >>> SEG_SHIFT] as Uint32Array)[(next & SEG_MASK) * SW + W_PAGE] as number;
    f = flagsOf(segs, next);
  }
  if ((f & SG_END) === 0) {
    b.s = next;
    let last = next + 1;
    while ((flagsOf(segs, last) & (SG_END | SG_CHAIN)) === 0) last++;
    b.chunkLast = last;
    return 0;
  }
  // An END slot: the kernel keeps it for the chain link unless this is the last entry needed
  // (needed == 1): the call's last entry, with no pages to come (left_pages 0).
  // The last entry takes every page left: no more than maxPages, all pfn-consecutive.
  if (b.leftPages === 0 && n - start <= maxPages && scanRun(pages, start, n, maxPages) === n) {
    b.s = next;
    b.chunkLast = next + 1;
    return 0;
  }
  const base = arena.allocChunk(MAX);
  if (base < 0) return -ENOMEM;
  chain(segs, next, base);
  b.app.total_nents += MAX - 1;
  b.s = base;
  b.lastBase = base;
  b.lastEntry = e;
  b.lastLink = next;
  b.chunkLast = base + MAX - 1;
  return 0;
}

/**
 * After a successful pass, make the newest chunk what the kernel would have allocated:
 * min(entries still needed + left_pages, 128) slots.
 */
function settleLastChunk(b: Build, entries: number): void {
  const arena = b.arena;
  const segs = arena.segs;
  if (b.lastBase < 0) return;
  const want = Math.min(entries - b.lastEntry + b.leftPages, MAX);
  if (want === MAX) return;
  const used = b.s - b.lastBase + 1;
  const base = arena.allocChunk(want, false);
  const from = (b.lastBase & SEG_MASK) * SW;
  (segs[base >>> SEG_SHIFT] as Uint32Array).set((segs[b.lastBase >>> SEG_SHIFT] as Uint32Array).subarray(from, from + used * SW), (base & SEG_MASK) * SW);
  // When used === want (left_pages 0) the copy overwrote the new chunk's END mark with the last
  // entry's flags; the caller marks that entry END. With left_pages > 0, used < want.
  if (b.lastLink >= 0) (segs[b.lastLink >>> SEG_SHIFT] as Uint32Array)[(b.lastLink & SEG_MASK) * SW + W_PAGE] = base;
  else b.app.sgt.sgl = new Scatterlist(arena, base);
  arena.freeChunk(b.lastBase, MAX);
  b.app.total_nents -= MAX - want;
  b.s = base + used - 1;
  b.chunkLast = base + want - 1;
}

function flagsOf(segs: Uint32Array[], slot: number): number {
  return (segs[slot >>> SEG_SHIFT] as Uint32Array)[(slot & SEG_MASK) * SW + W_FLAGS] as number;
}

/** __sg_chain: turn `link` into a chain slot pointing at `base`. */
function chain(segs: Uint32Array[], link: number, base: number): void {
  const seg = segs[link >>> SEG_SHIFT] as Uint32Array;
  const w = (link & SEG_MASK) * SW;
  seg[w + W_PAGE] = base;
  seg[w + W_OFFSET] = 0;
  seg[w + W_LENGTH] = 0;
  // The link replaces page_link whole: no pfn bits survive in it.
  seg[w + W_FLAGS] = ((seg[w + W_FLAGS] as number) & FLAGS_LOW_MASK & ~(SG_CHAIN | SG_END)) | SG_CHAIN;
}

/**
 * sg_alloc_table_from_pages_segment: build a table from `n_pages` pages in one go (an append
 * build with left_pages 0 on a zeroed local table). On error `sgt` is not written at all.
 * @returns 0, -EINVAL, -ENOMEM.
 * @example
 * const sgt = new SgTable(machine);
 * sg_alloc_table_from_pages_segment(sgt, area.pages, area.nrPages, 0, area.size, 65536, GFP_KERNEL);
 */
export function sg_alloc_table_from_pages_segment(
  sgt: SgTable, pages: PageArray, n_pages: number, offset: number, size: number | bigint, max_segment: number, gfp: number,
): number {
  if (!(sgt instanceof SgTable)) throw notInstance(sgt, SgTable, 'sg_alloc_table_from_pages_segment', 'sgt');
  const local = new SgAppendTable(sgt.ctx);
  const ret = sg_alloc_append_table_from_pages(local, pages, n_pages, offset, size, max_segment, 0, gfp);
  if (ret !== 0) {
    sg_free_append_table(local);
    return ret;
  }
  sgt.sgl = local.sgt.sgl;
  sgt.nents = local.sgt.nents;
  sgt.orig_nents = local.sgt.orig_nents;
  if (local.total_nents !== sgt.orig_nents) {
    sgt.ctx.klog.warn('sg_alloc_table_from_pages_segment', 'WARN_ON(append.total_nents != sgt->orig_nents)');
  }
  return 0;
}

/** sg_alloc_table_from_pages: the `_segment` builder with max_segment UINT_MAX. */
export function sg_alloc_table_from_pages(sgt: SgTable, pages: PageArray, n_pages: number, offset: number, size: number | bigint, gfp: number): number {
  if (!(sgt instanceof SgTable)) throw notInstance(sgt, SgTable, 'sg_alloc_table_from_pages', 'sgt');
  return sg_alloc_table_from_pages_segment(sgt, pages, n_pages, offset, size, UINT_MAX, gfp);
}
