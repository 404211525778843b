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
import type { Scatterlist } from '../../scatterlist/entry.ts';
import { W_DMA_LEN, W_LENGTH, W_OFFSET } from '../../scatterlist/slots.ts';
import { nextSlot, slotDmaAddress, slotPfn, slotWord } from '../../scatterlist/walk.ts';
import type { DebugSgChain, DebugSgEntry } from './sg.ts';
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
  // The walks see the list through a reused view (a SlotChain) from a small pool: a walk started
  // from inside another (a log listener mapping again) takes another view.
  const chains: SlotChain[] = [];
  const walk = (sgl: Scatterlist, hook: (list: SlotChain) => void): void => {
    const c = (chains.pop() ?? new SlotChain()).start(sgl);
    try {
      hook(c);
    } finally {
      c.finish();
      if (chains.length < 4) chains.push(c);
    }
  };
  const hooks: DmaDebugHooks = {
    mapPhys: (dev, phys, size, dir, addr, attrs) => debug.debug_dma_map_phys(dev, phys, size, dir, addr, attrs),
    mappingError: (dev, addr) => debug.debug_dma_mapping_error(dev, addr),
    unmapPhys: (dev, addr, size, dir) => debug.debug_dma_unmap_phys(dev, addr, size, dir),
    mapSg: (dev, sgl, nents, mapped, dir, attrs) => walk(sgl, (c) => debug.debug_dma_map_sg(dev, c, nents, mapped, dir, attrs)),
    unmapSg: (dev, sgl, nents, dir) => walk(sgl, (c) => debug.debug_dma_unmap_sg(dev, c, nents, dir)),
    syncSingleForCpu: (dev, addr, size, dir) => debug.debug_dma_sync_single_for_cpu(dev, addr, size, dir),
    syncSingleForDevice: (dev, addr, size, dir) => debug.debug_dma_sync_single_for_device(dev, addr, size, dir),
    syncSgForCpu: (dev, sgl, nents, dir) => walk(sgl, (c) => debug.debug_dma_sync_sg_for_cpu(dev, c, nents, dir)),
    syncSgForDevice: (dev, sgl, nents, dir) => walk(sgl, (c) => debug.debug_dma_sync_sg_for_device(dev, c, nents, dir)),
    allocCoherent: (dev, size, buf, attrs) => debug.debug_dma_alloc_coherent(dev, size, buf.dma_handle, buf.cpu_addr, attrs),
    freeCoherent: (dev, size, buf) => debug.debug_dma_free_coherent(dev, size, buf.cpu_addr, buf.dma_handle),
    mapSingle: (dev, cpuAddr, size) => debug.debug_dma_map_single(dev, cpuAddr, size),
    allocPages: (dev, page, size, dir, handle) => debug.debug_dma_alloc_pages(dev, page, size, dir, handle),
    freePages: (dev, page, size, dir, handle) => debug.debug_dma_free_pages(dev, page, size, dir, handle),
  };
  return { debug, hooks, onUnbound: (dev) => { debug.dma_debug_device_change(dev, BUS_NOTIFY_UNBOUND_DRIVER); } };
}

/**
 * A scatterlist as dma-debug walks it, by slot: `first` and `next` return this same object, moved
 * to the entry (dma-debug reads each entry only during its step). Walking with sg_next made a
 * handle or two per entry and read each field through a segment look-up (a 16-entry map+unmap
 * with checks: bench/RESULTS.md, session 12).
 * INVARIANT: between start and finish, `slot` is the slot of the entry the walk is at (-1 after
 *   the end) and `segs` the arena of the list being walked; after finish it holds no arena.
 */
class SlotChain implements DebugSgChain, DebugSgEntry {
  private segs: readonly Uint32Array[] = [];
  private head = -1;
  private slot = -1;

  start(sgl: Scatterlist): this {
    this.segs = sgl.arena.segs;
    this.head = sgl.slot;
    return this;
  }

  /** Let go of the list (an idle chain keeps no arena alive). */
  finish(): void {
    this.segs = [];
    this.head = this.slot = -1;
  }

  get first(): DebugSgEntry | null {
    this.slot = this.head;
    return this.head < 0 ? null : this;
  }

  next(): DebugSgEntry | null {
    this.slot = nextSlot(this.segs, this.slot);
    return this.slot < 0 ? null : this;
  }

  get page(): number { return slotPfn(this.segs, this.slot); }
  get offset(): number { return slotWord(this.segs, this.slot, W_OFFSET); }
  get length(): number { return slotWord(this.segs, this.slot, W_LENGTH); }
  get dma_address(): number { return slotDmaAddress(this.segs, this.slot); }
  get dma_length(): number { return slotWord(this.segs, this.slot, W_DMA_LEN); }
}
