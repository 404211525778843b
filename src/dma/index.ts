/** @module dma: the DMA API (direct, swiotlb, iommu backends), DMA attrs and directions. */
export * from './direction.ts';
export * from './attrs.ts';
export * from './ops.ts';
export * from './params.ts';
export * from './direct.ts';
export * from './mapping.ts';
export * from './iommu-sg.ts';
export * from './debug-hooks.ts';
export { DmaDebug, ARCH_ARM64, ARCH_X86_64, BUS_NOTIFY_UNBOUND_DRIVER, type DmaDebugOptions, type DebugArch } from './debug/index.ts';
export { SwiotlbPool, swiotlb_max_mapping_size, IO_TLB_SIZE, IO_TLB_SEGSIZE, type SwiotlbMapping } from './swiotlb/index.ts';
export * from './swiotlb-bouncer.ts';
export * from './iommu-dma.ts';
export * from './iommu-translator.ts';
export * from './ledger/index.ts';
