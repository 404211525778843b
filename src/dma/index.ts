/** @module dma: the DMA API (direct, swiotlb, iommu backends), DMA attrs and directions. */
export * from './api/direction.ts';
export * from './api/attrs.ts';
export * from './api/ops.ts';
export * from './api/params.ts';
export * from './direct/direct.ts';
export * from './api/mapping.ts';
export * from './api/alloc-pages.ts';
export * from './api/iova.ts';
export * from './iommu/iommu-sg.ts';
export * from './debug/hooks.ts';
export { DmaDebug, ARCH_ARM64, ARCH_X86_64, BUS_NOTIFY_UNBOUND_DRIVER, type DmaDebugOptions, type DebugArch } from './debug/index.ts';
export { SwiotlbPool, swiotlb_max_mapping_size, IO_TLB_SIZE, IO_TLB_SEGSIZE, type SwiotlbMapping } from './swiotlb/index.ts';
export * from './swiotlb/bouncer.ts';
export * from './iommu/iommu-dma.ts';
export * from './iommu/translator.ts';
export * from './ledger/index.ts';
export * from './pool/dmapool.ts';
