/**
 * @module dma/api/params
 * Device DMA parameters: masks (dma_set_mask ...), max segment size and segment boundary, with the
 * kernel's defaults and return conventions.
 */
import { checkInt, notInstance } from '../../core/args.ts';
import { EIO } from '../../core/errno.ts';
import { Device } from '../../device/device.ts';
import { DMA_BIT_MASK, ULONG_MAX } from '../../device/mask.ts';
import { PAGE_SIZE, ZONE_DMA_LIMIT } from '../../mm/constants.ts';

/**
 * dma_set_mask(dev, DMA_BIT_MASK(n)): 0, or -EIO when the device has no mask pointer or the mask
 * cannot reach ZONE_DMA (dma_direct_supported; an IOMMU supports every mask).
 * @example dma_set_mask(dev, DMA_BIT_MASK(64)) // 0
 */
export function dma_set_mask(dev: Device, mask: number): number {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dma_set_mask', 'dev');
  checkMask(mask, 'dma_set_mask');
  if (dev.dma_mask === null || !supported(dev, mask)) return -EIO;
  dev.dma_mask = mask;
  return 0;
}

/** dma_set_coherent_mask: 0 or -EIO. */
export function dma_set_coherent_mask(dev: Device, mask: number): number {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dma_set_coherent_mask', 'dev');
  checkMask(mask, 'dma_set_coherent_mask');
  if (!supported(dev, mask)) return -EIO;
  dev.coherent_dma_mask = mask;
  return 0;
}

/** dma_set_mask_and_coherent: both, or the first error. */
export function dma_set_mask_and_coherent(dev: Device, mask: number): number {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dma_set_mask_and_coherent', 'dev');
  const r = dma_set_mask(dev, mask);
  return r !== 0 ? r : dma_set_coherent_mask(dev, mask);
}

/** dma_get_mask: *dma_mask if set and non-zero, else DMA_BIT_MASK(32). */
export function dma_get_mask(dev: Device): number {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dma_get_mask', 'dev');
  return dev.dma_mask !== null && dev.dma_mask !== 0 ? dev.dma_mask : DMA_BIT_MASK(32);
}

/** dma_get_max_seg_size: dma_parms.max_segment_size when set and non-zero, else 64 KiB. */
export function dma_get_max_seg_size(dev: Device): number {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dma_get_max_seg_size', 'dev');
  return dev.dma_parms?.max_segment_size || 65536;
}

/** dma_get_seg_boundary: dma_parms.segment_boundary_mask when set and non-zero, else ULONG_MAX. */
export function dma_get_seg_boundary(dev: Device): number {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dma_get_seg_boundary', 'dev');
  return dev.dma_parms?.segment_boundary_mask || ULONG_MAX;
}

/** dma_get_min_align_mask. */
export function dma_get_min_align_mask(dev: Device): number {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dma_get_min_align_mask', 'dev');
  return dev.dma_parms?.min_align_mask ?? 0;
}

/** dma_set_max_seg_size: WARN_ON_ONCE without dma_parms (void since v6.12). */
export function dma_set_max_seg_size(dev: Device, size: number): void {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dma_set_max_seg_size', 'dev');
  checkInt(size, 'dma_set_max_seg_size', 'size', 0, 0xffffffff);
  if (dev.dma_parms === null) {
    dev.host.ctx.klog.warnOnce(`dma_set_max_seg_size:${dev.name}`, 'dma_set_max_seg_size', 'WARN_ON_ONCE(!dev->dma_parms)');
    return;
  }
  dev.dma_parms.max_segment_size = size;
}

/** dma_set_seg_boundary: WARN_ON_ONCE without dma_parms. */
export function dma_set_seg_boundary(dev: Device, mask: number): void {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dma_set_seg_boundary', 'dev');
  checkMask(mask, 'dma_set_seg_boundary');
  if (dev.dma_parms === null) {
    dev.host.ctx.klog.warnOnce(`dma_set_seg_boundary:${dev.name}`, 'dma_set_seg_boundary', 'WARN_ON_ONCE(!dev->dma_parms)');
    return;
  }
  dev.dma_parms.segment_boundary_mask = mask;
}

/** dma_set_min_align_mask. */
export function dma_set_min_align_mask(dev: Device, mask: number): void {
  if (!(dev instanceof Device)) throw notInstance(dev, Device, 'dma_set_min_align_mask', 'dev');
  checkInt(mask, 'dma_set_min_align_mask', 'mask', 0, 0xffffffff);
  if (dev.dma_parms === null) {
    dev.host.ctx.klog.warnOnce(`dma_set_min_align_mask:${dev.name}`, 'dma_set_min_align_mask', 'WARN_ON_ONCE(!dev->dma_parms)');
    return;
  }
  dev.dma_parms.min_align_mask = mask;
}

function supported(dev: Device, mask: number): boolean {
  return dev.host.dmaSupported?.(dev, mask) ?? (mask >= DMA_BIT_MASK(32) || mask >= ZONE_DMA_LIMIT - 1);
}

/**
 * dma_direct_supported: a mask of 32 bits or more always; a smaller one must reach the start of
 * the last page of RAM or the end of ZONE_DMA (zone_dma_limit), whichever is lower.
 * @example dmaDirectSupported(machine.mm, DMA_BIT_MASK(24)) // true on x86 (ZONE_DMA is 16 MiB)
 */
export function dmaDirectSupported(mm: { readonly maxPfn: number; readonly zoneDmaLimit: number }, mask: number): boolean {
  if (mask >= DMA_BIT_MASK(32)) return true;
  return mask >= Math.min((mm.maxPfn - 1) * PAGE_SIZE, mm.zoneDmaLimit - 1);
}

function checkMask(mask: unknown, fn: string): void {
  if (typeof mask !== 'number' || !(mask >= 0) || (mask < 2 ** 53 && !Number.isInteger(mask))) {
    checkInt(mask, fn, 'mask');
  }
}
