/** fast-check properties across the layers (issue 8). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DMA_BIDIRECTIONAL, DMA_TO_DEVICE, GFP_KERNEL, Machine, PAGE_SIZE, SgTable, dma_map_page_attrs, dma_map_sgtable,
  dma_mapping_error, dma_sync_sgtable_for_cpu, dma_unmap_page_attrs, dma_unmap_sgtable, for_each_sgtable_dma_sg,
  sg_alloc_table_from_pages_segment, sg_free_table, type MachineOptions,
} from '../../src/index.ts';

const BACKENDS: Array<[string, Partial<MachineOptions>]> = [
  ['direct', {}], ['swiotlb=force', { swiotlb: { force: true } }], ['strict', { iommu: { mode: 'strict' } }], ['lazy', { iommu: { mode: 'lazy' } }],
];

describe('properties', () => {
  it('DMA through direct, swiotlb, IOMMU strict and lazy delivers identical bytes', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 24 }), fc.integer({ min: 0, max: 4095 }), fc.integer({ min: 1, max: 4 }), fc.nat(), (pages, offset, run, seed) => {
      const outs = BACKENDS.map(([, cfg]) => {
        const m = new Machine({ memory: '8G', fragment: { run: [run, run] }, seed, dmaDebug: false, ...cfg });
        const dev = m.pci.addDevice({ name: 'd', dmaMask: 64 });
        m.pci.bind(dev, { name: 'p', probe() {} });
        const area = m.mm.vmalloc(pages * PAGE_SIZE)!;
        const size = pages * PAGE_SIZE - offset;
        const sgt = new SgTable(m);
        expect(sg_alloc_table_from_pages_segment(sgt, area.pages, area.nrPages, offset, size, 0xffffffff, GFP_KERNEL)).toBe(0);
        const src = Uint8Array.from({ length: size }, (_, i) => (i * 7 + seed) & 0xff);
        area.write(offset, src);
        expect(dma_map_sgtable(dev, sgt, DMA_BIDIRECTIONAL, 0)).toBe(0);
        const segs = [...for_each_sgtable_dma_sg(sgt)].map((s) => ({ addr: s.dma_address, length: s.dma_length }));
        const read = dev.dma.readSegments(segs);
        expect(dev.dma.writeSegments(segs, src.map((b) => b ^ 0xff)).ok).toBe(true);
        dma_sync_sgtable_for_cpu(dev, sgt, DMA_BIDIRECTIONAL);
        dma_unmap_sgtable(dev, sgt, DMA_BIDIRECTIONAL, 0);
        const back = area.read(offset, size);
        sg_free_table(sgt);
        m.clock.advance(20e6);
        expect(m.audit()).toEqual([]);
        return { read: read.ok ? read.value : null, back };
      });
      for (const o of outs) {
        expect(o.read).toEqual(outs[0]!.read);
        expect(o.back).toEqual(outs[0]!.back);
      }
    }), { numRuns: 12 });
  });

  it('dma-iommu segments never cross the segment boundary, and only outgrow max_seg_size as the kernel\'s wrapping check allows', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 40 }), fc.constantFrom(0xffff, 0xfffff, 0xffffffff), fc.constantFrom(4096, 8192, 65536, 1 << 20), (runs, mask, maxSeg) => {
      const m = new Machine({ memory: '8G', iommu: { mode: 'strict' }, dmaDebug: false });
      const dev = m.pci.addDevice({ name: 'd', dmaMask: 64, maxSegmentSize: maxSeg, segmentBoundaryMask: mask });
      m.pci.bind(dev, { name: 'p', probe() {} });
      const pfns: number[] = [];
      let p = 0x40000;
      for (const r of runs) { for (let i = 0; i < r; i++) pfns.push(p++); p += 3; }
      const sgt = new SgTable(m);
      sg_alloc_table_from_pages_segment(sgt, pfns, pfns.length, 0, pfns.length * PAGE_SIZE, 0xffffffff, GFP_KERNEL);
      const biggestEntry = Math.max(...runs) * PAGE_SIZE;
      expect(dma_map_sgtable(dev, sgt, DMA_TO_DEVICE, 0)).toBe(0);
      let total = 0;
      for (const s of for_each_sgtable_dma_sg(sgt)) {
        total += s.dma_length;
        if (s.dma_length <= mask + 1) expect(Math.floor(s.dma_address / (mask + 1))).toBe(Math.floor((s.dma_address + s.dma_length - 1) / (mask + 1)));
        // The u32 check (max - cur >= len) wraps once a single entry exceeds the maximum.
        if (biggestEntry <= maxSeg) expect(s.dma_length).toBeLessThanOrEqual(maxSeg);
      }
      expect(total).toBe(pfns.length * PAGE_SIZE);
      dma_unmap_sgtable(dev, sgt, DMA_TO_DEVICE, 0);
      expect(m.audit()).toEqual([]);
    }), { numRuns: 60 });
  });

  it('lazy mode never hands out an IOVA again before the flush that covers its unmap', () => {
    fc.assert(fc.property(fc.array(fc.boolean(), { minLength: 5, maxLength: 300 }), (script) => {
      const m = new Machine({ memory: '8G', iommu: { mode: 'lazy' }, dmaDebug: false });
      const dev = m.pci.addDevice({ name: 'd', dmaMask: 64 });
      m.pci.bind(dev, { name: 'p', probe() {} });
      const fq = m.iommu!.groupOf('d')!.domain.fq!;
      const live: number[] = [];
      for (const map of script) {
        if (map || live.length === 0) {
          const a = dma_map_page_attrs(dev, 0x1000, 0, PAGE_SIZE, DMA_TO_DEVICE, 0);
          expect(dma_mapping_error(dev, a)).toBe(0);
          expect(fq.holds(Math.floor(a / PAGE_SIZE))).toBe(false); // not an IOVA still waiting for its flush
          live.push(a);
        } else {
          dma_unmap_page_attrs(dev, live.shift() as number, PAGE_SIZE, DMA_TO_DEVICE, 0);
        }
        m.clock.advance(100_000);
      }
    }), { numRuns: 40 });
  });
});
