/**
 * @module mm/fragment-layout
 * How fragment() lays free memory out again: per free span, aligned free blocks ("runs") separated
 * by held gaps. A span whose layout is periodic (one run size, gaps no longer than a run) is laid
 * out by formula: its free blocks set in one pass, its held pages left to page metadata to write
 * on first use (building a fragmented 16 GiB machine wrote two million pages' metadata up front:
 * bench/RESULTS.md, session 11). Other spans are laid out run by run.
 *
 * Draw rule (both ways lay out the same pages from the same seed): a run's order is drawn only when
 * the range has more than one, a gap only when its length can move the next block (a span's first
 * run, or a run size smaller than the longest gap).
 */
import { POW2 } from '../core/bits.ts';
import type { Rng } from '../core/rng.ts';
import type { FreeArea } from './buddy.ts';
import { HeldSpans } from './held-spans.ts';
import type { Mm } from './mm.ts';
import { OWNER_ID } from './page-meta.ts';
import type { FragmentResult } from './fragment.ts';

/**
 * The gap before the next run at `pfn`: 0 for the very first run, else drawn from `gap` unless
 * every length in it gives the same block start (pfn aligned to the run size, gaps up to that size).
 */
function gapAt(rng: Rng, pfn: number, size: number, gap: readonly [number, number], first: boolean): number {
  if (first) return 0;
  if (gap[0] === gap[1]) return gap[0];
  // size <= 2^MAX_PAGE_ORDER: the low bits of any pfn below 2^53 say whether it is aligned.
  if ((pfn & (size - 1)) === 0 && gap[1] <= size) return gap[1];
  return rng.range(gap[0], gap[1]);
}

/**
 * Take every free block of every zone out and lay the free spans out again as runs of orders
 * `orders` and held gaps of `gap` pages. `deferHeld`: periodic spans' held pages are left to page
 * metadata to write on first use (false writes them now: the tests compare the two).
 * @example layOutFragments(mm, [4, 4], [1, 2], new Rng(1), true) // fragment(mm, { level: 0.6 })
 */
export function layOutFragments(mm: Mm, orders: readonly [number, number], gap: readonly [number, number], rng: Rng, deferHeld: boolean): FragmentResult {
  const meta = mm.meta;
  // One set of deferred spans at a time: an earlier fragment()'s are written out first.
  meta.resolveAll();
  const fragmenter = OWNER_ID.fragmenter;
  const spans = new HeldSpans();
  let heldPages = 0;
  let runs = 0;
  const periodic = deferHeld && orders[0] === orders[1] && gap[1] <= (POW2[orders[0]] as number);
  for (const zone of mm.zones) {
    // Take every free block out, then lay the free space out again as runs and gaps.
    const blocks = zone.freeBlocksByAddress();
    for (let b = 0; b < blocks.length; b += 2) zone.remove(blocks[b] as number, blocks[b + 1] as number);
    let i = 0;
    while (i < blocks.length) {
      const start = blocks[i] as number;
      let end = start + (POW2[blocks[i + 1] as number] as number);
      i += 2;
      while (i < blocks.length && blocks[i] === end) { end += POW2[blocks[i + 1] as number] as number; i += 2; }
      const laid = periodic ? periodicSpan(mm, zone, spans, start, end, orders[0], gap, rng, runs === 0) : spanByRuns(mm, zone, start, end, orders, gap, rng, runs === 0, fragmenter);
      runs += laid.runs;
      heldPages += laid.heldPages;
    }
  }
  if (spans.length > 0) meta.defer(spans);
  mm.adjustAllocated(heldPages);
  return { heldPages, runs };
}

/** Lay [start, end) out run by run (any orders and gaps). */
function spanByRuns(mm: Mm, zone: FreeArea, start: number, end: number, orders: readonly [number, number], gap: readonly [number, number], rng: Rng, firstOfAll: boolean, owner: number): FragmentResult {
  let heldPages = 0;
  let runs = 0;
  let pfn = start;
  while (pfn < end) {
    // A free run is one aligned buddy block of 2^k pages, so the allocator hands it out whole and
    // in order; the gap before it (plus alignment padding) is held.
    const k = orders[0] === orders[1] ? orders[0] : rng.range(orders[0], orders[1]);
    const size = POW2[k] as number; // a table: a pow per run was a tenth of a fragmented build
    const blockStart = Math.ceil((pfn + gapAt(rng, pfn, size, gap, firstOfAll && runs === 0 && pfn === start)) / size) * size;
    const heldEnd = Math.min(blockStart, end);
    holdRange(mm, pfn, heldEnd, owner);
    heldPages += heldEnd - pfn;
    pfn = heldEnd;
    if (blockStart + size > end) {
      holdRange(mm, pfn, end, owner);
      heldPages += end - pfn;
      break;
    }
    zone.give(blockStart, k);
    runs++;
    pfn = blockStart + size;
  }
  return { heldPages, runs };
}

/**
 * Lay [start, end) out with runs of 2^k pages when no gap is longer than a run: after the first
 * block every gap is exactly one run long (the next aligned block), so the blocks are periodic.
 */
function periodicSpan(mm: Mm, zone: FreeArea, spans: HeldSpans, start: number, end: number, k: number, gap: readonly [number, number], rng: Rng, firstOfAll: boolean): FragmentResult {
  const size = POW2[k] as number;
  const first = Math.ceil((start + gapAt(rng, start, size, gap, firstOfAll)) / size) * size;
  const count = first + size <= end ? Math.floor((end - first - size) / (2 * size)) + 1 : 0;
  zone.addFreeBlocks(first, k, count, 2 * size);
  // A span lies in one RAM range: its metadata indices are consecutive.
  const at = mm.meta.index(start) - start;
  spans.add(start + at, end + at, (count > 0 ? first : start) + at, size, count);
  return { heldPages: end - start - count * size, runs: count };
}

/** Mark [start, end) held as order-0 pages of `owner` (a held gap lies inside one RAM range). */
function holdRange(mm: Mm, start: number, end: number, owner: number): void {
  if (end <= start) return;
  const meta = mm.meta;
  const i0 = meta.index(start);
  meta.touch(i0, i0 + (end - start));
  meta.writeHeld(i0, i0 + (end - start), owner);
}
