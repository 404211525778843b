/**
 * @module dma/debug/constants
 * The numbers and names dma-debug (kernel/dma/debug.c) works with: hash geometry, pool sizes, entry
 * kinds, map-error states, the DMA attributes it reads and the bus notifier action it handles.
 */

/** Hash buckets in the entry table. */
export const HASH_SIZE = 16384;
/** A bucket is `(dma_addr >> HASH_FN_SHIFT) & (HASH_SIZE - 1)`: one bucket per 8 KiB, wrapping every 128 MiB. */
export const HASH_FN_SHIFT = 13;
/** Entries preallocated at boot unless `dma_debug_entries=N` says otherwise. */
export const PREALLOC_DMA_DEBUG_ENTRIES = 65536;
/** Entries added when the pool runs dry: one page of 128-byte entries. */
export const DMA_DEBUG_DYNAMIC_ENTRIES = 32;
/** Most overlapping claims a cacheline counts (three radix-tree tags: 2^3 - 1). */
export const ACTIVE_CACHELINE_MAX_OVERLAP = 7;
/** Longest driver-filter name kept (NAME_MAX_LEN - 1). */
export const DRIVER_NAME_MAX = 63;
/** `max_segment_size` assumed for a device without dma_parms, or with 0 there (SZ_64K). */
export const DEFAULT_MAX_SEGMENT_SIZE = 65536;

/** Entry kind of a sync reference (never recorded since v6.18). */
export const dma_debug_single = 0;
/** Entry kind of one mapped segment of dma_map_sg. */
export const dma_debug_sg = 1;
/** Entry kind of dma_alloc_coherent / dma_alloc_attrs. */
export const dma_debug_coherent = 2;
/** Entry kind of dma_alloc_pages / dma_alloc_noncoherent. */
export const dma_debug_noncoherent = 3;
/** Entry kind of dma_map_page / _single / _phys / _resource. */
export const dma_debug_phy = 4;

/** One of the five entry kinds. */
export type DmaDebugType = 0 | 1 | 2 | 3 | 4;

/** The kind names dma-debug prints (`[mapped as ...]`). */
export const TYPE_NAMES = ['single', 'scatter-gather', 'coherent', 'noncoherent', 'phy'] as const;

/** Map-error state of sg, coherent and noncoherent entries. */
export const MAP_ERR_CHECK_NOT_APPLICABLE = 0;
/** Map-error state of a fresh phy entry. */
export const MAP_ERR_NOT_CHECKED = 1;
/** Map-error state once `dma_mapping_error()` has seen the entry. */
export const MAP_ERR_CHECKED = 2;

// DMA_ATTR_SKIP_CPU_SYNC (1 << 5) exempts the new mapping from the overlap report. Re-exported
// from swiotlb's constants so both modules export one binding (no clash in a shared `export *`).
export { DMA_ATTR_SKIP_CPU_SYNC } from '../swiotlb/constants.ts';
// DMA_ATTR_MMIO (a resource mapping: the MMIO-on-RAM check replaces the stack/image checks) and the
// two attributes that make an entry "clean" for the overlap report, from the one list of attributes.
export { DMA_ATTR_MMIO, DMA_ATTR_DEBUGGING_IGNORE_CACHELINES, DMA_ATTR_REQUIRE_COHERENT } from '../api/attrs.ts';

/** The bus notifier action dma-debug acts on: the driver has been unbound. */
export const BUS_NOTIFY_UNBOUND_DRIVER = 7;

/**
 * The kind name of an entry type, as printed.
 * @example dmaDebugTypeName(dma_debug_sg) // 'scatter-gather'
 */
export function dmaDebugTypeName(type: number): string {
  return TYPE_NAMES[type] ?? `type ${type}`;
}
