/**
 * @module dma/debug/map-checks
 * The checks run when memory is mapped: from the current task's stack, from kernel text or rodata,
 * an sg segment longer than the device's maximum or across its boundary, and MMIO mapped over RAM.
 */
import { PAGE_SIZE } from '../../core/page.ts';
import { dma_get_max_seg_size, dma_get_seg_boundary, type DebugDevice } from './device.ts';
import type { DebugSgEntry } from './sg.ts';
import type { DebugState } from './state.ts';
import { crossesBoundary, decU64, hex16, hexA } from './u64.ts';

/**
 * `check_for_stack()`: a direct-mapped stack is tested by the linear address of `phys`; a vmapped
 * one by `phys`'s pfn against the stack's pages (the report then guesses the stack address).
 */
export function checkForStack(st: DebugState, dev: DebugDevice, phys: number): void {
  const stack = st.platform.currentStack();
  if (stack === undefined) return;
  if (stack.kind === 'direct') {
    const addr = st.platform.memory.physToVirt(phys);
    if (addr >= stack.base && addr < stack.base + stack.size) {
      st.reporter.error(dev, dev.driver, 'check_for_stack', `device driver maps memory from stack [addr=${hex16(addr)}]\n`);
    }
    return;
  }
  const pfn = Math.floor(phys / PAGE_SIZE);
  const pages = stack.pages;
  for (let i = 0; i < pages.length; i++) {
    if (pages[i] !== pfn) continue;
    const addr = stack.base + i * PAGE_SIZE + (phys % PAGE_SIZE);
    st.reporter.error(dev, dev.driver, 'check_for_stack', `device driver maps memory from stack [probable addr=${hex16(addr)}]\n`);
    break;
  }
}

function intersects(range: readonly [number, number], virt: number, size: number): boolean {
  return virt < range[1] && virt + size > range[0];
}

/** `check_for_illegal_area()`: `[addr, addr + len)` overlaps kernel text or rodata by a byte or more. */
export function checkForIllegalArea(st: DebugState, dev: DebugDevice, addr: number, len: number): void {
  const image = st.platform.kernelImage;
  if (image === undefined) return;
  if (intersects(image.text, addr, len) || intersects(image.rodata, addr, len)) {
    st.reporter.error(dev, dev.driver, 'check_for_illegal_area', `device driver maps memory from kernel text or rodata [addr=${hex16(addr)}] [len=${decU64(len)}]\n`);
  }
}

/** `check_sg_segment()`: the CPU length against max_segment_size, then the DMA range against the boundary mask. */
export function checkSgSegment(st: DebugState, dev: DebugDevice, sg: DebugSgEntry): void {
  const maxSeg = dma_get_max_seg_size(dev);
  if (sg.length > maxSeg) {
    st.reporter.error(dev, dev.driver, 'check_sg_segment', `mapping sg segment longer than device claims to support [len=${sg.length}] [max=${maxSeg}]\n`);
  }
  const x = crossesBoundary(sg.dma_address, sg.dma_length, dma_get_seg_boundary(dev));
  if (x !== null) {
    st.reporter.error(dev, dev.driver, 'check_sg_segment', `mapping sg segment across boundary [start=0x${x.start}] [end=0x${x.end}] [boundary=0x${x.boundary}]\n`);
  }
}

/** The MMIO check of `debug_dma_map_phys()`: a resource mapping over a valid, unreserved RAM page. */
export function checkMmio(st: DebugState, dev: DebugDevice, phys: number): void {
  const pfn = Math.floor(phys / PAGE_SIZE);
  const mem = st.platform.memory;
  if (mem.pfnValid(pfn) && !mem.pageReserved(pfn)) {
    st.reporter.error(dev, dev.driver, 'debug_dma_map_phys', `dma_map_resource called for RAM address ${hexA(phys)}\n`);
  }
}
