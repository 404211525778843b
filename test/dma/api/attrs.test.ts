/**
 * DMA attributes with kernel semantics: every DMA_ATTR_* exported with its bit, REQUIRE_COHERENT
 * failing where mapping.c, dma-direct and dma-iommu fail it, and dma-debug's cache-clean
 * attributes reaching the overlap check through the DMA API.
 */
import { describe, expect, it } from 'vitest';
import * as dmasim from '../../../src/index.ts';
import {
  DMA_ATTR_DEBUGGING_IGNORE_CACHELINES, DMA_ATTR_REQUIRE_COHERENT, DMA_FROM_DEVICE, DMA_MAPPING_ERROR, DMA_TO_DEVICE,
  EOPNOTSUPP, GFP_KERNEL, Machine, SgTable, type MachineOptions, dma_map_sg_attrs, dma_map_sgtable, dma_map_single_attrs,
  dma_map_page_attrs, dma_mapping_error, dma_unmap_page_attrs, dma_unmap_single_attrs, sg_alloc_table, sg_free_table, sg_set_page,
} from '../../../src/index.ts';

describe('DMA_ATTR_* constants', () => {
  it('every attribute of include/linux/dma-mapping.h is exported with its bit', () => {
    const want: Record<string, number> = {
      DMA_ATTR_WEAK_ORDERING: 1 << 1, DMA_ATTR_WRITE_COMBINE: 1 << 2, DMA_ATTR_NO_KERNEL_MAPPING: 1 << 4,
      DMA_ATTR_SKIP_CPU_SYNC: 1 << 5, DMA_ATTR_FORCE_CONTIGUOUS: 1 << 6, DMA_ATTR_ALLOC_SINGLE_PAGES: 1 << 7,
      DMA_ATTR_NO_WARN: 1 << 8, DMA_ATTR_PRIVILEGED: 1 << 9, DMA_ATTR_MMIO: 1 << 10,
      DMA_ATTR_DEBUGGING_IGNORE_CACHELINES: 1 << 11, DMA_ATTR_REQUIRE_COHERENT: 1 << 12, DMA_ATTR_CC_SHARED: 1 << 13,
    };
    const exported = Object.fromEntries(Object.entries(dmasim).filter(([k]) => k.startsWith('DMA_ATTR_')));
    expect(exported).toEqual(want);
  });
});

function rig(opts: Partial<MachineOptions>, dev: { coherent?: boolean; untrusted?: boolean; dmaMask?: number } = {}) {
  const m = new Machine({ memory: '1G', ...opts });
  const d = m.pci.addDevice({ name: '0000:03:00.0', dmaMask: 64, coherentDmaMask: 64, ...dev });
  m.pci.bind(d, { name: 'rdma', probe() {} });
  return { m, dev: d, buf: m.mm.kmalloc(4096) as number };
}

describe('DMA_ATTR_REQUIRE_COHERENT', () => {
  it('a non-coherent device: dma_map_* gives DMA_MAPPING_ERROR, dma_map_sg 0, dma_map_sgtable -EOPNOTSUPP; nothing recorded', () => {
    const { m, dev, buf } = rig({ arch: 'arm64' });
    expect(dev.dma_coherent).toBe(false);
    expect(dma_map_single_attrs(dev, buf, 4096, DMA_FROM_DEVICE, DMA_ATTR_REQUIRE_COHERENT)).toBe(DMA_MAPPING_ERROR);
    const sgt = new SgTable(m);
    expect(sg_alloc_table(sgt, 1, GFP_KERNEL)).toBe(0);
    sg_set_page(sgt.sgl!, m.mm.virt_to_phys(buf) / 4096, 4096, 0);
    expect(dma_map_sg_attrs(dev, sgt.sgl, 1, DMA_FROM_DEVICE, DMA_ATTR_REQUIRE_COHERENT)).toBe(0);
    expect(dma_map_sgtable(dev, sgt, DMA_FROM_DEVICE, DMA_ATTR_REQUIRE_COHERENT)).toBe(-EOPNOTSUPP);
    expect(sgt.nents).toBe(1);
    expect(m.dma.ledger.entries()).toEqual([]);
    expect(m.dmaDebug?.entryCount()).toBe(0);
    expect(m.klog.warnings()).toEqual([]);
    // Without the attribute the same mapping works (the CPU syncs the caches).
    const a = dma_map_single_attrs(dev, buf, 4096, DMA_FROM_DEVICE, 0);
    expect(dma_mapping_error(dev, a)).toBe(0);
    dma_unmap_single_attrs(dev, a, 4096, DMA_FROM_DEVICE, 0);
    sg_free_table(sgt);
  });

  it('swiotlb=force: no bounce, DMA_MAPPING_ERROR, no slot used', () => {
    const { m, dev, buf } = rig({ swiotlb: { force: true } });
    expect(dma_map_single_attrs(dev, buf, 4096, DMA_TO_DEVICE, DMA_ATTR_REQUIRE_COHERENT)).toBe(DMA_MAPPING_ERROR);
    expect(m.swiotlb?.findMapping(0) ?? null).toBeNull();
    expect(m.audit()).toEqual([]);
    const ok = dma_map_single_attrs(dev, buf, 4096, DMA_TO_DEVICE, 0);
    expect(m.swiotlb?.is_swiotlb_buffer(ok)).toBe(true);
    dma_unmap_single_attrs(dev, ok, 4096, DMA_TO_DEVICE, 0);
  });

  it('dma-direct, a buffer the device cannot reach: the overflow WARN instead of a bounce', () => {
    const m = new Machine({ memory: '8G' });
    const dev = m.pci.addDevice({ name: '0000:03:00.0', dmaMask: 32 });
    const pfn = m.mm.alloc_pages(GFP_KERNEL, 0)!;
    expect(pfn * 4096).toBeGreaterThanOrEqual(2 ** 32);
    expect(dma_map_page_attrs(dev, pfn, 0, 4096, DMA_TO_DEVICE, DMA_ATTR_REQUIRE_COHERENT)).toBe(DMA_MAPPING_ERROR);
    expect(m.klog.warnings().map((w) => w.message)).toEqual([expect.stringMatching(/DMA addr 0x0*[0-9a-f]+\+4096 overflow \(mask ffffffff/)]);
    const bounced = dma_map_page_attrs(dev, pfn, 0, 4096, DMA_TO_DEVICE, 0);
    expect(m.swiotlb?.is_swiotlb_buffer(bounced)).toBe(true);
    dma_unmap_page_attrs(dev, bounced, 4096, DMA_TO_DEVICE, 0);
  });

  it('an untrusted device behind the IOMMU: an unaligned buffer would bounce, so it fails; a whole page maps', () => {
    const { m, dev, buf } = rig({ iommu: { mode: 'strict' }, memory: '8G' }, { untrusted: true });
    expect(dma_map_single_attrs(dev, buf + 64, 512, DMA_TO_DEVICE, DMA_ATTR_REQUIRE_COHERENT)).toBe(DMA_MAPPING_ERROR);
    const a = dma_map_single_attrs(dev, buf, 4096, DMA_TO_DEVICE, DMA_ATTR_REQUIRE_COHERENT);
    expect(dma_mapping_error(dev, a)).toBe(0);
    dma_unmap_single_attrs(dev, a, 4096, DMA_TO_DEVICE, DMA_ATTR_REQUIRE_COHERENT);
    expect(m.audit()).toEqual([]);
  });
});

describe('dma-debug cache-clean attributes through the DMA API (arm64: 64-byte L1 lines tracked)', () => {
  const overlap = (attrsA: number, attrsB: number): string[] => {
    const m = new Machine({ memory: '1G', arch: 'arm64' });
    // A coherent device: DMA_ATTR_REQUIRE_COHERENT would fail the mapping on a non-coherent one.
    const dev = m.platform.addDevice({ name: 'dma0', dmaMask: 32, coherent: true });
    m.platform.bind(dev, { name: 'drv', probe() {} });
    const a = m.mm.kmalloc(32) as number;
    const b = m.mm.kmalloc(32) as number;
    expect(Math.floor(a / 64)).toBe(Math.floor(b / 64)); // one tracked cache line
    dma_mapping_error(dev, dma_map_single_attrs(dev, a, 32, DMA_FROM_DEVICE, attrsA));
    dma_mapping_error(dev, dma_map_single_attrs(dev, b, 32, DMA_FROM_DEVICE, attrsB));
    return m.dmaDebug!.errors.map((e) => e.message);
  };
  it('two mappings sharing a cache line are reported unless both are marked clean', () => {
    expect(overlap(0, 0)).toEqual(["cacheline tracking EEXIST, overlapping mappings aren't supported\n"]);
    expect(overlap(DMA_ATTR_DEBUGGING_IGNORE_CACHELINES, 0)).toHaveLength(1);
    expect(overlap(0, DMA_ATTR_REQUIRE_COHERENT)).toHaveLength(1);
    expect(overlap(DMA_ATTR_DEBUGGING_IGNORE_CACHELINES, DMA_ATTR_DEBUGGING_IGNORE_CACHELINES)).toEqual([]);
    expect(overlap(DMA_ATTR_REQUIRE_COHERENT, DMA_ATTR_DEBUGGING_IGNORE_CACHELINES)).toEqual([]);
  });
});

describe('PCI segment boundary (pci_device_add: 0xffffffff)', () => {
  const crossing = (bus: 'pci' | 'platform'): string[] => {
    const m = new Machine({ memory: '8G', swiotlb: false });
    const dev = m[bus].addDevice({ name: 'nic0', dmaMask: 64 });
    m[bus].bind(dev, { name: 'nic', probe() {} });
    const sgt = new SgTable(m);
    sg_alloc_table(sgt, 1, GFP_KERNEL);
    sg_set_page(sgt.sgl!, 2 ** 20 - 1, 8192, 0); // the last page below 4 GiB and the first above
    expect(dma_map_sgtable(dev, sgt, DMA_TO_DEVICE)).toBe(0);
    return m.dmaDebug!.errors.map((e) => e.message);
  };
  it('a PCI driver mapping a segment across 4 GiB is reported by dma-debug; a platform device has no boundary', () => {
    expect(crossing('pci')).toEqual([expect.stringMatching(/^mapping sg segment across boundary \[start=0x0*fffff000\] \[end=0x0*100000fff\] \[boundary=0x0*ffffffff\]/)]);
    expect(crossing('platform')).toEqual([]);
  });
});
