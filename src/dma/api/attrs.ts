/**
 * @module dma/api/attrs
 * DMA attributes: every `DMA_ATTR_*` of include/linux/dma-mapping.h, with the kernel's bit values
 * (bits 0 and 3 are unused: their attributes were removed from the kernel long ago).
 */
/** Writes may be reordered with other writes to the buffer. */
export const DMA_ATTR_WEAK_ORDERING = 1 << 1;
/** Buffer mapped write-combined (coherent allocations). */
export const DMA_ATTR_WRITE_COMBINE = 1 << 2;
/** No kernel virtual mapping of a coherent allocation is needed. */
export const DMA_ATTR_NO_KERNEL_MAPPING = 1 << 4;
/** Skip the CPU cache sync on map and unmap (the driver syncs itself). */
export const DMA_ATTR_SKIP_CPU_SYNC = 1 << 5;
/** Allocate physically contiguous memory even behind an IOMMU. */
export const DMA_ATTR_FORCE_CONTIGUOUS = 1 << 6;
/** Prefer single pages to higher orders when allocating. */
export const DMA_ATTR_ALLOC_SINGLE_PAGES = 1 << 7;
/** No allocation-failure warning (swiotlb's "buffer is full" report stays quiet). */
export const DMA_ATTR_NO_WARN = 1 << 8;
/** Privileged (supervisor) DMA: IOMMU_PRIV in the page table. */
export const DMA_ATTR_PRIVILEGED = 1 << 9;
/** The physical address is MMIO, not RAM (dma_map_resource): no bouncing, no cache maintenance. */
export const DMA_ATTR_MMIO = 1 << 10;
/** dma-debug: this mapping may share cache lines with others (both sides must say so). */
export const DMA_ATTR_DEBUGGING_IGNORE_CACHELINES = 1 << 11;
/**
 * The mapping must be cache-coherent and never bounce: a non-coherent device, or a buffer that
 * would need swiotlb, fails (DMA_MAPPING_ERROR; -EOPNOTSUPP from dma_map_sgtable).
 */
export const DMA_ATTR_REQUIRE_COHERENT = 1 << 12;
/** Confidential computing: the buffer is shared (decrypted) with the host. */
export const DMA_ATTR_CC_SHARED = 1 << 13;
