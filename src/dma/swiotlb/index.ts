/**
 * @module dma/swiotlb
 * The swiotlb bounce-buffer pool: slots, areas, the next-fit slot search, the bounce copies and the
 * boot geometry, with the kernel's names and return conventions.
 */
export * from './constants.ts';
export * from './device.ts';
export * from './geometry.ts';
export { SlotTable } from './slots.ts';
export { searchConstraints, type SearchConstraints } from './search.ts';
export type { SwiotlbMemory } from './bounce.ts';
export * from './types.ts';
export * from './pool.ts';
export * from './audit.ts';
