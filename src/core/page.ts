/**
 * @module core/page
 * The page size, needed below mm by the sparse memory (x86_64: 4 KiB pages).
 */

/** log2 of the page size. */
export const PAGE_SHIFT = 12;
/** Bytes per page frame. */
export const PAGE_SIZE = 4096;
