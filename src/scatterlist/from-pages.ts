/**
 * @module scatterlist/from-pages
 * Building tables from page arrays: sg_alloc_append_table_from_pages and
 * sg_alloc_table_from_pages_segment, with the kernel's coalescing rules. This is the hot path:
 * no object per page or per entry, typed arrays only.
 */
import { EINVAL } from '../core/errno.ts';
import { KernelBug, KernelError } from '../core/errors.ts';
import { PAGE_SIZE } from '../mm/constants.ts';
import { Scatterlist } from './entry.ts';
import * as slots from './slots.ts';
import type { SlotArena } from './slots.ts';
import { SgAppendTable, sg_free_append_table, type SgTable } from './table.ts';

// Local copies of the slot layout: under tsx an imported binding compiles to a getter call, and
// reading them in the loop cost 270 ns/page on scattered pages (bench/coalesce, before → after).
const SEG_MASK = slots.SEG_MASK;
const SEG_SHIFT = slots.SEG_SHIFT;
const SG_CHAIN = slots.SG_CHAIN;
const SG_END = slots.SG_END;
const SG_MAX_SINGLE_ALLOC = slots.SG_MAX_SINGLE_ALLOC;
const SLOT_WORDS = slots.SLOT_WORDS;
const W_FLAGS = slots.W_FLAGS;
const W_LENGTH = slots.W_LENGTH;
const W_OFFSET = slots.W_OFFSET;
const W_PAGE = slots.W_PAGE;

const FN_APPEND = 'sg_alloc_append_table_from_pages';
const UINT_MAX = 0xffffffff;

/** Page arrays the builders accept: pfns in a number[], Uint32Array or Float64Array. */
export type PageArray = ArrayLike<number>;

// Scratch for chunk starts, shared by all builds (single-threaded; never held across calls).
// INVARIANT: between calls its contents are meaningless; during a call starts[0..chunks] are the
//   page indices where chunks begin, with starts[chunks] = n_pages.
let starts = new Uint32Array(1024);

function checkArgs(pages: PageArray, n_pages: number, offset: number, size: number | bigint, max_segment: number, left_pages: number, gfp: number, fn: string): number {
  if (pages === null || typeof pages !== 'object' || typeof pages.length !== 'number') {
    throw new KernelError(EINVAL, fn, 'expected an array of page frame numbers', 'pages');
  }
  for (const [name, v] of [['n_pages', n_pages], ['offset', offset], ['max_segment', max_segment], ['left_pages', left_pages], ['gfp', gfp]] as const) {
    if (typeof v !== 'number' || (v >>> 0) !== v) throw new KernelError(EINVAL, fn, `expected an unsigned int, got ${String(v)}`, name);
  }
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

/**
 * First pass: split pages[from..n) into chunks of pfn-consecutive pages, cutting every
 * `maxPages` pages counted from the chunk start. Fills `starts`, returns the chunk count, or -1
 * when a chunk would start at something that is not a page frame number in [0, 2^32).
 */
function countChunks(pages: PageArray, from: number, n: number, maxPages: number): number {
  if (starts.length < n - from + 1) starts = new Uint32Array(Math.max(n - from + 1, starts.length * 2));
  const st = starts;
  let prev = pages[from] as number;
  if ((prev >>> 0) !== prev) return -1;
  st[0] = from;
  let k = 1;
  let run = 1;
  for (let i = from + 1; i < n; i++) {
    const p = pages[i] as number;
    if (p !== prev + 1 || run >= maxPages) {
      // CHECKED: a merged page is prev + 1 of a checked start, so only starts need the range check.
      if ((p >>> 0) !== p) return -1;
      st[k++] = i;
      run = 1;
    } else {
      run++;
    }
    prev = p;
  }
  st[k] = n;
  return k;
}

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
 * @example
 * const app = new SgAppendTable(machine);
 * sg_alloc_append_table_from_pages(app, pfns, 512, 0, 512 * 4096, 0xffffffff, 512, GFP_KERNEL);
 */
export function sg_alloc_append_table_from_pages(
  sgt_append: SgAppendTable, pages: PageArray, n_pages: number, offset: number, size: number | bigint,
  max_segment: number, left_pages: number, gfp: number,
): number {
  let remaining = checkArgs(pages, n_pages, offset, size, max_segment, left_pages, gfp, FN_APPEND);
  const sgt = sgt_append.sgt;
  const klog = sgt.ctx.klog;
  const maxSeg = max_segment - (max_segment % PAGE_SIZE);
  if (maxSeg < PAGE_SIZE) {
    klog.warn(FN_APPEND, 'WARN_ON(max_segment < PAGE_SIZE)');
    return -EINVAL;
  }
  // The C code reads pages[0] without checking; refuse an empty array as the Rust binding does.
  if (n_pages === 0) return -EINVAL;
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
    const nextPfn = Math.floor((prv.page * PAGE_SIZE + prv.offset + prvLen) / PAGE_SIZE);
    if (pages[0] === nextPfn) {
      let last = nextPfn - 1;
      let len = prvLen;
      while (from < n_pages && pages[from] === last + 1) {
        if (len + PAGE_SIZE > maxSeg) break;
        len += PAGE_SIZE;
        last = pages[from] as number;
        from++;
      }
      prv.length = len;
      if (from === n_pages) {
        if (left_pages === 0) prv.flagsWord = (prv.flagsWord | SG_END) & ~SG_CHAIN;
        return 0;
      }
    }
  }

  const chunks = countChunks(pages, from, n_pages, maxSeg / PAGE_SIZE);
  if (chunks < 0) {
    if (prv !== null) prv.length = prvLen;
    throw new KernelError(EINVAL, FN_APPEND, 'every page must be a page frame number in [0, 2^32)', 'pages');
  }
  const st = starts;
  // size is an unsigned long that wraps: the first entry it cannot cover gets what is left and
  // every later entry its full length. So at most one entry is trimmed; find it before the loop
  // (a double in the loop cost ~5 ns per entry, bench/coalesce).
  let trimIdx = -1;
  let trimLen = 0;
  const firstBytes = (((st[1] as number) - from) * PAGE_SIZE - offset) >>> 0;
  if (remaining < firstBytes) {
    trimIdx = 0;
    trimLen = remaining;
  } else {
    const rem = remaining - firstBytes;
    const base = st[1] as number;
    if (chunks > 1 && rem < ((st[chunks] as number) - base) * PAGE_SIZE) {
      let lo = 1;
      let hi = chunks - 1;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (((st[mid + 1] as number) - base) * PAGE_SIZE > rem) hi = mid;
        else lo = mid + 1;
      }
      trimIdx = lo;
      trimLen = rem - ((st[lo] as number) - base) * PAGE_SIZE;
    }
  }

  // chunkLast = s + 1 sends the first step through the exact get_next_sg logic.
  const cursor = { s: prv === null ? -1 : prv.slot, chunkLast: prv === null ? -1 : prv.slot + 1 };
  let first = -1;
  for (let i = 0; i < chunks; i++) {
    // get_next_sg: inside a chunk the next slot is plain data until the chunk's last slot; only
    // there does the kernel's rule (keep it for the link unless it is the last entry needed) apply.
    const next = cursor.s + 1;
    if (cursor.s < 0 || next === cursor.chunkLast) {
      const err = nextSlotSlow(sgt_append, arena, cursor, chunks - i + left_pages);
      if (err !== 0) {
        if (prv !== null) prv.length = prvLen;
        if (err === APPEND_AFTER_END) {
          throw new KernelBug(FN_APPEND, 'Unable to handle kernel NULL pointer dereference in get_next_sg: appending after a call that passed left_pages = 0');
        }
        return err;
      }
    } else {
      cursor.s = next;
    }
    const s = cursor.s;
    if (i === 0) first = s;
    const seg = arena.segs[s >>> SEG_SHIFT] as Uint32Array;
    const w = (s & SEG_MASK) * SLOT_WORDS;
    const pageStart = st[i] as number;
    seg[w + W_PAGE] = pages[pageStart] as number;
    seg[w + W_LENGTH] = i === trimIdx ? trimLen : ((st[i + 1] as number) - pageStart) * PAGE_SIZE;
  }
  // The first new entry carries the offset; its chunk size is u32 arithmetic and may wrap.
  const fseg = arena.segs[first >>> SEG_SHIFT] as Uint32Array;
  const fw = (first & SEG_MASK) * SLOT_WORDS;
  fseg[fw + W_OFFSET] = offset;
  fseg[fw + W_LENGTH] = trimIdx === 0 ? trimLen : firstBytes;

  const s = cursor.s;
  sgt.nents += chunks;
  sgt.orig_nents = sgt.nents;
  sgt_append.prv = new Scatterlist(arena, s);
  if (left_pages === 0) {
    const seg = arena.segs[s >>> SEG_SHIFT] as Uint32Array;
    const w = (s & SEG_MASK) * SLOT_WORDS + W_FLAGS;
    seg[w] = ((seg[w] as number) | SG_END) & ~SG_CHAIN;
  }
  return 0;
}

/** nextSlotSlow's verdict for an END-marked current entry. */
const APPEND_AFTER_END = 1;

/** Where the build cursor is: the last slot written and the marked (END or CHAIN) slot after it. */
interface Cursor { s: number; chunkLast: number }

/**
 * The exact get_next_sg step, for the first entry of a call and at chunk boundaries: follow a
 * chain link, use the END slot only when it is the last entry needed, or allocate and chain a
 * new chunk of min(needed, 128) slots. Returns 0, -ENOMEM, or APPEND_AFTER_END when the current
 * entry is END-marked (sg_next gives NULL and the kernel dereferences it).
 */
function nextSlotSlow(table: SgAppendTable, arena: SlotArena, cur: Cursor, needed: number): number {
  const segs = arena.segs;
  if (cur.s < 0) {
    const base = newChunk(table, arena, needed, -1);
    if (base < 0) return base;
    cur.s = base;
    cur.chunkLast = base + Math.min(needed, SG_MAX_SINGLE_ALLOC) - 1;
    return 0;
  }
  const seg = segs[cur.s >>> SEG_SHIFT] as Uint32Array;
  const w = (cur.s & SEG_MASK) * SLOT_WORDS;
  if (((seg[w + W_FLAGS] as number) & SG_END) !== 0) return APPEND_AFTER_END;
  let next = cur.s + 1;
  let nseg = seg;
  let nw = w + SLOT_WORDS;
  if (((nseg[nw + W_FLAGS] as number) & SG_CHAIN) !== 0) {
    next = nseg[nw + W_PAGE] as number;
    nseg = segs[next >>> SEG_SHIFT] as Uint32Array;
    nw = (next & SEG_MASK) * SLOT_WORDS;
  }
  if (((nseg[nw + W_FLAGS] as number) & SG_END) === 0 || needed === 1) {
    cur.s = next;
    // Find the chunk's marked slot after `next` (END, or a CHAIN left by an earlier call).
    let last = next + 1;
    if (((nseg[nw + W_FLAGS] as number) & SG_END) !== 0) last = next;
    else while ((((segs[last >>> SEG_SHIFT] as Uint32Array)[(last & SEG_MASK) * SLOT_WORDS + W_FLAGS] as number) & (SG_END | SG_CHAIN)) === 0) last++;
    cur.chunkLast = last;
    return 0;
  }
  const base = newChunk(table, arena, needed, next);
  if (base < 0) return base;
  cur.s = base;
  cur.chunkLast = base + Math.min(needed, SG_MAX_SINGLE_ALLOC) - 1;
  return 0;
}

/** get_next_sg's allocation: a chunk of min(needed, 128) slots, chained from `linkSlot` if any. */
function newChunk(table: SgAppendTable, arena: SlotArena, needed: number, linkSlot: number): number {
  const allocSize = Math.min(needed, SG_MAX_SINGLE_ALLOC);
  const base = arena.allocChunk(allocSize);
  if (base < 0) return -12; // -ENOMEM
  if (linkSlot >= 0) {
    table.total_nents += allocSize - 1;
    const seg = arena.segs[linkSlot >>> SEG_SHIFT] as Uint32Array;
    const w = (linkSlot & SEG_MASK) * SLOT_WORDS;
    seg[w + W_PAGE] = base;
    seg[w + W_OFFSET] = 0;
    seg[w + W_LENGTH] = 0;
    seg[w + W_FLAGS] = ((seg[w + W_FLAGS] as number) & ~(SG_CHAIN | SG_END)) | SG_CHAIN;
  } else {
    table.sgt.sgl = new Scatterlist(arena, base);
    table.total_nents = allocSize;
  }
  return base;
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
  return sg_alloc_table_from_pages_segment(sgt, pages, n_pages, offset, size, UINT_MAX, gfp);
}
