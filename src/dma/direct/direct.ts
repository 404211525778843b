/**
 * @module dma/direct/direct
 * dma-direct (kernel/dma/direct.c): the bus address is the physical address; a buffer the device
 * cannot reach, or any buffer under swiotlb=force, bounces through swiotlb; scatterlists are mapped
 * entry by entry with no merging.
 */
import { EIO, EINVAL } from '../../core/errno.ts';
import { Device } from '../../device/device.ts';
import { formatMask, minNotZero } from '../../device/mask.ts';
import { GFP_DMA, GFP_DMA32, __GFP_ZERO } from '../../mm/gfp.ts';
import { PAGE_SIZE, getOrder } from '../../mm/constants.ts';
import { DMA_MAPPING_ERROR, Scatterlist, sg_next, sg_phys } from '../../scatterlist/entry.ts';
import { visitSg } from '../../scatterlist/iter.ts';
import { hexA } from '../debug/u64.ts';
import { DMA_ATTR_MMIO, DMA_ATTR_REQUIRE_COHERENT, DMA_ATTR_SKIP_CPU_SYNC } from '../api/attrs.ts';
import { dmaSystemOf, type Bouncer, type CoherentBuffer, type DmaOps, type DmaPages } from '../api/ops.ts';
import { DMA_BIT_MASK } from '../../device/mask.ts';
import { Mm } from '../../mm/mm.ts';
import { notInstance } from '../../core/args.ts';
import { KernelError } from '../../core/errors.ts';

/** SIZE_MAX as a number (above any mapping dmasim can make). */
export const SIZE_MAX = 2 ** 64;

function bouncer(dev: Device): Bouncer | null {
  return dmaSystemOf(dev.host.ctx).bouncer;
}

/**
 * dma_capable: the last byte of [addr, addr+size) lies within min_not_zero(mask, bus_dma_limit).
 */
export function dma_capable(dev: Device, addr: number, size: number): boolean {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dma_capable', 'dev');
  if (addr === DMA_MAPPING_ERROR) return false;
  const end = addr + size - 1;
  return end <= minNotZero(dev.dma_mask ?? 0, dev.bus_dma_limit);
}

/**
 * dma_direct_map_phys: the address, a bounce address, or DMA_MAPPING_ERROR with the kernel's
 * "overflow" WARN when the device cannot reach the buffer and swiotlb is off.
 */
export function dma_direct_map_phys(dev: Device, phys: number, size: number, dir: number, attrs: number): number {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dma_direct_map_phys', 'dev');
  const b = bouncer(dev);
  const overflow = (): number => {
    dev.host.ctx.klog.warnOnce(`dma_direct_map_phys:${dev.name}`, 'dma_direct_map_phys',
      `${dev.driver?.name ?? dev.bus.name} ${dev.name}: DMA addr ${hexA(phys)}+${size} overflow (mask ${formatMask(dev.dma_mask ?? 0)}, bus limit ${formatMask(dev.bus_dma_limit)}).`);
    return DMA_MAPPING_ERROR;
  };
  if (b !== null && b.force) {
    // Forced bouncing cannot serve MMIO (err_overflow, with its WARN); a mapping that must stay
    // coherent may not bounce either.
    if (attrs & DMA_ATTR_MMIO) return overflow();
    if (attrs & DMA_ATTR_REQUIRE_COHERENT) return DMA_MAPPING_ERROR;
    return b.map(dev, phys, size, dir, attrs);
  }
  if (!dma_capable(dev, phys, size)) {
    // MMIO is never bounced: out of reach is an overflow.
    if (!(attrs & DMA_ATTR_MMIO) && b !== null && b.active && !(attrs & DMA_ATTR_REQUIRE_COHERENT)) return b.map(dev, phys, size, dir, attrs);
    return overflow();
  }
  return phys;
}

/** dma_direct_unmap_phys: sync for the CPU unless SKIP_CPU_SYNC, then release a bounce slot. */
export function dma_direct_unmap_phys(dev: Device, addr: number, size: number, dir: number, attrs: number): void {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dma_direct_unmap_phys', 'dev');
  // Neither kind was bounced or needs cache maintenance.
  if (attrs & (DMA_ATTR_MMIO | DMA_ATTR_REQUIRE_COHERENT)) return;
  if (!(attrs & DMA_ATTR_SKIP_CPU_SYNC)) dma_direct_sync_single_for_cpu(dev, addr, size, dir);
  const b = bouncer(dev);
  if (b !== null && b.isBuffer(addr)) b.unmap(dev, addr, size, dir, attrs | DMA_ATTR_SKIP_CPU_SYNC);
}

export function dma_direct_sync_single_for_cpu(dev: Device, addr: number, size: number, dir: number): void {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dma_direct_sync_single_for_cpu', 'dev');
  const b = bouncer(dev);
  if (b !== null && b.isBuffer(addr)) b.syncForCpu(dev, addr, size, dir);
}

export function dma_direct_sync_single_for_device(dev: Device, addr: number, size: number, dir: number): void {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dma_direct_sync_single_for_device', 'dev');
  const b = bouncer(dev);
  if (b !== null && b.isBuffer(addr)) b.syncForDevice(dev, addr, size, dir);
}

/**
 * dma_direct_map_sg: each entry on its own, dma_len = length; on the first failure the prefix is
 * unmapped (SKIP_CPU_SYNC) and -EIO returned.
 */
export function dma_direct_map_sg(dev: Device, sgl: Scatterlist, nents: number, dir: number, attrs: number): number {
  if (!(sgl instanceof Scatterlist)) throw notInstance(sgl, Scatterlist, 'dma_direct_map_sg', 'sgl');
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dma_direct_map_sg', 'dev');
  let sg: Scatterlist | null = sgl;
  for (let i = 0; i < nents; i++) {
    const s = sg as Scatterlist;
    const addr = dma_direct_map_phys(dev, sg_phys(s), s.length, dir, attrs);
    s.dma_address = addr;
    if (addr === DMA_MAPPING_ERROR) {
      dma_direct_unmap_sg(dev, sgl, i, dir, attrs | DMA_ATTR_SKIP_CPU_SYNC);
      return -EIO;
    }
    s.dma_length = s.length;
    sg = sg_next(s);
  }
  return nents;
}

export function dma_direct_unmap_sg(dev: Device, sgl: Scatterlist, nents: number, dir: number, attrs: number): void {
  if (!(sgl instanceof Scatterlist)) throw notInstance(sgl, Scatterlist, 'dma_direct_unmap_sg', 'sgl');
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dma_direct_unmap_sg', 'dev');
  visitSg(sgl, nents, (sg) => { dma_direct_unmap_phys(dev, sg.dma_address, sg.dma_length, dir, attrs); });
}

/**
 * dma_direct_max_mapping_size: swiotlb's limit when swiotlb is active for the device and the
 * device is addressing-limited or bouncing is forced; else SIZE_MAX.
 */
export function dma_direct_max_mapping_size(dev: Device, mm: Mm): number {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dma_direct_max_mapping_size', 'dev');
  if (!(mm instanceof Mm)) throw notInstance(mm, Mm, 'dma_direct_max_mapping_size', 'mm');
  const b = bouncer(dev);
  if (b !== null && b.active && (b.force || !dma_direct_all_ram_mapped(dev, mm))) return b.maxMappingSize(dev);
  return SIZE_MAX;
}

/** dma_direct_all_ram_mapped: can the device reach the last byte of every RAM range? */
export function dma_direct_all_ram_mapped(dev: Device, mm: Mm): boolean {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dma_direct_all_ram_mapped', 'dev');
  if (!(mm instanceof Mm)) throw notInstance(mm, Mm, 'dma_direct_all_ram_mapped', 'mm');
  const reach = minNotZero(dev.dma_mask ?? 0, dev.bus_dma_limit);
  return mm.ram.every((r) => r.endPfn * PAGE_SIZE - 1 <= reach);
}

/**
 * dma_direct_alloc: zeroed pages from the zone the coherent mask can reach; the handle is the
 * physical address; null when nothing reachable is free.
 */
export function dma_direct_alloc(dev: Device, mm: Mm, size: number, gfp: number): CoherentBuffer | null {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dma_direct_alloc', 'dev');
  if (!(mm instanceof Mm)) throw notInstance(mm, Mm, 'dma_direct_alloc', 'mm');
  // The device's reach: its coherent mask and the bus's limit (min_not_zero), as
  // dma_direct_optimal_gfp_mask and dma_coherent_ok take it.
  const mask = minNotZero(dev.coherent_dma_mask, dev.bus_dma_limit);
  // The smallest zone whose end the reach covers (zone_dma_limit is per arch).
  let zoneGfp = mask <= mm.zoneDmaLimit - 1 ? GFP_DMA : mask <= DMA_BIT_MASK(32) ? GFP_DMA32 : 0;
  const order = getOrder(size);
  if (dev.host.ctx.faults.shouldFail('coherent')) return null;
  // __dma_direct_alloc_pages: a block the device cannot reach goes back, and the allocation is
  // retried from ZONE_DMA32, then ZONE_DMA.
  for (;;) {
    const pfn = mm.alloc_pages((gfp & ~(GFP_DMA | GFP_DMA32)) | zoneGfp | __GFP_ZERO, order, 'coherent');
    if (pfn === null) return null;
    const phys = pfn * PAGE_SIZE;
    if (phys + size - 1 <= mask) return { cpu_addr: mm.phys_to_virt(phys), dma_handle: phys };
    mm.__free_pages(pfn, order);
    if (zoneGfp === 0 && mask < DMA_BIT_MASK(64)) zoneGfp = GFP_DMA32;
    else if (zoneGfp === GFP_DMA32) zoneGfp = GFP_DMA;
    else return null;
  }
}

/** dma_direct_free. */
export function dma_direct_free(mm: Mm, size: number, buf: CoherentBuffer): void {
  if (typeof buf !== 'object' || buf === null || typeof buf.cpu_addr !== 'number') throw new KernelError(EINVAL, 'dma_direct_free', 'expected a coherent buffer', 'buf');
  if (!(mm instanceof Mm)) throw notInstance(mm, Mm, 'dma_direct_free', 'mm');
  mm.__free_pages(Math.floor(mm.virt_to_phys(buf.cpu_addr) / PAGE_SIZE), getOrder(size));
}

/**
 * dma_direct_alloc_pages: zeroed pages the coherent mask reaches (the same zone choice as
 * dma_direct_alloc); the handle is the bus address. No cache maintenance: the CPU owns them.
 */
export function dma_direct_alloc_pages(dev: Device, mm: Mm, size: number, gfp: number): DmaPages | null {
  const buf = dma_direct_alloc(dev, mm, size, gfp);
  return buf === null ? null : { page: mm.virt_to_phys(buf.cpu_addr) / PAGE_SIZE, dma_handle: buf.dma_handle };
}

/** The dma-direct backend of one machine. */
export function directOps(mm: Mm): DmaOps {
  return {
    name: 'direct',
    // dma_direct_get_required_mask: the mask whose top bit is the last page's top bit (fls64).
    get_required_mask: () => {
      const lastPage = (mm.maxPfn - 1) * PAGE_SIZE;
      return DMA_BIT_MASK(lastPage === 0 ? 1 : Math.floor(Math.log2(lastPage)) + 1);
    },
    map_phys: dma_direct_map_phys,
    unmap_phys: dma_direct_unmap_phys,
    map_sg: dma_direct_map_sg,
    unmap_sg: dma_direct_unmap_sg,
    sync_single_for_cpu: dma_direct_sync_single_for_cpu,
    sync_single_for_device: dma_direct_sync_single_for_device,
    sync_sg_for_cpu: (dev, sgl, nents, dir) => visitSg(sgl, nents, (sg) => dma_direct_sync_single_for_cpu(dev, sg.dma_address, sg.dma_length, dir)),
    sync_sg_for_device: (dev, sgl, nents, dir) => visitSg(sgl, nents, (sg) => dma_direct_sync_single_for_device(dev, sg.dma_address, sg.dma_length, dir)),
    alloc: (dev, size, gfp) => dma_direct_alloc(dev, mm, size, gfp),
    free: (_dev, size, buf) => dma_direct_free(mm, size, buf),
    alloc_pages: (dev, size, _dir, gfp) => dma_direct_alloc_pages(dev, mm, size, gfp),
    free_pages: (_dev, size, page) => mm.__free_pages(page, getOrder(size)),
    max_mapping_size: (dev) => dma_direct_max_mapping_size(dev, mm),
    opt_mapping_size: () => SIZE_MAX,
    merge_boundary: () => 0,
  };
}
