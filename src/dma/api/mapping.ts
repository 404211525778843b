/**
 * @module dma/api/mapping
 * The DMA API (kernel/dma/mapping.c) with the kernel's names, arguments and return conventions:
 * an address or DMA_MAPPING_ERROR; dma_map_sg_attrs 0 on error; dma_map_sgtable 0 or -errno with
 * nents set only on success; an invalid direction is a BUG.
 */
import { EINVAL, EIO, ENOMEM, EOPNOTSUPP, EREMOTEIO } from '../../core/errno.ts';
import { DMA_ATTR_MMIO, DMA_ATTR_REQUIRE_COHERENT } from './attrs.ts';
import { DMA_BIT_MASK, minNotZero } from '../../device/mask.ts';
import { dma_direct_all_ram_mapped } from '../direct/direct.ts';

import { KernelBug, KernelError } from '../../core/errors.ts';
import type { Bound } from '../../device/context.ts';
import { PAGE_OFFSET, PAGE_SIZE, VMALLOC_END, VMALLOC_START } from '../../mm/constants.ts';
import { dma_map_single_rejects_vmalloc } from '../debug/wrapper.ts';
import { __GFP_COMP } from '../../mm/gfp.ts';
import { DMA_MAPPING_ERROR, Scatterlist, sg_check_walk } from '../../scatterlist/entry.ts';
import { Device } from '../../device/device.ts';
import { SgTable } from '../../scatterlist/table.ts';
import { valid_dma_direction } from './direction.ts';
import { dmaOpsOf, dmaSystemOf, type CoherentBuffer } from './ops.ts';
import type { KernelContext } from '../../core/context.ts';
import { ledgerAllocCoherent, ledgerFreeCoherent, ledgerMapSg, ledgerMapSingle, ledgerSyncSg, ledgerSyncSingle, ledgerUnmapSg, ledgerUnmapSingle } from '../ledger/record.ts';
import { notInstance } from '../../core/args.ts';
import { checkAddr, checkAttrs, checkDev, checkDir, checkDmaRange, checkIndex, checkNents, checkSg, checkSgDmaRanges, checkSgt, checkSize, debug, ledger, sgDmaArrays, sgPhysAddrs, trace, tracing } from './checks.ts';

export { DMA_MAPPING_ERROR } from '../../scatterlist/entry.ts';

function noMask(dev: Device, fn: string): boolean {
  if (dev.dma_mask !== null) return false;
  dev.host.ctx.klog.warnOnce(`${fn}:nomask:${dev.name}`, fn, 'WARN_ON_ONCE(!dev->dma_mask)');
  return true;
}

/**
 * dma_map_phys: map [phys, phys+size) for the device.
 * @returns the DMA address, or DMA_MAPPING_ERROR (check with dma_mapping_error).
 */
export function dma_map_phys(dev: Device, phys: number, size: number, dir: number, attrs = 0): number {
  return mapPhys(dev, phys, size, dir, attrs, 'dma_map_phys');
}

/** dma_map_phys on behalf of `api` (the name the ledger records). */
function mapPhys(dev: Device, phys: number, size: number, dir: number, attrs: number, api: string): number {
  checkDev(dev, api);
  checkDir(dir, 'dma_map_phys');
  checkSize(size, 'dma_map_phys');
  if (typeof phys !== 'number' || !Number.isSafeInteger(phys) || phys < 0) throw new KernelError(EINVAL, 'dma_map_phys', `expected a physical address, got ${String(phys)}`, 'phys');
  if (noMask(dev, 'dma_map_phys')) return DMA_MAPPING_ERROR;
  if (!dev.dma_coherent && (attrs & DMA_ATTR_REQUIRE_COHERENT)) return DMA_MAPPING_ERROR;
  // One look-up of the machine's DMA state per call, not one per layer (each is a WeakMap get).
  const sys = dmaSystemOf(dev.host.ctx);
  const addr = (dev.dma_ops ?? sys.direct).map_phys(dev, phys, size, dir, attrs);
  sys.debug?.mapPhys(dev, phys, size, dir, addr, attrs);
  if (addr !== DMA_MAPPING_ERROR) ledgerMapSingle(sys.ledger, dev, api, phys, size, dir, addr);
  if (sys.trace !== null && sys.trace.enabled) sys.trace.emit('map', 'dma_map_phys', dev.name, { phys, size, dir, attrs, addr });
  return addr;
}

/**
 * dma_map_page_attrs: map `size` bytes at `offset` into page frame `page`.
 * @example const addr = dma_map_page_attrs(dev, pfn, 0, 4096, DMA_TO_DEVICE, 0);
 */
export function dma_map_page_attrs(dev: Device, page: number, offset: number, size: number, dir: number, attrs = 0): number {
  return mapPhys(dev, checkIndex(page, 'dma_map_page_attrs', 'page') * PAGE_SIZE + checkIndex(offset, 'dma_map_page_attrs', 'offset'), size, dir, attrs, 'dma_map_page_attrs');
}

/** dma_map_page. */
export function dma_map_page(dev: Device, page: number, offset: number, size: number, dir: number): number {
  return mapPhys(dev, checkIndex(page, 'dma_map_page', 'page') * PAGE_SIZE + checkIndex(offset, 'dma_map_page', 'offset'), size, dir, 0, 'dma_map_page');
}

/**
 * dma_map_single_attrs: map a direct-mapped (kmalloc'd) CPU buffer. A vmalloc address is refused
 * (the kernel WARNs: it has no single physical range) with DMA_MAPPING_ERROR.
 */
export function dma_map_single_attrs(dev: Device, cpu_addr: number, size: number, dir: number, attrs = 0): number {
  return mapSingle(dev, cpu_addr, size, dir, attrs, 'dma_map_single_attrs');
}

/** dma_map_single. */
export function dma_map_single(dev: Device, cpu_addr: number, size: number, dir: number): number {
  return mapSingle(dev, cpu_addr, size, dir, 0, 'dma_map_single');
}

function mapSingle(dev: Device, cpu_addr: number, size: number, dir: number, attrs: number, api: string): number {
  checkDev(dev, api);
  checkIndex(cpu_addr, api, 'cpu_addr');
  if (dma_map_single_rejects_vmalloc(dev.host.ctx.klog, dev, cpu_addr >= VMALLOC_START && cpu_addr < VMALLOC_END)) return DMA_MAPPING_ERROR;
  debug(dev)?.mapSingle(dev, cpu_addr, size);
  return mapPhys(dev, cpu_addr - PAGE_OFFSET, size, dir, attrs, api);
}

/** dma_mapping_error: -ENOMEM for DMA_MAPPING_ERROR, else 0 (dma-debug marks the mapping checked). */
export function dma_mapping_error(dev: Device, addr: number): number {
  checkDev(dev, 'dma_mapping_error');
  debug(dev)?.mappingError(dev, addr);
  return addr === DMA_MAPPING_ERROR ? -ENOMEM : 0;
}

/** dma_unmap_phys. */
export function dma_unmap_phys(dev: Device, addr: number, size: number, dir: number, attrs = 0): void {
  unmapPhys(dev, addr, size, dir, attrs, 'dma_unmap_phys');
}

/**
 * dma_map_resource: map MMIO (another device's BAR, a doorbell) for `dev`, as the kernel now does
 * it, dma_map_phys with DMA_ATTR_MMIO: never bounced through swiotlb, never CPU-synced; through
 * the IOMMU with IOMMU_MMIO. The address, or DMA_MAPPING_ERROR.
 * @example const db = dma_map_resource(dev, 0xfe000000, 4096, DMA_BIDIRECTIONAL, 0);
 */
export function dma_map_resource(dev: Device, phys: number, size: number, dir: number, attrs = 0): number {
  checkAttrs(attrs, 'dma_map_resource');
  return mapPhys(dev, phys, size, dir, attrs | DMA_ATTR_MMIO, 'dma_map_resource');
}

/**
 * dma_unmap_resource: undo dma_map_resource (dma_unmap_phys with DMA_ATTR_MMIO).
 * @example dma_unmap_resource(dev, db, 4096, DMA_BIDIRECTIONAL, 0);
 */
export function dma_unmap_resource(dev: Device, addr: number, size: number, dir: number, attrs = 0): void {
  checkAttrs(attrs, 'dma_unmap_resource');
  unmapPhys(dev, addr, size, dir, attrs | DMA_ATTR_MMIO, 'dma_unmap_resource');
}

/**
 * dma_need_sync: must the driver call the sync functions for this mapping? dma-direct: when the
 * device is not coherent or the address is a swiotlb bounce slot; dma-iommu: when the device is
 * not coherent or untrusted (it bounces).
 * @example if (dma_need_sync(dev, addr)) dma_sync_single_for_cpu(dev, addr, len, DMA_FROM_DEVICE);
 */
export function dma_need_sync(dev: Device, addr: number): boolean {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dma_need_sync', 'dev');
  checkAddr(addr, 'dma_need_sync');
  if (!dev.dma_coherent) return true;
  if (dmaOpsOf(dev).name === 'iommu') return dev.untrusted;
  return dmaSystemOf(dev.host.ctx).bouncer?.isBuffer(addr) ?? false;
}

/**
 * dma_get_required_mask: the smallest mask that reaches all of RAM through dma-direct (a power of
 * two minus one covering the last page), DMA_BIT_MASK(32) behind an IOMMU.
 * @example dma_get_required_mask(dev) // 0x1ffffffff on an 8 GiB machine
 */
export function dma_get_required_mask(dev: Device): number {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dma_get_required_mask', 'dev');
  // dma-iommu has no rule of its own: the kernel's 32-bit default.
  return dmaOpsOf(dev).get_required_mask?.(dev) ?? DMA_BIT_MASK(32);
}

/**
 * dma_addressing_limited: does the device need bouncing or an IOMMU to reach all memory? True
 * when its mask (and bus limit) is below dma_get_required_mask; otherwise false behind dma-iommu,
 * and through dma-direct true when some RAM range ends beyond its reach.
 * @example if (dma_addressing_limited(dev)) dev_info(...'using bounce buffers')
 */
export function dma_addressing_limited(dev: Device): boolean {
  checkDev(dev, 'dma_addressing_limited');
  const reach = minNotZero(dev.dma_mask ?? DMA_BIT_MASK(32), dev.bus_dma_limit);
  if (reach < dma_get_required_mask(dev)) return true;
  if (dmaOpsOf(dev).name === 'iommu') return false;
  const mm = dmaSystemOf(dev.host.ctx).mm;
  return mm !== null && !dma_direct_all_ram_mapped(dev, mm);
}

function unmapPhys(dev: Device, addr: number, size: number, dir: number, attrs: number, api: string): void {
  checkDev(dev, api);
  checkDir(dir, 'dma_unmap_phys');
  checkAddr(addr, 'dma_unmap_phys');
  checkSize(size, 'dma_unmap_phys');
  checkDmaRange(addr, size, 'dma_unmap_phys');
  const sys = dmaSystemOf(dev.host.ctx);
  (dev.dma_ops ?? sys.direct).unmap_phys(dev, addr, size, dir, attrs);
  sys.debug?.unmapPhys(dev, addr, size, dir);
  ledgerUnmapSingle(sys.ledger, dev, api, addr);
  if (sys.trace !== null && sys.trace.enabled) sys.trace.emit('unmap', 'dma_unmap_phys', dev.name, { addr, size, dir, attrs });
}

/** dma_unmap_page_attrs. */
export function dma_unmap_page_attrs(dev: Device, addr: number, size: number, dir: number, attrs = 0): void {
  unmapPhys(dev, addr, size, dir, attrs, 'dma_unmap_page_attrs');
}

/** dma_unmap_page. */
export function dma_unmap_page(dev: Device, addr: number, size: number, dir: number): void {
  unmapPhys(dev, addr, size, dir, 0, 'dma_unmap_page');
}

/** dma_unmap_single_attrs. */
export function dma_unmap_single_attrs(dev: Device, addr: number, size: number, dir: number, attrs = 0): void {
  unmapPhys(dev, addr, size, dir, attrs, 'dma_unmap_single_attrs');
}

/** dma_unmap_single. */
export function dma_unmap_single(dev: Device, addr: number, size: number, dir: number): void {
  unmapPhys(dev, addr, size, dir, 0, 'dma_unmap_single');
}

/**
 * __dma_map_sg_attrs: mapped segments (> 0) or -EINVAL / -ENOMEM / -EIO / -EREMOTEIO (anything
 * else a backend returns WARNs once and becomes -EIO).
 */
function __dma_map_sg_attrs(dev: Device, sgl: Scatterlist | null, nents: number, dir: number, attrs: number, api: string): number {
  checkDev(dev, api);
  checkDir(dir, 'dma_map_sg_attrs');
  checkNents(nents, api);
  if (!dev.dma_coherent && (attrs & DMA_ATTR_REQUIRE_COHERENT)) return -EOPNOTSUPP;
  if (noMask(dev, 'dma_map_sg_attrs')) return 0;
  if (sgl === null || nents === 0) return -EINVAL;
  checkSg(dev, sgl, nents, api);
  const ents = dmaOpsOf(dev).map_sg(dev, sgl, nents, dir, attrs);
  if (ents > 0) {
    debug(dev)?.mapSg(dev, sgl, nents, ents, dir, attrs);
    ledgerMapSg(ledger(dev), dev, api, sgl, nents, ents, dir);
    const t = tracing(dev);
    if (t !== null) t.emit('map', 'dma_map_sg', dev.name, { nents, ents, dir, attrs, addr: sgl.dma_address, phys_addrs: sgPhysAddrs(sgl, nents), ...sgDmaArrays(sgl, ents) });
    return ents;
  }
  const t = tracing(dev);
  if (t !== null) t.emit('map', 'dma_map_sg failed', dev.name, { nents, ret: ents, dir, attrs, phys_addrs: sgPhysAddrs(sgl, nents) });
  if (ents !== -EINVAL && ents !== -ENOMEM && ents !== -EIO && ents !== -EREMOTEIO) {
    dev.host.ctx.klog.warnOnce('__dma_map_sg_attrs:errno', '__dma_map_sg_attrs', `WARN_ON_ONCE(ents != -EINVAL && ents != -ENOMEM && ents != -EIO && ents != -EREMOTEIO): ents ${ents}`);
    return -EIO;
  }
  return ents;
}

/**
 * dma_map_sg_attrs: the number of DMA segments (may be fewer than nents), 0 on any error.
 */
export function dma_map_sg_attrs(dev: Device, sgl: Scatterlist | null, nents: number, dir: number, attrs = 0): number {
  const r = __dma_map_sg_attrs(dev, sgl, nents, dir, attrs, 'dma_map_sg_attrs');
  return r < 0 ? 0 : r;
}

/** dma_map_sg. */
export function dma_map_sg(dev: Device, sgl: Scatterlist | null, nents: number, dir: number): number {
  const r = __dma_map_sg_attrs(dev, sgl, nents, dir, 0, 'dma_map_sg');
  return r < 0 ? 0 : r;
}

/**
 * dma_unmap_sg_attrs: `nents` must be what was passed to dma_map_sg (not the mapped count).
 * dma-debug checks before the real unmap.
 */
export function dma_unmap_sg_attrs(dev: Device, sgl: Scatterlist | null, nents: number, dir: number, attrs = 0): void {
  unmapSg(dev, sgl, nents, dir, attrs, 'dma_unmap_sg_attrs');
}

function unmapSg(dev: Device, sgl: Scatterlist | null, nents: number, dir: number, attrs: number, api: string): void {
  checkDev(dev, api);
  checkDir(dir, 'dma_unmap_sg_attrs');
  checkNents(nents, api);
  if (sgl === null) return;
  checkSg(dev, sgl, nents, api);
  checkSgDmaRanges(sgl, nents, api);
  debug(dev)?.unmapSg(dev, sgl, nents, dir);
  const t = tracing(dev);
  if (t !== null) t.emit('unmap', 'dma_unmap_sg', dev.name, { nents, dir, attrs, addr: sgl.dma_address, phys_addrs: sgPhysAddrs(sgl, nents) });
  dmaOpsOf(dev).unmap_sg(dev, sgl, nents, dir, attrs);
  ledgerUnmapSg(ledger(dev), dev, api, sgl);
}

/** dma_unmap_sg. */
export function dma_unmap_sg(dev: Device, sgl: Scatterlist | null, nents: number, dir: number): void {
  unmapSg(dev, sgl, nents, dir, 0, 'dma_unmap_sg');
}

/**
 * dma_map_sgtable: map orig_nents entries; on success sgt.nents = mapped count and 0; on failure
 * the negative errno, nents untouched.
 * @example if (dma_map_sgtable(dev, sgt, DMA_TO_DEVICE, 0) === 0) for (const s of for_each_sgtable_dma_sg(sgt)) ...
 */
export function dma_map_sgtable(dev: Device, sgt: SgTable, dir: number, attrs = 0): number {
  checkSgt(dev, sgt, 'dma_map_sgtable');
  const n = __dma_map_sg_attrs(dev, sgt.sgl, sgt.orig_nents, dir, attrs, 'dma_map_sgtable');
  if (n < 0) return n;
  sgt.nents = n;
  return 0;
}

/** dma_unmap_sgtable: unmaps orig_nents entries. */
export function dma_unmap_sgtable(dev: Device, sgt: SgTable, dir: number, attrs = 0): void {
  checkSgt(dev, sgt, 'dma_unmap_sgtable');
  unmapSg(dev, sgt.sgl, sgt.orig_nents, dir, attrs, 'dma_unmap_sgtable');
}

/** dma_sync_single_for_cpu: make the device's writes visible to the CPU (bounce copies back). */
export function dma_sync_single_for_cpu(dev: Device, addr: number, size: number, dir: number): void {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dma_sync_single_for_cpu', 'dev');
  checkDir(dir, 'dma_sync_single_for_cpu');
  checkAddr(addr, 'dma_sync_single_for_cpu');
  checkSize(size, 'dma_sync_single_for_cpu');
  dmaOpsOf(dev).sync_single_for_cpu(dev, addr, size, dir);
  debug(dev)?.syncSingleForCpu(dev, addr, size, dir);
  ledgerSyncSingle(ledger(dev), dev, addr, size, true);
  trace(dev, 'sync', 'dma_sync_single_for_cpu', { addr, size, dir });
}

/**
 * dma_sync_single_range_for_cpu: dma_sync_single_for_cpu of `size` bytes at `offset` into the
 * mapping at `addr` (the kernel's inline: the range's own address goes to the backend and dma-debug).
 * @example dma_sync_single_range_for_cpu(dev, addr, 512, 64, DMA_FROM_DEVICE) // just the header
 */
export function dma_sync_single_range_for_cpu(dev: Device, addr: number, offset: number, size: number, dir: number): void {
  checkAddr(offset, 'dma_sync_single_range_for_cpu');
  dma_sync_single_for_cpu(dev, addr + offset, size, dir);
}

/**
 * dma_sync_single_range_for_device: dma_sync_single_for_device of a range within a mapping.
 * @example dma_sync_single_range_for_device(dev, addr, 512, 64, DMA_TO_DEVICE)
 */
export function dma_sync_single_range_for_device(dev: Device, addr: number, offset: number, size: number, dir: number): void {
  checkAddr(offset, 'dma_sync_single_range_for_device');
  dma_sync_single_for_device(dev, addr + offset, size, dir);
}

/** dma_sync_single_for_device: hand the buffer back to the device (bounce copies out). */
export function dma_sync_single_for_device(dev: Device, addr: number, size: number, dir: number): void {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dma_sync_single_for_device', 'dev');
  checkDir(dir, 'dma_sync_single_for_device');
  checkAddr(addr, 'dma_sync_single_for_device');
  checkSize(size, 'dma_sync_single_for_device');
  dmaOpsOf(dev).sync_single_for_device(dev, addr, size, dir);
  debug(dev)?.syncSingleForDevice(dev, addr, size, dir);
  ledgerSyncSingle(ledger(dev), dev, addr, size, false);
  trace(dev, 'sync', 'dma_sync_single_for_device', { addr, size, dir });
}

/** dma_sync_sg_for_cpu: `nents` as passed to dma_map_sg. */
export function dma_sync_sg_for_cpu(dev: Device, sgl: Scatterlist, nents: number, dir: number): void {
  checkDev(dev, 'dma_sync_sg_for_cpu');
  checkDir(dir, 'dma_sync_sg_for_cpu');
  checkSg(dev, sgl, checkNents(nents, 'dma_sync_sg_for_cpu'), 'dma_sync_sg_for_cpu');
  dmaOpsOf(dev).sync_sg_for_cpu(dev, sgl, nents, dir);
  debug(dev)?.syncSgForCpu(dev, sgl, nents, dir);
  ledgerSyncSg(ledger(dev), dev, sgl, true);
  const t = tracing(dev);
  if (t !== null) t.emit('sync', 'dma_sync_sg_for_cpu', dev.name, { nents, dir, ...sgDmaArrays(sgl, nents) });
}

/** dma_sync_sg_for_device. */
export function dma_sync_sg_for_device(dev: Device, sgl: Scatterlist, nents: number, dir: number): void {
  checkDev(dev, 'dma_sync_sg_for_device');
  checkDir(dir, 'dma_sync_sg_for_device');
  checkSg(dev, sgl, checkNents(nents, 'dma_sync_sg_for_device'), 'dma_sync_sg_for_device');
  dmaOpsOf(dev).sync_sg_for_device(dev, sgl, nents, dir);
  debug(dev)?.syncSgForDevice(dev, sgl, nents, dir);
  ledgerSyncSg(ledger(dev), dev, sgl, false);
  const t = tracing(dev);
  if (t !== null) t.emit('sync', 'dma_sync_sg_for_device', dev.name, { nents, dir, ...sgDmaArrays(sgl, nents) });
}

/** dma_sync_sgtable_for_cpu (orig_nents). */
export function dma_sync_sgtable_for_cpu(dev: Device, sgt: SgTable, dir: number): void {
  checkSgt(dev, sgt, 'dma_sync_sgtable_for_cpu');
  if (sgt.sgl !== null) dma_sync_sg_for_cpu(dev, sgt.sgl, sgt.orig_nents, dir);
}

/** dma_sync_sgtable_for_device (orig_nents). */
export function dma_sync_sgtable_for_device(dev: Device, sgt: SgTable, dir: number): void {
  checkSgt(dev, sgt, 'dma_sync_sgtable_for_device');
  if (sgt.sgl !== null) dma_sync_sg_for_device(dev, sgt.sgl, sgt.orig_nents, dir);
}

/** The machine each coherent buffer came from: freeing it through another machine is refused. */
const coherentHome = new WeakMap<CoherentBuffer, KernelContext>();

/**
 * dma_alloc_attrs: a coherent buffer, or null. Refuses __GFP_COMP; zone flags are taken from the
 * coherent mask, not the caller.
 * @example const buf = dma_alloc_coherent(dev, 8192, GFP_KERNEL); buf?.dma_handle
 */
export function dma_alloc_attrs(dev: Device, size: number, gfp: number, attrs = 0): CoherentBuffer | null {
  return allocAttrs(dev, size, gfp, attrs, 'dma_alloc_attrs');
}

function allocAttrs(dev: Device, size: number, gfp: number, attrs: number, api: string): CoherentBuffer | null {
  checkDev(dev, api);
  if (typeof gfp !== 'number' || !Number.isInteger(gfp) || gfp < 0 || gfp > 0xffffffff) throw new KernelError(EINVAL, api, `expected gfp flags, got ${String(gfp)}`, 'gfp');
  checkSize(size, 'dma_alloc_attrs');
  if (dev.coherent_dma_mask === 0) {
    dev.host.ctx.klog.warnOnce(`dma_alloc_attrs:mask:${dev.name}`, 'dma_alloc_attrs', 'WARN_ON_ONCE(!dev->coherent_dma_mask)');
    return null;
  }
  if (gfp & __GFP_COMP) {
    dev.host.ctx.klog.warnOnce('dma_alloc_attrs:comp', 'dma_alloc_attrs', 'WARN_ON_ONCE(flag & __GFP_COMP)');
    return null;
  }
  if (size === 0) return null;
  const buf = dmaOpsOf(dev).alloc(dev, size, gfp, attrs);
  if (buf !== null) {
    coherentHome.set(buf, dev.host.ctx);
    debug(dev)?.allocCoherent(dev, size, buf, attrs);
    const sys = dmaSystemOf(dev.host.ctx);
    ledgerAllocCoherent(sys.ledger, dev, api, size, buf.dma_handle, sys.virtRanges(buf.cpu_addr, size));
  }
  trace(dev, 'alloc', 'dma_alloc_attrs', { size, handle: buf?.dma_handle ?? null, virt: buf?.cpu_addr ?? 0, gfp, attrs });
  return buf;
}

/** dma_alloc_coherent. */
export function dma_alloc_coherent(dev: Device, size: number, gfp: number): CoherentBuffer | null {
  return allocAttrs(dev, size, gfp, 0, 'dma_alloc_coherent');
}

/** dma_free_attrs. */
export function dma_free_attrs(dev: Device, size: number, buf: CoherentBuffer, attrs = 0): void {
  freeAttrs(dev, size, buf, attrs, 'dma_free_attrs');
}

function freeAttrs(dev: Device, size: number, buf: CoherentBuffer, attrs: number, api: string): void {
  checkDev(dev, api);
  checkSize(size, api);
  if (typeof buf !== 'object' || buf === null || typeof buf.cpu_addr !== 'number' || typeof buf.dma_handle !== 'number') {
    throw new KernelError(EINVAL, api, 'expected the buffer dma_alloc_coherent returned', 'buf');
  }
  const home = coherentHome.get(buf);
  if (home !== undefined && home !== dev.host.ctx) throw new KernelError(EINVAL, api, `the buffer was allocated on machine ${home.name}, ${dev.name} is on ${dev.host.ctx.name}`, 'buf');
  checkDmaRange(buf.dma_handle, size, api);
  debug(dev)?.freeCoherent(dev, size, buf);
  trace(dev, 'free', 'dma_free_attrs', { size, handle: buf.dma_handle, virt: buf.cpu_addr, attrs });
  dmaOpsOf(dev).free(dev, size, buf, attrs);
  ledgerFreeCoherent(ledger(dev), dev, api, buf.dma_handle);
}

/**
 * @internal dma_alloc_coherent on behalf of an allocator built on it (a DMA pool's page): `api`
 * names it in the ledger, so a leak names the pool.
 */
export function allocCoherentAs(dev: Device, size: number, gfp: number, api: string): CoherentBuffer | null {
  if (typeof api !== 'string') throw new KernelError(EINVAL, 'allocCoherentAs', 'expected the caller\'s name', 'api');
  return allocAttrs(dev, size, gfp, 0, api);
}

/** @internal dma_free_coherent on behalf of an allocator built on it. */
export function freeCoherentAs(dev: Device, size: number, buf: CoherentBuffer, api: string): void {
  if (typeof api !== 'string') throw new KernelError(EINVAL, 'freeCoherentAs', 'expected the caller\'s name', 'api');
  freeAttrs(dev, size, buf, 0, api);
}

/** dma_free_coherent. */
export function dma_free_coherent(dev: Device, size: number, buf: CoherentBuffer): void {
  freeAttrs(dev, size, buf, 0, 'dma_free_coherent');
}

/**
 * dmam_alloc_coherent: a coherent buffer freed automatically at unbind (devres).
 * @throws KernelError ENODEV for an unbound device.
 */
export function dmam_alloc_coherent(dev: Device<Bound>, size: number, gfp: number): CoherentBuffer | null {
  return managedAlloc(dev, size, gfp, 0, 'dmam_alloc_coherent');
}

/**
 * dmam_alloc_attrs: dma_alloc_attrs freed automatically at unbind (devres), freed with the same attrs.
 * @throws KernelError ENODEV for an unbound device.
 * @example const ring = dmam_alloc_attrs(dev, 65536, GFP_KERNEL, DMA_ATTR_NO_WARN);
 */
export function dmam_alloc_attrs(dev: Device<Bound>, size: number, gfp: number, attrs: number): CoherentBuffer | null {
  checkAttrs(attrs, 'dmam_alloc_attrs');
  return managedAlloc(dev, size, gfp, attrs, 'dmam_alloc_attrs');
}

function managedAlloc(dev: Device<Bound>, size: number, gfp: number, attrs: number, api: string): CoherentBuffer | null {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, api, 'dev');
  dev.assertBound(api);
  const buf = allocAttrs(dev, size, gfp, attrs, api);
  if (buf === null) return null;
  dev.devres.add(managedAction(dev, size, buf, attrs));
  return buf;
}

const managed = new WeakMap<CoherentBuffer, { release: () => void; name: string }>();

function managedAction(dev: Device, size: number, buf: CoherentBuffer, attrs: number) {
  const action = { name: 'dmam_alloc_coherent', release: () => freeAttrs(dev, size, buf, attrs, 'dmam_release') };
  managed.set(buf, action);
  return action;
}

/** dmam_free_coherent: free now and drop the devres entry (WARN when it is not found). */
export function dmam_free_coherent(dev: Device, size: number, buf: CoherentBuffer): void {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dmam_free_coherent', 'dev');
  const action = managed.get(buf);
  if (action === undefined || !dev.devres.remove(action)) {
    dev.host.ctx.klog.warn('dmam_free_coherent', 'WARN_ON(devres_destroy(dev, dmam_release, dmam_match, &match_data))');
  }
  freeAttrs(dev, size, buf, 0, 'dmam_free_coherent');
}

/** dma_max_mapping_size: the largest single mapping the device's backend allows. */
export function dma_max_mapping_size(dev: Device): number {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dma_max_mapping_size', 'dev');
  return dmaOpsOf(dev).max_mapping_size(dev);
}

/** dma_opt_mapping_size: min(max mapping size, the backend's optimal size). */
export function dma_opt_mapping_size(dev: Device): number {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dma_opt_mapping_size', 'dev');
  const ops = dmaOpsOf(dev);
  return Math.min(ops.max_mapping_size(dev), ops.opt_mapping_size(dev));
}

/** dma_get_merge_boundary: 0 when the backend cannot merge. */
export function dma_get_merge_boundary(dev: Device): number {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dma_get_merge_boundary', 'dev');
  return dmaOpsOf(dev).merge_boundary(dev);
}
