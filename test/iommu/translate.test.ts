/**
 * The device-side walk (iommu/translate.ts) on its own: ranges across leaves, permission and
 * unmapped faults at the first bad byte, the IOTLB's hits, and the stale entry that outlives an
 * unmap until the IOTLB is invalidated (what a lazy domain's flush queue leaves open).
 */
import { describe, expect, it } from 'vitest';
import { createContext } from '../../src/core/context.ts';
import { GFP_KERNEL } from '../../src/mm/gfp.ts';
import { Iotlb } from '../../src/iommu/iotlb.ts';
import { IoPageTable } from '../../src/iommu/pgtable.ts';
import { SimpleTablePageAllocator } from '../../src/iommu/pgtable-alloc.ts';
import { IOMMU_READ, IOMMU_WRITE } from '../../src/iommu/pgtable-prot.ts';
import { TranslateResult, translate } from '../../src/iommu/translate.ts';

const K4 = 4096;
const RW = IOMMU_READ | IOMMU_WRITE;

function target(iotlb: Iotlb | null = null) {
  const ctx = createContext('translate-test');
  const pgtable = new IoPageTable({ ias: 48 }, new SimpleTablePageAllocator(), { klog: ctx.klog, faults: ctx.faults });
  return { pgtable, iotlb, asid: 1 };
}

describe('translate', () => {
  it('an access across two leaves gives one range per physical run, in order', () => {
    const t = target();
    t.pgtable.map_pages(0x10000, 0x80000, K4, 1, RW, GFP_KERNEL);
    t.pgtable.map_pages(0x11000, 0x40000, K4, 1, RW, GFP_KERNEL);
    const r = translate(t, 0x10800, 0x1000, 'read');
    expect(r.ok).toBe(true);
    expect(r.ranges()).toEqual([{ phys: 0x80800, len: 0x800 }, { phys: 0x40000, len: 0x800 }]);
    expect(r.bytes).toBe(0x1000);
  });

  it('faults at the first byte with no mapping, or without the permission the access needs', () => {
    const t = target();
    t.pgtable.map_pages(0x10000, 0x80000, K4, 1, IOMMU_READ, GFP_KERNEL);
    expect(translate(t, 0x10000, 16, 'write').fault).toEqual({ iova: 0x10000, access: 'write', reason: 'permission' });
    expect(translate(t, 0x10ff0, 32, 'read').fault).toEqual({ iova: 0x11000, access: 'read', reason: 'unmapped' });
    expect(translate(t, 0x10000, 16, 'read').ok).toBe(true);
  });

  it('reuses the result passed in, growing it for many ranges', () => {
    const t = target();
    for (let i = 0; i < 8; i++) t.pgtable.map_pages(i * K4, (100 - 2 * i) * K4, K4, 1, RW, GFP_KERNEL);
    const out = new TranslateResult();
    expect(translate(t, 0, 8 * K4, 'read', out)).toBe(out);
    expect(out.nranges).toBe(8);
  });

  it('with an IOTLB: a miss fills, a hit follows; after unmap the entry serves stale until invalidated', () => {
    const iotlb = new Iotlb({ capacity: 16 });
    const t = target(iotlb);
    t.pgtable.map_pages(0x20000, 0x90000, K4, 1, RW, GFP_KERNEL);
    expect(translate(t, 0x20000, 8, 'read').misses).toBe(1);
    expect(translate(t, 0x20000, 8, 'read').hits).toBe(1);
    t.pgtable.unmap_pages(0x20000, K4, 1, null);
    const stale = translate(t, 0x20010, 8, 'write');
    expect(stale.ok).toBe(true);
    expect(stale.stale).toBe(true);
    expect(stale.staleIova).toBe(0x20010);
    iotlb.invalidateRange(1, 0x20000, K4);
    expect(translate(t, 0x20010, 8, 'write').fault?.reason).toBe('unmapped');
  });
});

describe('blame on IOVA reuse', () => {
  it('a permission fault on a reused IOVA blames no earlier unmap; an unmapped IOVA still does', async () => {
    const { Machine, DMA_FROM_DEVICE, DMA_TO_DEVICE, GFP_KERNEL: GFP, dma_map_page_attrs, dma_unmap_page_attrs } = await import('../../src/index.ts');
    const m = new Machine({ memory: '256M', iommu: { mode: 'strict' } });
    const dev = m.pci.addDevice({ name: 'nic', dmaMask: 64 });
    m.pci.bind(dev, { name: 'x', probe() {} });
    const pfn = m.mm.alloc_pages(GFP, 0) as number;
    const first = dma_map_page_attrs(dev, pfn, 0, 4096, DMA_FROM_DEVICE, 0);
    dma_unmap_page_attrs(dev, first, 4096, DMA_FROM_DEVICE, 0);
    const again = dma_map_page_attrs(dev, pfn, 0, 4096, DMA_TO_DEVICE, 0);
    expect(again).toBe(first); // the IOVA is reused
    const w = dev.dma.write(again, new Uint8Array(4)); // the device writes a TO_DEVICE buffer
    expect(w.ok === false && w.fault.reason).toBe('permission');
    expect(w.ok === false && w.fault.detail).toBeUndefined();
    dma_unmap_page_attrs(dev, again, 4096, DMA_TO_DEVICE, 0);
    const late = dev.dma.read(again, 4);
    expect(late.ok === false && late.fault.detail).toMatch(/^IOVA unmapped by dma_unmap_page at t=/);
  });
});
