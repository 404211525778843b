/**
 * @module dma/debug/sg
 * The scatterlist as dma-debug walks it (`for_each_sg`): either an array of entries or a chain
 * given by its first entry and `sg_next`. A `Scatterlist` handle from src/scatterlist is an entry
 * as it is: `{ first: sgl, next: sg_next }` is the whole adapter.
 */
import { PAGE_SIZE } from '../../core/page.ts';

/** What dma-debug reads from one `struct scatterlist`. */
export interface DebugSgEntry {
  /** `sg_page()`, as a pfn. */
  readonly page: number;
  readonly offset: number;
  /** CPU length (`sg->length`). */
  readonly length: number;
  /** `sg_dma_address()`. */
  readonly dma_address: number;
  /** `sg_dma_len()`. */
  readonly dma_length: number;
}

/**
 * A chained list: its first entry and the `sg_next` that walks it.
 * @example const chain: DebugSgChain = { first: sgt.sgl, next: sg_next };
 */
export interface DebugSgChain {
  readonly first: DebugSgEntry | null;
  next(sg: DebugSgEntry): DebugSgEntry | null;
}

/** A scatterlist for the sg hooks. */
export type DebugSgList = ArrayLike<DebugSgEntry> | DebugSgChain;

/**
 * `sg_phys()`: the physical address of an entry's data.
 * @example sgPhys({ page: 2, offset: 0x10, length: 0, dma_address: 0, dma_length: 0 }) // 0x2010
 */
export function sgPhys(sg: DebugSgEntry): number {
  return sg.page * PAGE_SIZE + sg.offset;
}

/**
 * `for_each_sg(list, s, n, i)`: call `fn(s, i)` for the first `n` entries, stopping early at the end
 * of the list or when `fn` returns false.
 * @example forEachSg([a, b, c], 2, (s, i) => { seen.push(i); }) // visits 0 and 1
 */
export function forEachSg(list: DebugSgList, n: number, fn: (sg: DebugSgEntry, i: number) => boolean | void): void {
  if ('first' in list) {
    let s = list.first;
    for (let i = 0; i < n && s !== null; i++) {
      if (fn(s, i) === false) return;
      s = list.next(s);
    }
    return;
  }
  const len = Math.min(n, list.length);
  for (let i = 0; i < len; i++) {
    if (fn(list[i] as DebugSgEntry, i) === false) return;
  }
}
