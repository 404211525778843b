/**
 * dma-iommu's per-call state under re-entry and re-probe (a review of session 12's fast paths):
 * - a fault listener that maps another scatterlist while the first is between its IOVA allocation
 *   and its page-table map (an injected 'iova' or 'pgtable' failure fires it) leaves the outer map
 *   working: it maps (or fails with -ENOMEM) as it would alone, and nothing leaks;
 * - a device probed again (a new group and default domain) maps in its new domain;
 * - an unmap whose size reaches past 2^53 is EINVAL naming size, with nothing changed;
 * - the accessor iommuDmaMapSg lends dom.mapSg still reads its list after the call.
 * Planted (each fails its test): the call state cleared instead of put back after a nested map;
 * a re-probe that moves the device to a new group; the unmap's range check dropped; a cursor shared and cleared.
 */
import { describe, expect, it } from 'vitest';
import {
  DMA_TO_DEVICE, EINVAL, GFP_KERNEL, KernelError, Machine, SgTable, createContext, dma_map_page, dma_map_sgtable, dma_unmap_page,
  dma_unmap_sgtable, iommuDmaMapSg, sg_alloc_table, sg_alloc_table_from_pages_segment, sg_set_page, type IommuSgAccessor, type Scatterlist,
} from '../../../src/index.ts';

function rig() {
  const m = new Machine({ memory: '1G', swiotlb: false, iommu: { mode: 'strict' } });
  const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
  m.pci.bind(dev, { name: 'drv', probe() {} });
  const list = (pfns: number[]) => {
    const t = new SgTable(m);
    expect(sg_alloc_table_from_pages_segment(t, pfns, pfns.length, 0, pfns.length * 4096, 65536, GFP_KERNEL)).toBe(0);
    return t;
  };
  return { m, dev, list };
}

describe('dma-iommu under re-entry and re-probe', () => {
  for (const [kind, want] of [['iova', 0], ['pgtable', -12]] as const) {
    it(`a listener mapping another list inside an injected '${kind}' failure leaves the outer map intact`, () => {
      const { m, dev, list } = rig();
      const p = m.mm.alloc_pages(GFP_KERNEL, 4) as number;
      const q = m.mm.alloc_pages(GFP_KERNEL, 4) as number;
      const outer = list([p, p + 2]);
      const inner = list([q, q + 2]);
      let nested = 0;
      m.faults.onFault((k) => {
        if (k !== kind || nested++ > 0) return;
        expect(dma_map_sgtable(dev, inner, DMA_TO_DEVICE)).toBe(0);
        dma_unmap_sgtable(dev, inner, DMA_TO_DEVICE);
      });
      // The first allocation of that kind fails: for 'iova' the PCI device's 32-bit try (it then
      // maps above 4 GiB), for 'pgtable' the outer list's first table page (-ENOMEM).
      m.faults.inject(kind, { nth: 1 });
      expect(dma_map_sgtable(dev, outer, DMA_TO_DEVICE)).toBe(want);
      expect(nested).toBe(1);
      if (want === 0) {
        const r = dev.dma.read(outer.sgl!.dma_address, 8192);
        expect(r.ok).toBe(true);
        dma_unmap_sgtable(dev, outer, DMA_TO_DEVICE);
      }
      m.faults.clear();
      expect(m.audit()).toEqual([]);
    });
  }

  it('a device probed again keeps its group and default domain (the kernel returns early) and maps as before', () => {
    const { m, dev } = rig();
    const p = m.mm.alloc_pages(GFP_KERNEL, 0) as number;
    const before = m.iommu!.groupOf(dev)!;
    const groups = m.iommu!.groups.length;
    dma_unmap_page(dev, dma_map_page(dev, p, 0, 4096, DMA_TO_DEVICE), 4096, DMA_TO_DEVICE);
    const messages = m.klog.messages.length;
    const g = m.iommu!.probeDevice(dev, false);
    expect(g).toBe(before);
    expect(m.iommu!.groups.length).toBe(groups);
    expect(before.devices.filter((d) => d === dev.name).length).toBe(1);
    expect(m.klog.messages.length).toBe(messages);
    const h = dma_map_page(dev, p, 0, 4096, DMA_TO_DEVICE);
    expect(g.defaultDomain.paging!.pgtable.iova_to_phys(h)).toBe(p * 4096);
    expect(dev.dma.read(h, 16).ok).toBe(true);
    expect(m.iommu!.faults.length).toBe(0);
    dma_unmap_page(dev, h, 4096, DMA_TO_DEVICE);
    expect(m.audit()).toEqual([]);
  });

  it('an unmap nested from a WARN listener inside another leaves the outer unmap synced and freed', () => {
    const { m, dev } = rig();
    const p = m.mm.alloc_pages(GFP_KERNEL, 0) as number;
    const q = m.mm.alloc_pages(GFP_KERNEL, 0) as number;
    const h = dma_map_page(dev, p, 0, 4096, DMA_TO_DEVICE);
    // The device reads once: its IOTLB now caches the translation.
    expect(dev.dma.read(h, 16).ok).toBe(true);
    let nested = 0;
    m.klog.onMessage((msg) => {
      if (msg.kind !== 'WARN' || nested++ > 0) return;
      const g = dma_map_page(dev, q, 0, 4096, DMA_TO_DEVICE);
      dma_unmap_page(dev, g, 4096, DMA_TO_DEVICE);
    });
    // Twice the mapped size: the page table WARNs at the hole, then dma-iommu WARNs unmapped != size.
    dma_unmap_page(dev, h, 8192, DMA_TO_DEVICE);
    expect(nested).toBeGreaterThan(0);
    m.klog.onMessage(undefined);
    // Strict: the outer unmap's IOTLB sync happened, so the device cannot read through a stale entry.
    expect(dev.dma.read(h, 16).ok).toBe(false);
    expect(m.audit()).toEqual([]);
  });

  it('an unmap reaching past 2^53 is EINVAL naming size, and changes nothing', () => {
    const { m, dev } = rig();
    const p = m.mm.alloc_pages(GFP_KERNEL, 0) as number;
    const h = dma_map_page(dev, p, 0, 4096, DMA_TO_DEVICE);
    const warns = m.klog.warnCount;
    let err: unknown;
    try { dma_unmap_page(dev, h, 2 ** 53 - 1 - h, DMA_TO_DEVICE); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(KernelError);
    expect((err as KernelError).errno).toBe(EINVAL);
    expect((err as KernelError).arg).toBe('size');
    expect(m.klog.warnCount).toBe(warns);
    expect(dev.dma.read(h, 16).ok).toBe(true); // still mapped
    dma_unmap_page(dev, h, 4096, DMA_TO_DEVICE);
    expect(m.audit()).toEqual([]);
  });

  it('the accessor lent to dom.mapSg still reads its list after the call', () => {
    const t = new SgTable(createContext('t'));
    sg_alloc_table(t, 3, GFP_KERNEL);
    let sg: Scatterlist | null = t.sgl;
    for (const pfn of [0x100, 0x102, 0x104]) { sg_set_page(sg!, pfn, 4096, 0); sg = sg!.at(1); }
    let kept: IommuSgAccessor | null = null;
    const dom = { granule: 4096, allocIova: () => 2 ** 32, freeIova() {}, mapSg: (_iova: number, acc: IommuSgAccessor, n: number) => { kept = acc; return n * 4096; } };
    expect(iommuDmaMapSg(dom, { boundaryMask: 2 ** 64, maxSegSize: 65536 }, t.sgl!, 3)).toBeGreaterThan(0);
    // A second call with another list must not move the first one's accessor.
    const u = new SgTable(createContext('u'));
    sg_alloc_table(u, 1, GFP_KERNEL);
    sg_set_page(u.sgl!, 0x900, 4096, 0);
    const first = kept!;
    expect(iommuDmaMapSg(dom, { boundaryMask: 2 ** 64, maxSegSize: 65536 }, u.sgl!, 1)).toBeGreaterThan(0);
    expect([first.phys(0), first.phys(1), first.phys(2)]).toEqual([0x100 * 4096, 0x102 * 4096, 0x104 * 4096]);
  });
});
