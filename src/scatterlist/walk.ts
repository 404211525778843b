/**
 * @module scatterlist/walk
 * The DMA mapping passes' walk over a list: slot numbers and the words of `struct scatterlist`
 * read and written in place, with no entry handle made per step. `sg_next` on handles allocates one
 * or two handles and checks types at every step: a 64 KiB 16-entry list mapped and unmapped through
 * the IOMMU walked its entries about ten times that way (bench/RESULTS.md, session 10).
 * Same rules as sg_next: stop after the END entry, follow one chain link; a slot of a segment never
 * allocated reads as zeros, as through a handle.
 *
 * @example
 * const segs = sgl.arena.segs;
 * for (let slot = sgl.slot, i = 0; slot >= 0 && i < nents; slot = nextSlot(segs, slot), i++) total += slotWord(segs, slot, W_LENGTH);
 */
import * as C from '../mm/constants.ts';
import * as S from './slots.ts';

// The layout constants bound here, not read through the imports: V8 does not fold an imported
// binding into optimized code (each use loads it and checks it is initialised), but it folds a
// module's own const. A 16-entry walk reading lengths: 189 -> 106 ns (.scratch/walk16b.mjs).
const PAGE_SIZE = C.PAGE_SIZE;
const PFN_HI_SHIFT = S.PFN_HI_SHIFT;
const SEG_MASK = S.SEG_MASK;
const SEG_SHIFT = S.SEG_SHIFT;
const SG_CHAIN = S.SG_CHAIN;
const SG_END = S.SG_END;
const SLOT_WORDS = S.SLOT_WORDS;
const W_DMA_HI = S.W_DMA_HI;
const W_DMA_LO = S.W_DMA_LO;
const W_FLAGS = S.W_FLAGS;
const W_OFFSET = S.W_OFFSET;
const W_PAGE = S.W_PAGE;

const TWO32 = 2 ** 32;

/** Word `field` of `slot` (0 for a slot of a segment never allocated). */
export function slotWord(segs: readonly Uint32Array[], slot: number, field: number): number {
  // A segment holds whole slots, so only the segment can be missing, never the word.
  const seg = segs[slot >>> SEG_SHIFT];
  return seg === undefined ? 0 : (seg[(slot & SEG_MASK) * SLOT_WORDS + field] as number);
}

/** Store `v` (a u32) in word `field` of `slot`. */
export function setSlotWord(segs: readonly Uint32Array[], slot: number, field: number, v: number): void {
  (segs[slot >>> SEG_SHIFT] as Uint32Array)[(slot & SEG_MASK) * SLOT_WORDS + field] = v;
}

/** sg_next by slot: the next data entry's slot (following one chain link), or -1 after the END entry. */
export function nextSlot(segs: readonly Uint32Array[], slot: number): number {
  if ((slotWord(segs, slot, W_FLAGS) & SG_END) !== 0) return -1;
  const next = slot + 1;
  const flags = slotWord(segs, next, W_FLAGS);
  return (flags & SG_CHAIN) !== 0 ? slotWord(segs, next, W_PAGE) : next;
}

/** sg_page by slot: the page frame (its low word, and bits 32..39 from the flags word). */
export function slotPfn(segs: readonly Uint32Array[], slot: number): number {
  return slotWord(segs, slot, W_PAGE) + (slotWord(segs, slot, W_FLAGS) >>> PFN_HI_SHIFT) * TWO32;
}

/** sg_phys by slot: the physical address of the entry's first byte. */
export function slotPhys(segs: readonly Uint32Array[], slot: number): number {
  return slotPfn(segs, slot) * PAGE_SIZE + slotWord(segs, slot, W_OFFSET);
}

/** sg_dma_address by slot (DMA_MAPPING_ERROR, -1, when both halves are all ones). */
export function slotDmaAddress(segs: readonly Uint32Array[], slot: number): number {
  const lo = slotWord(segs, slot, W_DMA_LO);
  const hi = slotWord(segs, slot, W_DMA_HI);
  return hi === 0xffffffff && lo === 0xffffffff ? -1 : hi * TWO32 + lo;
}

/** Store sg_dma_address by slot (-1 is DMA_MAPPING_ERROR). */
export function setSlotDmaAddress(segs: readonly Uint32Array[], slot: number, v: number): void {
  if (v === -1) {
    setSlotWord(segs, slot, W_DMA_LO, 0xffffffff);
    setSlotWord(segs, slot, W_DMA_HI, 0xffffffff);
    return;
  }
  // Halves by a division, not v % 2^32: V8's floating-point remainder is a runtime call.
  const hi = Math.floor(v / TWO32);
  setSlotWord(segs, slot, W_DMA_LO, v - hi * TWO32);
  setSlotWord(segs, slot, W_DMA_HI, hi);
}
