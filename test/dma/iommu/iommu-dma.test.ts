import { describe, expect, it } from 'vitest';
import {
  DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_MAPPING_ERROR, DMA_TO_DEVICE, GFP_KERNEL, Machine, PAGE_SIZE, SgTable,
  dma_alloc_coherent, dma_free_coherent, dma_map_page_attrs, dma_map_sgtable, dma_mapping_error, dma_max_mapping_size,
  dma_opt_mapping_size, dma_sync_sgtable_for_cpu, dma_unmap_page_attrs, dma_unmap_sgtable, for_each_sgtable_dma_sg,
  sg_alloc_table_from_pages_segment, sg_free_table, type MachineOptions,
} from '../../../src/index.ts';

function rig(extra: Partial<MachineOptions> = {}, dev: { untrusted?: boolean; dmaMask?: number } = {}) {
  const m = new Machine({ memory: '8G', fragment: { run: [1, 4] }, ...extra });
  const d = m.pci.addDevice({ name: '0000:03:00.0', dmaMask: dev.dmaMask ?? 64, coherentDmaMask: 64, untrusted: dev.untrusted ?? false });
  m.pci.bind(d, { name: 'nvme', probe() {} });
  return { m, dev: d };
}

function transfer(m: Machine, dev: ReturnType<typeof rig>['dev']): { seen: Uint8Array; back: Uint8Array; segs: number; ents: number } {
  const area = m.mm.vmalloc(256 * 1024 + 100)!;
  const msg = Uint8Array.from({ length: area.size }, (_, i) => (i * 13 + 7) & 0xff);
  area.write(0, msg);
  const sgt = new SgTable(m);
  expect(sg_alloc_table_from_pages_segment(sgt, area.pages, area.nrPages, 0, area.size, 0xffffffff, GFP_KERNEL)).toBe(0);
  expect(dma_map_sgtable(dev, sgt, DMA_BIDIRECTIONAL, 0)).toBe(0);
  const segs = [...for_each_sgtable_dma_sg(sgt)].map((s) => ({ addr: s.dma_address, length: s.dma_length }));
  const got = dev.dma.readSegments(segs);
  const seen = got.ok ? got.value : new Uint8Array(0);
  const reply = msg.map((b) => b ^ 0x5a);
  expect(dev.dma.writeSegments(segs, reply).ok).toBe(true);
  dma_sync_sgtable_for_cpu(dev, sgt, DMA_BIDIRECTIONAL);
  dma_unmap_sgtable(dev, sgt, DMA_BIDIRECTIONAL, 0);
  const back = area.read(0, reply.length);
  const out = { seen, back, segs: segs.length, ents: sgt.orig_nents };
  sg_free_table(sgt);
  m.mm.vfree(area);
  return out;
}

describe('the same transfer through every backend', () => {
  it('direct, forced swiotlb, IOMMU strict, IOMMU lazy and passthrough deliver identical bytes', () => {
    const configs: Array<[string, Partial<MachineOptions>]> = [
      ['direct', {}],
      ['swiotlb=force', { swiotlb: { force: true } }],
      ['iommu strict', { iommu: { mode: 'strict' } }],
      ['iommu lazy', { iommu: { mode: 'lazy' } }],
      ['passthrough', { iommu: { mode: 'passthrough' } }],
    ];
    const results = configs.map(([name, cfg]) => {
      const { m, dev } = rig(cfg);
      const r = transfer(m, dev);
      m.clock.advance(20e6); // let a lazy queue flush
      expect(m.audit(), name).toEqual([]);
      return { name, ...r };
    });
    const first = results[0]!;
    for (const r of results) {
      expect(r.seen, r.name).toEqual(first.seen);
      expect(r.back, r.name).toEqual(first.back);
    }
    // The IOMMU merges the scattered pages into fewer DMA segments than there are CPU entries.
    const strict = results.find((r) => r.name === 'iommu strict')!;
    expect(strict.segs).toBeLessThan(strict.ents);
    expect(results.find((r) => r.name === 'direct')!.segs).toBe(first.ents);
  });
});

describe('dma-iommu', () => {
  it('map_page keeps the intra-granule offset and allocates below 4 GiB first for PCI devices', () => {
    const { m, dev } = rig({ iommu: { mode: 'strict' } });
    const addr = dma_map_page_attrs(dev, 0x12345, 0x80, 100, DMA_TO_DEVICE, 0);
    expect(dma_mapping_error(dev, addr)).toBe(0);
    expect(addr % PAGE_SIZE).toBe(0x80);
    expect(addr).toBeLessThan(2 ** 32);
    expect(m.iommu?.groupOf(dev.name)?.domain.paging?.pgtable.iova_to_phys(addr)).toBe(0x12345 * PAGE_SIZE + 0x80);
    dma_unmap_page_attrs(dev, addr, 100, DMA_TO_DEVICE, 0);
    expect(m.audit()).toEqual([]);
  });

  it('unmapping an address with no translation is a WARN and does nothing', () => {
    const { m, dev } = rig({ iommu: { mode: 'strict' } });
    dma_unmap_page_attrs(dev, 0x7000_0000, 4096, DMA_TO_DEVICE, 0);
    expect(m.klog.warnings('iommu_dma_unmap_phys')).toHaveLength(1);
  });

  it('strict: an access after unmap faults, and the detector names the unmap', () => {
    const { m, dev } = rig({ iommu: { mode: 'strict' } });
    const addr = dma_map_page_attrs(dev, 0x2000, 0, PAGE_SIZE, DMA_FROM_DEVICE, 0);
    dma_mapping_error(dev, addr);
    expect(dev.dma.write(addr, new Uint8Array([1])).ok).toBe(true);
    dma_unmap_page_attrs(dev, addr, PAGE_SIZE, DMA_FROM_DEVICE, 0);
    const r = dev.dma.write(addr, new Uint8Array([2]));
    expect(r.ok).toBe(false);
    expect(m.iommu?.faults.at(-1)).toMatchObject({ device: dev.name, iova: addr, access: 'write', reason: 'unmapped' });
    const uaf = m.iommuTranslator?.useAfterUnmap.at(-1);
    expect(uaf).toMatchObject({ kind: 'fault', iova: addr, unmap: { via: 'dma_unmap_page' } });
  });

  it('lazy: the device still reaches the page through the stale IOTLB until the flush, then faults', () => {
    const { m, dev } = rig({ iommu: { mode: 'lazy' } });
    const pfn = m.mm.alloc_pages(GFP_KERNEL, 0)!;
    const addr = dma_map_page_attrs(dev, pfn, 0, PAGE_SIZE, DMA_BIDIRECTIONAL, 0);
    dma_mapping_error(dev, addr);
    expect(dev.dma.read(addr, 4).ok).toBe(true); // fills the IOTLB
    dma_unmap_page_attrs(dev, addr, PAGE_SIZE, DMA_BIDIRECTIONAL, 0);
    const stale = dev.dma.write(addr, new Uint8Array([0xee]));
    expect(stale.ok).toBe(true); // the hazard: bytes still move
    expect(m.mm.readPhys(pfn * PAGE_SIZE, 1)[0]).toBe(0xee);
    expect(m.iommuTranslator?.useAfterUnmap.at(-1)).toMatchObject({ kind: 'stale-iotlb', iova: addr, unmap: { lazy: true } });
    expect(m.iommu?.groupOf(dev.name)?.domain.fq?.holds(Math.floor(addr / PAGE_SIZE))).toBe(true);
    m.clock.advance(10e6);
    expect(dev.dma.write(addr, new Uint8Array([1])).ok).toBe(false);
    expect(m.audit()).toEqual([]);
  });

  it('untrusted devices get a strict DMA domain, bounce unaligned buffers with the padding zeroed, and are limited by swiotlb', () => {
    const { m, dev } = rig({ iommu: { mode: 'lazy' } }, { untrusted: true });
    expect(m.iommu?.groupOf(dev.name)?.domain.typeName).toBe('DMA');
    expect(dma_max_mapping_size(dev)).toBe(256 * 1024);
    const pfn = m.mm.alloc_pages(GFP_KERNEL, 0)!;
    m.mm.writePhys(pfn * PAGE_SIZE, new Uint8Array(PAGE_SIZE).fill(0x77));
    const addr = dma_map_page_attrs(dev, pfn, 100, 200, DMA_TO_DEVICE, 0);
    expect(dma_mapping_error(dev, addr)).toBe(0);
    const whole = dev.dma.read(addr - (addr % PAGE_SIZE), PAGE_SIZE);
    expect(whole.ok).toBe(true);
    if (whole.ok) {
      const off = addr % PAGE_SIZE;
      expect(whole.value.subarray(off, off + 200).every((b) => b === 0x77)).toBe(true);
      expect(whole.value.subarray(0, off).every((b) => b === 0)).toBe(true); // no stale kernel data around it
      expect(whole.value.subarray(off + 200).every((b) => b === 0)).toBe(true);
    }
    dma_unmap_page_attrs(dev, addr, 200, DMA_TO_DEVICE, 0);
    expect(m.audit()).toEqual([]);
  });

  it('opt mapping size is 128 KiB; coherent buffers are contiguous in IOVA space', () => {
    const { m, dev } = rig({ iommu: { mode: 'strict' } });
    expect(dma_opt_mapping_size(dev)).toBe(128 * 1024);
    const buf = dma_alloc_coherent(dev, 5 * PAGE_SIZE, GFP_KERNEL)!;
    expect(buf.dma_handle).not.toBe(DMA_MAPPING_ERROR);
    expect(dev.dma.write(buf.dma_handle, new Uint8Array(5 * PAGE_SIZE).fill(3)).ok).toBe(true);
    expect(m.mm.readPhys(m.mm.virt_to_phys(buf.cpu_addr + 4 * PAGE_SIZE), 1)[0]).toBe(3);
    dma_free_coherent(dev, 5 * PAGE_SIZE, buf);
    expect(m.audit()).toEqual([]);
  });

  it('passthrough: DMA addresses are physical addresses', () => {
    const { m, dev } = rig({ iommu: { mode: 'passthrough' } });
    expect(m.iommu?.groupOf(dev.name)?.domain.typeName).toBe('identity');
    expect(dma_map_page_attrs(dev, 0x4321, 8, 64, DMA_TO_DEVICE, 0)).toBe(0x4321 * PAGE_SIZE + 8);
  });
});

describe('dma-iommu merging through a real IOMMU', () => {
  function mapList(pages: number, opts: { maxSegmentSize: number; segmentBoundaryMask: number; offset?: number }) {
    const m = new Machine({ memory: '8G', fragment: { run: [2, 2] }, iommu: { mode: 'strict' } });
    const dev = m.pci.addDevice({ name: 'm', dmaMask: 64, maxSegmentSize: opts.maxSegmentSize, segmentBoundaryMask: opts.segmentBoundaryMask });
    m.pci.bind(dev, { name: 'merge', probe() {} });
    const area = m.mm.vmalloc(pages * PAGE_SIZE)!;
    const sgt = new SgTable(m);
    const off = opts.offset ?? 0;
    expect(sg_alloc_table_from_pages_segment(sgt, area.pages, area.nrPages, off, area.size - off, 0xffffffff, GFP_KERNEL)).toBe(0);
    expect(dma_map_sgtable(dev, sgt, DMA_TO_DEVICE, 0)).toBe(0);
    const segs = [...for_each_sgtable_dma_sg(sgt)].map((s) => ({ addr: s.dma_address, len: s.dma_length }));
    return { m, dev, sgt, segs, area };
  }

  it('a list longer than two chunks (~300 entries) merges under a 64 KiB max segment, segments never cross a 64 KiB boundary', () => {
    const { m, dev, sgt, segs } = mapList(600, { maxSegmentSize: 65536, segmentBoundaryMask: 0xffff });
    expect(sgt.orig_nents).toBeGreaterThan(256); // three chunks of slots
    expect(segs.reduce((n, s) => n + s.len, 0)).toBe(600 * PAGE_SIZE);
    for (const s of segs) {
      expect(s.len).toBeLessThanOrEqual(65536);
      expect(Math.floor(s.addr / 65536)).toBe(Math.floor((s.addr + s.len - 1) / 65536));
    }
    expect(segs.length).toBe(Math.ceil(600 / 16)); // 16 pages per 64 KiB segment
    dma_unmap_sgtable(dev, sgt, DMA_TO_DEVICE, 0);
    expect(m.audit()).toEqual([]);
  });

  it('a 4 GiB boundary and a max segment larger than the pages: one segment', () => {
    const { segs } = mapList(64, { maxSegmentSize: 1 << 20, segmentBoundaryMask: 0xffffffff });
    expect(segs).toHaveLength(1);
    expect(segs[0]?.len).toBe(64 * PAGE_SIZE);
  });

  it('an unaligned first offset: the first segment starts at the offset, the rest still merge', () => {
    const { segs } = mapList(8, { maxSegmentSize: 1 << 20, segmentBoundaryMask: 0xffffffff, offset: 100 });
    expect(segs).toHaveLength(1);
    expect(segs[0]!.addr % PAGE_SIZE).toBe(100);
    expect(segs[0]?.len).toBe(8 * PAGE_SIZE - 100);
  });

  it('boundary padding is reported as exposed memory', () => {
    const m = new Machine({ memory: '8G', iommu: { mode: 'strict' } });
    const dev = m.pci.addDevice({ name: 'p', dmaMask: 64, segmentBoundaryMask: 0xffff });
    m.pci.bind(dev, { name: 'pad', probe() {} });
    const sgt = new SgTable(m);
    // 12 pages then 8 pages: the second would straddle the 64 KiB boundary, so the first is padded.
    sg_alloc_table_from_pages_segment(sgt, [...Array.from({ length: 12 }, (_, i) => 0x10000 + i), ...Array.from({ length: 8 }, (_, i) => 0x20000 + i)], 20, 0, 20 * PAGE_SIZE, 0xffffffff, GFP_KERNEL);
    expect(dma_map_sgtable(dev, sgt, DMA_TO_DEVICE, 0)).toBe(0);
    expect(m.dmaStats.paddingBytes).toBe(4 * PAGE_SIZE);
    expect(m.dmaStats.paddedMaps[0]).toMatchObject({ device: 'p', paddingBytes: 4 * PAGE_SIZE });
  });
});
