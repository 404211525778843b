/**
 * @module mm/buddy
 * The free areas of one zone: per order, a bitmap of free buddy blocks. Splitting and merging follow
 * the kernel's __rmqueue_smallest / expand / __free_one_page. Within an order the lowest free block
 * is taken first (an address-ordered free list), so runs are deterministic.
 */
import { MAX_PAGE_ORDER } from './constants.ts';
import { POW2 } from '../core/bits.ts';
import type { ZoneSpan } from './layout.ts';
import { DirtyChunks, type DirtyCapture } from '../core/byte-chunks.ts';
import { RESTORE_STATE, SNAPSHOT_STATE, type SnapshotHooks } from '../core/snapshot.ts';

/** What a snapshot of a FreeArea holds. */
interface FreeAreaState {
  readonly bits: readonly DirtyCapture[];
  readonly nrFree: Float64Array;
  readonly hint: Float64Array;
  readonly freePages: number;
  /** Bytes the capture copied (the two small counter arrays; bitmaps are copy on write). */
  readonly copied: number;
}

function ctz32(x: number): number {
  return 31 - Math.clz32(x & -x);
}

/** Pages in the largest block, and the mask of a pfn's offset inside one. */
const MAX_BLOCK = 2 ** MAX_PAGE_ORDER;
const MAX_BLOCK_MASK = MAX_BLOCK - 1;

/**
 * Free blocks of one zone.
 * @example
 * const pfn = area.take(0); area.give(pfn, 0);
 */
export class FreeArea implements SnapshotHooks {
  readonly span: ZoneSpan;
  // Bitmaps cover the zone's RAM, not its span: each RAM range k is packed at a "compact" pfn
  // c = pfn - delta[k], where delta[k] is a multiple of MAX_ORDER_NR_PAGES (so buddy alignment is
  // the same in both spaces) and each range starts a fresh max-order block (so no compact buddy
  // pair straddles two ranges). A zone spanning a hole up to 2^40 pages pays only for its RAM.
  // INVARIANT: bit b of bitmaps[o] is set ⇔ the block of 2^o pages starting at compact pfn
  //   (b + base[o]) * 2^o is free and is not part of a larger free block.
  // INVARIANT: windows are sorted by pfn and by compact pfn alike, disjoint in both.
  // INVARIANT: nrFree[o] === number of set bits in bitmaps[o]; freePages === Σ nrFree[o] * 2^o.
  // INVARIANT: hint[o] <= index of the lowest non-zero word of bitmaps[o].
  readonly bitmaps: Uint32Array[] = [];
  readonly nrFree = new Float64Array(MAX_PAGE_ORDER + 1);
  readonly hint = new Float64Array(MAX_PAGE_ORDER + 1);
  private _freePages = 0;
  private readonly _base: number[] = [];
  private readonly _winStart: number[] = [];
  private readonly _winEnd: number[] = [];
  private readonly _winDelta: number[] = [];
  /**
   * Told of every block that becomes free or stops being free (its first pfn and page count), so
   * page metadata snapshots and the incremental audit see buddy changes too.
   */
  changed: ((pfn: number, pages: number) => void) | null = null;
  // INVARIANT: _cow[o] tracks bitmaps[o]; every bitmap store is announced to it first (_set,
  //   _clear), so snapshots copy a bitmap chunk only when it is first written after one (a 16 GiB
  //   machine's bitmaps are 1 MiB: bench/RESULTS.md, session 9).
  private readonly _cow: DirtyChunks[] = [];
  // The trackers' own flag, kept on the area: until a snapshot exists a bitmap store then costs a
  // field load (with the check behind a call per store, building a fragmented 16 GiB machine took
  // 53-56 ms against 41-46: bench/RESULTS.md, session 9).
  private _tracking = false;

  constructor(span: ZoneSpan) {
    this.span = span;
    const maxBlock = 2 ** MAX_PAGE_ORDER;
    let cursor = 0;
    for (const r of span.ram) {
      const cStart = Math.ceil(cursor / maxBlock) * maxBlock + (r.startPfn % maxBlock);
      this._winStart.push(r.startPfn);
      this._winEnd.push(r.endPfn);
      this._winDelta.push(r.startPfn - cStart);
      cursor = cStart + (r.endPfn - r.startPfn);
    }
    const cFirst = span.ram.length === 0 ? 0 : (span.ram[0] as { startPfn: number }).startPfn - (this._winDelta[0] as number);
    for (let o = 0; o <= MAX_PAGE_ORDER; o++) {
      const first = Math.floor(cFirst / 2 ** o);
      const last = Math.ceil(cursor / 2 ** o);
      this._base.push(first);
      this.bitmaps.push(new Uint32Array(Math.max(1, Math.ceil((last - first) / 32))));
    }
    for (const b of this.bitmaps) this._cow.push(new DirtyChunks([b]));
  }

  /** Snapshot: the bitmaps copy on write, the counters copied. */
  [SNAPSHOT_STATE](): FreeAreaState {
    this._tracking = true;
    return { bits: this._cow.map((t) => t.capture()), nrFree: this.nrFree.slice(), hint: this.hint.slice(), freePages: this._freePages, copied: 2 * this.nrFree.byteLength };
  }

  [RESTORE_STATE](state: unknown): void {
    const st = state as FreeAreaState;
    this._cow.forEach((t, o) => t.restore(st.bits[o] as DirtyCapture));
    this.nrFree.set(st.nrFree);
    this.hint.set(st.hint);
    this._freePages = st.freePages;
  }

  /** Compact pfn of a RAM pfn of this zone, or -1 (a hole or outside the zone). */
  private _compact(pfn: number): number {
    for (let k = 0; k < this._winStart.length; k++) {
      if (pfn >= (this._winStart[k] as number) && pfn < (this._winEnd[k] as number)) return pfn - (this._winDelta[k] as number);
    }
    return -1;
  }

  /** The pfn of compact pfn `c`. */
  private _expand(c: number): number {
    for (let k = 0; k < this._winStart.length; k++) {
      const p = c + (this._winDelta[k] as number);
      if (p >= (this._winStart[k] as number) && p < (this._winEnd[k] as number)) return p;
    }
    return -1;
  }

  /** Pages free in this zone. */
  get freePages(): number {
    return this._freePages;
  }

  /** Is the block of order `o` at `pfn` a free block of exactly that order? */
  isFree(pfn: number, o: number): boolean {
    const c = this._compact(pfn);
    if (c < 0) return false;
    const b = c / (POW2[o] as number) - (this._base[o] as number);
    return (((this.bitmaps[o] as Uint32Array)[b >>> 5] as number) & (1 << (b & 31))) !== 0;
  }

  /** The free block holding `pfn`, as [first pfn, order], or null when `pfn` is not free. */
  freeBlockOf(pfn: number): [number, number] | null {
    const c = this._compact(pfn);
    if (c < 0) return null;
    for (let o = 0; o <= MAX_PAGE_ORDER; o++) {
      const cb = c - (c % (POW2[o] as number));
      const b = cb / (POW2[o] as number) - (this._base[o] as number);
      if (b < 0) continue;
      if (((((this.bitmaps[o] as Uint32Array)[b >>> 5] ?? 0) as number) & (1 << (b & 31))) !== 0) return [pfn - (c - cb), o];
    }
    return null;
  }

  private _set(pfn: number, o: number): void {
    const b = this._compact(pfn) / (POW2[o] as number) - (this._base[o] as number);
    const w = b >>> 5;
    if (this._tracking) (this._cow[o] as DirtyChunks).touch(w, w + 1);
    (this.bitmaps[o] as Uint32Array)[w] = ((this.bitmaps[o] as Uint32Array)[w] as number) | (1 << (b & 31));
    this.nrFree[o] = (this.nrFree[o] as number) + 1;
    if (w < (this.hint[o] as number)) this.hint[o] = w;
    this._freePages += POW2[o] as number;
    if (this.changed !== null) this.changed(pfn, POW2[o] as number);
  }

  private _clear(pfn: number, o: number): void {
    const b = this._compact(pfn) / (POW2[o] as number) - (this._base[o] as number);
    const w = b >>> 5;
    if (this._tracking) (this._cow[o] as DirtyChunks).touch(w, w + 1);
    (this.bitmaps[o] as Uint32Array)[w] = ((this.bitmaps[o] as Uint32Array)[w] as number) & ~(1 << (b & 31));
    this.nrFree[o] = (this.nrFree[o] as number) - 1;
    this._freePages -= POW2[o] as number;
    if (this.changed !== null) this.changed(pfn, POW2[o] as number);
  }

  /** Lowest free block of exactly order `o`, or -1. */
  private _lowest(o: number): number {
    const words = this.bitmaps[o] as Uint32Array;
    for (let w = this.hint[o] as number; w < words.length; w++) {
      const bits = words[w] as number;
      if (bits !== 0) {
        this.hint[o] = w;
        return this._expand(((this._base[o] as number) + w * 32 + ctz32(bits)) * (POW2[o] as number));
      }
    }
    this.hint[o] = words.length;
    return -1;
  }

  /**
   * Take a free block of `order`, splitting a larger one if needed (__rmqueue_smallest + expand:
   * the lower half is kept, upper halves go back on the free lists). Returns its pfn or -1.
   */
  take(order: number): number {
    for (let o = order; o <= MAX_PAGE_ORDER; o++) {
      if ((this.nrFree[o] as number) === 0) continue;
      const pfn = this._lowest(o);
      this._clear(pfn, o);
      for (let k = o - 1; k >= order; k--) this._set(pfn + (POW2[k] as number), k);
      return pfn;
    }
    return -1;
  }

  /** Smallest order that has a free block at or above `order`, or -1 (for bulk allocation). */
  smallestAvailable(order: number): number {
    for (let o = order; o <= MAX_PAGE_ORDER; o++) if ((this.nrFree[o] as number) > 0) return o;
    return -1;
  }

  /** Free a block, merging with free buddies as far as they go (__free_one_page). */
  give(pfn: number, order: number): void {
    let p = pfn;
    let o = order;
    while (o < MAX_PAGE_ORDER) {
      const size = POW2[o] as number;
      // The buddy is the other half of the block of order o + 1 (the bit of size in p, read from
      // p's low 32 bits: exact for any pfn below 2^53).
      const buddy = (p & size) === 0 ? p + size : p - size;
      if (!this.isFree(buddy, o)) break;
      this._clear(buddy, o);
      p = Math.min(p, buddy);
      o++;
    }
    this._set(p, o);
  }

  /**
   * Free `count` blocks of `order` at pfns first, first + stride, ... (all in one RAM range of this
   * zone), when the caller knows none of them has a free buddy: what give() would do, with no merge
   * test per block (the fragmenter's periodic layouts: 131,000 blocks on a 16 GiB machine).
   * @example area.addFreeBlocks(0x1010, 4, 100, 32) // 100 blocks of 16 pages, every 32 pages
   */
  addFreeBlocks(first: number, order: number, count: number, stride: number): void {
    if (count <= 0) return;
    const size = POW2[order] as number;
    const words = this.bitmaps[order] as Uint32Array;
    const b0 = this._compact(first) / size - (this._base[order] as number);
    const step = stride / size;
    const bLast = b0 + (count - 1) * step;
    if (this._tracking) (this._cow[order] as DirtyChunks).touch(b0 >>> 5, (bLast >>> 5) + 1);
    setEveryNthBit(words, b0, bLast, step);
    this.nrFree[order] = (this.nrFree[order] as number) + count;
    if (b0 >>> 5 < (this.hint[order] as number)) this.hint[order] = b0 >>> 5;
    this._freePages += count * size;
    if (this.changed !== null) this.changed(first, (count - 1) * stride + size);
  }

  /** Remove a specific free block (used when carving reservations). */
  remove(pfn: number, order: number): void {
    this._clear(pfn, order);
  }

  /**
   * Visit every free block that overlaps the pfns [start, end), as (first pfn, order): the bitmap
   * words covering the range only, so a small range costs little on a large zone.
   */
  forEachFreeBlockIn(start: number, end: number, visit: (pfn: number, order: number) => void): void {
    for (let k = 0; k < this._winStart.length; k++) {
      const lo = Math.max(start, this._winStart[k] as number);
      const hi = Math.min(end, this._winEnd[k] as number);
      if (lo >= hi) continue;
      const delta = this._winDelta[k] as number;
      for (let o = 0; o <= MAX_PAGE_ORDER; o++) {
        const size = 2 ** o;
        const words = this.bitmaps[o] as Uint32Array;
        const base = this._base[o] as number;
        // Blocks of this order holding compact pfns lo - delta .. hi - delta - 1.
        const bFirst = Math.max(0, Math.floor((lo - delta) / size) - base);
        const bLast = Math.min(words.length * 32 - 1, Math.floor((hi - 1 - delta) / size) - base);
        for (let b = bFirst; b <= bLast;) {
          const word = words[b >>> 5] as number;
          if (word === 0) { b = (b | 31) + 1; continue; }
          if ((word & (1 << (b & 31))) !== 0) visit((b + base) * size + delta, o);
          b++;
        }
      }
    }
  }

  /**
   * Every free block as pfn, order pairs in one flat array, by address. Trusts the counters and
   * hints (blocks() reads every bitmap word, which a sound zone does not need: on a fresh 16 GiB
   * machine its empty low-order bitmaps were 260,000 words, a fifth of building it fragmented).
   * @example const [pfn, order] = area.freeBlocksByAddress();
   */
  freeBlocksByAddress(): number[] {
    const out: number[] = [];
    for (let o = 0; o <= MAX_PAGE_ORDER; o++) {
      const words = this.bitmaps[o] as Uint32Array;
      let left = this.nrFree[o] as number;
      for (let w = this.hint[o] as number; left > 0 && w < words.length; w++) {
        let bits = words[w] as number;
        while (bits !== 0) {
          const bit = ctz32(bits);
          bits &= bits - 1;
          out.push(this._expand(((this._base[o] as number) + w * 32 + bit) * (POW2[o] as number)), o);
          left--;
        }
      }
    }
    // Sorted by pfn (the per-order lists interleave) as pfn·16 + order keys: a native numeric sort,
    // exact below 2^49 pfns.
    const keys = new Float64Array(out.length / 2);
    for (let k = 0; k < keys.length; k++) keys[k] = (out[2 * k] as number) * 16 + (out[2 * k + 1] as number);
    keys.sort();
    for (let k = 0; k < keys.length; k++) {
      const key = keys[k] as number;
      const pfn = Math.floor(key / 16);
      out[2 * k] = pfn;
      out[2 * k + 1] = key - pfn * 16;
    }
    return out;
  }

  /** Every free block as [pfn, order], lowest order first then by address. */
  *blocks(): Generator<[number, number]> {
    for (let o = 0; o <= MAX_PAGE_ORDER; o++) {
      const words = this.bitmaps[o] as Uint32Array;
      for (let w = 0; w < words.length; w++) {
        let bits = words[w] as number;
        while (bits !== 0) {
          const bit = ctz32(bits);
          bits &= bits - 1;
          yield [this._expand(((this._base[o] as number) + w * 32 + bit) * (POW2[o] as number)), o];
        }
      }
    }
  }
}

/**
 * Set bits first, first + step, ... up to last (inclusive) of `words`. A step that is a power of
 * two up to 32 sets whole words with a repeating pattern (the fragmenter's 131,000 blocks of a
 * 16 GiB machine: a bit at a time was a tenth of building it).
 * @example setEveryNthBit(words, 3, 1000, 2) // bits 3, 5, 7, ..., 999
 */
export function setEveryNthBit(words: Uint32Array, first: number, last: number, step: number): void {
  let b = first;
  if (step <= 32 && (step & (step - 1)) === 0) {
    // Bits of the first word one at a time, then whole words (the step divides 32, so every word
    // has the same pattern, at the first full word's phase), then the tail.
    const firstFull = first % 32 === 0 ? first : (first - (first % 32)) + 32;
    for (; b <= last && b < firstFull; b += step) words[b >>> 5] = (words[b >>> 5] as number) | (1 << (b & 31));
    const phase = b - firstFull;
    let pattern = 0;
    for (let k = phase; k < 32; k += step) pattern |= 1 << k;
    let w = firstFull / 32;
    for (; w * 32 + 31 <= last; w++) words[w] = (words[w] as number) | pattern;
    b = w * 32 + phase;
  }
  for (; b <= last; b += step) words[b >>> 5] = (words[b >>> 5] as number) | (1 << (b & 31));
}

/**
 * Take the free pages [start, end) out of the free lists (every page must be free). Blocks that
 * straddle the range give their outside parts back. Returns false, changing nothing, when a page
 * in the range is not free.
 */
export function carveRange(area: FreeArea, start: number, end: number): boolean {
  // The blocks holding the range, found from each page up (at most MAX_PAGE_ORDER + 1 bitmap tests
  // a block), not by listing every free block: a replay claiming 10,240 pages one at a time on a
  // 4 GiB machine took 4.1 s that way, 57 ms this way.
  const hit: Array<[number, number]> = [];
  for (let pfn = start; pfn < end;) {
    const blk = area.freeBlockOf(pfn);
    if (blk === null) return false;
    hit.push(blk);
    pfn = blk[0] + (POW2[blk[1]] as number);
  }
  for (const [pfn, o] of hit) {
    area.remove(pfn, o);
    if (pfn < start) freeRange(area, pfn, start);
    const blockEnd = pfn + (POW2[o] as number);
    if (blockEnd > end) freeRange(area, end, blockEnd);
  }
  return true;
}

/** Free the RAM range [start, end) as maximal aligned blocks (memblock_free_all). */
export function freeRange(area: FreeArea, start: number, end: number): void {
  let pfn = start;
  while (pfn < end) {
    // The largest order both aligned at pfn and fitting before end, from the low bits and the
    // length's top bit instead of a remainder per order tried (vfree of 1 GiB on a fragmented
    // machine spent 14% here: bench/RESULTS.md, session 10). pfn & MAX_BLOCK_MASK reads the low
    // bits of any pfn below 2^53.
    const low = pfn & MAX_BLOCK_MASK;
    const aligned = low === 0 ? MAX_PAGE_ORDER : ctz32(low);
    const fits = 31 - Math.clz32(Math.min(end - pfn, MAX_BLOCK));
    const o = aligned < fits ? aligned : fits;
    area.give(pfn, o);
    pfn += POW2[o] as number;
  }
}
