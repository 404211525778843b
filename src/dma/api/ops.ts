/**
 * @module dma/api/ops
 * The backends behind the DMA API (dma-direct, dma-iommu) and the per-machine DMA state they
 * share: the swiotlb bounce pool, forced bouncing, and the dma-debug hooks.
 */
import { EINVAL } from '../../core/errno.ts';
import { KernelError } from '../../core/errors.ts';
import type { KernelContext } from '../../core/context.ts';
import type { DeviceContext, Normal } from '../../device/context.ts';
import { Device } from '../../device/device.ts';
import type { Scatterlist } from '../../scatterlist/entry.ts';
import type { SgTable } from '../../scatterlist/table.ts';
import type { Mm } from '../../mm/mm.ts';
import type { Trace } from '../../core/trace.ts';
import { DmaLedger } from '../ledger/ledger.ts';
import type { AddrRange } from '../ledger/entry.ts';
import { checkContext, notInstance } from '../../core/args.ts';

/** A coherent allocation: the CPU's virtual address and the device's DMA handle. */
export interface CoherentBuffer { readonly cpu_addr: number; readonly dma_handle: number }

/** What dma_alloc_pages gives: the first page frame of the block and the device's DMA handle. */
export interface DmaPages { readonly page: number; readonly dma_handle: number }

/** A noncontiguous allocation as a backend made it: the table (entry 0 holds the DMA address) and its pages. */
export interface NoncontiguousAlloc { readonly sgt: SgTable; readonly pages: ArrayLike<number> }

/** One DMA backend (struct dma_map_ops, as dispatched by kernel/dma/mapping.c). */
export interface DmaOps {
  readonly name: 'direct' | 'iommu';
  map_phys(dev: Device, phys: number, size: number, dir: number, attrs: number): number;
  unmap_phys(dev: Device, addr: number, size: number, dir: number, attrs: number): void;
  /** Mapped entries (> 0) or a negative errno. */
  map_sg(dev: Device, sgl: Scatterlist, nents: number, dir: number, attrs: number): number;
  unmap_sg(dev: Device, sgl: Scatterlist, nents: number, dir: number, attrs: number): void;
  sync_single_for_cpu(dev: Device, addr: number, size: number, dir: number): void;
  sync_single_for_device(dev: Device, addr: number, size: number, dir: number): void;
  sync_sg_for_cpu(dev: Device, sgl: Scatterlist, nents: number, dir: number): void;
  sync_sg_for_device(dev: Device, sgl: Scatterlist, nents: number, dir: number): void;
  alloc(dev: Device, size: number, gfp: number, attrs: number): CoherentBuffer | null;
  free(dev: Device, size: number, buf: CoherentBuffer, attrs: number): void;
  /**
   * __dma_alloc_pages' backend part: `size` is PAGE_ALIGNed; zeroed pages mapped for `dir` without
   * a CPU sync, or null. (dma-direct: pages the coherent mask reaches; dma-iommu: any pages, mapped.)
   */
  alloc_pages(dev: Device, size: number, dir: number, gfp: number): DmaPages | null;
  /** __dma_free_pages' backend part (unmap without a CPU sync, free). */
  free_pages(dev: Device, size: number, page: number, handle: number, dir: number): void;
  /**
   * dma-iommu's dma_alloc_noncontiguous: pages in the largest blocks the IOMMU page sizes allow,
   * one IOVA range, mapped read-write. Absent: the API makes one contiguous entry from alloc_pages.
   */
  alloc_noncontiguous?(dev: Device, size: number, gfp: number, attrs: number): NoncontiguousAlloc | null;
  /** Undo alloc_noncontiguous: unmap the IOVA range, free the pages and the table. */
  free_noncontiguous?(dev: Device, size: number, a: NoncontiguousAlloc): void;
  /** The two-step IOVA API (dma-iommu only; absent: dma_iova_try_alloc returns false). */
  readonly iova?: IovaOps;
  max_mapping_size(dev: Device): number;
  opt_mapping_size(dev: Device): number;
  /** dma_get_merge_boundary: 0 means cannot merge. */
  merge_boundary(dev: Device): number;
  /** ops->get_required_mask (dma-direct's own rule); absent: DMA_BIT_MASK(32). */
  get_required_mask?(dev: Device): number;
}

/**
 * dma-iommu's side of the two-step IOVA API (drivers/iommu/dma-iommu.c). `addr` arguments are the
 * state's address (the IOVA plus the first phys's offset in a granule); sizes are the caller's.
 */
export interface IovaOps {
  /** The IOVA granule. */
  readonly granule: number;
  /** Allocate IOVA space for `size` bytes starting at `phys`'s offset: the state address, or 0. */
  alloc(dev: Device, phys: number, size: number): number;
  /** Map [phys, phys+size) at addr+offset without an IOTLB sync; bounced through swiotlb where the kernel bounces. */
  link(dev: Device, addr: number, phys: number, offset: number, size: number, dir: number, attrs: number): { readonly ret: number; readonly bounced: boolean };
  /** iommu_sync_map over the linked range. */
  sync(dev: Device, addr: number, offset: number, size: number): number;
  /** Unmap [addr+offset, +size); `slow`: look up and release bounce slots granule by granule; `free`: give the IOVA back too (destroy). */
  unlink(dev: Device, addr: number, offset: number, size: number, dir: number, attrs: number, slow: boolean, free: boolean): void;
  /** Give back the IOVA space of a state of `size` bytes, at once, unmapping nothing. */
  free(dev: Device, addr: number, size: number): void;
}

/** What dma-direct needs from swiotlb (satisfied by the machine's swiotlb pool). */
export interface Bouncer {
  /** swiotlb is set up and has slots. */
  readonly active: boolean;
  /** swiotlb=force: every streaming mapping bounces. */
  readonly force: boolean;
  /** swiotlb_map: bounce address (a DMA address) or DMA_MAPPING_ERROR. */
  map(dev: Device, phys: number, size: number, dir: number, attrs: number): number;
  /** swiotlb_tbl_map_single with an allocation alignment mask (dma-iommu bounces whole granules). */
  mapAligned(dev: Device, phys: number, size: number, alignMask: number, dir: number, attrs: number): number;
  /** Is `phys` inside the pool? */
  isBuffer(phys: number): boolean;
  /** swiotlb_tbl_unmap_single. */
  unmap(dev: Device, tlbAddr: number, size: number, dir: number, attrs: number): void;
  syncForCpu(dev: Device, tlbAddr: number, size: number, dir: number): void;
  syncForDevice(dev: Device, tlbAddr: number, size: number, dir: number): void;
  maxMappingSize(dev: Device): number;
  /** The pool itself, for reports and the auditor. */
  readonly pool?: unknown;
}

/** dma-debug hooks, called at the kernel's points in each API call. */
export interface DmaDebugHooks {
  mapPhys(dev: Device, phys: number, size: number, dir: number, addr: number, attrs: number): void;
  mappingError(dev: Device, addr: number): void;
  unmapPhys(dev: Device, addr: number, size: number, dir: number): void;
  mapSg(dev: Device, sgl: Scatterlist, nents: number, mapped: number, dir: number, attrs: number): void;
  unmapSg(dev: Device, sgl: Scatterlist, nents: number, dir: number): void;
  syncSingleForCpu(dev: Device, addr: number, size: number, dir: number): void;
  syncSingleForDevice(dev: Device, addr: number, size: number, dir: number): void;
  syncSgForCpu(dev: Device, sgl: Scatterlist, nents: number, dir: number): void;
  syncSgForDevice(dev: Device, sgl: Scatterlist, nents: number, dir: number): void;
  allocCoherent(dev: Device, size: number, buf: CoherentBuffer, attrs: number): void;
  freeCoherent(dev: Device, size: number, buf: CoherentBuffer): void;
  mapSingle(dev: Device, cpuAddr: number, size: number): void;
  allocPages(dev: Device, page: number, size: number, dir: number, handle: number): void;
  freePages(dev: Device, page: number, size: number, dir: number, handle: number): void;
}

/** The DMA state of one machine. */
export interface DmaSystem {
  /** dma-direct for this machine's memory. */
  readonly direct: DmaOps;
  bouncer: Bouncer | null;
  debug: DmaDebugHooks | null;
  /** The machine's event trace (a no-op emitter when tracing is off). */
  trace: Trace | null;
  /** Every live mapping and allocation (always on, independent of dma-debug). */
  readonly ledger: DmaLedger;
  /** The physical ranges behind a kernel virtual address (coherent buffers' CPU side). */
  readonly virtRanges: (virt: number, size: number) => AddrRange[];
  /** The machine's memory (page_address, virt_to_page, vmap for the allocation APIs); null for a bare context. */
  readonly mm: Mm | null;
  /**
   * The live dma_alloc_noncontiguous tables and what freeing each needs (a Map on the machine, not a
   * module WeakMap: machine snapshots must see it).
   */
  readonly noncontig: Map<SgTable, unknown>;
}

// The DMA layer's state lives on the objects it belongs to, declared here (the layer that owns it)
// rather than in core/ or device/, which know nothing of DMA backends: the machine's DMA state on its
// context, each device's backend on the device (dev->dma_ops), chosen once when the device is
// configured. One property read each on every DMA API call, where two WeakMap look-ups were.
declare module '../../core/context.ts' {
  interface KernelContext {
    /** The machine's DMA state (the Machine's `dma`, set up by {@link initDmaSystem}). */
    readonly dma?: DmaSystem;
  }
}
declare module '../../device/device.ts' {
  interface Device<C extends DeviceContext = Normal> {
    /** dev->dma_ops: the backend chosen when the device was configured (dma-iommu); absent: dma-direct. */
    dma_ops?: DmaOps;
  }
}

/**
 * Make the DMA state of a machine (its dma-direct backend and ledger; no swiotlb, no debug yet),
 * for the machine to hold as its `dma`. `virtRanges` turns a kernel virtual address into physical
 * ranges (the machine's mm knows how).
 */
export function initDmaSystem(ctx: KernelContext, direct: DmaOps, virtRanges: DmaSystem['virtRanges'], mm: Mm | null = null): DmaSystem {
  const s: DmaSystem = {
    direct, bouncer: null, debug: null, trace: null, virtRanges, mm, noncontig: new Map(),
    ledger: new DmaLedger({ clock: ctx.clock, isBounceSlot: (phys) => s.bouncer?.isBuffer(phys) ?? false }),
  };
  return s;
}

/** The DMA state of a machine. */
export function dmaSystemOf(ctx: KernelContext): DmaSystem {
  // The read first: it is on every DMA API call, the checks only when it finds nothing.
  const s = typeof ctx === 'object' && ctx !== null ? ctx.dma : undefined;
  if (s !== undefined) return s;
  checkContext(ctx, 'dmaSystemOf', 'ctx');
  throw new KernelError(EINVAL, 'dmaSystemOf', `DMA is not set up for ${ctx.name} (devices live on a Machine)`, 'ctx');
}

/** The backend serving `dev` (get_dma_ops / use_dma_iommu dispatch). */
export function dmaOpsOf(dev: Device): DmaOps {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dmaOpsOf', 'dev');
  return dev.dma_ops ?? dmaSystemOf(dev.host.ctx).direct;
}
