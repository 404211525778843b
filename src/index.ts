/**
 * dmasim: a deterministic simulator of the Linux kernel DMA stack.
 * @module dmasim
 */
export * from './core/index.ts';
export * from './mm/index.ts';
export * from './scatterlist/index.ts';
export * from './device/index.ts';
export * from './dma/index.ts';
export * from './iommu/index.ts';
export * from './safe/index.ts';
export * from './sim/index.ts';
export * from './block/index.ts';
