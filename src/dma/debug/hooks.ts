/**
 * @module dma/debug/hooks
 * dma-debug attached to a machine: the DMA API's hooks call the DmaDebug checker with the kernel's
 * arguments, the memory view comes from the machine's Mm, and the leak check runs on the bus's
 * BUS_NOTIFY_UNBOUND_DRIVER.
 */
import type { KernelContext } from '../../core/context.ts';
import type { Device } from '../../device/device.ts';
import { PG_RESERVED } from '../../mm/page-meta.ts';
import { PAGE_SIZE } from '../../mm/constants.ts';
import type { Mm } from '../../mm/mm.ts';
import { sg_next } from '../../scatterlist/entry.ts';
import { BUS_NOTIFY_UNBOUND_DRIVER, DmaDebug, linearDebugMemory, type DmaDebugOptions } from './index.ts';
import type { DmaDebugHooks } from '../api/ops.ts';

/**
 * Build the machine's dma-debug and the hooks the DMA API calls.
 * @example machine.dma.debug = attachDmaDebug(machine, machine.mm, { arch: ARCH_ARM64 }).hooks
 */
export function attachDmaDebug(ctx: KernelContext, mm: Mm, opts: DmaDebugOptions, swiotlbActive: () => boolean): { debug: DmaDebug; hooks: DmaDebugHooks; onUnbound: (dev: Device) => void } {
  const memory = linearDebugMemory({
    ram: mm.ram,
    reserved: (pfn) => (mm.meta.stateOf(pfn) & PG_RESERVED) !== 0,
    vmallocToPhys: (v) => {
      const a = mm.findVmArea(v);
      if (a === undefined) return undefined;
      const page = Math.floor((v - a.addr) / PAGE_SIZE);
      return (a.pages[page] as number) * PAGE_SIZE + ((v - a.addr) % PAGE_SIZE);
    },
  });
  const debug = new DmaDebug(ctx, { memory, swiotlbActive, ...opts });
  const list = (sgl: Parameters<DmaDebugHooks['mapSg']>[1]) => ({ first: sgl, next: sg_next });
  const hooks: DmaDebugHooks = {
    mapPhys: (dev, phys, size, dir, addr, attrs) => debug.debug_dma_map_phys(dev, phys, size, dir, addr, attrs),
    mappingError: (dev, addr) => debug.debug_dma_mapping_error(dev, addr),
    unmapPhys: (dev, addr, size, dir) => debug.debug_dma_unmap_phys(dev, addr, size, dir),
    mapSg: (dev, sgl, nents, mapped, dir, attrs) => debug.debug_dma_map_sg(dev, list(sgl), nents, mapped, dir, attrs),
    unmapSg: (dev, sgl, nents, dir) => debug.debug_dma_unmap_sg(dev, list(sgl), nents, dir),
    syncSingleForCpu: (dev, addr, size, dir) => debug.debug_dma_sync_single_for_cpu(dev, addr, size, dir),
    syncSingleForDevice: (dev, addr, size, dir) => debug.debug_dma_sync_single_for_device(dev, addr, size, dir),
    syncSgForCpu: (dev, sgl, nents, dir) => debug.debug_dma_sync_sg_for_cpu(dev, list(sgl), nents, dir),
    syncSgForDevice: (dev, sgl, nents, dir) => debug.debug_dma_sync_sg_for_device(dev, list(sgl), nents, dir),
    allocCoherent: (dev, size, buf, attrs) => debug.debug_dma_alloc_coherent(dev, size, buf.dma_handle, buf.cpu_addr, attrs),
    freeCoherent: (dev, size, buf) => debug.debug_dma_free_coherent(dev, size, buf.cpu_addr, buf.dma_handle),
    mapSingle: (dev, cpuAddr, size) => debug.debug_dma_map_single(dev, cpuAddr, size),
    allocPages: (dev, page, size, dir, handle) => debug.debug_dma_alloc_pages(dev, page, size, dir, handle),
    freePages: (dev, page, size, dir, handle) => debug.debug_dma_free_pages(dev, page, size, dir, handle),
  };
  return { debug, hooks, onUnbound: (dev) => { debug.dma_debug_device_change(dev, BUS_NOTIFY_UNBOUND_DRIVER); } };
}
