import { describe, expect, it } from 'vitest';
import {
  DMA_BIDIRECTIONAL, DMA_BIT_MASK, DMA_FROM_DEVICE, DMA_MAPPING_ERROR, DMA_NONE, DMA_TO_DEVICE, EIO, ENOMEM, GFP_KERNEL,
  KernelBug, Machine, PAGE_SIZE, SIZE_MAX, SgTable, dma_alloc_coherent, dma_free_coherent, dma_get_max_seg_size,
  dma_get_seg_boundary, dma_map_page_attrs, dma_map_sg_attrs, dma_map_sgtable, dma_map_single, dma_mapping_error,
  dma_max_mapping_size, dma_opt_mapping_size, dma_set_mask, dma_set_mask_and_coherent, dma_set_max_seg_size, dma_set_seg_boundary,
  dma_sync_sgtable_for_cpu, dma_unmap_page_attrs, dma_unmap_sgtable, dmam_alloc_coherent, for_each_sgtable_dma_sg,
  sg_alloc_table_from_pages_segment, sg_free_table, type Core, type Device, ULONG_MAX,
} from '../../../src/index.ts';

function setup(mask = 64, memory = '8G', swiotlb: false | { force?: boolean } = false) {
  const m = new Machine({ memory, swiotlb });
  const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: mask, coherentDmaMask: mask });
  let core: Device<Core> | undefined;
  m.pci.bind(dev, { name: 'demo', probe(d) { core = d; } });
  return { m, dev, core: core as Device<Core> };
}

describe('parameters', () => {
  it('defaults: PCI gets pci_device_add\'s 64 KiB / 0xffffffff, platform 64 KiB / ULONG_MAX; setters', () => {
    const { m, dev } = setup();
    expect(dma_get_max_seg_size(dev)).toBe(65536);
    expect(dma_get_seg_boundary(dev)).toBe(0xffffffff);
    const plat = m.platform.addDevice({ name: 'plat0', dmaMask: 64 });
    expect(dma_get_max_seg_size(plat)).toBe(65536);
    expect(dma_get_seg_boundary(plat)).toBe(ULONG_MAX);
    dma_set_max_seg_size(dev, 1 << 20);
    expect(dma_get_max_seg_size(dev)).toBe(1 << 20);
    // A zero in dma_parms means "not set": the getters fall back to the kernel's defaults.
    dma_set_seg_boundary(plat, 0);
    dma_set_max_seg_size(plat, 0);
    expect(dma_get_seg_boundary(plat)).toBe(ULONG_MAX);
    expect(dma_get_max_seg_size(plat)).toBe(65536);
  });

  it('dma_set_mask: 0 for masks that reach ZONE_DMA, -EIO below, -EIO without a mask pointer', () => {
    const { m, dev } = setup();
    expect(dma_set_mask(dev, DMA_BIT_MASK(32))).toBe(0);
    expect(dma_set_mask(dev, DMA_BIT_MASK(20))).toBe(-EIO);
    expect(dma_set_mask_and_coherent(dev, DMA_BIT_MASK(64))).toBe(0);
    const nomask = m.platform.addDevice({ name: 'p', dmaMask: 0 });
    expect(dma_set_mask(nomask, DMA_BIT_MASK(32))).toBe(-EIO);
  });

  it('without dma_parms the setters WARN once', () => {
    const m = new Machine({ memory: '64M' });
    const dev = m.platform.addDevice({ name: 'p', hasDmaParms: false });
    dma_set_max_seg_size(dev, 4096);
    dma_set_max_seg_size(dev, 4096);
    expect(m.klog.warnings('dma_set_max_seg_size')).toHaveLength(1);
    expect(dma_get_max_seg_size(dev)).toBe(65536);
  });
});

describe('dma-direct streaming mappings', () => {
  it('the DMA address is the physical address; unmap is quiet', () => {
    const { dev } = setup();
    const addr = dma_map_page_attrs(dev, 0x1234, 16, 100, DMA_TO_DEVICE, 0);
    expect(addr).toBe(0x1234 * PAGE_SIZE + 16);
    expect(dma_mapping_error(dev, addr)).toBe(0);
    dma_unmap_page_attrs(dev, addr, 100, DMA_TO_DEVICE, 0);
  });

  it('a buffer beyond the mask without swiotlb: the overflow WARN and DMA_MAPPING_ERROR', () => {
    const { m, dev } = setup(32);
    const pfn = m.mm.alloc_pages(GFP_KERNEL, 0) as number;
    expect(pfn * PAGE_SIZE).toBeGreaterThanOrEqual(2 ** 32);
    const addr = dma_map_page_attrs(dev, pfn, 0, PAGE_SIZE, DMA_FROM_DEVICE, 0);
    expect(addr).toBe(DMA_MAPPING_ERROR);
    expect(dma_mapping_error(dev, addr)).toBe(-ENOMEM);
    const w = m.klog.warnings('dma_direct_map_phys');
    expect(w).toHaveLength(1);
    expect(w[0]?.message).toBe(`demo 0000:01:00.0: DMA addr 0x${(pfn * PAGE_SIZE).toString(16).padStart(16, '0')}+4096 overflow (mask ffffffff, bus limit 0).`);
  });

  it('an invalid direction is a BUG', () => {
    const { dev } = setup();
    expect(() => dma_map_page_attrs(dev, 1, 0, 1, DMA_NONE, 0)).toThrow(KernelBug);
    expect(() => dma_map_page_attrs(dev, 1, 0, 1, 7, 0)).toThrow(/valid_dma_direction/);
  });

  it('dma_map_single refuses vmalloc memory', () => {
    const { m, dev } = setup();
    const area = m.mm.vmalloc(PAGE_SIZE)!;
    expect(dma_map_single(dev, area.addr, 64, DMA_TO_DEVICE)).toBe(DMA_MAPPING_ERROR);
    expect(dma_map_single(dev, m.mm.phys_to_virt(0x200000), 64, DMA_TO_DEVICE)).toBe(0x200000);
  });

  it('max mapping size is SIZE_MAX and there is no merging', () => {
    const { dev } = setup();
    expect(dma_max_mapping_size(dev)).toBe(SIZE_MAX);
    expect(dma_opt_mapping_size(dev)).toBe(SIZE_MAX);
  });
});

describe('dma-direct scatterlists', () => {
  it('each entry mapped on its own: dma_address = phys, dma_len = length, nents set', () => {
    const { m, dev } = setup();
    const sgt = new SgTable(m);
    sg_alloc_table_from_pages_segment(sgt, [0x1000, 0x1001, 0x2000], 3, 8, 3 * PAGE_SIZE - 8, 0xffffffff, GFP_KERNEL);
    expect(sgt.orig_nents).toBe(2);
    sgt.nents = 0;
    expect(dma_map_sgtable(dev, sgt, DMA_BIDIRECTIONAL, 0)).toBe(0);
    expect(sgt.nents).toBe(2);
    expect([...for_each_sgtable_dma_sg(sgt)].map((s) => [s.dma_address, s.dma_length])).toEqual([[0x1000 * PAGE_SIZE + 8, 2 * PAGE_SIZE - 8], [0x2000 * PAGE_SIZE, PAGE_SIZE]]);
    dma_unmap_sgtable(dev, sgt, DMA_BIDIRECTIONAL, 0);
    sg_free_table(sgt);
  });

  it('a failing entry unmaps the prefix and returns -EIO; nents untouched; dma_map_sg_attrs gives 0', () => {
    const { m, dev } = setup(32);
    const high = m.mm.alloc_pages(GFP_KERNEL, 0) as number;
    const sgt = new SgTable(m);
    sg_alloc_table_from_pages_segment(sgt, [0x1000, high], 2, 0, 2 * PAGE_SIZE, 0xffffffff, GFP_KERNEL);
    sgt.nents = 77;
    expect(dma_map_sgtable(dev, sgt, DMA_TO_DEVICE, 0)).toBe(-EIO);
    expect(sgt.nents).toBe(77);
    expect(dma_map_sg_attrs(dev, sgt.sgl, sgt.orig_nents, DMA_TO_DEVICE, 0)).toBe(0);
  });
});

describe('coherent allocations', () => {
  it('come from memory the coherent mask reaches, zeroed', () => {
    const { m, dev } = setup(32);
    const buf = dma_alloc_coherent(dev, 3 * PAGE_SIZE, GFP_KERNEL);
    expect(buf).not.toBeNull();
    expect(buf!.dma_handle + 3 * PAGE_SIZE - 1).toBeLessThanOrEqual(DMA_BIT_MASK(32));
    expect(m.mm.virt_to_phys(buf!.cpu_addr)).toBe(buf!.dma_handle);
    const before = m.mm.allocatedPages;
    dma_free_coherent(dev, 3 * PAGE_SIZE, buf!);
    expect(m.mm.allocatedPages).toBe(before - 4);
  });

  it('an injected coherent failure is null with nothing allocated', () => {
    const { m, dev } = setup();
    m.faults.inject('coherent', { nth: 1 });
    const before = m.mm.allocatedPages;
    expect(dma_alloc_coherent(dev, PAGE_SIZE, GFP_KERNEL)).toBeNull();
    expect(m.mm.allocatedPages).toBe(before);
  });

  it('dmam_alloc_coherent is freed at unbind', () => {
    const { m, dev, core } = setup();
    const before = m.mm.allocatedPages;
    expect(dmam_alloc_coherent(core, PAGE_SIZE, GFP_KERNEL)).not.toBeNull();
    expect(m.mm.allocatedPages).toBe(before + 1);
    m.pci.unbind(dev);
    expect(m.mm.allocatedPages).toBe(before);
  });
});

describe('swiotlb bouncing under dma-direct', () => {
  it('the pool sits just below 4 GiB and is set up by default when RAM reaches above 4 GiB', () => {
    const m = new Machine({ memory: '8G' });
    expect(m.swiotlb).not.toBeNull();
    expect(m.swiotlb!.end).toBe(2 ** 32);
    expect(m.swiotlb!.start).toBe(2 ** 32 - 64 * 2 ** 20);
    expect(new Machine({ memory: '1G' }).swiotlb).toBeNull();
  });

  it('a 32-bit device on a big machine bounces: the device sees bytes only after sync', () => {
    const { m, dev } = setup(32, '8G', {});
    const pfn = m.mm.alloc_pages(GFP_KERNEL, 0) as number;
    m.mm.writePhys(pfn * PAGE_SIZE, new Uint8Array(PAGE_SIZE).fill(0x11));
    const addr = dma_map_page_attrs(dev, pfn, 0, PAGE_SIZE, DMA_BIDIRECTIONAL, 0);
    expect(dma_mapping_error(dev, addr)).toBe(0);
    expect(addr).toBeLessThan(2 ** 32);
    expect(m.swiotlb!.is_swiotlb_buffer(addr)).toBe(true);
    const seen = dev.dma.read(addr, 4);
    expect(seen.ok && Array.from(seen.value)).toEqual([0x11, 0x11, 0x11, 0x11]); // copied at map time
    expect(dev.dma.write(addr, new Uint8Array([9, 9])).ok).toBe(true);
    expect(m.mm.readPhys(pfn * PAGE_SIZE, 2)).toEqual(new Uint8Array([0x11, 0x11])); // not yet
    dma_unmap_page_attrs(dev, addr, PAGE_SIZE, DMA_BIDIRECTIONAL, 0);
    expect(m.mm.readPhys(pfn * PAGE_SIZE, 2)).toEqual(new Uint8Array([9, 9])); // copied back at unmap
    expect(m.swiotlb!.slotsInUse).toBe(0);
  });

  it('swiotlb=force bounces even reachable buffers; max mapping size becomes 256 KiB', () => {
    const { m, dev } = setup(64, '8G', { force: true });
    expect(dma_max_mapping_size(dev)).toBe(256 * 1024);
    const addr = dma_map_page_attrs(dev, 0x1000, 0, 100, DMA_TO_DEVICE, 0);
    expect(m.swiotlb!.is_swiotlb_buffer(addr)).toBe(true);
    dma_unmap_page_attrs(dev, addr, 100, DMA_TO_DEVICE, 0);
  });
});

describe('end to end through dma-direct', () => {
  it('CPU fills a vmalloc buffer, the device reads it and writes a reply, the CPU reads after sync', () => {
    const { m, dev } = setup(64, '1G');
    const area = m.mm.vmalloc(64 * 1024)!;
    const msg = Uint8Array.from({ length: 64 * 1024 }, (_, i) => (i * 31) & 0xff);
    area.write(0, msg);
    const sgt = new SgTable(m);
    expect(sg_alloc_table_from_pages_segment(sgt, area.pages, area.nrPages, 0, area.size, 0xffffffff, GFP_KERNEL)).toBe(0);
    expect(dma_map_sgtable(dev, sgt, DMA_BIDIRECTIONAL, 0)).toBe(0);
    const segs = [...for_each_sgtable_dma_sg(sgt)].map((s) => ({ addr: s.dma_address, length: s.dma_length }));
    const seen = dev.dma.readSegments(segs);
    expect(seen.ok && seen.value).toEqual(msg);
    const reply = msg.map((b) => b ^ 0xff);
    expect(dev.dma.writeSegments(segs, reply).ok).toBe(true);
    dma_sync_sgtable_for_cpu(dev, sgt, DMA_BIDIRECTIONAL);
    expect(area.read(0, reply.length)).toEqual(reply);
    dma_unmap_sgtable(dev, sgt, DMA_BIDIRECTIONAL, 0);
    sg_free_table(sgt);
  });
});
