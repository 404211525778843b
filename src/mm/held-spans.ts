/**
 * @module mm/held-spans
 * The fragmenter's periodic layouts as formulas: which pages of a span it holds, computed for any
 * range on demand, so that fragmenting a machine writes nothing per page (a 16 GiB machine at level
 * 0.6 holds two million pages in 131,000 gaps: bench/RESULTS.md, session 11). Page metadata writes
 * a chunk's held pages the first time the chunk is read or written ({@link PageMeta}).
 *
 * In a span of metadata indices [start, end), `count` free blocks of `size` pages start at `first`,
 * `first + 2·size`, `first + 4·size`, ...; every other page of the span is held.
 */

import { EINVAL } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';

/** Fields per span in {@link HeldSpans.data}. */
const FIELDS = 5;

/**
 * A read-only set of periodic spans (built once by the fragmenter, then shared by snapshots).
 * @example
 * const spans = new HeldSpans();
 * spans.add(0, 100, 4, 16, 3); // free blocks [4, 20), [36, 52), [68, 84); the rest held
 * spans.forEachHeld(0, 40, (lo, hi) => console.log(lo, hi)); // 0 4, 20 36
 */
export class HeldSpans {
  // INVARIANT: data holds [start, end, first, size, count] per span; spans are sorted by start and
  //   disjoint; start <= first when count > 0 and first + (2·count - 1)·size <= end; size >= 1.
  // INVARIANT: never changed once the fragmenter has finished adding (snapshots share it).
  readonly data: number[] = [];

  /** Spans added. */
  get length(): number {
    return this.data.length / FIELDS;
  }

  /** End (exclusive) of the last span, or 0. */
  get end(): number {
    return (this.data[this.data.length - FIELDS + 1] as number | undefined) ?? 0;
  }

  /**
   * Visit each span's [start, end).
   * @example spans.forEachSpan((start, end) => mark(start, end));
   */
  forEachSpan(visit: (start: number, end: number) => void): void {
    const d = this.data;
    for (let at = 0; at < d.length; at += FIELDS) visit(d[at] as number, d[at + 1] as number);
  }

  /** Append a span after every span added so far. */
  add(start: number, end: number, first: number, size: number, count: number): void {
    const n = this.data.length;
    if (end <= start || size < 1 || count < 0 || (n > 0 && start < (this.data[n - FIELDS + 1] as number))) {
      throw new KernelError(EINVAL, 'HeldSpans.add', `span [${start}, ${end}) first ${first} size ${size} count ${count} is out of order or empty`, 'start');
    }
    if (count > 0 && (first < start || first + (2 * count - 1) * size > end)) {
      throw new KernelError(EINVAL, 'HeldSpans.add', `${count} blocks of ${size} from ${first} do not fit in [${start}, ${end})`, 'count');
    }
    this.data.push(start, end, first, size, count);
  }

  /** Index of the first span whose end is past `lo` (spans before it end at or before `lo`). */
  private _firstEndingAfter(lo: number): number {
    const d = this.data;
    let a = 0;
    let b = d.length / FIELDS;
    while (a < b) {
      const m = (a + b) >>> 1;
      if ((d[m * FIELDS + 1] as number) <= lo) a = m + 1;
      else b = m;
    }
    return a;
  }

  /**
   * Visit the held runs of [lo, hi), in order, as (from, to) with to > from: maximal within each
   * span, clipped to [lo, hi).
   */
  forEachHeld(lo: number, hi: number, visit: (from: number, to: number) => void): void {
    const d = this.data;
    for (let s = this._firstEndingAfter(lo); s < d.length / FIELDS; s++) {
      const at = s * FIELDS;
      const start = d[at] as number;
      if (start >= hi) return;
      const end = d[at + 1] as number;
      const first = d[at + 2] as number;
      const size = d[at + 3] as number;
      const count = d[at + 4] as number;
      if (count === 0) {
        clip(start, end, lo, hi, visit);
        continue;
      }
      clip(start, first, lo, hi, visit);
      // Gap j follows block j: [first + 2j·size + size, first + 2(j + 1)·size), the last one to end.
      const period = 2 * size;
      for (let j = Math.max(0, Math.floor((lo - first) / period) - 1); j < count; j++) {
        const from = first + j * period + size;
        if (from >= hi) break;
        clip(from, j === count - 1 ? end : from + size, lo, hi, visit);
      }
    }
  }

  /** Is index `i` held by one of the spans? */
  holds(i: number): boolean {
    let held = false;
    this.forEachHeld(i, i + 1, () => { held = true; });
    return held;
  }
}

function clip(from: number, to: number, lo: number, hi: number, visit: (from: number, to: number) => void): void {
  const a = from > lo ? from : lo;
  const b = to < hi ? to : hi;
  if (a < b) visit(a, b);
}
