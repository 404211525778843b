/** @module iommu: the IOVA allocator with range caches, IO page tables, IOTLB, domains and faults. */
export * from './iova.ts';
export * from './iova-rbtree.ts';
export * from './iova-rcache.ts';
export * from './flush-queue.ts';
export * from './iommu.ts';
export * from './map-domain.ts';
// iommuMapTrusted, iommuMapSgTrusted and iommuUnmapFastTrusted stay inside the simulator: they check nothing.
export {
  iommu_iova_to_phys, iommu_map, iommu_map_nosync, iommu_map_sg, iommu_sync_map, iommu_unmap, iommu_unmap_fast,
  type IommuSgAccessor, type IommuSgEntry, type IommuSgList,
} from './map.ts';
export { iommu_pgsize } from './map-pgsize.ts';
export { IommuIotlbGather, iommu_iotlb_gather_init, iommu_iotlb_gather_add_page, iommu_iotlb_gather_add_range, iommu_iotlb_gather_is_disjoint, iommu_iotlb_sync, iommu_flush_iotlb_all } from './gather.ts';
export * from './iotlb.ts';
export { translate, TranslateResult, type TranslateFault, type TranslateFaultReason, type TranslateTarget } from './translate.ts';
export * from './pgtable-ops.ts';
export * from './pgtable.ts';
export * from './pgtable-prot.ts';
export { pgtableGeometry, type IoPgtableConfig, type IoPgtableGeometry } from './pgtable-geometry.ts';
export * from './pgtable-alloc.ts';
export * from './audit.ts';
export * from './pgtable-vtd.ts';
