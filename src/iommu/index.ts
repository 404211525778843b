/** @module iommu: the IOVA allocator with range caches, IO page tables, IOTLB, domains and faults. */
export * from './iova.ts';
export * from './iova-rbtree.ts';
export * from './iova-rcache.ts';
export * from './flush-queue.ts';
