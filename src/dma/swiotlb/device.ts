/**
 * @module dma/swiotlb/device
 * What swiotlb reads from a `struct device`, as a plain parameter object a device layer can fill:
 * `min_align_mask`, `segment_boundary_mask`, `*dma_mask` and `bus_dma_limit`. Also
 * `swiotlb_max_mapping_size()`, which depends on the device only.
 */
import { checkU32 } from '../../core/args.ts';
import { EINVAL } from '../../core/errno.ts';
import { KernelError } from '../../core/errors.ts';
import { isUlongMax } from './bits.ts';
import { IO_TLB_SEGMENT_BYTES } from './constants.ts';

/**
 * The device inputs of swiotlb, with the kernel's field names. Every field is optional and
 * defaults as the kernel does for a device without `dma_parms`.
 *
 * Masks wider than 32 bits are plain numbers. **ULONG_MAX** may be given as `Infinity`,
 * `Number.MAX_SAFE_INTEGER` or `2 ** 64` (device/mask's ULONG_MAX and DMA_BIT_MASK(64)): every
 * segment boundary mask from MAX_SAFE_INTEGER up is read as ULONG_MAX, since no address below
 * 2^53 (all dmasim has) can tell them apart. dma_mask and bus_dma_limit are compared as given.
 * @example
 * const nvme: SwiotlbDevice = { name: 'nvme0', min_align_mask: 0xfff, dma_mask: 2 ** 32 - 1 };
 */
export interface SwiotlbDevice {
  /** Device name, for messages. */
  readonly name?: string;
  /** `dma_get_min_align_mask()`: an `unsigned int`; absent or 0 = none. */
  readonly min_align_mask?: number;
  /** `dma_get_seg_boundary()`: absent or 0 = ULONG_MAX (no limit). */
  readonly segment_boundary_mask?: number;
  /** `*dev->dma_mask`, used by `swiotlb_map` only. Absent = DMA_BIT_MASK(32), the kernel's default. */
  readonly dma_mask?: number;
  /** `dev->bus_dma_limit`, used by `swiotlb_map` only. Absent or 0 = none. */
  readonly bus_dma_limit?: number;
}

/**
 * The device inputs, checked and defaulted.
 * @example swiotlbDeviceParams({}, 'f') // { keep: 0, boundary: Infinity, dmaMask: 0xffffffff, busLimit: 0 }
 */
export interface SwiotlbDeviceParams {
  /** min_align_mask (u32). */
  readonly keep: number;
  /** Segment boundary mask; Infinity = ULONG_MAX (whatever form it was given in). */
  readonly boundary: number;
  /** *dma_mask, as given. */
  readonly dmaMask: number;
  /** bus_dma_limit; 0 = none. */
  readonly busLimit: number;
}

function mask64(value: unknown, fn: string, arg: string): number {
  if (typeof value === 'number' && (value === Infinity || (Number.isInteger(value) && value >= 0))) return value;
  throw new KernelError(EINVAL, fn, `expected a mask (a whole number >= 0, or Infinity for all ones), got ${String(value)}`, arg);
}

/**
 * Check and default the device inputs.
 * @throws KernelError EINVAL naming the field when one is not a mask a C caller could hold.
 * @example swiotlbDeviceParams({ min_align_mask: 0xfff }, 'swiotlb_map').boundary // Infinity
 */
export function swiotlbDeviceParams(dev: SwiotlbDevice, fn: string): SwiotlbDeviceParams {
  if (typeof dev !== 'object' || dev === null) throw new KernelError(EINVAL, fn, 'expected a device parameter object', 'dev');
  const keep = dev.min_align_mask === undefined ? 0 : checkU32(dev.min_align_mask, fn, 'dev.min_align_mask');
  const b = dev.segment_boundary_mask === undefined ? 0 : mask64(dev.segment_boundary_mask, fn, 'dev.segment_boundary_mask');
  const dmaMask = dev.dma_mask === undefined ? 0xffffffff : mask64(dev.dma_mask, fn, 'dev.dma_mask');
  const busLimit = dev.bus_dma_limit === undefined ? 0 : mask64(dev.bus_dma_limit, fn, 'dev.bus_dma_limit');
  return { keep, boundary: b === 0 || isUlongMax(b) ? Infinity : b, dmaMask, busLimit };
}

/**
 * The largest mapping swiotlb can bounce for `dev`: 256 KiB less `roundup(min_align_mask, 2048)`
 * (252 KiB for NVMe's 0xfff). The mask is a C `int` here, so 0xffffffff reads as -1 and rounds to
 * 0; a mask above 256 KiB makes the `size_t` result wrap, returned as 2^64 − x (approximate:
 * a number cannot hold it exactly).
 * @example swiotlb_max_mapping_size({ min_align_mask: 0xfff }) // 258048
 */
export function swiotlb_max_mapping_size(dev: SwiotlbDevice): number {
  const { keep } = swiotlbDeviceParams(dev, 'swiotlb_max_mapping_size');
  const k = keep | 0;
  if (k === 0) return IO_TLB_SEGMENT_BYTES;
  // roundup(k, 2048) in int arithmetic: (k + 2047) / 2048 * 2048, truncating toward zero.
  const minAlign = Math.trunc(((k + 2047) | 0) / 2048) * 2048;
  const r = IO_TLB_SEGMENT_BYTES - minAlign;
  return r >= 0 ? r : 2 ** 64 + r;
}
