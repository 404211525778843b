/**
 * @module dma/debug/cacheline
 * The active-cacheline table (the kernel's radix tree `dma_active_cacheline`): each claimed line
 * remembers the entry slot that first claimed it and counts further claims in three tag bits, so
 * the count saturates at 7 and a saturated line is released one unmap early.
 */
import { ACTIVE_CACHELINE_MAX_OVERLAP } from './constants.ts';
import { ChurnMap } from '../../core/churn-map.ts';

/** A line's value holds its overlap count below this (ACTIVE_CACHELINE_MAX_OVERLAP is 7). */
const OVERLAP_SPAN = 8;

/** `insert` result: the line was free and is now claimed. */
export const CLAIMED = 0;
/** `insert` result: the line table could not allocate (-ENOMEM). */
export const CLAIM_ENOMEM = -1;

/**
 * Active cachelines of one machine.
 * @example
 * const t = new CachelineTable();
 * t.insert(0x40, 3, () => false); // CLAIMED
 * t.insert(0x40, 5, () => false); // 1: the line was held, one overlap now
 * t.owner(0x40)                   // 3
 */
export class CachelineTable {
  // INVARIANT: every key is a claimed cacheline number; its value is slot * 8 + overlap: the entry
  //   slot that first claimed it (kept after that entry is freed, until the line is released) and
  //   the count of further claims, in [0, ACTIVE_CACHELINE_MAX_OVERLAP]. One map, not one per field:
  //   every DMA_FROM_DEVICE map and unmap touches it (48 live ring buffers: the two maps were 30%
  //   of a map+unmap; bench/RESULTS.md, session 10). A ChurnMap: a ring's buffers claim and release
  //   the same lines over and over, the pattern a Map slows down on (see core/churn-map).
  private readonly _lines = new ChurnMap<number, number>();

  /** Claimed lines. */
  get size(): number {
    return this._lines.size;
  }

  /**
   * `active_cacheline_insert` for a line number. A free line is claimed by `slot` unless
   * `allocFails()` (asked only for a free line, the model of a radix node allocation) says the
   * insert runs out of memory. A held line gets one more overlap (saturating at 7).
   * @returns CLAIMED, CLAIM_ENOMEM, or for a held line the overlap count it reached (1..8; 8 means
   *   the counter overflowed and stayed at 7)
   */
  insert(cln: number, slot: number, allocFails: () => boolean): number {
    const v = this._lines.get(cln);
    if (v === undefined) {
      if (allocFails()) return CLAIM_ENOMEM;
      this._lines.set(cln, slot * OVERLAP_SPAN);
      return CLAIMED;
    }
    const n = (v % OVERLAP_SPAN) + 1;
    if (n <= ACTIVE_CACHELINE_MAX_OVERLAP) this._lines.set(cln, v + 1);
    return n;
  }

  /** `active_cacheline_remove`: one claim fewer; a line whose count would go below 0 is released. */
  remove(cln: number): void {
    const v = this._lines.get(cln);
    if (v === undefined) return;
    if (v % OVERLAP_SPAN === 0) this._lines.delete(cln);
    else this._lines.set(cln, v - 1);
  }

  /** The slot stored for a held line (the first claimant's, possibly reused since), or undefined. */
  owner(cln: number): number | undefined {
    const v = this._lines.get(cln);
    return v === undefined ? undefined : Math.floor(v / OVERLAP_SPAN);
  }

  /** The overlap count of a held line, or undefined. */
  overlap(cln: number): number | undefined {
    const v = this._lines.get(cln);
    return v === undefined ? undefined : v % OVERLAP_SPAN;
  }

  /** Every held line with its stored slot and overlap count, in line order (the radix tree's). */
  *lines(): Generator<{ cln: number; slot: number; overlap: number }, void, undefined> {
    const held = [...this._lines.entries()].sort((a, b) => a[0] - b[0]);
    for (const [cln, v] of held) yield { cln, slot: Math.floor(v / OVERLAP_SPAN), overlap: v % OVERLAP_SPAN };
  }
}
