/**
 * @module dma/ledger/range-index
 * An index of half-open address ranges that may overlap (two live mappings of one buffer under
 * dma-direct share their bus addresses), answering "which ranges touch [a, b)?".
 */

/** One indexed range and what it stands for. */
export interface IndexedRange<T> {
  readonly start: number;
  readonly end: number;
  readonly value: T;
}

/** A block is split when it grows past twice this many ranges. */
const BLOCK = 64;

/** A run of ranges, sorted by start, with the largest end among them. */
interface Block<T> {
  readonly ranges: IndexedRange<T>[];
  maxEnd: number;
}

/**
 * Ranges sorted by start, kept in blocks of up to 2 × 64 so an insert or remove moves a block's worth
 * of entries, not the whole index (a sorted array re-sorted or spliced per mapping made the ledger
 * a quarter of a 2,000-mapping soak: bench/RESULTS.md, session 9). A query walks back from the last
 * range starting below its end, skips blocks whose ranges all end before it, and stops once a range
 * starting there could no longer reach it (no range is longer than `_maxLen`).
 * @example
 * const ix = new RangeIndex<string>();
 * ix.insert(0x1000, 0x2000, 'a');
 * ix.query(0x1800, 0x1801, (r) => console.log(r.value)); // 'a'
 */
export class RangeIndex<T> {
  // INVARIANT: the concatenation of _blocks' ranges is sorted by start (equal starts in insertion
  //   order); no block is empty; every range has end > start; block.maxEnd is the largest end in
  //   the block; _size counts the ranges; _maxLen >= every range's length (it only shrinks when
  //   the index empties).
  private _blocks: Block<T>[] = [];
  private _size = 0;
  private _maxLen = 0;

  /** Number of ranges held. */
  get size(): number {
    return this._size;
  }

  /** Add [start, end) for `value` (an empty range is not indexed). */
  insert(start: number, end: number, value: T): void {
    if (end <= start) return;
    const r = { start, end, value };
    if (end - start > this._maxLen) this._maxLen = end - start;
    this._size++;
    const blocks = this._blocks;
    if (blocks.length === 0) {
      blocks.push({ ranges: [r], maxEnd: end });
      return;
    }
    // The last block whose first range starts at or below `start` (else the first block); within
    // it, after every range starting at or below `start`.
    let b = this._blockAtOrBelow(start);
    if (b < 0) b = 0;
    const block = blocks[b] as Block<T>;
    block.ranges.splice(upperIn(block.ranges, start), 0, r);
    if (end > block.maxEnd) block.maxEnd = end;
    if (block.ranges.length > 2 * BLOCK) {
      const tail = block.ranges.splice(BLOCK);
      block.maxEnd = maxEndOf(block.ranges);
      blocks.splice(b + 1, 0, { ranges: tail, maxEnd: maxEndOf(tail) });
    }
  }

  /** Add many ranges for one value. */
  insertAll(ranges: readonly { readonly start: number; readonly end: number }[], value: T): void {
    for (const r of ranges) this.insert(r.start, r.end, value);
  }

  /** Remove the range starting at `start` inserted for `value` (nothing if there is none). */
  remove(start: number, value: T): void {
    const blocks = this._blocks;
    // Equal starts sit together just below the upper bound of `start`, possibly across blocks.
    const first = this._blockAtOrBelow(start);
    for (let b = first; b >= 0; b--) {
      const block = blocks[b] as Block<T>;
      const ranges = block.ranges;
      let i = b === first ? upperIn(ranges, start) - 1 : ranges.length - 1;
      for (; i >= 0 && (ranges[i] as IndexedRange<T>).start === start; i--) {
        if ((ranges[i] as IndexedRange<T>).value !== value) continue;
        const [gone] = ranges.splice(i, 1);
        this._size--;
        if (ranges.length === 0) blocks.splice(b, 1);
        else if ((gone as IndexedRange<T>).end === block.maxEnd) block.maxEnd = maxEndOf(ranges);
        if (this._size === 0) this._maxLen = 0;
        return;
      }
      if (i >= 0) return;
    }
  }

  /** Remove every range of `value` among `ranges` (the ranges it was inserted with). */
  removeAll(ranges: readonly { readonly start: number; readonly end: number }[], value: T): void {
    for (const x of ranges) if (x.end > x.start) this.remove(x.start, value);
  }

  /**
   * The range holding all of [a, b) that `accept` takes, or undefined: the fast path of an access
   * check (no closure is made per call by the caller when `accept` is a stored function).
   */
  covering(a: number, b: number, accept: (value: T) => boolean): IndexedRange<T> | undefined {
    const floor = b - this._maxLen;
    const blocks = this._blocks;
    for (let k = this._blockAtOrBelow(a); k >= 0; k--) {
      const block = blocks[k] as Block<T>;
      const ranges = block.ranges;
      if ((ranges[ranges.length - 1] as IndexedRange<T>).start < floor) break;
      if (block.maxEnd < b) continue;
      for (let i = upperIn(ranges, a) - 1; i >= 0; i--) {
        const r = ranges[i] as IndexedRange<T>;
        if (r.start < floor) return undefined;
        if (r.end >= b && accept(r.value)) return r;
      }
    }
    return undefined;
  }

  /**
   * Call `visit` for every range overlapping [a, b), in descending start order; stop early when it
   * returns true.
   */
  query(a: number, b: number, visit: (r: IndexedRange<T>) => boolean | void): void {
    const floor = a - this._maxLen;
    const blocks = this._blocks;
    for (let k = this._blockAtOrBelow(b - 1); k >= 0; k--) {
      const block = blocks[k] as Block<T>;
      const ranges = block.ranges;
      if ((ranges[ranges.length - 1] as IndexedRange<T>).start <= floor) return;
      if (block.maxEnd <= a) continue;
      for (let i = upperIn(ranges, b - 1) - 1; i >= 0; i--) {
        const r = ranges[i] as IndexedRange<T>;
        if (r.start <= floor) return;
        if (r.end > a && visit(r) === true) return;
      }
    }
  }

  /** Does any range overlap [a, b)? (The quick "no" of a CPU access to unmapped memory.) */
  overlaps(a: number, b: number): boolean {
    // query's walk without its callback: this runs on every CPU access the checks see.
    const floor = a - this._maxLen;
    const blocks = this._blocks;
    for (let k = this._blockAtOrBelow(b - 1); k >= 0; k--) {
      const block = blocks[k] as Block<T>;
      const ranges = block.ranges;
      if ((ranges[ranges.length - 1] as IndexedRange<T>).start <= floor) return false;
      if (block.maxEnd <= a) continue;
      for (let i = upperIn(ranges, b - 1) - 1; i >= 0; i--) {
        const r = ranges[i] as IndexedRange<T>;
        if (r.start <= floor) return false;
        if (r.end > a) return true;
      }
    }
    return false;
  }

  /** Append to `out` every range overlapping [a, b) (descending start order); returns how many. */
  collect(a: number, b: number, out: IndexedRange<T>[]): number {
    const before = out.length;
    this.query(a, b, (r) => { out.push(r); });
    return out.length - before;
  }

  /** Index of the last block whose first range starts at or below `x`, or -1. */
  private _blockAtOrBelow(x: number): number {
    const blocks = this._blocks;
    let lo = 0;
    let hi = blocks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (((blocks[mid] as Block<T>).ranges[0] as IndexedRange<T>).start <= x) lo = mid + 1;
      else hi = mid;
    }
    return lo - 1;
  }
}

/** Index of the first range in `ranges` (sorted) whose start is > `x`. */
function upperIn<T>(ranges: readonly IndexedRange<T>[], x: number): number {
  let lo = 0;
  let hi = ranges.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((ranges[mid] as IndexedRange<T>).start <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function maxEndOf<T>(ranges: readonly IndexedRange<T>[]): number {
  let m = 0;
  for (const r of ranges) if (r.end > m) m = r.end;
  return m;
}
