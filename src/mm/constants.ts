/**
 * @module mm/constants
 * Page and zone constants (x86_64 values) and the simulated kernel virtual address map.
 */

import { PAGE_SIZE } from '../core/page.ts';

export { PAGE_SHIFT, PAGE_SIZE } from '../core/page.ts';
/** Largest buddy order (kernel 6.8+ name; MAX_ORDER before that was one more). */
export const MAX_PAGE_ORDER = 10;
/** Pages in the largest buddy block. */
export const MAX_ORDER_NR_PAGES = 1 << MAX_PAGE_ORDER;

/** ZONE_DMA on x86 covers physical memory below 16 MiB (the default zone_dma_limit, DMA_BIT_MASK(24) + 1). */
export const ZONE_DMA_LIMIT = 16 * 2 ** 20;
/**
 * ZONE_DMA on arm64 covers memory below 4 GiB when the firmware names no smaller DMA limit
 * (zone_dma_limit from the device tree or IORT; a Raspberry Pi 4 has 1 GiB), leaving ZONE_DMA32 empty.
 */
export const ARM64_ZONE_DMA_LIMIT = 4 * 2 ** 30;
/** ZONE_DMA32 covers physical memory below 4 GiB. */
export const ZONE_DMA32_LIMIT = 4 * 2 ** 30;

/**
 * Start of the direct map: kernel virtual address of physical address 0. The real x86_64 value
 * (0xffff888000000000) is above 2^53, so dmasim keeps the layout but moves it below 2^53 where a
 * JavaScript number holds every address exactly.
 */
export const PAGE_OFFSET = 2 ** 52;
/** Start of the vmalloc area (simulated; see {@link PAGE_OFFSET}). */
export const VMALLOC_START = 2 ** 52 + 2 ** 48;
/** End of the vmalloc area. */
export const VMALLOC_END = 2 ** 52 + 2 ** 50;

/** Round `bytes` up to whole pages: the kernel's PAGE_ALIGN. */
export function pageAlign(bytes: number): number {
  return Math.ceil(bytes / PAGE_SIZE) * PAGE_SIZE;
}

/** The kernel's get_order(): smallest order whose block holds `bytes` (bytes ≥ 1). */
export function getOrder(bytes: number): number {
  let order = 0;
  while (PAGE_SIZE * 2 ** order < bytes) order++;
  return order;
}
