/**
 * @module dma/api/iova
 * The two-step IOVA API (include/linux/dma-mapping.h, drivers/iommu/dma-iommu.c; mainline since
 * v6.16, used by the block layer's blk_rq_dma_map_iter_*, NVMe PCI and RDMA ODP): reserve one IOVA
 * range, link physical ranges into it without IOTLB syncs, sync once, unlink or destroy.
 *
 * `dma_iova_try_alloc` is false whenever the device does not use dma-iommu (no IOMMU, an identity
 * domain): the driver then maps page by page with dma_map_phys, as the kernel's callers do.
 * dma-debug has no hook here (the kernel's has none), but the driver-test ledger records every
 * link: device accesses through a linked range are checked like any mapping, an access before
 * dma_iova_sync is a finding, and links still live at unbind or at the end of a test are leaks.
 */
import { EINVAL, EOPNOTSUPP } from '../../core/errno.ts';
import { KernelBug, KernelError } from '../../core/errors.ts';
import { Device } from '../../device/device.ts';
import { DMA_ATTR_REQUIRE_COHERENT, DMA_ATTR_SKIP_CPU_SYNC } from './attrs.ts';
import { checkAttrs, checkDev, checkDir, checkDmaRange, ledger, trace } from './checks.ts';
import { dmaOpsOf, type IovaOps } from './ops.ts';

/**
 * struct dma_iova_state: the IOVA range of one two-step mapping.
 * INVARIANT: size === 0 (and usesSwiotlb false) until dma_iova_try_alloc succeeds; addr is the
 *   IOVA plus the sub-granule offset of the phys given to dma_iova_try_alloc.
 * @example const state = new DmaIovaState(); if (dma_iova_try_alloc(dev, state, 0, len)) ...
 */
export class DmaIovaState {
  /** The IOVA the caller adds offsets to (state->addr). */
  addr = 0;
  /** Bytes asked of dma_iova_try_alloc (the low bits of state->__size). */
  size = 0;
  /** DMA_IOVA_USE_SWIOTLB: some link bounced (then every unlink walks granule by granule). */
  usesSwiotlb = false;
  /** @internal the machine the range belongs to */
  ctx: unknown = null;
}

function checkState(state: unknown, dev: Device, fn: string): DmaIovaState {
  if (!(state instanceof DmaIovaState)) throw new KernelError(EINVAL, fn, `expected a DmaIovaState, got ${state === null ? 'null' : typeof state}`, 'state');
  if (state.ctx !== null && state.ctx !== dev.host.ctx) throw new KernelError(EINVAL, fn, `the state's IOVA range belongs to another machine than ${dev.name}'s`, 'state');
  return state;
}

function checkLen(v: unknown, fn: string, arg: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new KernelError(EINVAL, fn, `expected a whole number of bytes, got ${String(v)}`, arg);
  return v;
}

/** The device's IOVA operations; a device without dma-iommu oopses as the kernel would (no DMA domain). */
function iovaOps(dev: Device, fn: string): IovaOps {
  const ops = dmaOpsOf(dev).iova;
  if (ops === undefined) throw new KernelBug(fn, `Unable to handle kernel NULL pointer dereference: ${dev.name} has no IOMMU DMA domain (call ${fn} only when dma_use_iova(state) is true)`);
  return ops;
}

/**
 * dma_use_iova: did dma_iova_try_alloc give this state an IOVA range?
 * @example if (dma_use_iova(state)) dma_iova_destroy(dev, state, len, dir, 0);
 */
export function dma_use_iova(state: DmaIovaState): boolean {
  if (!(state instanceof DmaIovaState)) throw new KernelError(EINVAL, 'dma_use_iova', 'expected a DmaIovaState', 'state');
  return state.size !== 0 || state.usesSwiotlb;
}

/** dma_iova_size: the bytes the range was allocated for. @example dma_iova_size(state) // 65536 */
export function dma_iova_size(state: DmaIovaState): number {
  if (!(state instanceof DmaIovaState)) throw new KernelError(EINVAL, 'dma_iova_size', 'expected a DmaIovaState', 'state');
  return state.size;
}

/**
 * dma_iova_try_alloc: reserve IOVA space for `size` bytes whose first byte has `phys`'s offset in
 * an IOMMU granule (0 for page-aligned transfers), under the device's streaming DMA mask (32-bit
 * first for PCI). The state is zeroed first, always.
 * @returns false when the device does not use dma-iommu, for size 0 (WARN_ON_ONCE), or when IOVA
 *   space runs out; the caller then maps each range with dma_map_phys.
 * @example
 * const state = new DmaIovaState();
 * if (dma_iova_try_alloc(dev, state, phys, len)) { dma_iova_link(dev, state, phys, 0, len, dir, 0); dma_iova_sync(dev, state, 0, len); }
 */
export function dma_iova_try_alloc(dev: Device, state: DmaIovaState, phys: number, size: number): boolean {
  const fn = 'dma_iova_try_alloc';
  checkDev(dev, fn);
  checkState(state, dev, fn);
  checkLen(phys, fn, 'phys');
  checkLen(size, fn, 'size');
  state.addr = 0;
  state.size = 0;
  state.usesSwiotlb = false;
  state.ctx = null;
  const ops = dmaOpsOf(dev).iova;
  if (ops === undefined) return false;
  if (size === 0) {
    dev.host.ctx.klog.warnOnce('dma_iova_try_alloc:size', fn, 'WARN_ON_ONCE(!size)');
    return false;
  }
  const addr = ops.alloc(dev, phys, size);
  trace(dev, 'iova', fn, { size, addr: addr === 0 ? null : addr });
  if (addr === 0) return false;
  state.addr = addr;
  state.size = size;
  state.ctx = dev.host.ctx;
  return true;
}

/**
 * dma_iova_link: map [phys, phys+size) at `offset` into the state's range, for `dir`, without an
 * IOTLB sync. Only a link at offset 0 may start at a phys that is not granule-aligned; an untrusted
 * device's unaligned head and tail bounce through swiotlb.
 * @returns 0; -EIO (WARN_ON_ONCE) for an unaligned phys at offset > 0; -EPERM when a bounce would
 *   be needed for DMA_ATTR_MMIO / DMA_ATTR_REQUIRE_COHERENT; -ENOMEM when swiotlb is full; -EINVAL
 *   ("iommu: unaligned: ...") when the IOVA written is not granule-aligned; the page table's errno.
 * @example dma_iova_link(dev, state, pfn * 4096, off, 4096, DMA_TO_DEVICE, 0)
 */
export function dma_iova_link(dev: Device, state: DmaIovaState, phys: number, offset: number, size: number, dir: number, attrs: number): number {
  const fn = 'dma_iova_link';
  checkDev(dev, fn);
  checkState(state, dev, fn);
  checkLen(phys, fn, 'phys');
  checkLen(offset, fn, 'offset');
  checkLen(size, fn, 'size');
  checkDir(dir, fn);
  checkAttrs(attrs, fn);
  const ops = iovaOps(dev, fn);
  // A mapping that must stay coherent: not into a range that bounced, not for a non-coherent device.
  if (attrs & DMA_ATTR_REQUIRE_COHERENT) {
    if (state.usesSwiotlb) {
      dev.host.ctx.klog.warnOnce(`dma_iova_link:coherent:${dev.name}`, fn, 'WARN_ON_ONCE(state->__size & DMA_IOVA_USE_SWIOTLB && attrs & DMA_ATTR_REQUIRE_COHERENT)');
      return -EOPNOTSUPP;
    }
    if (!dev.dma_coherent) return -EOPNOTSUPP;
  }
  const { ret, bounced } = ops.link(dev, state.addr, phys, offset, size, dir, attrs);
  if (bounced) state.usesSwiotlb = true;
  trace(dev, 'iova', fn, { addr: state.addr + offset, phys, size, dir, ret });
  if (ret === 0 && size > 0) {
    const e = ledger(dev).recordOne('single', dev, fn, dir, size, state.addr + offset, phys, state.addr + offset);
    e.awaitingSync = true;
  }
  return ret;
}

/**
 * dma_iova_sync: make the links in [offset, offset+size) visible to the device (iommu_sync_map).
 * @returns 0 or the IOMMU driver's errno.
 * @example dma_iova_sync(dev, state, 0, len)
 */
export function dma_iova_sync(dev: Device, state: DmaIovaState, offset: number, size: number): number {
  const fn = 'dma_iova_sync';
  checkDev(dev, fn);
  checkState(state, dev, fn);
  checkLen(offset, fn, 'offset');
  checkLen(size, fn, 'size');
  const ret = iovaOps(dev, fn).sync(dev, state.addr, offset, size);
  if (ret === 0) {
    const a = state.addr + offset;
    for (const e of ledger(dev).liveStartingIn(dev, a, a + Math.max(size, 1), 'dma_iova_link')) e.awaitingSync = false;
  }
  return ret;
}

function unlink(dev: Device, state: DmaIovaState, offset: number, size: number, dir: number, attrs: number, free: boolean, fn: string): void {
  const ops = iovaOps(dev, fn);
  // The slow walk: bounce slots to release, or a non-coherent device's CPU syncs.
  const slow = state.usesSwiotlb || (!dev.dma_coherent && (attrs & DMA_ATTR_SKIP_CPU_SYNC) === 0);
  ops.unlink(dev, state.addr, offset, size, dir, attrs, slow, free);
  const a = state.addr + offset;
  const l = ledger(dev);
  for (const e of l.liveStartingIn(dev, a, a + Math.max(size, 1), 'dma_iova_link')) l.release(e, fn);
  trace(dev, 'iova', fn, { addr: a, size, dir });
}

/**
 * dma_iova_unlink: unmap [offset, offset+size) of the range and sync the IOTLB at once (even on a
 * lazy domain); the IOVA stays reserved for new links.
 * @example dma_iova_unlink(dev, state, 0, len, DMA_TO_DEVICE, 0)
 */
export function dma_iova_unlink(dev: Device, state: DmaIovaState, offset: number, size: number, dir: number, attrs: number): void {
  const fn = 'dma_iova_unlink';
  checkDev(dev, fn);
  checkState(state, dev, fn);
  checkLen(offset, fn, 'offset');
  checkLen(size, fn, 'size');
  checkDir(dir, fn);
  checkAttrs(attrs, fn);
  checkDmaRange(state.addr + offset, size, fn);
  unlink(dev, state, offset, size, dir, attrs, false, fn);
}

/**
 * dma_iova_free: give the range's IOVA space back at once, unmapping nothing (every link must be
 * unlinked first; links left behind stay mapped and are reported as leaks).
 * @example dma_iova_free(dev, state)
 */
export function dma_iova_free(dev: Device, state: DmaIovaState): void {
  const fn = 'dma_iova_free';
  checkDev(dev, fn);
  checkState(state, dev, fn);
  iovaOps(dev, fn).free(dev, state.addr, state.size);
  trace(dev, 'iova', fn, { addr: state.addr, size: state.size });
}

/**
 * dma_iova_destroy: unlink [0, mapped_len) and free the IOVA (on a lazy domain both wait for the
 * flush queue); mapped_len 0 is dma_iova_free (the first link failed).
 * @example dma_iova_destroy(dev, state, len, DMA_FROM_DEVICE, 0)
 */
export function dma_iova_destroy(dev: Device, state: DmaIovaState, mapped_len: number, dir: number, attrs: number): void {
  const fn = 'dma_iova_destroy';
  checkDev(dev, fn);
  checkState(state, dev, fn);
  checkLen(mapped_len, 'dma_iova_destroy', 'mapped_len');
  checkDir(dir, fn);
  checkAttrs(attrs, fn);
  if (mapped_len === 0) {
    dma_iova_free(dev, state);
    return;
  }
  checkDmaRange(state.addr, mapped_len, fn, 'mapped_len');
  unlink(dev, state, 0, mapped_len, dir, attrs, true, fn);
}
