/** @module test/dma/debug/unmap: §2 bookkeeping and lookups, §3.1 unmap and free. */
import { describe, expect, it } from 'vitest';
import { DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE } from '../../../src/dma/api/direction.ts';
import { DMA_ATTR_MMIO, linearDebugMemory } from '../../../src/dma/debug/index.ts';
import { VMALLOC_START } from '../../../src/mm/constants.ts';
import { A, ERR, identitySg, mapChecked, P, pciDev, rig, sge, virt } from './helpers.ts';

const X = 0x100000;
const notAllocated = (addr: number, size = 4096): string =>
  `${P()}device driver tries to free DMA memory it has not allocated [device address=${A(addr)}] [size=${size} bytes]\n`;
const invalid = `${P()}device driver tries to free an invalid DMA memory address\n`;
const wrongFn = (addr: number, size: number, mapped: string, unmapped: string): string =>
  `${P()}device driver frees DMA memory with wrong function [device address=${A(addr)}] [size=${size} bytes] [mapped as ${mapped}] [unmapped as ${unmapped}]\n`;
const diffDir = (addr: number, size: number, mapped: string, unmapped: string): string =>
  `${P()}device driver frees DMA memory with different direction [device address=${A(addr)}] [size=${size} bytes] [mapped with ${mapped}] [unmapped with ${unmapped}]\n`;
const diffSize = (addr: number, map: number, unmap: number): string =>
  `${P()}device driver frees DMA memory with different size [device address=${A(addr)}] [map size=${map} bytes] [unmap size=${unmap} bytes]\n`;
const diffCpu = (addr: number, size: number, alloc: number, free: number): string =>
  `${P()}device driver frees DMA memory with different CPU address [device address=${A(addr)}] [size=${size} bytes] [cpu alloc address=0x${A(alloc)}] [cpu free address=0x${A(free)}]`;
const sgCount = (map: number, unmap: number): string =>
  `${P()}device driver frees DMA sg list with different entry count [map count=${map}] [unmap count=${unmap}]\n`;
const unchecked = (addr: number, size: number): string =>
  `${P()}device driver failed to check map error[device address=${A(addr)}] [size=${size} bytes] [mapped as phy]`;

describe('dma-debug §2: what is recorded', () => {
  it('each map or alloc records one entry with the kernel\'s fields; an sg map one per mapped segment', () => {
    const r = rig();
    r.dbg.debug_dma_map_phys(r.dev, X + 0x10, 100, DMA_TO_DEVICE, 0x8000_0010);
    r.dbg.debug_dma_map_sg(r.dev, identitySg([0x200000, 0x300000, 0x400000]), 3, 2, DMA_FROM_DEVICE);
    r.dbg.debug_dma_alloc_coherent(r.dev, 8192, 0x9000_0000, virt(0x500000));
    r.dbg.debug_dma_alloc_pages(r.dev, 0x600, 16384, DMA_FROM_DEVICE, 0xa000_0000);
    const e = r.dbg.entries();
    // Scan order: bucket by bucket ((addr >> 13) & 0x3fff), each bucket in insertion order.
    expect(e.map((x) => [x.type, x.dev_addr, x.size, x.direction, x.sg_call_ents, x.sg_mapped_ents, x.paddr, x.map_err_type])).toEqual([
      ['phy', 0x8000_0010, 100, DMA_TO_DEVICE, 0, 0, X + 0x10, 'not checked'],
      ['coherent', 0x9000_0000, 8192, DMA_BIDIRECTIONAL, 0, 0, 0x500000, 'not applicable'],
      ['noncoherent', 0xa000_0000, 16384, DMA_FROM_DEVICE, 0, 0, 0x600000, 'not applicable'],
      ['scatter-gather', 0x200000, 4096, DMA_FROM_DEVICE, 3, 2, 0x200000, 'not applicable'],
      ['scatter-gather', 0x300000, 4096, DMA_FROM_DEVICE, 3, 2, 0x300000, 'not applicable'],
    ]);
    expect(e.map((x) => x.bucket)).toEqual([0, 0, 0, 0x100, 0x180]);
    expect(r.dbg.entryCount(r.dev)).toBe(5);
    expect(r.dbg.entryCount(pciDev('other'))).toBe(0);
    expect(r.dbg.audit()).toEqual([]);
  });

  it('map_error_on_failed_mapping_silent', () => {
    const r = rig();
    r.dbg.debug_dma_map_phys(r.dev, X, 4096, DMA_TO_DEVICE, ERR);
    expect(r.dbg.entryCount()).toBe(0);
    expect(r.dbg.error_count).toBe(0);
  });

  it('coherent_untracked_cpu_addr', () => {
    const r = rig();
    const odd = VMALLOC_START - 0x10000; // neither linear-map RAM (beyond the default 2^32 pfns) nor vmalloc
    r.dbg.debug_dma_alloc_coherent(r.dev, 4096, X, odd);
    expect(r.dbg.entryCount()).toBe(0);
    r.dbg.debug_dma_free_coherent(r.dev, 4096, odd, X);
    r.dbg.debug_dma_alloc_coherent(r.dev, 4096, X, null);
    r.dbg.debug_dma_free_coherent(r.dev, 4096, null, X);
    expect(r.dbg.error_count).toBe(0);
  });

  it('coherent_vmalloc_cpu_addr', () => {
    const vpages = [0x777, 0x123];
    const memory = linearDebugMemory({
      vmallocToPhys: (v) => (vpages[Math.floor((v - VMALLOC_START) / 4096)] ?? 0) * 4096 + (v % 4096),
    });
    const r = rig({ memory });
    r.dbg.debug_dma_alloc_coherent(r.dev, 4096, X, VMALLOC_START);
    expect(r.dbg.entries()[0]?.paddr).toBe(0x777000);
    r.dbg.debug_dma_free_coherent(r.dev, 4096, VMALLOC_START + 4096, X);
    expect(r.errors()).toEqual([diffCpu(X, 4096, 0x777000, 0x123000)]);
    r.dbg.debug_dma_alloc_coherent(r.dev, 4096, X, VMALLOC_START);
    r.dbg.debug_dma_free_coherent(r.dev, 4096, VMALLOC_START, X);
    expect(r.dbg.error_count).toBe(1);
    expect(r.dbg.entryCount()).toBe(0);
  });
});

describe('dma-debug §2: exact lookup and best fit', () => {
  it('bestfit_single_candidate_partial_match', () => {
    const r = rig();
    mapChecked(r, X, 4096, DMA_TO_DEVICE);
    r.dbg.debug_dma_unmap_phys(r.dev, X, 2048, DMA_FROM_DEVICE);
    expect(r.errors()).toEqual([diffSize(X, 4096, 2048), diffDir(X, 2048, 'DMA_TO_DEVICE', 'DMA_FROM_DEVICE')]);
    expect(r.dbg.entryCount()).toBe(0);
  });

  it('bestfit_ambiguous_unmap', () => {
    const r = rig();
    r.dbg.debug_dma_map_phys(r.dev, X, 4096, DMA_TO_DEVICE, X);
    r.dbg.debug_dma_map_phys(r.dev, X, 4096, DMA_FROM_DEVICE, X);
    r.dbg.debug_dma_unmap_phys(r.dev, X, 4096, DMA_BIDIRECTIONAL);
    expect(r.errors()).toEqual([notAllocated(X)]);
    expect(r.dbg.entryCount()).toBe(2);
    // Both entries are now checked: the remap checked the first, the failed unmap the second.
    expect(r.dbg.entries().map((e) => e.map_err_type)).toEqual(['checked', 'checked']);
    r.dbg.debug_dma_unmap_phys(r.dev, X, 4096, DMA_FROM_DEVICE);
    r.dbg.debug_dma_unmap_phys(r.dev, X, 4096, DMA_TO_DEVICE);
    expect(r.dbg.error_count).toBe(1);
    expect(r.dbg.entryCount()).toBe(0);
  });

  it('bestfit_ambiguous_marks_newest_unchecked', () => {
    const r = rig();
    r.dbg.debug_dma_map_phys(r.dev, X, 4096, DMA_TO_DEVICE, X);
    r.dbg.debug_dma_map_phys(r.dev, X, 4096, DMA_FROM_DEVICE, X);
    expect(r.dbg.entries().map((e) => e.map_err_type)).toEqual(['checked', 'not checked']);
    r.dbg.debug_dma_unmap_phys(r.dev, X, 4096, DMA_BIDIRECTIONAL);
    expect(r.dbg.entries().map((e) => e.map_err_type)).toEqual(['checked', 'checked']);
    // A third, unchecked mapping at X: an ambiguous unmap marks the first unchecked in list order.
    r.dbg.debug_dma_map_phys(r.dev, X, 4096, DMA_TO_DEVICE, X);
    r.dbg.debug_dma_map_phys(r.dev, X, 8192, DMA_TO_DEVICE, X);
    expect(r.dbg.entries().map((e) => e.map_err_type)).toEqual(['checked', 'checked', 'checked', 'not checked']);
  });

  it('bestfit_same_addr_two_sizes', () => {
    const r = rig();
    mapChecked(r, X, 4096, DMA_TO_DEVICE);
    mapChecked(r, X, 8192, DMA_TO_DEVICE);
    r.dbg.debug_dma_unmap_phys(r.dev, X, 2048, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([notAllocated(X, 2048)]);
    r.dbg.debug_dma_unmap_phys(r.dev, X, 8192, DMA_TO_DEVICE);
    expect(r.dbg.entries().map((e) => e.size)).toEqual([4096]);
    r.dbg.debug_dma_unmap_phys(r.dev, X, 2048, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([notAllocated(X, 2048), diffSize(X, 4096, 2048)]);
    expect(r.dbg.entryCount()).toBe(0);
  });

  it('bestfit_two_sg_lists_same_addresses', () => {
    const r = rig();
    const list = identitySg([X, 0x200000]);
    r.dbg.debug_dma_map_sg(r.dev, list, 2, 2, DMA_FROM_DEVICE);
    r.dbg.debug_dma_map_sg(r.dev, list, 2, 2, DMA_FROM_DEVICE);
    r.dbg.debug_dma_unmap_sg(r.dev, list, 2, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([notAllocated(X), notAllocated(0x200000)]);
    expect(r.dbg.entryCount()).toBe(4);
    r.dbg.debug_dma_unmap_sg(r.dev, list, 2, DMA_FROM_DEVICE);
    r.dbg.debug_dma_unmap_sg(r.dev, list, 2, DMA_FROM_DEVICE);
    expect(r.dbg.error_count).toBe(2);
    expect(r.dbg.entryCount()).toBe(0);
  });

  it('entries are keyed by device identity and address: another device object never matches', () => {
    const r = rig();
    const twin = pciDev(r.dev.name);
    mapChecked(r, X, 4096, DMA_TO_DEVICE);
    r.dbg.debug_dma_unmap_phys(twin, X, 4096, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([notAllocated(X)]);
  });
});

describe('dma-debug §2: the map-error state', () => {
  it('map_error_implicitly_checked_by_remap', () => {
    const r = rig();
    r.dbg.debug_dma_map_phys(r.dev, X, 4096, DMA_TO_DEVICE, X);
    r.dbg.debug_dma_map_phys(r.dev, X, 4096, DMA_TO_DEVICE, X);
    r.dbg.debug_dma_unmap_phys(r.dev, X, 4096, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([]);
    r.dbg.debug_dma_unmap_phys(r.dev, X, 4096, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([unchecked(X, 4096)]);
  });

  it('map_error_resource_not_checked', () => {
    const r = rig({ memory: linearDebugMemory({ ram: [{ startPfn: 0, endPfn: 0x10000 }] }) });
    const bar = 0xfe000000; // outside RAM: no MMIO-on-RAM report
    r.dbg.debug_dma_map_phys(r.dev, bar, 4096, DMA_BIDIRECTIONAL, bar, DMA_ATTR_MMIO);
    r.dbg.debug_dma_unmap_phys(r.dev, bar, 4096, DMA_BIDIRECTIONAL);
    expect(r.errors()).toEqual([unchecked(bar, 4096)]);
  });

  it('map_error_sg_not_applicable', () => {
    const r = rig();
    const list = identitySg([X, 0x200000]);
    r.dbg.debug_dma_map_sg(r.dev, list, 2, 2, DMA_TO_DEVICE);
    r.dbg.debug_dma_unmap_sg(r.dev, list, 2, DMA_TO_DEVICE);
    r.dbg.debug_dma_alloc_coherent(r.dev, 4096, X, virt(X));
    r.dbg.debug_dma_free_coherent(r.dev, 4096, virt(X), X);
    r.dbg.debug_dma_alloc_pages(r.dev, 0x100, 4096, DMA_TO_DEVICE, X);
    r.dbg.debug_dma_free_pages(r.dev, 0x100, 4096, DMA_TO_DEVICE, X);
    expect(r.dbg.error_count).toBe(0);
  });

  it('map_error_check_after_unmap', () => {
    const r = rig();
    r.dbg.debug_dma_map_phys(r.dev, X, 4096, DMA_TO_DEVICE, X);
    r.dbg.debug_dma_unmap_phys(r.dev, X, 4096, DMA_TO_DEVICE);
    r.dbg.debug_dma_mapping_error(r.dev, X);
    expect(r.errors()).toEqual([unchecked(X, 4096)]);
  });

  it('map_error_checked_wrong_address', () => {
    const r = rig();
    r.dbg.debug_dma_map_phys(r.dev, X, 4096, DMA_TO_DEVICE, X);
    r.dbg.debug_dma_mapping_error(r.dev, X + 4096);
    r.dbg.debug_dma_mapping_error(pciDev(), X);
    r.dbg.debug_dma_unmap_phys(r.dev, X, 4096, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([unchecked(X, 4096)]);
  });
});

describe('dma-debug §3.1: lookup fails', () => {
  it('unmap_failed_mapping', () => {
    const r = rig();
    r.dbg.debug_dma_unmap_phys(r.dev, ERR, 4096, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([invalid]);
  });

  it('unmap_invalid_address_sg', () => {
    const r = rig();
    r.dbg.debug_dma_unmap_sg(r.dev, [sge(X, 4096, ERR)], 1, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([invalid]);
  });

  it('unmap_near_mapping_error_value', () => {
    const r = rig();
    r.dbg.debug_dma_unmap_phys(r.dev, 2 ** 64 - 4096, 4096, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([
      `${P()}device driver tries to free DMA memory it has not allocated [device address=0xfffffffffffff000] [size=4096 bytes]\n`,
    ]);
  });

  it('unmap_never_mapped', () => {
    const r = rig();
    r.dbg.debug_dma_unmap_phys(r.dev, X, 4096, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([notAllocated(X)]);
  });

  it('unmap_twice', () => {
    const r = rig();
    mapChecked(r, X, 4096, DMA_TO_DEVICE);
    r.dbg.debug_dma_unmap_phys(r.dev, X, 4096, DMA_TO_DEVICE);
    r.dbg.debug_dma_unmap_phys(r.dev, X, 4096, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([notAllocated(X)]);
  });

  it('unmap_mid_mapping_address', () => {
    const r = rig();
    mapChecked(r, X, 8192, DMA_TO_DEVICE);
    r.dbg.debug_dma_unmap_phys(r.dev, X + 4096, 4096, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([notAllocated(X + 4096)]);
    expect(r.dbg.entryCount()).toBe(1);
  });

  it('unmap_wrong_device', () => {
    const r = rig();
    const other = pciDev('0000:00:05.0');
    mapChecked(r, X, 4096, DMA_TO_DEVICE);
    r.dbg.debug_dma_unmap_phys(other, X, 4096, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([
      `${P('e1000', '0000:00:05.0')}device driver tries to free DMA memory it has not allocated [device address=${A(X)}] [size=4096 bytes]\n`,
    ]);
    expect(r.dbg.entryCount(r.dev)).toBe(1);
  });
});

describe('dma-debug §3.1: lookup succeeds', () => {
  it('unmap_wrong_size', () => {
    const r = rig();
    mapChecked(r, X, 4096, DMA_TO_DEVICE);
    r.dbg.debug_dma_unmap_phys(r.dev, X, 2048, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([diffSize(X, 4096, 2048)]);
    expect(r.dbg.entryCount()).toBe(0);
  });

  it('free_pages_wrong_dir_size', () => {
    const r = rig();
    r.dbg.debug_dma_alloc_pages(r.dev, 0x300, 16384, DMA_FROM_DEVICE, X);
    r.dbg.debug_dma_free_pages(r.dev, 0x300, 8192, DMA_TO_DEVICE, X);
    expect(r.errors()).toEqual([diffSize(X, 16384, 8192), diffDir(X, 8192, 'DMA_FROM_DEVICE', 'DMA_TO_DEVICE')]);
  });

  it('unmap_page_on_coherent', () => {
    const r = rig();
    r.dbg.debug_dma_alloc_coherent(r.dev, 4096, X, virt(X));
    r.dbg.debug_dma_unmap_phys(r.dev, X, 4096, DMA_BIDIRECTIONAL);
    expect(r.errors()).toEqual([wrongFn(X, 4096, 'coherent', 'phy')]);
    expect(r.dbg.entryCount()).toBe(0);
  });

  it('free_coherent_on_streaming_mapping', () => {
    const r = rig();
    mapChecked(r, X, 4096, DMA_FROM_DEVICE);
    r.dbg.debug_dma_free_coherent(r.dev, 4096, virt(X), X);
    expect(r.errors()).toEqual([wrongFn(X, 4096, 'phy', 'coherent'), diffDir(X, 4096, 'DMA_FROM_DEVICE', 'DMA_BIDIRECTIONAL')]);
  });

  it('unmap_page_on_sg_segment', () => {
    const r = rig();
    r.dbg.debug_dma_map_sg(r.dev, identitySg([X]), 1, 1, DMA_FROM_DEVICE);
    r.dbg.debug_dma_unmap_phys(r.dev, X, 4096, DMA_FROM_DEVICE);
    expect(r.errors()).toEqual([wrongFn(X, 4096, 'scatter-gather', 'phy')]);
  });

  it('unmap_sg_on_page_mapping', () => {
    const r = rig();
    mapChecked(r, X, 4096, DMA_FROM_DEVICE);
    r.dbg.debug_dma_unmap_sg(r.dev, identitySg([X]), 1, DMA_FROM_DEVICE);
    expect(r.errors()).toEqual([wrongFn(X, 4096, 'phy', 'scatter-gather'), sgCount(0, 1)]);
  });

  it('free_pages_via_free_coherent', () => {
    const r = rig();
    r.dbg.debug_dma_alloc_pages(r.dev, X / 4096, 4096, DMA_BIDIRECTIONAL, X);
    r.dbg.debug_dma_free_coherent(r.dev, 4096, virt(X), X);
    expect(r.errors()).toEqual([wrongFn(X, 4096, 'noncoherent', 'coherent')]);
  });

  it('free_coherent_wrong_cpu_address', () => {
    const r = rig();
    r.dbg.debug_dma_alloc_coherent(r.dev, 4096, X, virt(0x500000));
    r.dbg.debug_dma_free_coherent(r.dev, 4096, virt(0x501000), X);
    expect(r.errors()).toEqual([diffCpu(X, 4096, 0x500000, 0x501000)]);
    expect(r.errors()[0]).toContain('[cpu alloc address=0x0x0000000000500000]');
    expect(r.dbg.entryCount()).toBe(0);
  });

  it('free_pages_wrong_page', () => {
    const r = rig();
    r.dbg.debug_dma_alloc_pages(r.dev, 0x500, 4096, DMA_FROM_DEVICE, X);
    r.dbg.debug_dma_free_pages(r.dev, 0x501, 4096, DMA_FROM_DEVICE, X);
    expect(r.errors()).toEqual([diffCpu(X, 4096, 0x500000, 0x501000)]);
  });

  it('free_coherent_wrong_size_and_cpu', () => {
    const r = rig();
    r.dbg.debug_dma_alloc_coherent(r.dev, 8192, X, virt(0x500000));
    r.dbg.debug_dma_free_coherent(r.dev, 4096, virt(0x502000), X);
    expect(r.errors()).toEqual([diffSize(X, 8192, 4096), diffCpu(X, 4096, 0x500000, 0x502000)]);
  });

  it('coherent_freed_as_pages', () => {
    const r = rig();
    r.dbg.debug_dma_alloc_coherent(r.dev, 4096, X, virt(0x500000));
    r.dbg.debug_dma_free_pages(r.dev, 0x777, 4096, DMA_BIDIRECTIONAL, X);
    expect(r.errors()).toEqual([wrongFn(X, 4096, 'coherent', 'noncoherent')]);
  });

  it('unmap_bidir_with_to_device', () => {
    const r = rig();
    mapChecked(r, X, 4096, DMA_TO_DEVICE);
    r.dbg.debug_dma_unmap_phys(r.dev, X, 4096, DMA_BIDIRECTIONAL);
    expect(r.errors()).toEqual([diffDir(X, 4096, 'DMA_TO_DEVICE', 'DMA_BIDIRECTIONAL')]);
  });

  it('all checks fire independently and in order: size, function, sg count, direction, map error', () => {
    const r = rig();
    r.dbg.debug_dma_map_phys(r.dev, X, 4096, DMA_TO_DEVICE, X);
    r.dbg.debug_dma_unmap_sg(r.dev, [sge(X, 512, X, 512)], 1, DMA_FROM_DEVICE);
    expect(r.errors()).toEqual([
      diffSize(X, 4096, 512), wrongFn(X, 512, 'phy', 'scatter-gather'), sgCount(0, 1),
      diffDir(X, 512, 'DMA_TO_DEVICE', 'DMA_FROM_DEVICE'), unchecked(X, 512),
    ]);
    expect(r.dbg.entryCount()).toBe(0);
  });
});

describe('dma-debug §3.1: dma_unmap_sg', () => {
  it('sg_unmap_with_mapped_count', () => {
    const r = rig();
    const list = [sge(X, 4096, 0x8000_0000, 8192), sge(X + 4096, 4096, 0x8000_4000, 4096), sge(0x300000, 4096, 0, 0)];
    r.dbg.debug_dma_map_sg(r.dev, list, 3, 2, DMA_TO_DEVICE);
    r.dbg.debug_dma_unmap_sg(r.dev, list, 2, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([sgCount(3, 2), sgCount(3, 2)]);
    expect(r.dbg.entryCount()).toBe(0);
  });

  it('sg_unmap_fewer_nents_identity', () => {
    const r = rig();
    const list = identitySg([X, 0x200000, 0x300000]);
    r.dbg.debug_dma_map_sg(r.dev, list, 3, 3, DMA_TO_DEVICE);
    r.dbg.debug_dma_unmap_sg(r.dev, list, 2, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([sgCount(3, 2), sgCount(3, 2)]);
    expect(r.dbg.entries().map((e) => e.dev_addr)).toEqual([0x300000]);
  });

  it('sg_unmap_never_mapped', () => {
    const r = rig();
    r.dbg.debug_dma_unmap_sg(r.dev, [sge(X, 4096, X), sge(0x200000, 8192, 0x200000), sge(0x300000, 512, 0x300000)], 3, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([notAllocated(X), notAllocated(0x200000, 8192), notAllocated(0x300000, 512)]);
  });

  it('sg_unmap_modified_entry_leaks', () => {
    const r = rig();
    const list = identitySg([X, 0x200000, 0x300000]);
    r.dbg.debug_dma_map_sg(r.dev, list, 3, 3, DMA_TO_DEVICE);
    list[1] = sge(0x200000, 4096, 0x250000);
    r.dbg.debug_dma_unmap_sg(r.dev, list, 3, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([notAllocated(0x250000)]);
    expect(r.dbg.entries().map((e) => e.dev_addr)).toEqual([0x200000]);
  });

  it('the mapped count stops the walk: the unmapped tail of a merged list is not checked', () => {
    const r = rig();
    const list = [sge(X, 4096, 0x8000_0000, 8192), sge(X + 4096, 4096, 0x8000_4000, 4096), sge(0x300000, 4096, 0, 0)];
    r.dbg.debug_dma_map_sg(r.dev, list, 3, 2, DMA_TO_DEVICE);
    r.dbg.debug_dma_unmap_sg(r.dev, list, 3, DMA_TO_DEVICE);
    expect(r.dbg.error_count).toBe(0);
    expect(r.dbg.entryCount()).toBe(0);
    // A list shorter than nelems ends the walk at its end (the kernel would run off it).
    const short = identitySg([X, 0x200000]);
    r.dbg.debug_dma_map_sg(r.dev, short, 2, 2, DMA_TO_DEVICE);
    r.dbg.debug_dma_unmap_sg(r.dev, short, 5, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([sgCount(2, 5), sgCount(2, 5)]);
    expect(r.dbg.entryCount()).toBe(0);
  });
});
