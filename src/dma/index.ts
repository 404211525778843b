/** @module dma: the DMA API (direct, swiotlb, iommu backends), DMA attrs and directions. */
export * from './direction.ts';
export * from './attrs.ts';
export * from './ops.ts';
export * from './params.ts';
export * from './direct.ts';
export * from './mapping.ts';
export * from './iommu-sg.ts';
