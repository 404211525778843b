/**
 * @module dma/debug/cacheline
 * The active-cacheline table (the kernel's radix tree `dma_active_cacheline`): each claimed line
 * remembers the entry slot that first claimed it and counts further claims in three tag bits, so
 * the count saturates at 7 and a saturated line is released one unmap early.
 */
import { ACTIVE_CACHELINE_MAX_OVERLAP } from './constants.ts';

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
  // INVARIANT: every key is a claimed cacheline number; _slot maps it to the entry slot that first
  //   claimed it (kept after that entry is freed, until the line is released), _overlap to the
  //   count of further claims, in [0, ACTIVE_CACHELINE_MAX_OVERLAP]; both maps have the same keys.
  private readonly _slot = new Map<number, number>();
  private readonly _overlap = new Map<number, number>();

  /** Claimed lines. */
  get size(): number {
    return this._slot.size;
  }

  /**
   * `active_cacheline_insert` for a line number. A free line is claimed by `slot` unless
   * `allocFails()` (asked only for a free line, the model of a radix node allocation) says the
   * insert runs out of memory. A held line gets one more overlap (saturating at 7).
   * @returns CLAIMED, CLAIM_ENOMEM, or for a held line the overlap count it reached (1..8; 8 means
   *   the counter overflowed and stayed at 7)
   */
  insert(cln: number, slot: number, allocFails: () => boolean): number {
    const held = this._overlap.get(cln);
    if (held === undefined) {
      if (allocFails()) return CLAIM_ENOMEM;
      this._slot.set(cln, slot);
      this._overlap.set(cln, 0);
      return CLAIMED;
    }
    const n = held + 1;
    if (n <= ACTIVE_CACHELINE_MAX_OVERLAP) this._overlap.set(cln, n);
    return n;
  }

  /** `active_cacheline_remove`: one claim fewer; a line whose count would go below 0 is released. */
  remove(cln: number): void {
    const n = (this._overlap.get(cln) ?? 0) - 1;
    if (n < 0) {
      this._slot.delete(cln);
      this._overlap.delete(cln);
    } else this._overlap.set(cln, n);
  }

  /** The slot stored for a held line (the first claimant's, possibly reused since), or undefined. */
  owner(cln: number): number | undefined {
    return this._slot.get(cln);
  }

  /** The overlap count of a held line, or undefined. */
  overlap(cln: number): number | undefined {
    return this._overlap.get(cln);
  }

  /** Every held line with its stored slot and overlap count, in claim order. */
  *lines(): Generator<{ cln: number; slot: number; overlap: number }, void, undefined> {
    for (const [cln, slot] of this._slot) yield { cln, slot, overlap: this._overlap.get(cln) ?? 0 };
  }
}
