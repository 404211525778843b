/** @module test/dma/debug/adapter: a real scatterlist (src/scatterlist) walked through the `{ first, next: sg_next }` view. */
import { describe, expect, it } from 'vitest';
import { DMA_FROM_DEVICE } from '../../../src/dma/api/direction.ts';
import { GFP_KERNEL } from '../../../src/mm/gfp.ts';
import { SgTable, sg_alloc_table, sg_free_table, sg_next, sg_set_page, type Scatterlist } from '../../../src/scatterlist/index.ts';
import type { DebugSgChain } from '../../../src/dma/debug/index.ts';
import { rig } from './helpers.ts';

describe('dma-debug with src/scatterlist', () => {
  it('Scatterlist handles are sg entries as they are, and sg_next walks them', () => {
    const r = rig();
    const sgt = new SgTable(r.ctx);
    expect(sg_alloc_table(sgt, 3, GFP_KERNEL)).toBe(0);
    const ents: Scatterlist[] = [];
    for (let s: Scatterlist | null = sgt.sgl; s !== null; s = sg_next(s)) ents.push(s);
    ents.forEach((s, i) => {
      sg_set_page(s, 0x100 + i * 0x10, 4096, 0x80);
      s.dma_address = 0x4000_0000 + i * 0x10000;
      s.dma_length = 4096;
    });
    const chain: DebugSgChain = { first: sgt.sgl, next: sg_next };
    r.dbg.debug_dma_map_sg(r.dev, chain, 3, 3, DMA_FROM_DEVICE);
    expect(r.dbg.entries().map((e) => [e.dev_addr, e.paddr])).toEqual([
      [0x4000_0000, 0x100080], [0x4001_0000, 0x110080], [0x4002_0000, 0x120080],
    ]);
    r.dbg.debug_dma_sync_sg_for_cpu(r.dev, chain, 3, DMA_FROM_DEVICE);
    r.dbg.debug_dma_unmap_sg(r.dev, chain, 3, DMA_FROM_DEVICE);
    expect(r.dbg.error_count).toBe(0);
    expect(r.dbg.entryCount()).toBe(0);
    sg_free_table(sgt);
  });
});
