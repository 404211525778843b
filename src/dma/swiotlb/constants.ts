/**
 * @module dma/swiotlb/constants
 * swiotlb geometry (include/linux/swiotlb.h), plus the failed-map sentinel and the two DMA
 * attributes swiotlb looks at (re-exported from where the DMA layers define them).
 */

/** log2 of the slot size. */
export const IO_TLB_SHIFT = 11;
/** Bytes per slot (2 KiB). */
export const IO_TLB_SIZE = 2048;
/** Slots per segment: the largest contiguous allocation; free runs never cross a segment. */
export const IO_TLB_SEGSIZE = 128;
/** Default pool size: 64 MiB (32768 slots). */
export const IO_TLB_DEFAULT_SIZE = 64 * 2 ** 20;
/** Bytes in one segment, the largest possible bounce buffer (256 KiB). */
export const IO_TLB_SEGMENT_BYTES = IO_TLB_SIZE * IO_TLB_SEGSIZE;

/**
 * What a failed map returns: dmasim's DMA_MAPPING_ERROR, -1 (the kernel's `~(dma_addr_t)0` does not
 * fit a number, and no physical or DMA address is negative). Re-exported from scatterlist/entry,
 * where the DMA layers share it.
 * @example if (pool.swiotlb_tbl_map_single(dev, phys, len, 0, DMA_TO_DEVICE, 0) === DMA_MAPPING_ERROR) ...
 */
export { DMA_MAPPING_ERROR } from '../../scatterlist/entry.ts';

/**
 * The two attributes swiotlb reads, re-exported from dma/attrs: `DMA_ATTR_SKIP_CPU_SYNC` (unmap
 * copies nothing back; map copies regardless) and `DMA_ATTR_NO_WARN` (no "swiotlb buffer is full").
 */
export { DMA_ATTR_NO_WARN, DMA_ATTR_SKIP_CPU_SYNC } from '../api/attrs.ts';

/** `orig_addr` of a slot that holds no original address (the kernel's all-ones INVALID_PHYS_ADDR). */
export const INVALID_PHYS_ADDR = -1;
