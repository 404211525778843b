/**
 * @module dma/debug
 * dma-debug (kernel/dma/debug.c): the bookkeeping of every DMA mapping and allocation, the checks
 * run on map, unmap, sync and unbind, and their reports in the kernel's exact words.
 */
export * from './constants.ts';
export * from './device.ts';
export * from './platform.ts';
export * from './sg.ts';
export { hex16, hexA, decU64 } from './u64.ts';
export { DMA_API_PREFIX, type DmaDebugError, type DmaDebugReport, type DmaDebugReportKind } from './report.ts';
export { DriverFilter } from './filter.ts';
export type { DmaDebugEntryInfo } from './audit.ts';
export { DmaDebug, type DmaDebugContext, type DmaDebugOptions } from './debug.ts';
export { dma_map_single_rejects_vmalloc } from './wrapper.ts';
