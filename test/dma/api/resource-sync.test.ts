/**
 * The smaller DMA API calls a driver reaches for: dma_map_resource/dma_unmap_resource (MMIO:
 * never bounced, IOMMU_MMIO through an IOMMU, dma-debug's RAM check), dma_sync_single_range_*,
 * dma_need_sync, dma_get_required_mask.
 */
import { describe, expect, it } from 'vitest';
import {
  DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_MAPPING_ERROR, GFP_KERNEL, Machine, dmaFindings, dma_get_required_mask, dma_map_page_attrs,
  dma_map_resource, dma_mapping_error, dma_need_sync, dma_sync_single_range_for_cpu, dma_unmap_page_attrs, dma_unmap_resource,
  iommu_iova_to_phys, type MachineOptions,
} from '../../../src/index.ts';

function rig(opts: Partial<MachineOptions> = {}, dev: { coherent?: boolean; untrusted?: boolean } = {}) {
  const m = new Machine({ memory: '1G', ...opts });
  const d = m.pci.addDevice({ name: '0000:06:00.0', dmaMask: 64, ...dev });
  m.pci.bind(d, { name: 'drv', probe() {} });
  return { m, dev: d };
}

/** Bytes of RAM as they are, read past the CPU-ownership check (a test's look, not a driver's). */
function peek(m: Machine, phys: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  m.mm.kernelMemory.readPhysInto(phys, out, 0, n);
  return out;
}

const BAR = 0xfe000000; // above the 1 GiB of RAM: another device's registers

describe('dma_map_resource', () => {
  it('dma-direct: the bus address is the MMIO address, nothing bounces', () => {
    const { m, dev } = rig({ swiotlb: { size: '4M' } });
    const addr = dma_map_resource(dev, BAR, 4096, DMA_BIDIRECTIONAL, 0);
    expect(addr).toBe(BAR);
    expect(dma_mapping_error(dev, addr)).toBe(0);
    expect(m.swiotlb!.io_tlb_used).toBe(0);
    dma_unmap_resource(dev, addr, 4096, DMA_BIDIRECTIONAL, 0);
    expect(dmaFindings(m)).toEqual([]);
  });

  it('swiotlb=force cannot serve MMIO, and a device that cannot reach it is not bounced: the overflow WARN', () => {
    const forced = rig({ swiotlb: { size: '4M', force: true } });
    expect(dma_map_resource(forced.dev, BAR, 4096, DMA_BIDIRECTIONAL, 0)).toBe(DMA_MAPPING_ERROR);
    expect(forced.m.klog.warnings().map((w) => w.message)).toEqual([expect.stringMatching(/DMA addr 0x0*fe000000\+4096 overflow/)]);
    expect(forced.m.swiotlb!.io_tlb_used).toBe(0);
    const m = new Machine({ memory: '1G', swiotlb: { size: '4M' } });
    const dev32 = m.pci.addDevice({ name: 'narrow', dmaMask: 24 });
    m.pci.bind(dev32, { name: 'x', probe() {} });
    expect(dma_map_resource(dev32, BAR, 4096, DMA_BIDIRECTIONAL, 0)).toBe(DMA_MAPPING_ERROR);
    expect(m.swiotlb!.io_tlb_used).toBe(0);
  });

  it('through a strict IOMMU: an IOVA translating to the MMIO address; unmap clears it', () => {
    const { m, dev } = rig({ iommu: { mode: 'strict' } });
    const addr = dma_map_resource(dev, BAR, 4096, DMA_BIDIRECTIONAL, 0);
    expect(addr).not.toBe(BAR);
    const domain = m.iommu!.groupOf(dev)!.domain;
    expect(iommu_iova_to_phys(domain.paging!, addr + 0x10)).toBe(BAR + 0x10);
    dma_mapping_error(dev, addr);
    dma_unmap_resource(dev, addr, 4096, DMA_BIDIRECTIONAL, 0);
    expect(iommu_iova_to_phys(domain.paging!, addr)).toBe(0);
    expect(dmaFindings(m)).toEqual([]);
  });

  it('dma-debug reports a resource mapping of RAM (the planted bug); MMIO is clean', () => {
    const { m, dev } = rig();
    const pfn = m.mm.alloc_pages(GFP_KERNEL, 0) as number;
    const addr = dma_map_resource(dev, pfn * 4096, 4096, DMA_BIDIRECTIONAL, 0);
    dma_mapping_error(dev, addr);
    expect(m.dmaDebug!.errors.map((e) => e.text)).toEqual([expect.stringContaining(`dma_map_resource called for RAM address 0x${(pfn * 4096).toString(16).padStart(16, '0')}`)]);
    dma_unmap_resource(dev, addr, 4096, DMA_BIDIRECTIONAL, 0);
  });
});

describe('dma_sync_single_range_for_cpu', () => {
  it('copies back only the range (swiotlb): the header the device wrote, not the rest', () => {
    const { m, dev } = rig({ swiotlb: { size: '4M', force: true } });
    const pfn = m.mm.alloc_pages(GFP_KERNEL, 0) as number;
    const addr = dma_map_page_attrs(dev, pfn, 0, 4096, DMA_FROM_DEVICE, 0);
    dma_mapping_error(dev, addr);
    dev.dma.write(addr + 512, new Uint8Array([1, 2, 3, 4]));
    dev.dma.write(addr + 2048, new Uint8Array([9]));
    dma_sync_single_range_for_cpu(dev, addr, 512, 64, DMA_FROM_DEVICE);
    expect([...peek(m, pfn * 4096 + 512, 4)]).toEqual([1, 2, 3, 4]);
    expect(peek(m, pfn * 4096 + 2048, 1)[0]).toBe(0); // outside the range: not yet copied
    dma_unmap_page_attrs(dev, addr, 4096, DMA_FROM_DEVICE, 0);
    expect(peek(m, pfn * 4096 + 2048, 1)[0]).toBe(9);
    expect(m.dmaDebug!.error_count).toBe(0);
  });
});

describe('dma_need_sync and dma_get_required_mask', () => {
  it('need_sync: coherent direct no; a bounce slot, a non-coherent device or an untrusted one behind the IOMMU yes', () => {
    const plain = rig();
    const pfn = plain.m.mm.alloc_pages(GFP_KERNEL, 0) as number;
    expect(dma_need_sync(plain.dev, pfn * 4096)).toBe(false);
    const bounced = rig({ swiotlb: { size: '4M', force: true } });
    const p2 = bounced.m.mm.alloc_pages(GFP_KERNEL, 0) as number;
    const a = dma_map_page_attrs(bounced.dev, p2, 0, 4096, DMA_FROM_DEVICE, 0);
    expect(dma_need_sync(bounced.dev, a)).toBe(true);
    expect(dma_need_sync(rig({}, { coherent: false }).dev, 0x100000)).toBe(true);
    expect(dma_need_sync(rig({ iommu: { mode: 'strict' } }).dev, 0x100000)).toBe(false);
    expect(dma_need_sync(rig({ iommu: { mode: 'strict' }, swiotlb: { size: '4M' } }, { untrusted: true }).dev, 0x100000)).toBe(true);
  });

  it('required mask: the last page of RAM through dma-direct, 32 bits behind an IOMMU', () => {
    expect(dma_get_required_mask(rig({ memory: '8G' } as never).dev)).toBe(0x1ffffffff);
    expect(dma_get_required_mask(rig().dev)).toBe(0x3fffffff);
    expect(dma_get_required_mask(rig({ iommu: { mode: 'strict' } }).dev)).toBe(0xffffffff);
    expect(DMA_MAPPING_ERROR).toBe(-1);
  });
});

describe('dmam_alloc_attrs', () => {
  it('a managed coherent buffer with attrs: freed at unbind (nothing leaks), refused for an unbound device', async () => {
    const { dmam_alloc_attrs, DMA_ATTR_NO_WARN, LEAK_KINDS, ENODEV, KernelError } = await import('../../../src/index.ts');
    const { m, dev } = rig();
    const free = m.mm.freePages;
    const buf = dmam_alloc_attrs(dev.asBound(), 8192, GFP_KERNEL, DMA_ATTR_NO_WARN);
    expect(buf).not.toBeNull();
    m.pci.unbind(dev);
    expect(m.mm.freePages).toBe(free);
    expect(dmaFindings(m, { kinds: LEAK_KINDS })).toEqual([]);
    try {
      dmam_alloc_attrs(dev as never, 4096, GFP_KERNEL, 0);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(KernelError);
      expect((e as InstanceType<typeof KernelError>).errno).toBe(ENODEV);
    }
  });
});
