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

/** Above this many ranges at once, insert and remove rebuild the array instead of splicing each. */
const BATCH = 16;

/**
 * Ranges sorted by start. A query walks back from the last range starting below its end, and stops
 * once a range starting there could no longer reach its start (no range is longer than `_maxLen`).
 * @example
 * const ix = new RangeIndex<string>();
 * ix.insert(0x1000, 0x2000, 'a');
 * ix.query(0x1800, 0x1801, (r) => console.log(r.value)); // 'a'
 */
export class RangeIndex<T> {
  // INVARIANT: _ranges is sorted by start; every range has end > start; _maxLen >= every range's
  //   length (it only shrinks when the index empties).
  private _ranges: IndexedRange<T>[] = [];
  private _maxLen = 0;

  /** Number of ranges held. */
  get size(): number {
    return this._ranges.length;
  }

  /** Add [start, end) for `value` (an empty range is not indexed). */
  insert(start: number, end: number, value: T): void {
    if (end <= start) return;
    const r = { start, end, value };
    this._ranges.splice(this._upper(start), 0, r);
    if (end - start > this._maxLen) this._maxLen = end - start;
  }

  /** Add many ranges for one value. */
  insertAll(ranges: readonly { readonly start: number; readonly end: number }[], value: T): void {
    if (ranges.length <= BATCH) {
      for (const r of ranges) this.insert(r.start, r.end, value);
      return;
    }
    const add: IndexedRange<T>[] = [];
    for (const r of ranges) {
      if (r.end <= r.start) continue;
      add.push({ start: r.start, end: r.end, value });
      if (r.end - r.start > this._maxLen) this._maxLen = r.end - r.start;
    }
    // Sort only the new ranges (stable: equal starts keep their order) and merge them in after the
    // ranges already there with the same start, as one insert after another would: re-sorting the
    // whole index per scatterlist was a quarter of the soak (bench/RESULTS.md, session 9).
    add.sort((a, b) => a.start - b.start);
    const old = this._ranges;
    const merged = new Array<IndexedRange<T>>(old.length + add.length);
    let i = 0;
    let j = 0;
    let k = 0;
    while (i < old.length && j < add.length) {
      if ((old[i] as IndexedRange<T>).start <= (add[j] as IndexedRange<T>).start) merged[k++] = old[i++] as IndexedRange<T>;
      else merged[k++] = add[j++] as IndexedRange<T>;
    }
    while (i < old.length) merged[k++] = old[i++] as IndexedRange<T>;
    while (j < add.length) merged[k++] = add[j++] as IndexedRange<T>;
    this._ranges = merged;
  }

  /** Remove the range starting at `start` inserted for `value` (nothing if there is none). */
  remove(start: number, value: T): void {
    // Equal starts sit together just below _upper(start); find this value's among them.
    for (let i = this._upper(start) - 1; i >= 0 && (this._ranges[i] as IndexedRange<T>).start === start; i--) {
      if ((this._ranges[i] as IndexedRange<T>).value === value) {
        this._ranges.splice(i, 1);
        break;
      }
    }
    if (this._ranges.length === 0) this._maxLen = 0;
  }

  /** Remove every range of `value` among `ranges` (the ranges it was inserted with). */
  removeAll(ranges: readonly { readonly start: number; readonly end: number }[], value: T): void {
    if (ranges.length > BATCH) {
      this._ranges = this._ranges.filter((r) => r.value !== value);
      if (this._ranges.length === 0) this._maxLen = 0;
    } else {
      for (const x of ranges) if (x.end > x.start) this.remove(x.start, value);
    }
  }

  /**
   * The range holding all of [a, b) that `accept` takes, or undefined: the fast path of an access
   * check (no closure is made per call by the caller when `accept` is a stored function).
   */
  covering(a: number, b: number, accept: (value: T) => boolean): IndexedRange<T> | undefined {
    const ranges = this._ranges;
    const floor = b - this._maxLen;
    for (let i = this._upper(a) - 1; i >= 0; i--) {
      const r = ranges[i] as IndexedRange<T>;
      if (r.start < floor) break;
      if (r.end >= b && accept(r.value)) return r;
    }
    return undefined;
  }

  /**
   * Call `visit` for every range overlapping [a, b), in descending start order; stop early when it
   * returns true.
   */
  query(a: number, b: number, visit: (r: IndexedRange<T>) => boolean | void): void {
    const ranges = this._ranges;
    const floor = a - this._maxLen;
    for (let i = this._upper(b - 1) - 1; i >= 0; i--) {
      const r = ranges[i] as IndexedRange<T>;
      if (r.start <= floor) break;
      if (r.end > a && visit(r) === true) return;
    }
  }

  /** Does any range overlap [a, b)? (The quick "no" of a CPU access to unmapped memory.) */
  overlaps(a: number, b: number): boolean {
    const ranges = this._ranges;
    const floor = a - this._maxLen;
    for (let i = this._upper(b - 1) - 1; i >= 0; i--) {
      const r = ranges[i] as IndexedRange<T>;
      if (r.start <= floor) return false;
      if (r.end > a) return true;
    }
    return false;
  }

  /** Append to `out` every range overlapping [a, b) (descending start order); returns how many. */
  collect(a: number, b: number, out: IndexedRange<T>[]): number {
    const ranges = this._ranges;
    const floor = a - this._maxLen;
    let n = 0;
    for (let i = this._upper(b - 1) - 1; i >= 0; i--) {
      const r = ranges[i] as IndexedRange<T>;
      if (r.start <= floor) break;
      if (r.end > a) {
        out.push(r);
        n++;
      }
    }
    return n;
  }

  /** Index of the first range whose start is > `x`. */
  private _upper(x: number): number {
    const ranges = this._ranges;
    let lo = 0;
    let hi = ranges.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((ranges[mid] as IndexedRange<T>).start <= x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
