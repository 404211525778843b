/**
 * Issue 19, item 11: a table mapped by an untrusted device (bounced through swiotlb) keeps
 * SG_DMA_SWIOTLB after the unmap, as in the kernel; mapping it again for a trusted device makes the
 * next unmap take the bounce path. The audit names the table while it is mapped.
 */
import { describe, expect, it } from 'vitest';
import {
  DMA_TO_DEVICE, GFP_KERNEL, Machine, SgTable, dma_map_sgtable, dma_unmap_sgtable, sg_alloc_table_from_pages_segment,
  sg_dma_is_swiotlb, sg_free_table,
} from '../../../src/index.ts';

function rig() {
  const m = new Machine({ memory: '8G', iommu: { mode: 'strict' } });
  const untrusted = m.pci.addDevice({ name: 'tbt', dmaMask: 64, untrusted: true });
  const trusted = m.pci.addDevice({ name: 'nvme', dmaMask: 64 });
  m.pci.bind(untrusted, { name: 'u', probe() {} });
  m.pci.bind(trusted, { name: 't', probe() {} });
  const area = m.mm.vmalloc(5 * 4096)!;
  const sgt = new SgTable(m);
  // Unaligned start and end: an untrusted device bounces it.
  expect(sg_alloc_table_from_pages_segment(sgt, area.pages, area.nrPages, 100, 5 * 4096 - 200, 65536, GFP_KERNEL)).toBe(0);
  return { m, untrusted, trusted, sgt };
}

describe('SG_DMA_SWIOTLB left on a reused table', () => {
  it('stays set after the untrusted unmap (as in the kernel); the audit names the trusted mapping that inherits it', () => {
    const { m, untrusted, trusted, sgt } = rig();
    expect(dma_map_sgtable(untrusted, sgt, DMA_TO_DEVICE)).toBe(0);
    expect(sg_dma_is_swiotlb(sgt.sgl!)).toBe(true);
    dma_unmap_sgtable(untrusted, sgt, DMA_TO_DEVICE);
    expect(sg_dma_is_swiotlb(sgt.sgl!)).toBe(true);
    expect(m.audit()).toEqual([]);
    expect(dma_map_sgtable(trusted, sgt, DMA_TO_DEVICE)).toBe(0);
    expect(m.audit().map((v) => v.check)).toEqual(['sg swiotlb flag']);
    expect(m.audit()[0]?.message).toMatch(/dma_map_sgtable\(DMA_TO_DEVICE\) of 20280 bytes .* by nvme .*SG_DMA_SWIOTLB is still set/);
    dma_unmap_sgtable(trusted, sgt, DMA_TO_DEVICE);
    sg_free_table(sgt);
  });

  it('a fresh table for the trusted device: nothing to report', () => {
    const { m, trusted, sgt } = rig();
    expect(dma_map_sgtable(trusted, sgt, DMA_TO_DEVICE)).toBe(0);
    expect(m.audit()).toEqual([]);
    dma_unmap_sgtable(trusted, sgt, DMA_TO_DEVICE);
    expect(m.audit()).toEqual([]);
  });
});
