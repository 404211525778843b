/** @module test/dma/debug/map-checks: §3.4 checks when mapping (dma_map_single, MMIO, stack, kernel image, sg segments). */
import { describe, expect, it } from 'vitest';
import { DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE } from '../../../src/dma/api/direction.ts';
import {
  DMA_ATTR_MMIO, dma_map_single_rejects_vmalloc, linearDebugMemory, type DebugMemory, type KernelImage, type TaskStack,
} from '../../../src/dma/debug/index.ts';
import { VMALLOC_END, VMALLOC_START } from '../../../src/mm/constants.ts';
import { A, ERR, P, pciDev, ptr, rig, sge, virt, type Rig } from './helpers.ts';

/** RAM 0-3 GiB and 4-8 GiB (a PCI hole between), the first MiB reserved. */
const memory: DebugMemory = linearDebugMemory({
  ram: [{ startPfn: 0, endPfn: 0xc0000 }, { startPfn: 0x100000, endPfn: 0x200000 }],
  reserved: (pfn) => pfn < 256,
});
/** Kernel text 16..24 MiB, a gap, rodata 26..28 MiB, all in the linear map. */
const image: KernelImage = { text: [virt(0x1000000), virt(0x1800000)], rodata: [virt(0x1a00000), virt(0x1c00000)] };
/** A vmapped stack: 4 pages, the third at pfn 0x502. */
const vstack: TaskStack = { kind: 'vmap', base: VMALLOC_START + 0x40000, pages: [0x500, 0x5a0, 0x502, 0x503] };
/** A direct-mapped 16 KiB stack at 2 MiB. */
const dstack: TaskStack = { kind: 'direct', base: virt(0x200000), size: 0x4000 };

const fromStack = (addr: number): string => `${P()}device driver maps memory from stack [addr=${ptr(addr)}]\n`;
const probable = (addr: number): string => `${P()}device driver maps memory from stack [probable addr=${ptr(addr)}]\n`;
const textRo = (addr: number, len: number): string => `${P()}device driver maps memory from kernel text or rodata [addr=${ptr(addr)}] [len=${len}]\n`;
const mmio = (phys: number): string => `${P()}dma_map_resource called for RAM address ${A(phys)}\n`;
const invalidArea = (addr: number, len: number): string => `${P()}device driver maps memory from invalid area [addr=${ptr(addr)}] [len=${len}]\n`;
const vmallocArea = (addr: number, len: number): string => `${P()}device driver maps memory from vmalloc area [addr=${ptr(addr)}] [len=${len}]\n`;
const tooLong = (len: number, max: number): string => `${P()}mapping sg segment longer than device claims to support [len=${len}] [max=${max}]\n`;
const boundary = (start: number, end: number, b: number): string =>
  `${P()}mapping sg segment across boundary [start=${A(start)}] [end=${A(end)}] [boundary=${A(b)}]\n`;

/** dma_map_single(dev, ptr, len) on a direct-mapped machine: wrapper, the pointer hook, then the phys hook. */
function mapSingle(r: Rig, p: number, len: number, dir: number): number {
  if (dma_map_single_rejects_vmalloc(r.ctx.klog, r.dev, r.dbg.platform.memory.isVmallocAddr(p))) return ERR;
  r.dbg.debug_dma_map_single(r.dev, p, len);
  const phys = p - virt(0);
  r.dbg.debug_dma_map_phys(r.dev, phys, len, dir, phys, 0);
  return phys;
}

describe('dma-debug §3.4: dma_map_single', () => {
  it('vmalloc_rejected_by_wrapper', () => {
    const r = rig({ memory });
    const handle = mapSingle(r, VMALLOC_START + 0x1000, 512, DMA_TO_DEVICE);
    expect(handle).toBe(ERR);
    mapSingle(r, VMALLOC_START + 0x2000, 512, DMA_TO_DEVICE);
    expect(r.ctx.klog.warnings().map((m) => m.message)).toEqual(['e1000 0000:00:04.0: rejecting DMA map of vmalloc memory\n']);
    expect(r.dbg.error_count).toBe(0);
    expect(r.dbg.entryCount()).toBe(0);
    r.dbg.debug_dma_unmap_phys(r.dev, handle, 512, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([`${P()}device driver tries to free an invalid DMA memory address\n`]);
  });

  it('invalid_area_pci_hole', () => {
    const r = rig({ memory });
    const p = virt(0xe0000000);
    mapSingle(r, p, 4096, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([invalidArea(p, 4096)]);
    expect(r.errors()[0]).toContain('[addr=00100000e0000000]');
  });

  it('invalid_area_module_address', () => {
    const r = rig({ memory });
    const mod = VMALLOC_END + 0x1000; // module space: neither linear map nor vmalloc
    r.dbg.debug_dma_map_single(r.dev, mod, 256);
    expect(r.errors()).toEqual([invalidArea(mod, 256)]);
  });

  it('debug_map_single_vmalloc_hook', () => {
    const r = rig({ memory });
    const p = VMALLOC_START + 0x1234;
    r.dbg.debug_dma_map_single(r.dev, p, 100);
    expect(r.errors()).toEqual([invalidArea(p, 100), vmallocArea(p, 100)]);
  });

  it('debug_map_single_vmalloc_quota', () => {
    const r = rig({ memory, allErrors: false });
    const p = VMALLOC_START + 0x1234;
    r.dbg.debug_dma_map_single(r.dev, p, 100);
    expect(r.errors()).toEqual([invalidArea(p, 100)]);
    expect(r.dbg.error_count).toBe(2);
  });

  it('a valid linear address passes', () => {
    const r = rig({ memory });
    r.dbg.debug_dma_map_single(r.dev, virt(0x2000000), 4096);
    r.dbg.debug_dma_map_single(r.dev, virt(0x140000000), 4096);
    expect(r.dbg.error_count).toBe(0);
  });
});

describe('dma-debug §3.4: MMIO (dma_map_resource, DMA_ATTR_MMIO)', () => {
  it('mmio_resource_on_ram', () => {
    const r = rig({ memory });
    r.dbg.debug_dma_map_phys(r.dev, 0x10000000, 4096, DMA_BIDIRECTIONAL, 0x10000000, DMA_ATTR_MMIO);
    expect(r.errors()).toEqual([mmio(0x10000000)]);
    expect(r.dbg.entries().map((e) => [e.type, e.map_err_type])).toEqual([['phy', 'not checked']]);
  });

  it('mmio_resource_on_high_ram', () => {
    const r = rig({ memory });
    r.dbg.debug_dma_map_phys(r.dev, 0x180000000, 4096, DMA_BIDIRECTIONAL, 0x80000, DMA_ATTR_MMIO);
    expect(r.errors()).toEqual([mmio(0x180000000)]);
  });

  it('mmio_resource_first_mib_edge', () => {
    const r = rig({ memory });
    r.dbg.debug_dma_map_phys(r.dev, 0xff000, 4096, DMA_BIDIRECTIONAL, 0xff000, DMA_ATTR_MMIO);
    r.dbg.debug_dma_map_phys(r.dev, 0xfffff, 1, DMA_BIDIRECTIONAL, 0x1fffff, DMA_ATTR_MMIO);
    expect(r.errors()).toEqual([]);
    r.dbg.debug_dma_map_phys(r.dev, 0x100000, 4096, DMA_BIDIRECTIONAL, 0x100000, DMA_ATTR_MMIO);
    expect(r.errors()).toEqual([mmio(0x100000)]);
  });

  it('mmio_resource_reserved_or_hole', () => {
    const r = rig({ memory });
    r.dbg.debug_dma_map_phys(r.dev, 0x1000, 4096, DMA_BIDIRECTIONAL, 0x1000, DMA_ATTR_MMIO); // reserved
    r.dbg.debug_dma_map_phys(r.dev, 0xfe000000, 4096, DMA_BIDIRECTIONAL, 0xfe000000, DMA_ATTR_MMIO); // PCI hole
    r.dbg.debug_dma_map_phys(r.dev, 0x400000000, 4096, DMA_BIDIRECTIONAL, 0x40000, DMA_ATTR_MMIO); // above RAM
    expect(r.dbg.error_count).toBe(0);
    expect(r.dbg.entryCount()).toBe(3);
  });

  it('mmio_resource_on_stack_page', () => {
    const r = rig({ memory, stack: vstack, kernelImage: image });
    r.dbg.debug_dma_map_phys(r.dev, 0x502000, 4096, DMA_BIDIRECTIONAL, 0x502000, DMA_ATTR_MMIO);
    r.dbg.debug_dma_map_phys(r.dev, 0x1000000, 4096, DMA_BIDIRECTIONAL, 0x1000000, DMA_ATTR_MMIO);
    expect(r.errors()).toEqual([mmio(0x502000), mmio(0x1000000)]);
  });
});

describe('dma-debug §3.4: the stack', () => {
  it('stack_vmap_page', () => {
    const r = rig({ memory, stack: vstack });
    r.dbg.debug_dma_map_phys(r.dev, 0x500080, 64, DMA_FROM_DEVICE, 0x500080);
    expect(r.errors()).toEqual([probable(vstack.base + 0x80)]);
  });

  it('stack_vmap_third_page', () => {
    const r = rig({ memory, stack: vstack });
    r.dbg.debug_dma_map_phys(r.dev, 0x502010, 64, DMA_FROM_DEVICE, 0x502010);
    expect(r.errors()).toEqual([probable(vstack.base + 2 * 4096 + 0x10)]);
  });

  it('stack_vmap_not_stack_page', () => {
    const r = rig({ memory, stack: vstack });
    r.dbg.debug_dma_map_phys(r.dev, 0x501000, 64, DMA_FROM_DEVICE, 0x501000);
    r.dbg.debug_dma_map_phys(r.dev, 0x4ff000, 8192, DMA_FROM_DEVICE, 0x4ff000); // only the start pfn is tested
    expect(r.dbg.error_count).toBe(0);
  });

  it('stack_direct', () => {
    const r = rig({ memory, stack: dstack });
    r.dbg.debug_dma_map_phys(r.dev, 0x201000, 64, DMA_FROM_DEVICE, 0x201000);
    r.dbg.debug_dma_map_phys(r.dev, 0x203fff, 1, DMA_FROM_DEVICE, 0x203fff);
    expect(r.errors()).toEqual([fromStack(virt(0x201000)), fromStack(virt(0x203fff))]);
  });

  it('stack_direct_just_outside', () => {
    const r = rig({ memory, stack: () => dstack });
    r.dbg.debug_dma_map_phys(r.dev, 0x204000, 64, DMA_FROM_DEVICE, 0x204000);
    r.dbg.debug_dma_map_phys(r.dev, 0x1ff000, 0x2000, DMA_FROM_DEVICE, 0x1ff000);
    expect(r.dbg.error_count).toBe(0);
  });
});

describe('dma-debug §3.4: kernel text and rodata', () => {
  it('kernel_text_map', () => {
    const r = rig({ memory, kernelImage: image });
    r.dbg.debug_dma_map_phys(r.dev, 0x1000100, 64, DMA_TO_DEVICE, 0x1000100);
    expect(r.errors()).toEqual([textRo(virt(0x1000100), 64)]);
  });

  it('kernel_rodata_map_single', () => {
    const r = rig({ memory, kernelImage: image });
    mapSingle(r, virt(0x1a00040), 128, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([textRo(virt(0x1a00040), 128)]);
  });

  it('kernel_image_edges', () => {
    const r = rig({ memory, kernelImage: image });
    r.dbg.debug_dma_map_phys(r.dev, 0xfff000, 0x1000, DMA_TO_DEVICE, 0xfff000); // ends at _stext
    r.dbg.debug_dma_map_phys(r.dev, 0x1800000, 0x1000, DMA_TO_DEVICE, 0x1800000); // starts at _etext
    r.dbg.debug_dma_map_phys(r.dev, 0x19ff000, 0x1000, DMA_TO_DEVICE, 0x19ff000); // ends at __start_rodata
    r.dbg.debug_dma_map_phys(r.dev, 0x1c00000, 0x1000, DMA_TO_DEVICE, 0x1c00000); // starts at __end_rodata
    expect(r.dbg.error_count).toBe(0);
  });

  it('kernel_text_last_byte', () => {
    const r = rig({ memory, kernelImage: image });
    r.dbg.debug_dma_map_phys(r.dev, 0x17fffff, 1, DMA_TO_DEVICE, 0x17fffff);
    r.dbg.debug_dma_map_phys(r.dev, 0xfff000, 0x1001, DMA_TO_DEVICE, 0xfff000);
    expect(r.errors()).toEqual([textRo(virt(0x17fffff), 1), textRo(virt(0xfff000), 0x1001)]);
  });

  it('without a kernel image in the linear map (x86-64) the check never fires', () => {
    const r = rig({ memory });
    r.dbg.debug_dma_map_phys(r.dev, 0x1000100, 64, DMA_TO_DEVICE, 0x1000100);
    expect(r.dbg.error_count).toBe(0);
  });

  it('map_phys order: stack, then kernel image, then the mapping is recorded', () => {
    const stackOnText: TaskStack = { kind: 'direct', base: virt(0x1000000), size: 0x4000 };
    const r = rig({ memory, kernelImage: image, stack: stackOnText });
    r.dbg.debug_dma_map_phys(r.dev, 0x1000000, 64, DMA_FROM_DEVICE, 0x1000000);
    expect(r.errors()).toEqual([fromStack(virt(0x1000000)), textRo(virt(0x1000000), 64)]);
    expect(r.dbg.entryCount()).toBe(1);
  });
});

describe('dma-debug §3.4: dma_map_sg', () => {
  it('sg_stack_and_text_entries', () => {
    const r = rig({ memory, kernelImage: image, stack: vstack });
    const list = [sge(0x800000, 0x20000, 0x800000), sge(0x503000, 512, 0x900000), sge(0x1a00000, 256, 0xa00000)];
    r.dbg.debug_dma_map_sg(r.dev, list, 3, 3, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([probable(vstack.base + 3 * 4096), textRo(virt(0x1a00000), 256), tooLong(0x20000, 65536)]);
  });

  it('sg_checks_cover_unmapped_tail', () => {
    const r = rig({ memory, stack: vstack });
    const list = [sge(0x800000, 4096, 0x800000, 12288), sge(0x801000, 4096, 0), sge(0x502000, 4096, 0)];
    r.dbg.debug_dma_map_sg(r.dev, list, 3, 1, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([probable(vstack.base + 2 * 4096)]);
    expect(r.dbg.entryCount()).toBe(1);
  });

  it('sg_segment_too_long_default', () => {
    const r = rig();
    r.dbg.debug_dma_map_sg(r.dev, [sge(0x800000, 0x10001, 0x800000)], 1, 1, DMA_TO_DEVICE);
    const zeroParms = pciDev('0000:00:05.0', null, { max_segment_size: 0, segment_boundary_mask: 0 });
    r.dbg.debug_dma_map_sg(zeroParms, [sge(0x900000, 0x20000, 0x900000)], 1, 1, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([tooLong(0x10001, 65536), `${P('pci', '0000:00:05.0')}mapping sg segment longer than device claims to support [len=131072] [max=65536]\n`]);
  });

  it('sg_segment_exactly_max', () => {
    const r = rig();
    r.dbg.debug_dma_map_sg(r.dev, [sge(0x800000, 0x10000, 0x800000)], 1, 1, DMA_TO_DEVICE);
    expect(r.dbg.error_count).toBe(0);
  });

  it('sg_segment_len_ok_with_parms', () => {
    const r = rig();
    const dev = pciDev('0000:00:04.0', r.dev.driver, { max_segment_size: 0x100000, segment_boundary_mask: 0xffffffff });
    r.dbg.debug_dma_map_sg(dev, [sge(0x800000, 0x20000, 0x800000)], 1, 1, DMA_TO_DEVICE);
    expect(r.dbg.error_count).toBe(0);
  });

  it('sg_segment_len_checks_cpu_length', () => {
    const r = rig();
    // Three 32 KiB CPU entries merged into one 96 KiB DMA segment: only entry 0's CPU length is checked.
    const list = [sge(0x800000, 0x8000, 0x4000_0000, 0x18000), sge(0x900000, 0x8000, 0), sge(0xa00000, 0x8000, 0)];
    r.dbg.debug_dma_map_sg(r.dev, list, 3, 1, DMA_TO_DEVICE);
    expect(r.dbg.error_count).toBe(0);
    // With two mapped segments, entry 1's CPU length is checked against its (short) DMA segment.
    const r2 = rig();
    const list2 = [sge(0x800000, 0x8000, 0x4000_0000, 0x8000), sge(0x900000, 0x18000, 0x4001_0000, 0x8000)];
    r2.dbg.debug_dma_map_sg(r2.dev, list2, 2, 2, DMA_TO_DEVICE);
    expect(r2.errors()).toEqual([tooLong(0x18000, 65536)]);
  });

  it('sg_segment_across_boundary', () => {
    const r = rig();
    const dev = pciDev('0000:00:04.0', r.dev.driver, { max_segment_size: 0x10000, segment_boundary_mask: 0xffff });
    r.dbg.debug_dma_map_sg(dev, [sge(0x800000, 0x2000, 0x1f000)], 1, 1, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([boundary(0x1f000, 0x20fff, 0xffff)]);
  });

  it('sg_segment_boundary_ok', () => {
    const r = rig();
    const dev = pciDev('0000:00:04.0', r.dev.driver, { max_segment_size: 0x10000, segment_boundary_mask: 0xffff });
    r.dbg.debug_dma_map_sg(dev, [sge(0x800000, 0x2000, 0x1e000), sge(0x900000, 0x10000, 0x30000)], 2, 2, DMA_TO_DEVICE);
    // The default boundary (ULONG_MAX, also 2^64 as the device layer writes it) is never crossed.
    const wide = pciDev('0000:00:04.0', r.dev.driver, { max_segment_size: 0x10000, segment_boundary_mask: 2 ** 64 });
    r.dbg.debug_dma_map_sg(wide, [sge(0x800000, 0x2000, 0xffff_f000)], 1, 1, DMA_TO_DEVICE);
    expect(r.dbg.error_count).toBe(0);
  });

  it('sg_segment_both_faults', () => {
    const r = rig();
    const dev = pciDev('0000:00:04.0', r.dev.driver, { max_segment_size: 0x1000, segment_boundary_mask: 0xffff });
    r.dbg.debug_dma_map_sg(dev, [sge(0x800000, 0x2000, 0xff000_0000 + 0xf000)], 1, 1, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([tooLong(0x2000, 0x1000), boundary(0xff000_f000, 0xff001_0fff, 0xffff)]);
  });

  it('a zero DMA length at address 0 wraps to an end of all ones', () => {
    const r = rig();
    const dev = pciDev('0000:00:04.0', r.dev.driver, { max_segment_size: 0x10000, segment_boundary_mask: 0xffffffff });
    r.dbg.debug_dma_map_sg(dev, [sge(0x800000, 0, 0, 0)], 1, 1, DMA_TO_DEVICE);
    expect(r.errors()).toEqual([`${P()}mapping sg segment across boundary [start=${A(0)}] [end=0xffffffffffffffff] [boundary=${A(0xffffffff)}]\n`]);
  });

  it('a scatterlist chain walks with its sg_next', () => {
    const r = rig();
    const entries = [sge(0x800000, 4096, 0x800000), sge(0x900000, 4096, 0x900000)];
    const chain = { first: entries[0] ?? null, next: (sg: unknown) => (sg === entries[0] ? entries[1] ?? null : null) };
    r.dbg.debug_dma_map_sg(r.dev, chain, 2, 2, DMA_FROM_DEVICE);
    expect(r.dbg.entries().map((e) => e.dev_addr)).toEqual([0x800000, 0x900000]);
    r.dbg.debug_dma_unmap_sg(r.dev, chain, 2, DMA_FROM_DEVICE);
    expect(r.dbg.entryCount()).toBe(0);
    expect(r.dbg.error_count).toBe(0);
  });
});
