/**
 * The whole 52-bit physical space: RAM, page metadata, vmalloc and scatterlists at pfns past 2^32,
 * 2^36 and up to 2^40 - 1, and mappings of them through every DMA backend.
 */
import { describe, expect, it } from 'vitest';
import {
  DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE, EINVAL, dma_map_resource, dma_unmap_resource, GFP_KERNEL, KernelError, Machine, SgTable, auditMm,
  dma_map_page, dma_map_sgtable, dma_unmap_page, dma_unmap_sgtable, sg_alloc_table, sg_alloc_table_from_pages_segment,
  sg_assign_page, sg_chain, sg_chain_ptr, sg_dma_address, sg_dma_is_swiotlb, sg_dma_mark_bus_address, sg_dma_mark_swiotlb,
  sg_free_table, sg_is_chain, sg_page, sg_phys, sg_set_page, type MachineOptions,
} from '../../src/index.ts';

const P = 4096;
const T = 2 ** 40; // pfn limit: 2^52 bytes

/** 1 GiB at 0 and `highSize` bytes ending at `top` (a byte address). */
function highMachine(top: number, opts: Partial<MachineOptions> = {}, highSize = 2 ** 28): Machine {
  return new Machine({ memory: [{ start: 0, size: '1G' }, { start: top - highSize, size: highSize }], ...opts });
}

describe('RAM anywhere below 2^52', () => {
  for (const top of [2 ** 32 * P + 2 ** 28, 2 ** 36 * P + 2 ** 28, T * P]) {
    it(`RAM ending at 0x${top.toString(16)}: the page allocator hands out its pages, metadata covers RAM only, the audit is clean`, () => {
      const m = highMachine(top);
      expect(m.mm.totalPages).toBe((2 ** 30 + 2 ** 28) / P - 0); // low reserve is counted as present RAM
      // ZONE_NORMAL holds only the high range: GFP_KERNEL allocations land there.
      const pfn = m.mm.alloc_pages(GFP_KERNEL, 3)!;
      expect(pfn).toBeGreaterThanOrEqual((top - 2 ** 28) / P);
      expect(pfn + 8).toBeLessThanOrEqual(top / P);
      m.mm.writePhys(pfn * P + 4093, new Uint8Array([1, 2, 3, 4, 5]), 0, 5);
      expect(Array.from(m.mm.readPhys(pfn * P + 4093, 5))).toEqual([1, 2, 3, 4, 5]);
      // Three bytes a page of RAM, not of the 2^40-page span.
      expect(m.mm.meta.state.length).toBe((2 ** 30 + 2 ** 28) / P);
      expect(auditMm(m.mm)).toEqual([]);
      m.mm.__free_pages(pfn, 3);
      expect(auditMm(m.mm)).toEqual([]);
    });
  }

  it('RAM that ends past 2^52 is EINVAL naming memory; touching ranges are one range', () => {
    expect(() => new Machine({ memory: [{ start: T * P - P, size: 2 * P }] })).toThrow(expect.objectContaining({ errno: EINVAL, arg: 'memory' }) as Error);
    const m = new Machine({ memory: [{ start: 0, size: '1G' }, { start: '1G', size: '1G' }] });
    expect(m.mm.ram).toEqual([{ startPfn: 0, endPfn: 2 ** 19 }]);
    expect(auditMm(m.mm)).toEqual([]);
  });

  it('a vmalloc area on a machine with RAM past pfn 2^32 has Float64Array pages that build a scatterlist', () => {
    const m = highMachine(T * P);
    const area = m.mm.vmalloc(64 * P)!;
    expect(area.pages).toBeInstanceOf(Float64Array);
    expect(area.pages[0]).toBeGreaterThan(2 ** 32);
    const sgt = new SgTable(m);
    expect(sg_alloc_table_from_pages_segment(sgt, area.pages, area.nrPages, 0, area.size, 0xffffffff, GFP_KERNEL)).toBe(0);
    // Freshly booted: the pages are consecutive, one entry, and sg_page gives the whole pfn back.
    expect(sgt.nents).toBe(1);
    expect(sg_page(sgt.sgl!)).toBe(area.pages[0]);
    sg_free_table(sgt);
    m.mm.vfree(area);
    expect(auditMm(m.mm)).toEqual([]);
    // A machine whose RAM ends at 16 TiB keeps 4-byte pfns.
    const low = new Machine({ memory: '64M' });
    expect(low.mm.vmalloc(P)!.pages).toBeInstanceOf(Uint32Array);
  });

  it('a hole between the ranges is reserved in the memory report and never handed out', () => {
    const m = highMachine(2 ** 36 * P + 2 ** 28);
    expect(m.mm.meta.stateOf(2 ** 30 / P)).toBe(4); // PG_RESERVED: not RAM
    expect(m.mm.isRam(2 ** 30)).toBe(false);
    let n = 0;
    for (let pfn = m.mm.alloc_pages(GFP_KERNEL, 10); pfn !== null && n < 1000; pfn = m.mm.alloc_pages(GFP_KERNEL, 10)) {
      expect(m.mm.isRam(pfn * P, 1024 * P)).toBe(true);
      n++;
    }
    expect(auditMm(m.mm)).toEqual([]);
  });
});

describe('scatterlist entries at pfns around 2^32, 2^36 and 2^40', () => {
  const pfns = [2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 36 - 1, 2 ** 36, 2 ** 36 + 1, T - 2, T - 1];

  it('sg_set_page keeps every pfn below 2^40 whole, with dma_flags and the END mark beside it', () => {
    const sgt = new SgTable(new Machine({ memory: '64M' }));
    sg_alloc_table(sgt, pfns.length, GFP_KERNEL);
    let sg = sgt.sgl!;
    for (const pfn of pfns) {
      sg_set_page(sg, pfn, 100, 7);
      sg_dma_mark_swiotlb(sg);
      sg_dma_mark_bus_address(sg);
      expect(sg_page(sg)).toBe(pfn);
      expect(sg_phys(sg)).toBe(pfn * P + 7);
      expect(sg_dma_is_swiotlb(sg)).toBe(true);
      sg.dma_flags = 0;
      expect(sg_page(sg)).toBe(pfn);
      sg = sg.at(1);
    }
    // The last entry kept its END mark through the pfn write.
    expect(sg_page(sgt.sgl!.at(pfns.length - 1))).toBe(T - 1);
    sg_free_table(sgt);
  });

  it('pfn 2^40 and past is EINVAL naming page; the entry is unchanged', () => {
    const sgt = new SgTable(new Machine({ memory: '64M' }));
    sg_alloc_table(sgt, 1, GFP_KERNEL);
    const sg = sgt.sgl!;
    sg_set_page(sg, 5, P, 0);
    for (const bad of [T, T + 1, 2 ** 52, -1, 0.5]) {
      let err: unknown;
      try { sg_assign_page(sg, bad); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(KernelError);
      expect(err).toMatchObject({ errno: EINVAL, arg: 'page' });
      expect(sg_page(sg)).toBe(5);
    }
    sg_free_table(sgt);
  });

  it('a chain link written over an entry that held a high pfn points at its slot, not past it', () => {
    const m = new Machine({ memory: '64M' });
    const a = new SgTable(m);
    const b = new SgTable(m);
    sg_alloc_table(a, 2, GFP_KERNEL);
    sg_alloc_table(b, 1, GFP_KERNEL);
    sg_set_page(a.sgl!.at(1), T - 1, P, 0);
    sg_chain(a.sgl!, 2, b.sgl!);
    expect(sg_is_chain(a.sgl!.at(1))).toBe(true);
    expect(sg_chain_ptr(a.sgl!.at(1)).slot).toBe(b.sgl!.slot);
  });
});

describe('mappings of high pages through every backend', () => {
  const top = T * P; // RAM right up to the last page of the 52-bit space
  const backends: Array<[string, Partial<MachineOptions>, number]> = [
    ['dma-direct', { swiotlb: false }, 64],
    ['swiotlb (a 32-bit device)', { swiotlb: { size: '16M' } }, 32],
    ['swiotlb=force', { swiotlb: { size: '16M', force: true } }, 64],
    ['IOMMU strict (arm-lpae)', { iommu: { mode: 'strict' } }, 64],
    ['IOMMU lazy (arm-lpae)', { iommu: { mode: 'lazy' } }, 64],
    ['IOMMU strict (vtd)', { iommu: { mode: 'strict', format: 'vtd' } }, 64],
  ];
  for (const [name, opts, mask] of backends) {
    it(`${name}: a scatterlist over pages below 2^40 maps, the device moves the bytes, and unmaps clean`, () => {
      const m = highMachine(top, opts);
      const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: mask, coherentDmaMask: mask });
      // Two runs: the last two pages of the physical space, and two pages near its bottom half.
      const hi = T - 2;
      const lo = (top - 2 ** 28) / P + 8;
      const pages = [lo, lo + 1, hi, hi + 1];
      const sgt = new SgTable(m);
      expect(sg_alloc_table_from_pages_segment(sgt, pages, 4, 0, 4 * P, 0xffffffff, GFP_KERNEL)).toBe(0);
      expect(sgt.orig_nents).toBe(2);
      m.mm.writePhys(hi * P + 10, new Uint8Array([0xab, 0xcd]), 0, 2);
      expect(dma_map_sgtable(dev, sgt, DMA_BIDIRECTIONAL)).toBe(0);
      // The device reads what the CPU wrote at the top of the space and writes back.
      const second = sgt.sgl!.at(sgt.nents === 1 ? 0 : 1);
      const at = sg_dma_address(second) + (sgt.nents === 1 ? 2 * P : 0) + 10;
      expect(dev.dma.read(at, 2)).toEqual({ ok: true, value: new Uint8Array([0xab, 0xcd]) });
      expect(dev.dma.write(at + 2, new Uint8Array([0xef])).ok).toBe(true);
      if (mask === 32 || name.startsWith('IOMMU')) expect(sg_dma_address(sgt.sgl!) + 4 * P).toBeLessThanOrEqual(2 ** 48);
      dma_unmap_sgtable(dev, sgt, DMA_BIDIRECTIONAL);
      expect(Array.from(m.mm.readPhys(hi * P + 12, 1))).toEqual([0xef]);
      sg_free_table(sgt);
      // A single page at pfn 2^40 - 1 maps too.
      const addr = dma_map_page(dev, T - 1, 0, P, DMA_TO_DEVICE);
      expect(addr).not.toBe(-1);
      if (name === 'dma-direct') expect(addr).toBe((T - 1) * P);
      dma_unmap_page(dev, addr, P, DMA_TO_DEVICE);
      expect(m.audit()).toEqual([]);
    });
  }

  it('an SMMU with a 48-bit output size cannot point at RAM past 2^48: the map fails with the kernel\'s WARN', () => {
    const m = highMachine(top, { iommu: { mode: 'strict', outputWidth: 48 } });
    const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
    const addr = dma_map_page(dev, T - 1, 0, P, DMA_FROM_DEVICE);
    expect(addr).toBe(-1);
    expect(m.klog.messages.map((k) => k.message).join('')).toContain('paddr >> cfg->oas');
    expect(m.audit()).toEqual([]);
  });
});

describe('device memory above RAM (peer-to-peer through dma_map_resource)', () => {
  const bars = [{ start: 2 ** 46, size: '1M', name: 'gpu-bar0' }, { start: 2 ** 51, size: '64K', name: 'cxl-bar' }];
  const cases: Array<[string, Partial<MachineOptions>]> = [
    ['dma-direct', {}],
    ['IOMMU strict', { iommu: { mode: 'strict' } }],
    ['IOMMU lazy (vtd)', { iommu: { mode: 'lazy', format: 'vtd' } }],
  ];
  for (const [name, opts] of cases) {
    it(`${name}: a device writes into another device's BAR and the CPU reads it there`, () => {
      const m = new Machine({ memory: '1G', deviceMemory: bars, ...opts });
      const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
      for (const bar of [2 ** 46, 2 ** 51]) {
        const addr = dma_map_resource(dev, bar + 0x100, 0x200, DMA_BIDIRECTIONAL, 0);
        expect(addr).not.toBe(-1);
        expect(dev.dma.write(addr + 8, new Uint8Array([7, 8, 9])).ok).toBe(true);
        expect(Array.from(m.mm.readPhys(bar + 0x108, 3))).toEqual([7, 8, 9]);
        dma_unmap_resource(dev, addr, 0x200, DMA_BIDIRECTIONAL, 0);
      }
      expect(m.audit()).toEqual([]);
    });
  }

  it('nothing answers between the BARs: a direct access faults not-ram, and so does an IOMMU mapping of that address', () => {
    const m = new Machine({ memory: '1G', deviceMemory: bars });
    const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
    expect(dev.dma.read(2 ** 47, 4)).toMatchObject({ ok: false, fault: { reason: 'not-ram' } });
    const io = new Machine({ memory: '1G', deviceMemory: bars, iommu: { mode: 'strict' } });
    const d2 = io.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
    const addr = dma_map_resource(d2, 2 ** 47, P, DMA_BIDIRECTIONAL, 0);
    expect(addr).not.toBe(-1);
    // The IOMMU translates it; the bus finds nothing there: a fault result, not an exception.
    expect(d2.dma.read(addr, 4)).toMatchObject({ ok: false, fault: { reason: 'not-ram' } });
    dma_unmap_resource(d2, addr, P, DMA_BIDIRECTIONAL, 0);
  });

  it('device memory overlapping RAM, past 2^52 or unaligned is EINVAL naming the range', () => {
    for (const [bad, arg] of [
      [[{ start: '512M', size: '1M' }], 'deviceMemory[0]'],
      [[{ start: T * P - P, size: 2 * P }], 'deviceMemory[0]'],
      [[{ start: 2 ** 46 + 1, size: P }], 'deviceMemory[0]'],
      [[{ start: 2 ** 46, size: '1M' }, { start: 2 ** 46 + P, size: P }], 'deviceMemory'],
    ] as const) {
      expect(() => new Machine({ memory: '1G', deviceMemory: bad })).toThrow(expect.objectContaining({ errno: EINVAL, arg }) as Error);
    }
  });
});

describe('review fixes: MMIO has no buffer ownership', () => {
  it('the CPU rings a peer\'s doorbell while it is mapped for a device: no finding (a RAM buffer would be one)', () => {
    const m = new Machine({ memory: '1G', deviceMemory: [{ start: 2 ** 46, size: '1M', name: 'peer-bar' }] });
    const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
    const addr = dma_map_resource(dev, 2 ** 46, P, DMA_TO_DEVICE, 0);
    m.mm.writePhys(2 ** 46 + 0x10, new Uint8Array([1]));
    expect(Array.from(m.mm.readPhys(2 ** 46 + 0x10, 1))).toEqual([1]);
    expect(m.dma.ledger.findings.list()).toEqual([]);
    dma_unmap_resource(dev, addr, P, DMA_TO_DEVICE, 0);
  });
});
