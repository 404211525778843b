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
import { PAGE_SIZE } from '../mm/constants.ts';
import { PFN_HI_SHIFT, SEG_MASK, SEG_SHIFT, SG_CHAIN, SG_END, SLOT_WORDS, W_DMA_HI, W_DMA_LO, W_FLAGS, W_OFFSET, W_PAGE } from './slots.ts';

const TWO32 = 2 ** 32;

/** Word `field` of `slot` (0 for a slot of a segment never allocated). */
export function slotWord(segs: readonly Uint32Array[], slot: number, field: number): number {
  return segs[slot >>> SEG_SHIFT]?.[(slot & SEG_MASK) * SLOT_WORDS + field] ?? 0;
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
