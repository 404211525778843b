import { describe, expect, it } from 'vitest';
import {
  DMA_BIDIRECTIONAL, EBUSY, EINVAL, GFP_KERNEL, GFP_KERNEL as G, IOMMU_DOMAIN_UNMANAGED, IOMMU_READ, IOMMU_WRITE, Machine,
  PAGE_SIZE, dma_alloc_coherent, dma_free_coherent, dma_map_page_attrs, dma_mapping_error, iommu_map, isolationReport,
} from '../../src/index.ts';

function twoDevices(mode: 'strict' | 'lazy' | 'passthrough' = 'strict', sameGroup = false) {
  const m = new Machine({ memory: '8G', iommu: { mode } });
  const a = m.pci.addDevice({ name: 'a', dmaMask: 64, ...(sameGroup ? { iommuGroup: 7 } : {}) });
  const b = m.pci.addDevice({ name: 'b', dmaMask: 64, ...(sameGroup ? { iommuGroup: 7 } : {}) });
  m.pci.bind(a, { name: 'da', probe() {} });
  m.pci.bind(b, { name: 'db', probe() {} });
  return { m, a, b };
}

describe('isolation', () => {
  it('a device scanning its IOVA space finds only what is mapped for it', () => {
    const { m, a } = twoDevices();
    const secret = m.mm.alloc_pages(GFP_KERNEL, 0)!;
    m.mm.writePhys(secret * PAGE_SIZE, new Uint8Array([0x5e]));
    const mine = m.mm.alloc_pages(GFP_KERNEL, 0)!;
    const addr = dma_map_page_attrs(a, mine, 0, PAGE_SIZE, DMA_BIDIRECTIONAL, 0);
    dma_mapping_error(a, addr);
    let readable = 0;
    for (let iova = 0; iova < 2 ** 32; iova += 2 ** 20) if (a.dma.read(iova, 1).ok) readable++;
    for (let iova = addr - 16 * PAGE_SIZE; iova < addr + 16 * PAGE_SIZE; iova += PAGE_SIZE) if (iova !== addr && a.dma.read(iova, 1).ok) readable++;
    expect(readable).toBe(0);
    expect(a.dma.read(addr, 1).ok).toBe(true);
    expect(a.dma.read(secret * PAGE_SIZE, 1).ok).toBe(false); // a physical address is not an IOVA
  });

  it("a device in another group cannot use its neighbour's mappings; one in the same group can", () => {
    const sep = twoDevices();
    const pfn = sep.m.mm.alloc_pages(GFP_KERNEL, 0)!;
    const addr = dma_map_page_attrs(sep.a, pfn, 0, PAGE_SIZE, DMA_BIDIRECTIONAL, 0);
    dma_mapping_error(sep.a, addr);
    expect(sep.b.dma.read(addr, 4).ok).toBe(false);
    const shared = twoDevices('strict', true);
    const pfn2 = shared.m.mm.alloc_pages(GFP_KERNEL, 0)!;
    const addr2 = dma_map_page_attrs(shared.a, pfn2, 0, PAGE_SIZE, DMA_BIDIRECTIONAL, 0);
    dma_mapping_error(shared.a, addr2);
    expect(shared.b.dma.read(addr2, 4).ok).toBe(true); // the IOMMU cannot tell them apart
    expect(isolationReport(shared.m).some((l) => /group 7: a, b share/.test(l))).toBe(true);
  });

  it('identity (passthrough) domains are reported as giving no isolation; the lazy window is reported', () => {
    const pt = twoDevices('passthrough');
    expect(pt.b.dma.read(0x200000, 1).ok).toBe(true);
    expect(isolationReport(pt.m).some((l) => /identity .* no isolation/.test(l))).toBe(true);
    const lazy = twoDevices('lazy');
    expect(isolationReport(lazy.m).some((l) => /lazy: unmapped memory stays reachable for up to 10 ms/.test(l))).toBe(true);
  });

  it('attach/detach: an UNMANAGED domain owned by the driver; -EINVAL for a shared group; -EBUSY while attached elsewhere', () => {
    const { m, a } = twoDevices();
    const iommu = m.iommu!;
    const d = iommu.allocDomain(IOMMU_DOMAIN_UNMANAGED);
    expect(iommu.attachDevice('a', d)).toBe(0);
    expect(iommu_map(d.paging!, 0x10000, 0x200000, PAGE_SIZE, IOMMU_READ | IOMMU_WRITE, G)).toBe(0);
    expect(a.dma.read(0x10000, 1).ok).toBe(true);
    const faults: number[] = [];
    d.faultHandler = (_d, _dev, iova) => { faults.push(iova); return 0; };
    expect(a.dma.read(0x20000, 1).ok).toBe(false);
    expect(faults).toEqual([0x20000]); // report_iommu_fault reached the handler
    expect(iommu.attachDevice('a', iommu.allocDomain(IOMMU_DOMAIN_UNMANAGED))).toBe(-EBUSY);
    iommu.detachDevice('a', d);
    expect(iommu.domainOf('a')?.typeName).toBe('DMA');
    const shared = twoDevices('strict', true);
    expect(shared.m.iommu!.attachDevice('a', shared.m.iommu!.allocDomain(IOMMU_DOMAIN_UNMANAGED))).toBe(-EINVAL);
  });
});

describe('isolation holes closed (issue 19)', () => {
  it('the DMA API maps and frees in the default domain while the group sits on an UNMANAGED one: no access to a freed page after detach', () => {
    const m = new Machine({ memory: '1G', iommu: { mode: 'strict' } });
    const a = m.pci.addDevice({ name: 'a', dmaMask: 64, coherentDmaMask: 64 });
    m.pci.bind(a, { name: 'da', probe() {} });
    const iommu = m.iommu!;
    const buf = dma_alloc_coherent(a, PAGE_SIZE, GFP_KERNEL)!;
    expect(a.dma.read(buf.dma_handle, 1).ok).toBe(true);
    const unmanaged = iommu.allocDomain(IOMMU_DOMAIN_UNMANAGED);
    expect(iommu.attachDevice(a, unmanaged)).toBe(0);
    dma_free_coherent(a, PAGE_SIZE, buf);
    expect(m.klog.warnings()).toEqual([]);
    iommu.detachDevice(a, unmanaged);
    expect(a.dma.read(buf.dma_handle, 1).ok).toBe(false);
    expect(m.audit()).toEqual([]);
    // A streaming mapping made while attached elsewhere lands in the default domain too.
    expect(iommu.attachDevice(a, unmanaged)).toBe(0);
    const pfn = m.mm.alloc_pages(GFP_KERNEL, 0)!;
    const addr = dma_map_page_attrs(a, pfn, 0, PAGE_SIZE, DMA_BIDIRECTIONAL, 0);
    expect(dma_mapping_error(a, addr)).toBe(0);
    expect(unmanaged.paging!.pgtable.iova_to_phys(addr)).toBe(0);
    iommu.detachDevice(a, unmanaged);
    expect(a.dma.read(addr, 1).ok).toBe(true);
  });

  it('a platform device and a PCI device with one name get separate groups: neither reaches the other\'s mappings', () => {
    const m = new Machine({ memory: '1G', iommu: { mode: 'strict' } });
    const pci = m.pci.addDevice({ name: 'x', dmaMask: 64 });
    const plat = m.platform.addDevice({ name: 'x', dmaMask: 64 });
    m.pci.bind(pci, { name: 'p', probe() {} });
    const pfn = m.mm.alloc_pages(GFP_KERNEL, 0)!;
    const addr = dma_map_page_attrs(pci, pfn, 0, PAGE_SIZE, DMA_BIDIRECTIONAL, 0);
    expect(dma_mapping_error(pci, addr)).toBe(0);
    expect(m.iommu!.groupOf(pci)).not.toBe(m.iommu!.groupOf(plat));
    expect(plat.dma.read(addr, 1).ok).toBe(false);
    expect(pci.dma.read(addr, 1).ok).toBe(true);
    expect(() => m.iommu!.groupOf('x')).toThrow(/2 devices are named x/);
  });
});
