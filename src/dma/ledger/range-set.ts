/**
 * @module dma/ledger/range-set
 * Sets of half-open ranges kept sorted, disjoint and merged: the bytes of a mapping the CPU owns.
 */
import type { AddrRange } from './entry.ts';

/**
 * `set` with [a, b) added (merged with what it touches); a new array.
 * @example rangeUnion([{ start: 0, end: 4 }], 4, 8) // [{ start: 0, end: 8 }]
 */
export function rangeUnion(set: readonly AddrRange[], a: number, b: number): AddrRange[] {
  if (b <= a) return [...set];
  const out: AddrRange[] = [];
  let start = a;
  let end = b;
  for (const r of set) {
    if (r.end < start || r.start > end) out.push(r);
    else {
      start = Math.min(start, r.start);
      end = Math.max(end, r.end);
    }
  }
  out.push({ start, end });
  return out.sort((x, y) => x.start - y.start);
}

/**
 * `set` with [a, b) taken out; a new array.
 * @example rangeMinus([{ start: 0, end: 8 }], 2, 4) // [{ start: 0, end: 2 }, { start: 4, end: 8 }]
 */
export function rangeMinus(set: readonly AddrRange[], a: number, b: number): AddrRange[] {
  const out: AddrRange[] = [];
  for (const r of set) {
    if (r.end <= a || r.start >= b) out.push(r);
    else {
      if (r.start < a) out.push({ start: r.start, end: a });
      if (r.end > b) out.push({ start: b, end: r.end });
    }
  }
  return out;
}

/** Does one range of `set` hold all of [a, b)? (The set is merged, so one must, if any bytes do.) */
export function rangeCovers(set: readonly AddrRange[], a: number, b: number): boolean {
  for (const r of set) if (r.start <= a && r.end >= b) return true;
  return false;
}

/** Does any range of `set` overlap [a, b)? */
export function rangeOverlaps(set: readonly AddrRange[], a: number, b: number): boolean {
  for (const r of set) if (r.start < b && r.end > a) return true;
  return false;
}
