/**
 * @module block/limits
 * struct queue_limits as the DMA path sees it, and blk_validate_limits (block/blk-settings.c):
 * the defaults a driver gets for what it leaves 0, and the limits the block layer refuses.
 */
import type { KernelContext } from '../core/context.ts';
import { EINVAL } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import { checkContext, checkObject } from '../core/args.ts';
import { PAGE_SIZE } from '../mm/constants.ts';

export const SECTOR_SHIFT = 9;
export const SECTOR_SIZE = 512;
export const BLK_MAX_SEGMENTS = 128;
export const BLK_SAFE_MAX_SECTORS = 255;
export const BLK_MAX_SEGMENT_SIZE = 65536;
/** BLK_SEG_BOUNDARY_MASK (0xFFFFFFFFUL). */
export const BLK_SEG_BOUNDARY_MASK = 0xffffffff;
export const BLK_MIN_SEGMENT_SIZE = 4096;
/** BLK_DEF_MAX_SECTORS_CAP: 4 MiB in sectors. */
export const BLK_DEF_MAX_SECTORS_CAP = (4 * 2 ** 20) >> SECTOR_SHIFT;
const UINT_MAX = 0xffffffff;

/**
 * The queue limits a driver sets (0 = the block layer's default), as blk_validate_limits fills them.
 * Masks are numbers below 2^53 (a ULONG_MAX seg_boundary_mask is written 2 ** 64 - 1 and kept as 2^64).
 */
export interface QueueLimits {
  max_segments: number;
  max_segment_size: number;
  /** A segment never crosses an address where the bits above the mask change. */
  seg_boundary_mask: number;
  /** NVMe's PRP rule: no gap at a boundary of this mask between two segments; 0: none. */
  virt_boundary_mask: number;
  /** A mask: every bvec's offset and length must be aligned to it (default 511). */
  dma_alignment: number;
  max_hw_sectors: number;
  max_sectors: number;
  logical_block_size: number;
  physical_block_size: number;
  /** Derived: the largest single bvec the fast path takes as one segment. */
  max_fast_segment_size: number;
}

/** A zeroed queue_limits: every field left to the defaults. @example blk_validate_limits(ctx, { ...blankLimits(), virt_boundary_mask: 4095 }) */
export function blankLimits(): QueueLimits {
  return {
    max_segments: 0, max_segment_size: 0, seg_boundary_mask: 0, virt_boundary_mask: 0, dma_alignment: 0,
    max_hw_sectors: 0, max_sectors: 0, logical_block_size: 0, physical_block_size: 0, max_fast_segment_size: 0,
  };
}

function isPow2(n: number): boolean {
  return n > 0 && Number.isInteger(Math.log2(n));
}

/**
 * blk_validate_limits: fill in defaults and refuse what the block layer refuses (each refusal a
 * WARN_ON_ONCE or the kernel's pr_warn, and -EINVAL). `lim` is updated in place.
 * @returns 0 or -EINVAL.
 * @example const lim = { ...blankLimits(), max_segments: 127, virt_boundary_mask: 4095 }; blk_validate_limits(machine, lim)
 */
export function blk_validate_limits(ctx: KernelContext, lim: QueueLimits): number {
  checkContext(ctx, 'blk_validate_limits', 'ctx');
  if (typeof lim !== 'object' || lim === null) throw new KernelError(EINVAL, 'blk_validate_limits', 'expected queue_limits', 'lim');
  for (const k of Object.keys(blankLimits()) as Array<keyof QueueLimits>) {
    const v = lim[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) && v !== 2 ** 64 || v < 0) throw new KernelError(EINVAL, 'blk_validate_limits', `${k} must be a whole number, got ${String(v)}`, k);
  }
  const klog = ctx.klog;
  const warn = (cond: string): number => { klog.warnOnce(`blk_validate_limits:${cond}`, 'blk_validate_limits', `WARN_ON_ONCE(${cond})`); return -EINVAL; };
  if (lim.logical_block_size === 0) lim.logical_block_size = SECTOR_SIZE;
  else if (lim.logical_block_size < SECTOR_SIZE || lim.logical_block_size > 65536 || !isPow2(lim.logical_block_size)) {
    klog.printk('warn', 'blk_validate_limits', `Invalid logical block size (${lim.logical_block_size})`);
    return -EINVAL;
  }
  if (lim.physical_block_size < lim.logical_block_size) lim.physical_block_size = lim.logical_block_size;
  else if (!isPow2(lim.physical_block_size)) {
    klog.printk('warn', 'blk_validate_limits', `Invalid physical block size (${lim.physical_block_size})`);
    return -EINVAL;
  }
  const lbsSectors = lim.logical_block_size >> SECTOR_SHIFT;
  if (lim.max_hw_sectors === 0) lim.max_hw_sectors = BLK_SAFE_MAX_SECTORS;
  if (lim.max_hw_sectors < PAGE_SIZE >> SECTOR_SHIFT) return warn('lim->max_hw_sectors < PAGE_SECTORS');
  if (lbsSectors > lim.max_hw_sectors) return warn('logical_block_sectors > lim->max_hw_sectors');
  lim.max_hw_sectors = Math.floor(lim.max_hw_sectors / lbsSectors) * lbsSectors;
  // max_sectors is derived, whatever the driver wrote.
  lim.max_sectors = Math.floor(Math.min(lim.max_hw_sectors, BLK_DEF_MAX_SECTORS_CAP) / lbsSectors) * lbsSectors;
  if (lim.max_segments === 0) lim.max_segments = BLK_MAX_SEGMENTS;
  if (lim.seg_boundary_mask === 0) lim.seg_boundary_mask = BLK_SEG_BOUNDARY_MASK;
  if (lim.seg_boundary_mask < BLK_MIN_SEGMENT_SIZE - 1) return warn('lim->seg_boundary_mask < BLK_MIN_SEGMENT_SIZE - 1');
  if (lim.virt_boundary_mask !== 0) {
    if (lim.max_segment_size === 0) lim.max_segment_size = UINT_MAX;
  } else {
    if (lim.max_segment_size === 0) lim.max_segment_size = BLK_MAX_SEGMENT_SIZE;
    if (lim.max_segment_size < BLK_MIN_SEGMENT_SIZE) return warn('lim->max_segment_size < BLK_MIN_SEGMENT_SIZE');
  }
  const segSize = lim.seg_boundary_mask > lim.max_segment_size - 1 ? lim.max_segment_size : lim.seg_boundary_mask + 1;
  lim.max_fast_segment_size = Math.min(segSize, PAGE_SIZE);
  if (lim.dma_alignment === 0) lim.dma_alignment = SECTOR_SIZE - 1;
  if (lim.dma_alignment > PAGE_SIZE) return warn('lim->dma_alignment > PAGE_SIZE');
  return 0;
}

/**
 * get_max_segment_size: bytes from physical address `paddr` that fit in one segment: up to the
 * next seg_boundary crossing or max_segment_size, whichever comes first, at most `len`.
 * @example get_max_segment_size(lim, 0xf000, 65536) // 4096 under a 64 KiB boundary
 */
export function get_max_segment_size(lim: QueueLimits, paddr: number, len: number): number {
  checkObject(lim, 'get_max_segment_size', 'lim');
  if (typeof paddr !== 'number' || !Number.isSafeInteger(paddr) || paddr < 0) throw new KernelError(EINVAL, 'get_max_segment_size', `expected a physical address, got ${String(paddr)}`, 'paddr');
  if (typeof len !== 'number' || !Number.isSafeInteger(len) || len < 0) throw new KernelError(EINVAL, 'get_max_segment_size', `expected a length, got ${String(len)}`, 'len');
  const mask = lim.seg_boundary_mask;
  // The offset of paddr inside its boundary window, exact above 2^32 (mask + 1 is a power of two).
  const inWindow = mask >= 2 ** 53 - 1 ? paddr : paddr % (mask + 1);
  return Math.min(len, Math.min(mask - inWindow, lim.max_segment_size - 1) + 1);
}

