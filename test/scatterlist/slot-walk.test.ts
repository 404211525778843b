/**
 * The slot-level walk the DMA passes use (src/scatterlist/walk.ts) against the handle API
 * (sg_set_page, sg_dma_address, sg_dma_len, then sg_next and sg_phys) on chained tables with random entries, high page
 * frames and DMA addresses above 4 GiB; and a slot of a segment never allocated reads as zeros.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { GFP_KERNEL, Machine, SgTable, sg_alloc_table, sg_dma_address, sg_dma_len, sg_free_table, sg_next, sg_phys, sg_set_page, type Scatterlist } from '../../src/index.ts';
import { nextSlot, slotDmaAddress, slotPhys, slotWord } from '../../src/scatterlist/walk.ts';
import { SEG_SLOTS, W_DMA_LEN, W_LENGTH } from '../../src/scatterlist/slots.ts';

describe('slot walk', () => {
  it('reads what the handles read, across chain links', () => {
    const m = new Machine({ memory: '64M' });
    // The entries come from a seed (shrinking a 400-entry array of records took minutes).
    fc.assert(fc.property(fc.integer({ min: 1, max: 400 }), fc.integer(), (n, seed) => {
        let x = seed | 1;
        const rnd = (span: number): number => {
          x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
          return Math.floor(((x >>> 0) / 2 ** 32) * span);
        };
        const ents = Array.from({ length: n }, () => ({
          pfn: rnd(2) === 0 ? rnd(2 ** 20) : rnd(2 ** 20) * 2 ** 20 + rnd(2 ** 20),
          off: rnd(4096),
          len: 1 + rnd(2 ** 32 - 1),
          dma: rnd(4) === 0 ? -1 : rnd(2 ** 26) * 2 ** 26 + rnd(2 ** 26),
          dmaLen: rnd(2 ** 32),
        }));
        const sgt = new SgTable(m);
        expect(sg_alloc_table(sgt, ents.length, GFP_KERNEL)).toBe(0);
        let sg: Scatterlist | null = sgt.sgl;
        for (const e of ents) {
          const s = sg as Scatterlist;
          sg_set_page(s, e.pfn, e.len, e.off);
          sg_dma_address(s, e.dma);
          sg_dma_len(s, e.dmaLen);
          sg = sg_next(s);
        }
        expect(sg).toBeNull();
        const segs = (sgt.sgl as Scatterlist).arena.segs;
        let slot = (sgt.sgl as Scatterlist).slot;
        sg = sgt.sgl;
        for (let i = 0; i < ents.length; i++) {
          const s = sg as Scatterlist;
          expect(slot).toBe(s.slot);
          const e = ents[i] as (typeof ents)[number];
          // Against what was stored (the handles may read through these same helpers).
          expect(slotPhys(segs, slot)).toBe(e.pfn * 4096 + e.off);
          expect(slotPhys(segs, slot)).toBe(sg_phys(s));
          expect(slotWord(segs, slot, W_LENGTH)).toBe(e.len);
          expect(slotDmaAddress(segs, slot)).toBe(e.dma);
          expect(slotWord(segs, slot, W_DMA_LEN)).toBe(e.dmaLen);
          slot = nextSlot(segs, slot);
          sg = sg_next(s);
        }
        expect(slot).toBe(-1);
        sg_free_table(sgt);
      }), { numRuns: 60 });
  });

  it('reads a slot of a segment never allocated as zeros', () => {
    const m = new Machine({ memory: '64M' });
    const sgt = new SgTable(m);
    expect(sg_alloc_table(sgt, 4, GFP_KERNEL)).toBe(0);
    const segs = (sgt.sgl as Scatterlist).arena.segs;
    const far = (segs.length + 3) * SEG_SLOTS + 5;
    expect(slotWord(segs, far, W_LENGTH)).toBe(0);
    expect(slotPhys(segs, far)).toBe(0);
    expect(slotDmaAddress(segs, far)).toBe(0);
    // Flags of zero: not the end, no chain link, so the walk steps to the next slot.
    expect(nextSlot(segs, far)).toBe(far + 1);
    sg_free_table(sgt);
  });
});
