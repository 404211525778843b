/**
 * dma-debug walks a machine's scatterlists through one reused view of the list (no handle per
 * entry). A walk started from inside another (here a kernel-log listener that maps and unmaps a
 * second list when dma-debug reports on the first) must get its own view: the outer walk still
 * records an entry for each of its segments, in order, and its unmap then finds every one.
 * Planted: the nested walk sharing the view fails it (the outer map records the inner list's
 * entries, or stops short, and its unmap reports memory it never mapped).
 */
import { describe, expect, it } from 'vitest';
import { DMA_TO_DEVICE, GFP_KERNEL, Machine, SgTable, dma_map_sgtable, dma_unmap_sgtable, sg_alloc_table_from_pages_segment } from '../../../src/index.ts';

describe('dma-debug scatterlist walks', () => {
  it('a walk nested in another (from a log listener) leaves the outer walk on its own list', () => {
    const m = new Machine({ memory: '1G', swiotlb: false });
    const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64, maxSegmentSize: 4096 });
    m.pci.bind(dev, { name: 'drv', probe() {} });
    const p = m.mm.alloc_pages(GFP_KERNEL, 4) as number;
    const q = m.mm.alloc_pages(GFP_KERNEL, 4) as number;
    // Outer: an 8 KiB entry (two contiguous pages: over the device's 4 KiB, so dma-debug reports
    // it while walking), then two 4 KiB ones. Inner: two 4 KiB entries.
    const outer = new SgTable(m);
    expect(sg_alloc_table_from_pages_segment(outer, [p, p + 1, p + 3, p + 5], 4, 0, 4 * 4096, 65536, GFP_KERNEL)).toBe(0);
    expect(outer.orig_nents).toBe(3);
    const inner = new SgTable(m);
    expect(sg_alloc_table_from_pages_segment(inner, [q, q + 2], 2, 0, 2 * 4096, 65536, GFP_KERNEL)).toBe(0);
    let nested = 0;
    m.klog.onMessage((msg) => {
      if (nested > 0 || !msg.message.includes('longer than device claims')) return;
      nested++;
      expect(dma_map_sgtable(dev, inner, DMA_TO_DEVICE)).toBe(0);
      dma_unmap_sgtable(dev, inner, DMA_TO_DEVICE);
    });
    const errorsBefore = m.dmaDebug!.errors.length;
    expect(dma_map_sgtable(dev, outer, DMA_TO_DEVICE)).toBe(0);
    expect(nested).toBe(1);
    // One entry per outer segment, at the outer list's pages (the inner list's are gone).
    const phys = m.dmaDebug!.entries(dev).map((e) => e.paddr).sort((a, b) => a - b);
    expect(phys).toEqual([p * 4096, (p + 3) * 4096, (p + 5) * 4096]);
    dma_unmap_sgtable(dev, outer, DMA_TO_DEVICE);
    // The only report is the planted over-long segment: the unmap found all it mapped.
    expect(m.dmaDebug!.errors.slice(errorsBefore).map((e) => e.message).filter((s) => !s.includes('longer than device claims'))).toEqual([]);
    expect(m.dmaDebug!.entries(dev)).toEqual([]);
  });
});
