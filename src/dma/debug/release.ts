/**
 * @module dma/debug/release
 * The hooks that look entries up: unmap and free (the entry is removed), sync (checked in place),
 * and the leak check at unbind. `DmaDebug` exposes them under the kernel's names.
 */
import { PAGE_SIZE } from '../../core/page.ts';
import { DMA_BIDIRECTIONAL, dmaDirectionName } from '../api/direction.ts';
import { checkSync, checkUnmap, nrMappedEntries, type UnmapRef } from './checks.ts';
import { BUS_NOTIFY_UNBOUND_DRIVER, dma_debug_coherent, dma_debug_noncoherent, dma_debug_phy, dma_debug_sg, dma_debug_single, dmaDebugTypeName } from './constants.ts';
import type { DebugDevice } from './device.ts';
import { forEachSg, sgPhys, type DebugSgList } from './sg.ts';
import type { DebugState } from './state.ts';
import { decU64, hexA } from './u64.ts';

/** `debug_dma_unmap_phys()`. */
export function unmapPhys(st: DebugState, dev: DebugDevice, dmaAddr: number, size: number, dir: number): void {
  if (st.disabled()) return;
  checkUnmap(st, { dev, devAddr: dmaAddr, size, type: dma_debug_phy, dir, sgCallEnts: 0, paddr: 0 });
}

/** `debug_dma_unmap_sg()`: the mapped count from an exact lookup of entry 0 ends the walk (0: never). */
export function unmapSg(st: DebugState, dev: DebugDevice, sglist: DebugSgList, nelems: number, dir: number): void {
  if (st.disabled()) return;
  let mapped = 0;
  forEachSg(sglist, nelems, (s, i) => {
    const ref: UnmapRef = { type: dma_debug_sg, dev, paddr: sgPhys(s), devAddr: s.dma_address, size: s.dma_length, dir, sgCallEnts: nelems };
    if (mapped !== 0 && i >= mapped) return false;
    if (i === 0) mapped = nrMappedEntries(st, ref);
    checkUnmap(st, ref);
    return true;
  });
}

/** `debug_dma_free_coherent()`: ignored for a CPU address neither linear nor vmalloc. */
export function freeCoherent(st: DebugState, dev: DebugDevice, size: number, virt: number | null, dmaAddr: number): void {
  if (virt === null || virt === 0) return;
  const mem = st.platform.memory;
  if (!mem.isVmallocAddr(virt) && !mem.virtAddrValid(virt)) return;
  const paddr = mem.virtToPhys(virt) ?? 0;
  if (st.disabled()) return;
  checkUnmap(st, { type: dma_debug_coherent, dev, devAddr: dmaAddr, size, dir: DMA_BIDIRECTIONAL, sgCallEnts: 0, paddr });
}

/** `debug_dma_free_pages()`. */
export function freePages(st: DebugState, dev: DebugDevice, page: number, size: number, dir: number, dmaAddr: number): void {
  if (st.disabled()) return;
  checkUnmap(st, { type: dma_debug_noncoherent, dev, paddr: page * PAGE_SIZE, devAddr: dmaAddr, size, dir, sgCallEnts: 0 });
}

/** `debug_dma_sync_single_for_cpu/_for_device()`: a `single` reference, covering lookup. */
export function syncSingle(st: DebugState, dev: DebugDevice, addr: number, size: number, dir: number, toCpu: boolean): void {
  if (st.disabled()) return;
  checkSync(st, { type: dma_debug_single, dev, devAddr: addr, size, dir, sgCallEnts: 0 }, toCpu);
}

/** `debug_dma_sync_sg_for_cpu/_for_device()`: the mapped count from entry 0 ends the walk; 0 means nothing is checked. */
export function syncSg(st: DebugState, dev: DebugDevice, sg: DebugSgList, nelems: number, dir: number, toCpu: boolean): void {
  if (st.disabled()) return;
  let mapped = 0;
  forEachSg(sg, nelems, (s, i) => {
    const ref = { type: dma_debug_sg, dev, devAddr: s.dma_address, size: s.dma_length, dir, sgCallEnts: nelems };
    if (i === 0) mapped = nrMappedEntries(st, ref);
    if (i >= mapped) return false;
    checkSync(st, ref, toCpu);
    return true;
  });
}

/**
 * `dma_debug_device_change()`: on BUS_NOTIFY_UNBOUND_DRIVER, count the device's entries and report
 * them with the last one found scanning buckets 0..16383. The driver pointer is NULL by then, so
 * the report is labelled with the bus and never passes a set driver filter.
 */
export function deviceChange(st: DebugState, dev: DebugDevice, action: number): number {
  if (st.disabled()) return 0;
  if (action !== BUS_NOTIFY_UNBOUND_DRIVER) return 0;
  const t = st.table;
  let count = 0;
  let last = -1;
  for (const s of t.liveSlots()) {
    if (t.dev[s] !== dev) continue;
    count++;
    last = s;
  }
  if (count === 0) return 0;
  st.reporter.error(dev, null, 'dma_debug_device_change',
    `device driver has pending DMA allocations while released from device [count=${count}]\n`
    + `One of leaked entries details: [device address=${hexA(t.devAddr[last] as number)}] [size=${decU64(t.size[last] as number)} bytes] `
    + `[mapped with ${dmaDirectionName(t.dir[last] as number)}] [mapped as ${dmaDebugTypeName(t.type[last] as number)}]\n`);
  return 0;
}
