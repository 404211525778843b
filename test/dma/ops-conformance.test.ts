/**
 * One conformance suite for every DMA backend behind DmaOps (dma-direct with and without swiotlb,
 * dma-iommu on each page-table format): what a driver relies on, whatever the backend. Each test
 * drives the backend through the DmaOps interface the DMA API dispatches to (dmaOpsOf), with the
 * device's own engine standing in for the hardware, and audits the machine after.
 */
import { describe, expect, it } from 'vitest';
import {
  DMA_FROM_DEVICE, DMA_MAPPING_ERROR, DMA_TO_DEVICE, GFP_KERNEL, Machine, PAGE_SIZE, SgTable, dmaOpsOf,
  sg_alloc_table_from_pages_segment, sg_dma_address, sg_dma_len, sg_next, type MachineOptions, type Scatterlist,
} from '../../src/index.ts';

const BACKENDS: Record<string, { opts: Partial<MachineOptions>; ops: 'direct' | 'iommu' }> = {
  'dma-direct': { opts: { swiotlb: false }, ops: 'direct' },
  'dma-direct + swiotlb=force': { opts: { swiotlb: { size: '8M', force: true } }, ops: 'direct' },
  'dma-iommu, arm-lpae tables': { opts: { iommu: { mode: 'strict' } }, ops: 'iommu' },
  'dma-iommu, VT-d tables': { opts: { iommu: { mode: 'strict', format: 'vtd' } }, ops: 'iommu' },
};

function rig(opts: Partial<MachineOptions>) {
  const m = new Machine({ memory: '256M', dmaDebug: false, ...opts });
  const dev = m.pci.addDevice({ name: '0000:03:00.0', dmaMask: 64 });
  m.pci.bind(dev, { name: 'conf', probe() {} });
  return { m, dev, ops: dmaOpsOf(dev) };
}

for (const [name, backend] of Object.entries(BACKENDS)) {
  describe(`DmaOps conformance: ${name}`, () => {
    it(`is the ${backend.ops} backend`, () => {
      expect(rig(backend.opts).ops.name).toBe(backend.ops);
    });

    it('map_phys: the device reads what the CPU wrote (TO_DEVICE); unmap_phys releases it', () => {
      const { m, dev, ops } = rig(backend.opts);
      const pfn = m.mm.alloc_pages(GFP_KERNEL, 0) as number;
      m.mm.writePhys(pfn * PAGE_SIZE + 100, new Uint8Array([9, 8, 7]));
      const addr = ops.map_phys(dev, pfn * PAGE_SIZE + 100, 3, DMA_TO_DEVICE, 0);
      expect(addr).not.toBe(DMA_MAPPING_ERROR);
      const r = dev.dma.read(addr, 3);
      expect(r.ok && [...r.value]).toEqual([9, 8, 7]);
      ops.unmap_phys(dev, addr, 3, DMA_TO_DEVICE, 0);
      expect(m.audit()).toEqual([]);
    });

    it('FROM_DEVICE: what the device wrote reaches the CPU after sync_single_for_cpu, and at unmap', () => {
      const { m, dev, ops } = rig(backend.opts);
      const pfn = m.mm.alloc_pages(GFP_KERNEL, 0) as number;
      const addr = ops.map_phys(dev, pfn * PAGE_SIZE, PAGE_SIZE, DMA_FROM_DEVICE, 0);
      expect(dev.dma.write(addr + 8, new Uint8Array([1, 2])).ok).toBe(true);
      ops.sync_single_for_cpu(dev, addr, PAGE_SIZE, DMA_FROM_DEVICE);
      expect([...m.mm.readPhys(pfn * PAGE_SIZE + 8, 2)]).toEqual([1, 2]);
      ops.sync_single_for_device(dev, addr, PAGE_SIZE, DMA_FROM_DEVICE);
      expect(dev.dma.write(addr + 8, new Uint8Array([3])).ok).toBe(true);
      ops.unmap_phys(dev, addr, PAGE_SIZE, DMA_FROM_DEVICE, 0);
      expect(m.mm.readPhys(pfn * PAGE_SIZE + 8, 1)[0]).toBe(3);
      expect(m.audit()).toEqual([]);
    });

    it('map_sg: 1..nents DMA segments covering the buffer, in order; the device reads it whole', () => {
      const { m, dev, ops } = rig(backend.opts);
      const area = m.mm.vmalloc(8 * PAGE_SIZE) as NonNullable<ReturnType<typeof m.mm.vmalloc>>;
      const bytes = Uint8Array.from({ length: 8 * PAGE_SIZE }, (_, i) => (i * 7) & 0xff);
      for (let p = 0; p < 8; p++) m.mm.writePhys((area.pages[p] as number) * PAGE_SIZE, bytes.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE));
      const sgt = new SgTable(m);
      expect(sg_alloc_table_from_pages_segment(sgt, area.pages, 8, 0, 8 * PAGE_SIZE, 65536, GFP_KERNEL)).toBe(0);
      const ents = ops.map_sg(dev, sgt.sgl as Scatterlist, sgt.orig_nents, DMA_TO_DEVICE, 0);
      expect(ents).toBeGreaterThanOrEqual(1);
      expect(ents).toBeLessThanOrEqual(sgt.orig_nents);
      const segs: Array<{ addr: number; length: number }> = [];
      let sg: Scatterlist | null = sgt.sgl;
      for (let i = 0; i < ents && sg !== null; i++, sg = sg_next(sg)) segs.push({ addr: sg_dma_address(sg), length: sg_dma_len(sg) });
      expect(segs.reduce((n, s) => n + s.length, 0)).toBe(8 * PAGE_SIZE);
      const back = dev.dma.readSegments(segs);
      expect(back.ok && back.value).toEqual(bytes);
      ops.unmap_sg(dev, sgt.sgl as Scatterlist, sgt.orig_nents, DMA_TO_DEVICE, 0);
      expect(m.audit()).toEqual([]);
    });

    it('alloc: a coherent buffer the device and the CPU share without syncs; free returns it', () => {
      const { m, dev, ops } = rig(backend.opts);
      // Page tables the IOMMU keeps after an unmap are counted apart (io-pgtable frees them lazily).
      const free = (): number => m.mm.freePages + (m.iommu?.tablePagesInUse ?? 0);
      const before = free();
      const buf = ops.alloc(dev, 2 * PAGE_SIZE, GFP_KERNEL, 0);
      expect(buf).not.toBeNull();
      const b = buf as NonNullable<typeof buf>;
      expect(dev.dma.write(b.dma_handle + PAGE_SIZE, new Uint8Array([5])).ok).toBe(true);
      const area = m.mm.findVmArea(b.cpu_addr);
      const phys = area === undefined ? m.mm.virt_to_phys(b.cpu_addr + PAGE_SIZE) : area.physOf(PAGE_SIZE);
      expect(m.mm.readPhys(phys, 1)[0]).toBe(5);
      ops.free(dev, 2 * PAGE_SIZE, b, 0);
      expect(free()).toBe(before);
      expect(m.audit()).toEqual([]);
    });

    it('sizes: a positive max mapping size; a merge boundary only where the backend can merge', () => {
      const { dev, ops } = rig(backend.opts);
      expect(ops.max_mapping_size(dev)).toBeGreaterThan(0);
      expect(ops.opt_mapping_size(dev)).toBeGreaterThan(0);
      expect(ops.merge_boundary(dev)).toBe(backend.ops === 'iommu' ? PAGE_SIZE - 1 : 0);
    });
  });
}
